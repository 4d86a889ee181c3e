"""The vae_keras dashboard (Streamlit): what each exported VAE learned. Needs the ``dashboard`` extra
(``pip install vae_keras[dashboard]``).

    vae-keras dashboard [--models-dir DIR] [--port N]      # runs APP_PATH with `streamlit run`
    streamlit run dashboard/app.py                          # from a checkout (the same app)

- :mod:`.app`: the script Streamlit runs; it only calls :func:`.main.run`.
- :mod:`.main`: the shell (page config, sidebar with the models list, title, tabs) and the page switch.
- :mod:`.common`: cached loaders, the shown model (`Selected`) and small widgets shared by the pages.
- :mod:`.pages`: one module per page (tab).
- :mod:`.logic`: what the pages compute, without Streamlit (tested alone).

Importing this package imports neither Streamlit nor TensorFlow (``import vae_keras`` never does).
"""

from pathlib import Path

APP_PATH = Path(__file__).resolve().parent / "app.py"  # the file `streamlit run` runs
