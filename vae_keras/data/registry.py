"""The spec registry: which source loads a ``--dataset`` string (see :mod:`vae_keras.data`).

``SOURCES`` is tried in order; the first whose ``claim(spec, path)`` returns something other than
None loads it with ``load(claimed, image_size)``. ``path`` is the spec as an absolute path when such a
file or folder exists, else None. Adding a source = one module with ``claim`` and ``load``, and one
line here.
"""

from __future__ import annotations

import os

from vae_keras.data import dsprites, embedded, idx, image_folder, npz, tfds_source
from vae_keras.data.arrays import _check_image_size
from vae_keras.errors import DataError

SOURCES = (
    embedded,  # "mnist-10k", the digits shipped in the package
    dsprites,  # "dsprites", the dSprites factor grid rendered procedurally
    idx,  # a folder of IDX files
    image_folder,  # any other folder: PNG/JPEG images
    npz,  # an .npz file
    tfds_source,  # a TensorFlow Datasets name (not a path)
)


def load_images(spec, image_size=None):
    """Loads the dataset named by ``spec`` into memory, validated; see the module docstring.

    Args:
        spec: ``"mnist-10k"``, ``"dsprites"``, a path (``.npz`` file, IDX folder, image folder) or a
            TensorFlow Datasets name.
        image_size: optional ``(H, W)`` (or an int for square images) to resize every image to.

    Returns:
        An :class:`ImageData` (for ``"dsprites"`` a :class:`~vae_keras.data.factors.FactorImageData`).

    Raises:
        DataError: the spec cannot be resolved or its data cannot be used.

    Example:
    >>> load_images("mnist-10k").image_shape
    (28, 28, 1)
    """
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(
            f"A dataset spec must be a non-empty string or path. Received: {spec!r}. Use "
            "'mnist-10k', 'dsprites', a path to an .npz file or folder, or a TensorFlow Datasets name."
        )
    image_size = _check_image_size(image_size)
    path = os.path.expanduser(spec)
    path = os.path.abspath(path) if os.path.exists(path) else None
    for source in SOURCES:
        claimed = source.claim(spec, path)
        if claimed is not None:
            return source.load(claimed, image_size)
    if path is not None:
        raise DataError(
            f"Dataset file '{path}' is not an .npz file. Pass an .npz with x_train (y_train, "
            "x_test, y_test optional), a folder of IDX files or images, 'mnist-10k', or a "
            "TensorFlow Datasets name."
        )
    looks_like_path = os.sep in spec or "/" in spec or spec.lower().endswith(".npz")
    what = "No such file or folder, and it" if looks_like_path else "It"
    raise DataError(
        f"Dataset spec {spec!r} cannot be loaded. {what} is not 'mnist-10k', 'dsprites', an existing .npz "
        "file or folder, nor a TensorFlow Datasets name (e.g. 'mnist', 'fashion_mnist', "
        "'cifar10'). Check the spelling or the path."
    )


def load_dataset(spec, batch_size=128, seed=0, with_labels=False, image_size=None):
    """Loads ``spec`` and returns ``(train, test)`` ``tf.data`` pipelines ready for ``fit``.

    The train pipeline is reshuffled every epoch (deterministically for ``seed``); the test
    pipeline keeps its order. Batches are float32 in [0, 1], shape ``[B, H, W, C]``; with
    ``with_labels=True`` they are ``(x, y)`` with int32 ``y``.

    Example:
    >>> train, test = load_dataset("mnist-10k", batch_size=128)
    >>> train.element_spec.shape.as_list()
    [None, 28, 28, 1]
    """
    data = load_images(spec, image_size=image_size)
    train = data.pipeline("train", batch_size=batch_size, seed=seed, with_labels=with_labels)
    test = data.pipeline("test", batch_size=batch_size, seed=seed, with_labels=with_labels)
    return train, test
