"""Source: an ``.npz`` file with ``x_train`` (``y_train``, ``x_test``, ``y_test``, ``class_names`` optional).

Labels without ``class_names`` take their names from a ``classes.txt`` beside the file, if there is one."""

from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np

from vae_keras.data.arrays import CLASSES_FILE, read_classes_file
from vae_keras.data.image_data import ImageData
from vae_keras.errors import DataError


def claim(spec, path):
    """The absolute path of an existing ``.npz`` file, else None."""
    if path is not None and not os.path.isdir(path) and path.lower().endswith(".npz"):
        return path
    return None


def load(path, image_size):
    return _load_npz(path, path, image_size)


def _load_npz(path, name, image_size):
    """Loads an ``.npz`` with ``x_train`` (``y_train``, ``x_test``, ``y_test``, ``class_names``)."""
    source = f"'{path}'"
    keys = ("x_train", "y_train", "x_test", "y_test", "class_names")
    bad_file = f"Dataset file {source} is not a readable .npz archive"
    fix = "Save one with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)."
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):  # a .npy file named .npz
            raise DataError(f"{bad_file}: it holds a single array. {fix}")
        with npz:
            found = sorted(npz.files)
            if "x_train" not in found:
                raise DataError(
                    f"Dataset file {source} has no 'x_train' array; it has {found or 'no arrays'}. {fix}"
                )
            arrays = {}
            for k in keys:
                if k in found:
                    try:
                        arrays[k] = npz[k]
                    except ValueError as e:
                        if "pickle" in str(e):
                            raise DataError(
                                f"Array '{k}' in {source} holds Python objects (pickled data), "
                                f"which are not loaded for safety. Store numeric arrays. {fix}"
                            ) from None
                        raise
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as e:
        raise DataError(f"{bad_file} ({type(e).__name__}: {e}). {fix}") from None
    class_names = arrays.get("class_names")
    classes_txt = os.path.join(os.path.dirname(os.path.abspath(path)), CLASSES_FILE)
    if class_names is None and arrays.get("y_train") is not None and os.path.isfile(classes_txt):
        class_names = read_classes_file(classes_txt, (arrays.get("y_train"), arrays.get("y_test")))
    return ImageData.from_arrays(
        arrays.get("x_train"),
        arrays.get("y_train"),
        arrays.get("x_test"),
        arrays.get("y_test"),
        class_names=class_names,
        name=name,
        image_size=image_size,
        source=source,
    )
