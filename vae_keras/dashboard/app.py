"""The dashboard's Streamlit script (``vae-keras dashboard`` runs it): ``streamlit run`` executes this file
at every interaction; it only calls :func:`vae_keras.dashboard.main.run`.

    streamlit run <this file> -- --models-dir DIR      # or VAE_KERAS_MODELS_DIR=DIR; default ./saved_models
"""

import sys
from pathlib import Path

try:
    from vae_keras.dashboard.main import run
except ModuleNotFoundError:  # vae_keras is not installed: run from its folder (`streamlit run vae_keras/dashboard/app.py`)
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from vae_keras.dashboard.main import run

run(default_models_dir=Path.cwd() / "saved_models")
