"""Source: a TensorFlow Datasets name (``"mnist"``, ``"cifar10"``...), loaded whole into memory.

A dataset already prepared in the TFDS data_dir loads without network; otherwise the download host
is probed for at most 5 s first, and a failed download is one :class:`DataError` (its temporary
files removed).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from vae_keras.data.arrays import _check_image_size, _resize_one, _target_size
from vae_keras.data.image_data import ImageData
from vae_keras.errors import DataError

# TFDS's own download host (its bucket of prepared datasets, and the mirror of mnist and many others).
_TFDS_PROBE_URL = "https://storage.googleapis.com/tfds-data/"
_TFDS_PROBE_SECONDS = 5.0


def claim(spec, path):
    """``(builder, spec)`` when ``spec`` is not a path but a TensorFlow Datasets name, else None."""
    if path is not None or spec.lower().endswith(".npz"):
        return None
    builder = _tfds_builder(spec)
    return None if builder is None else (builder, spec)


def load(claimed, image_size):
    builder, name = claimed
    return _load_tfds(builder, name, image_size)


def _tfds_builder(spec):
    """The TFDS builder for ``spec``, or None if it is not a TFDS dataset name."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:  # pragma: no cover - tfds is a dependency
        return None
    try:
        return tfds.builder(spec)
    except tfds.core.registered.DatasetNotFoundError:
        return None
    except (ValueError, TypeError):
        # Names TFDS cannot even parse ("a b", "x:y:z") are not dataset names either.
        return None


def _tfds_to_numpy(builder, split, image_key, label_key):
    ds = builder.as_dataset(split=split, shuffle_files=False)
    if label_key:
        ds = ds.map(lambda ex: (ex[image_key], ex[label_key]))
    else:
        ds = ds.map(lambda ex: (ex[image_key], tf.zeros((), tf.int64)))
    shape = ds.element_spec[0].shape
    xs, ys = [], []
    if shape.is_fully_defined():
        for xb, yb in ds.batch(2048).as_numpy_iterator():
            xs.append(xb)
            ys.append(yb)
        x = np.concatenate(xs) if xs else np.zeros((0, *shape), ds.element_spec[0].dtype.as_numpy_dtype)
        y = np.concatenate(ys) if ys else np.zeros((0,), np.int64)
        return x, y, None
    for xe, ye in ds.as_numpy_iterator():  # variable image size: keep a list
        xs.append(xe)
        ys.append(ye)
    return None, np.asarray(ys, np.int64), xs


def _uint16_to_uint8(x):
    if x is None or x.dtype != np.uint16:
        return x
    return np.rint(x / 257.0).astype(np.uint8)


def _probe_url(url, seconds):
    """None if ``url`` answers (any HTTP status) within ``seconds``, else why not ("URLError: ...").

    The request runs in a daemon thread that is abandoned after ``seconds``, so a slow DNS resolver
    or a network that drops packets cannot stall the caller. Proxies from the environment apply.
    """
    import threading
    import urllib.error
    import urllib.request

    outcome = {}

    def probe():
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=seconds):
                outcome["error"] = None
        except urllib.error.HTTPError:  # the host answered
            outcome["error"] = None
        except Exception as e:  # noqa: BLE001 - URLError, OSError, ssl errors...: all mean "not reachable"
            reason = getattr(e, "reason", None) or e
            outcome["error"] = f"{type(reason).__name__}: {reason}"

    thread = threading.Thread(target=probe, name="vae-keras-tfds-probe", daemon=True)
    thread.start()
    thread.join(seconds)
    return outcome.get("error", f"no answer within {seconds:g} s")


def _tfds_local_copy_hint(name, data_dir):
    return (
        f"Use a local copy: prepare {name!r} on a machine with network access (`tfds build {name}`) and "
        f"copy it into '{data_dir}' (or point TFDS_DATA_DIR at a prepared data_dir), or pass a path: an "
        "IDX folder (e.g. /usr/share/datasets/fashion-mnist from Debian's dataset-fashion-mnist), an "
        ".npz or an image folder; or use the embedded 'mnist-10k'."
    )


def _prepare_tfds(builder, name):
    """Makes sure ``builder``'s data is prepared, failing fast with one line when it cannot be downloaded.

    A dataset already prepared in the TFDS data_dir is used as it is (no network). Otherwise the
    download host is probed first (at most ``_TFDS_PROBE_SECONDS``): without network TFDS would
    retry each file for minutes and flood stderr. If the download starts and fails, the files it
    left (``downloads/*.tmp.*``, ``incomplete.*`` folders, new empty folders) are removed.
    """
    data_dir = os.fspath(builder.data_dir_root)
    if os.path.isdir(os.fspath(builder.data_dir)) and builder.is_prepared():  # isdir first: absl warns otherwise
        return
    reason = _probe_url(_TFDS_PROBE_URL, _TFDS_PROBE_SECONDS)
    if reason is not None:
        host = _TFDS_PROBE_URL.split("/")[2]
        raise DataError(
            f"TensorFlow Datasets {name!r} is not prepared in data_dir '{data_dir}' and cannot be "
            f"downloaded: {host} is unreachable ({reason}). {_tfds_local_copy_hint(name, data_dir)}"
        )
    existed, before = os.path.isdir(data_dir), _tree_entries(data_dir)
    try:
        builder.download_and_prepare()
    except BaseException as e:
        _remove_new_partial_files(data_dir, before, remove_root=not existed)
        if not isinstance(e, Exception) or isinstance(e, DataError):
            raise
        cause = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")
        raise DataError(
            f"TensorFlow Datasets could not download or prepare {name!r} into data_dir '{data_dir}' "
            f"({cause}). {_tfds_local_copy_hint(name, data_dir)}"
        ) from None


def _tree_entries(root):
    """Every path below ``root`` (files and folders), as a set; empty if ``root`` does not exist."""
    found = set()
    for base, dirs, files in os.walk(root):
        found.update(os.path.join(base, d) for d in dirs)
        found.update(os.path.join(base, f) for f in files)
    return found


def _remove_new_partial_files(root, before, remove_root=False):
    """Removes what a failed TFDS download left below ``root``: new temporary files and folders
    (``*.tmp.*``, ``incomplete.*``), then new folders left empty (and ``root`` itself if it is empty
    and ``remove_root``). Nothing in ``before`` is touched; finished downloads stay (TFDS reuses them)."""
    import shutil

    new = sorted(_tree_entries(root) - before, key=len, reverse=True)  # deepest first
    for path in new:
        base = os.path.basename(path)
        partial = ".tmp." in base or base.startswith("incomplete.")
        try:
            if partial and os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            elif partial and os.path.lexists(path):
                os.remove(path)
            elif os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path):
                os.rmdir(path)
        except OSError:
            pass
    if remove_root and os.path.isdir(root) and not os.listdir(root):
        try:
            os.rmdir(root)
        except OSError:
            pass


def _load_tfds(builder, name, image_size):
    import tensorflow_datasets as tfds

    features = builder.info.features
    image_key = next((k for k, f in features.items() if isinstance(f, tfds.features.Image)), None)
    label_key = next((k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)), None)
    if image_key is None:
        raise DataError(
            f"TensorFlow Datasets dataset {name!r} has no image feature (its features are "
            f"{sorted(features.keys())}). Choose an image dataset such as 'mnist' or 'cifar10'."
        )
    _prepare_tfds(builder, name)
    splits = list(builder.info.splits.keys())
    # Without metadata (e.g. under tfds.testing.mock_data) the split names are unknown: assume
    # the usual train/test.
    train_split = "train" if (not splits or "train" in splits) else splits[0]
    test_split = "test" if (not splits or "test" in splits) else None
    if test_split == train_split:
        test_split = None

    x_tr, y_tr, parts_tr = _tfds_to_numpy(builder, train_split, image_key, label_key)
    x_te, y_te, parts_te = (
        _tfds_to_numpy(builder, test_split, image_key, label_key) if test_split else (None, None, None)
    )
    if parts_tr is not None:
        # Variable-size images: the image-folder size rule, then one array per split.
        from PIL import Image

        parts = [
            _uint16_to_uint8(p if p.ndim == 3 else p[..., np.newaxis]) for p in parts_tr + (parts_te or [])
        ]
        if parts:
            size = _check_image_size(image_size) or _target_size(parts)
            parts = [_resize_one(p, size, Image) for p in parts]
        n = len(parts_tr)
        x_tr = np.stack(parts[:n]) if n else np.zeros((0, 1, 1, 1), np.uint8)
        x_te = np.stack(parts[n:]) if parts_te else None
    x_tr, x_te = _uint16_to_uint8(x_tr), _uint16_to_uint8(x_te)
    if x_tr is None or len(x_tr) == 0:
        raise DataError(f"TensorFlow Datasets dataset {name!r} has no images in its {train_split!r} split.")
    if not label_key:
        y_tr = y_te = None
    class_names = None
    if label_key:
        names = features[label_key].names
        class_names = np.array(names) if names else None
    return ImageData.from_arrays(x_tr, y_tr, x_te, y_te, class_names=class_names, name=name, image_size=image_size,
                                 source=f"TensorFlow Datasets {name!r}")
