"""Source: a folder of IDX files (``train-images-idx3-ubyte[.gz]``, ``t10k-*`` and label files optional).

IDX files must hold unsigned bytes (magic ``0x00000803`` for images, ``0x00000801`` for labels);
their byte count must match the header exactly. Class names come from an optional ``classes.txt``,
else from a known dataset's training labels (Fashion-MNIST), else none.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib

import numpy as np

from vae_keras.data.arrays import CLASSES_FILE, read_classes_file
from vae_keras.data.image_data import ImageData
from vae_keras.errors import DataError

_IDX_MAGIC = {"images": 0x00000803, "labels": 0x00000801}
IDX_CLASSES_FILE = CLASSES_FILE
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
# IDX files carry no class names. Known datasets are recognised by their training labels: the SHA-256 of
# the 60,000 label bytes after the IDX header (so the same whether the file is gzipped or not, and
# wherever the folder is). A classes.txt beside the files always wins.
_KNOWN_IDX_CLASS_NAMES = {
    "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7": FASHION_MNIST_CLASSES,  # Fashion-MNIST
}


def claim(spec, path):
    """The absolute path of an existing folder holding IDX images, else None."""
    if path is not None and os.path.isdir(path) and (_find_idx(path, "train", "images") or _find_idx(path, "t10k", "images")):
        return path
    return None


def load(path, image_size):
    return _load_idx_folder(path, path, image_size)


def _idx_candidates(prefix, kind):
    dims = "idx3" if kind == "images" else "idx1"
    stems = (f"{prefix}-{kind}-{dims}-ubyte", f"{prefix}-{kind}.{dims}-ubyte")
    return [s + ext for s in stems for ext in ("", ".gz")]


def _find_idx(folder, prefix, kind):
    for fname in _idx_candidates(prefix, kind):
        p = os.path.join(folder, fname)
        if os.path.isfile(p):
            return p
    return None


def read_idx(path, kind="images"):
    """Reads an IDX file (optionally gzipped) of unsigned bytes into a numpy array.

    Args:
        path: file path; a ``.gz`` suffix means gzip.
        kind: ``"images"`` (magic 0x00000803, 3 dims) or ``"labels"`` (0x00000801, 1 dim).

    Raises:
        DataError: unreadable file, wrong magic number, or a byte count that does not match the
            dimensions in the header (e.g. a truncated download).
    """
    magic_expected = _IDX_MAGIC[kind]
    ndim = magic_expected & 0xFF
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            with open(path, "rb") as f:
                raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(
            f"IDX file '{path}' cannot be read ({type(e).__name__}: {e}). It may be truncated or "
            "corrupt: download it again."
        ) from None
    header = 4 + 4 * ndim
    if len(raw) < 4:
        raise DataError(
            f"IDX file '{path}' is truncated: expected at least {header} bytes of header, "
            f"received {len(raw)} bytes. Download it again."
        )
    magic = int.from_bytes(raw[:4], "big")
    if magic != magic_expected:
        raise DataError(
            f"IDX file '{path}' has magic number 0x{magic:08x}; expected 0x{magic_expected:08x} "
            f"(unsigned-byte {kind}, {ndim}-D). Check that it is the right, uncorrupted file."
        )
    if len(raw) < header:
        raise DataError(
            f"IDX file '{path}' is truncated: expected at least {header} bytes of header, "
            f"received {len(raw)} bytes. Download it again."
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "longer than its header says"
        raise DataError(
            f"IDX file '{path}' is {state}: dimensions {dims} need {expected} bytes, received "
            f"{len(raw)} bytes. Download it again."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _load_idx_folder(folder, name, image_size):
    train_x = _find_idx(folder, "train", "images")
    test_x = _find_idx(folder, "t10k", "images")
    if train_x is None:
        raise DataError(
            f"Dataset folder '{folder}' has IDX test images ({os.path.basename(test_x)}) but no "
            "train-images-idx3-ubyte[.gz]. Add the training images."
        )
    train_y = _find_idx(folder, "train", "labels")
    test_y = _find_idx(folder, "t10k", "labels") if test_x else None
    if test_x and (train_y is None) != (test_y is None):
        have = train_y or test_y
        missing = "t10k-labels-idx1-ubyte[.gz]" if test_y is None else "train-labels-idx1-ubyte[.gz]"
        raise DataError(
            f"Dataset folder '{folder}' has {os.path.basename(have)} but no {missing}. Add the "
            "missing label file, or remove the other one to use the images unlabelled."
        )
    x_tr = read_idx(train_x, "images")
    y_tr = read_idx(train_y, "labels") if train_y else None
    x_te = read_idx(test_x, "images") if test_x else None
    y_te = read_idx(test_y, "labels") if test_y else None
    class_names = None
    classes_txt = os.path.join(folder, IDX_CLASSES_FILE)
    if y_tr is not None and os.path.isfile(classes_txt):
        class_names = read_classes_file(classes_txt, (y_tr, y_te))
    elif y_tr is not None:
        class_names = _KNOWN_IDX_CLASS_NAMES.get(hashlib.sha256(np.ascontiguousarray(y_tr).tobytes()).hexdigest())
    return ImageData.from_arrays(x_tr, y_tr, x_te, y_te, class_names=class_names, name=name, image_size=image_size,
                                 source=f"IDX folder '{folder}'")
