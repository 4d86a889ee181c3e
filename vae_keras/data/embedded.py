"""Source ``"mnist-10k"``: 10,000 real MNIST digits shipped in ``vae_keras/data_files`` (works offline)."""

from __future__ import annotations

import dataclasses
import importlib.resources

from vae_keras.data.npz import _load_npz

MNIST_10K = "mnist-10k"


def claim(spec, path):
    """The spec this source loads (``"mnist-10k"``, any case), else None."""
    return MNIST_10K if spec.strip().lower() == MNIST_10K else None


def load(claimed, image_size):
    return _load_mnist_10k(image_size)


def _load_mnist_10k(image_size):
    ref = importlib.resources.files("vae_keras") / "data_files" / "mnist10k.npz"
    with importlib.resources.as_file(ref) as path:
        d = _load_npz(path, MNIST_10K, image_size)
    return dataclasses.replace(d, class_names=tuple(str(i) for i in range(10)))
