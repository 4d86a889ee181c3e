"""The export layout on disk, ``OUT/NAME/VERSION/`` (TF Serving's), by name: what `vae_keras.export`
writes and `vae_keras.exported` reads.

Light on purpose (no TensorFlow): the dashboard lists the models from their cards with it before
TensorFlow is imported.
"""

import os

SIGNATURES = ("serving_default", "encode", "decode", "sample", "log_weights")
LEARNED_PRIOR_SIGNATURES = ("log_prior",)  # also exported by a model with a learned prior (vae_keras.priors)
ASSETS_EXTRA = "assets.extra"
MODEL_CARD = "model_card.json"
HISTORY = "history.csv"
KERAS_FILE = "model.keras"
CONFIG_FILE = "config.json"
WARMUP_FILE = "tf_serving_warmup_requests"


def existing_versions(model_base):
    """Sorted integer versions under ``model_base`` (TF Serving's rule: numeric folder names)."""
    if not os.path.isdir(model_base):
        return []
    return sorted(int(d) for d in os.listdir(model_base) if d.isdigit() and os.path.isdir(os.path.join(model_base, d)))
