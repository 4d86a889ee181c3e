"""vae_keras: variational autoencoders for Keras 3 / TensorFlow that train with `model.fit`,
export TF-Serving SavedModels, and come with a Streamlit dashboard.

Importing the package registers its Keras objects (so `keras.saving.load_model` can read a
``model.keras`` file after ``import vae_keras``); the other public names load on first use.

Example:
>>> import vae_keras
>>> train, test = vae_keras.load_dataset("mnist-10k", batch_size=128)   # doctest: +SKIP
>>> vae = vae_keras.build_vae((28, 28, 1), latent_dim=32)                 # doctest: +SKIP
>>> vae.compile(optimizer="adam"); vae.fit(train, validation_data=test)   # doctest: +SKIP
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "VAE": "vae_keras.models",
    "build_vae": "vae_keras.models",
    "Sampling": "vae_keras.layers",
    "LogVarianceClip": "vae_keras.layers",
    "load_dataset": "vae_keras.data",
    "load_images": "vae_keras.data",
    "export_model": "vae_keras.export",
    "ExportedVAE": "vae_keras.exported",
    "evaluate": "vae_keras.evaluation",
    "train": "vae_keras.training",
    "TrainConfig": "vae_keras.training",
    "VaeKerasError": "vae_keras.errors",
}

__all__ = sorted(_EXPORTS)

from vae_keras import likelihoods, models  # noqa: E402,F401  (registers the serializable classes)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vae_keras' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
