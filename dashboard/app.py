"""vae_keras dashboard: what each exported VAE learned (the app lives in `vae_keras.dashboard`).

    streamlit run dashboard/app.py                           # the models in saved_models/ (beside dashboard/)
    streamlit run dashboard/app.py -- --models-dir DIR       # or: VAE_KERAS_MODELS_DIR=DIR streamlit run ...
    vae-keras dashboard [--models-dir DIR] [--port N]        # the same app, from an installed wheel

This file only calls into the package: its shell and page switch are `vae_keras.dashboard.main`, one
module per page in `vae_keras.dashboard.pages`, what they compute in `vae_keras.dashboard.logic`.
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
try:
    from vae_keras.dashboard.main import run
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO_ROOT))
    from vae_keras.dashboard.main import run

run(default_models_dir=REPO_ROOT / "saved_models")
