"""Source: a folder of PNG/JPEG images, loose (unlabelled) or in class subfolders, or split in ``train/`` and ``test/``."""

from __future__ import annotations

import concurrent.futures
import os

import numpy as np

from vae_keras.data.arrays import _target_size
from vae_keras.data.decode import _conform, _undecodable, decode_image_bytes
from vae_keras.data.image_data import ImageData
from vae_keras.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def claim(spec, path):
    """The absolute path of an existing folder (checked after the IDX source), else None."""
    return path if path is not None and os.path.isdir(path) else None


def load(path, image_size):
    return _load_image_folder(path, path, image_size)


def _is_image_file(fname):
    return not fname.startswith(".") and fname.lower().endswith(IMAGE_EXTENSIONS)


def _images_under(folder):
    """All image files below ``folder`` (recursive, hidden entries skipped), sorted.

    Symbolic links to folders are followed, but each real folder is read once, and a link back to
    ``folder`` or one of its ancestors is skipped, so a symlink cycle ends and no image is read twice.
    """
    top = os.path.realpath(folder)
    seen = {top}
    found = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        kept = []
        for d in sorted(d for d in dirs if not d.startswith(".")):
            real = os.path.realpath(os.path.join(root, d))
            if real in seen or os.path.commonpath([real, top]) == real:  # already read, or an ancestor of folder
                continue
            seen.add(real)
            kept.append(d)
        dirs[:] = kept
        found.extend(os.path.join(root, f) for f in sorted(files) if _is_image_file(f))
    return found


def _scan_split(folder):
    """Returns ``(files, class_of_file)``; ``class_of_file`` is None for unlabelled images."""
    entries = sorted(e for e in os.listdir(folder) if not e.startswith("."))
    loose = [
        os.path.join(folder, e)
        for e in entries
        if _is_image_file(e) and os.path.isfile(os.path.join(folder, e))
    ]
    classes = {}
    for e in entries:
        sub = os.path.join(folder, e)
        if os.path.isdir(sub):
            files = _images_under(sub)
            if files:
                classes[e] = files
    if loose and classes:
        raise DataError(
            f"Dataset folder '{folder}' has images directly in it (e.g. "
            f"'{os.path.basename(loose[0])}') and class subfolders of images (e.g. "
            f"'{next(iter(classes))}/'). Move all images into class subfolders (labelled) or "
            "all out of them (unlabelled)."
        )
    if classes:
        files = [f for c in classes for f in classes[c]]
        labels = [c for c in classes for _ in classes[c]]
        return files, labels
    return loose, None


def _read_image(path):
    """Reads one image file as uint8 [H, W, 1] (grayscale) or [H, W, 3] (colour)."""
    name = f"Image file '{path}'"
    try:
        with open(path, "rb") as f:
            payload = f.read()
    except OSError as e:
        raise _undecodable(name, None, e) from None
    return decode_image_bytes(payload, name=name)


def _read_images(paths):
    if len(paths) > 64:
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            return list(pool.map(_read_image, paths))
    return [_read_image(p) for p in paths]


def _load_image_folder(folder, name, image_size):
    train_dir, test_dir = os.path.join(folder, "train"), os.path.join(folder, "test")
    split_mode = os.path.isdir(train_dir) and os.path.isdir(test_dir)
    if split_mode:
        tr_files, tr_cls = _scan_split(train_dir)
        te_files, te_cls = _scan_split(test_dir)
        for sub, files in ((train_dir, tr_files), (test_dir, te_files)):
            if not files:
                raise DataError(
                    f"Dataset folder '{sub}' contains no images ({', '.join(IMAGE_EXTENSIONS)}). "
                    "Put images in it, or class subfolders of images."
                )
        if (tr_cls is None) != (te_cls is None):
            labelled, plain = (train_dir, test_dir) if tr_cls is not None else (test_dir, train_dir)
            raise DataError(
                f"Dataset folder '{labelled}' has class subfolders but '{plain}' has its images "
                "directly in it. Use class subfolders in both splits or in neither."
            )
    else:
        tr_files, tr_cls = _scan_split(folder)
        te_files, te_cls = [], None
        if not tr_files:
            raise DataError(
                f"Dataset folder '{folder}' contains no images ({', '.join(IMAGE_EXTENSIONS)}) and "
                "no IDX files (train-images-idx3-ubyte[.gz]). Put images in it, or class "
                "subfolders of images."
            )
    images = _read_images(tr_files + te_files)
    c = 1 if all(im.shape[-1] == 1 for im in images) else 3
    size = image_size or _target_size(images)
    x = np.empty((len(images), size[0], size[1], c), dtype=np.uint8)
    for i, im in enumerate(images):
        x[i] = _conform(im, (*size, c))
    y = class_names = None
    if tr_cls is not None:
        class_names = sorted(set(tr_cls) | set(te_cls or ()))
        index = {c: i for i, c in enumerate(class_names)}
        y = np.array([index[c] for c in tr_cls + (te_cls or [])], dtype=np.int32)
    n_tr = len(tr_files)
    source = f"image folder '{folder}'"
    if split_mode:
        return ImageData.from_arrays(
            x[:n_tr],
            None if y is None else y[:n_tr],
            x[n_tr:],
            None if y is None else y[n_tr:],
            class_names=class_names,
            name=name,
            source=source,
        )
    return ImageData.from_arrays(x, y, class_names=class_names, name=name, source=source)
