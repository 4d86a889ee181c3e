"""vae_keras: variational autoencoders for Keras 3 / TensorFlow that train with `model.fit`,
export TF-Serving SavedModels, and come with a Streamlit dashboard.

Importing the package is light: it imports neither TensorFlow nor Keras, so the ``vae-keras``
command line parses its arguments (and answers ``--help`` or a typo) at once. The Keras objects
(`VAE`, the likelihoods) are registered, so that ``keras.saving.load_model`` can read a
``model.keras`` file after ``import vae_keras``, whenever Keras is loaded: at once if it already is,
else the moment Keras finishes loading (an import hook), or when a vae_keras name that needs Keras
is used first.

Example:
>>> import vae_keras
>>> train, test = vae_keras.load_dataset("mnist-10k", batch_size=128)   # doctest: +SKIP
>>> vae = vae_keras.build_vae((28, 28, 1), latent_dim=32)                 # doctest: +SKIP
>>> vae.compile(optimizer="adam"); vae.fit(train, validation_data=test)   # doctest: +SKIP
"""

import importlib
import sys

from vae_keras import import_hooks

__version__ = "0.1.0"

_EXPORTS = {
    "VAE": "vae_keras.models",
    "build_vae": "vae_keras.models",
    "HierarchicalVAE": "vae_keras.models",
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


def _register_keras_objects():
    """Imports the modules that register the serializable classes (importlib: ``from vae_keras import x``
    would ask this module's __getattr__ again)."""
    importlib.import_module("vae_keras.likelihoods")
    importlib.import_module("vae_keras.models")


def _load_and_register(load, module):
    load(module)
    _register_keras_objects()


if "keras" in sys.modules:  # Keras is loaded already, so registering costs nothing
    _register_keras_objects()
else:  # registers vae_keras's Keras objects right after ``import keras`` completes
    import_hooks.wrap_import("keras", _load_and_register)


def __getattr__(name):
    if name in _EXPORTS:
        if name != "VaeKerasError":
            _register_keras_objects()
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in ("models", "likelihoods"):  # submodules that `import vae_keras` used to load
        _register_keras_objects()
        return importlib.import_module(f"vae_keras.{name}")
    raise AttributeError(f"module 'vae_keras' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
