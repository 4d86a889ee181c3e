"""Array validation and conversion: pixels, images, labels, class names, sizes, the hold-out rules.

Every source hands its arrays to :meth:`ImageData.from_arrays`, which validates them with these
functions; :func:`to_float` and :func:`binarize` are public.
"""

from __future__ import annotations

import collections

import numpy as np

from vae_keras import checks
from vae_keras.errors import ConfigError, DataError

HOLDOUT_SEED = 0
_HOLDOUT_DIVISOR = 10  # test split = max(1, N // 10) images
_INT32_MAX = np.iinfo(np.int32).max


def _composite_on_black(x):
    """[..., C + 1] colour + alpha (uint8 or float in [0, 1]) -> [..., C] multiplied by alpha (RGBA -> RGB, LA -> L)."""
    rgb, alpha = x[..., :-1], x[..., -1:]
    if x.dtype == np.uint8:
        out = (rgb.astype(np.uint32) * alpha.astype(np.uint32) + 127) // 255
        return out.astype(np.uint8)
    return (rgb * alpha).astype(np.float32)


def _as_pixels(x, what, source):
    """Validates pixel values: returns uint8 (0..255) or float32 (in [0, 1]), same shape."""
    dtype = x.dtype
    if dtype == np.bool_:
        return x.astype(np.uint8) * np.uint8(255)
    if dtype == np.uint8:
        return x
    if np.issubdtype(dtype, np.integer):
        lo, hi = x.min(), x.max()
        if lo < 0 or hi > 255:
            raise DataError(
                f"{what} from {source} has integer pixel values from {lo} to {hi}, outside 0..255. "
                "Store 8-bit pixels (0..255) or floats scaled to [0, 1]."
            )
        return x.astype(np.uint8)
    if np.issubdtype(dtype, np.floating):
        finite = np.isfinite(x)
        bad = int(x.size - np.count_nonzero(finite))
        if bad:
            raise DataError(
                f"{what} from {source} has {bad} NaN or infinite pixel value(s) (of {x.size}). "
                "Replace them (e.g. with np.nan_to_num) and store pixels as floats in [0, 1] "
                "or uint8 0..255."
            )
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise DataError(
                f"{what} from {source} has float pixel values from {lo:g} to {hi:g}, outside "
                "[0, 1]. Scale the pixels to [0, 1] (e.g. x / 255) or store them as uint8 0..255."
            )
        return x.astype(np.float32, copy=False)
    raise DataError(
        f"{what} from {source} has dtype {dtype}, which is not an image pixel type. "
        "Store pixels as uint8 0..255 or as floats in [0, 1]."
    )


def _as_images(x, what, source):
    """Validates an image array; returns uint8/float32 [N, H, W, C] with C in (1, 3)."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    elif x.ndim != 4:
        hint = " Reshape flat vectors to [N, H, W]." if x.ndim == 2 else ""
        raise DataError(
            f"{what} from {source} has shape {x.shape}; expected [N, H, W] or [N, H, W, C] "
            f"images with C in (1, 3, 4).{hint}"
        )
    n, h, w, c = x.shape
    if n == 0:
        raise DataError(
            f"{what} from {source} contains no images (shape {x.shape}). Provide at least one image."
        )
    if h == 0 or w == 0:
        raise DataError(f"{what} from {source} has empty images of shape {x.shape[1:]}.")
    if c not in (1, 3, 4):
        raise DataError(
            f"{what} from {source} has {c} channels (shape {x.shape}); expected 1 (grayscale), "
            "3 (RGB) or 4 (RGBA, composited onto black). Put channels last."
        )
    x = _as_pixels(x, what, source)
    if c == 4:
        x = _composite_on_black(x)
    return x


def _as_labels(y, n, what, images_what, source):
    """Validates labels: returns int32 [n]."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(
            f"{what} from {source} has shape {y.shape}; expected one integer class index per "
            "image, shape [N]. For one-hot labels use np.argmax(y, axis=1)."
        )
    if not (np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_):
        raise DataError(
            f"{what} from {source} has dtype {y.dtype}; expected integer class indices. "
            "Store labels as integers 0..num_classes-1."
        )
    if len(y) != n:
        raise DataError(
            f"{what} from {source} has {len(y)} labels but {images_what} has {n} images. "
            "Give exactly one label per image."
        )
    if len(y):
        lo, hi = y.min(), y.max()
        if lo < 0 or hi > _INT32_MAX:
            raise DataError(
                f"{what} from {source} has labels from {lo} to {hi}; expected class indices 0..num_classes-1."
            )
    return y.astype(np.int32)


def _as_class_names(names, labels, source):
    names = np.asarray(names)
    if names.ndim != 1 or names.dtype.kind not in "USO":
        raise DataError(
            f"class_names from {source} has shape {names.shape} and dtype {names.dtype}; "
            "expected a 1-D array of strings."
        )
    names = tuple(str(v) for v in names.tolist())
    top = max((int(y.max()) for y in labels if y is not None and len(y)), default=-1)
    if top >= len(names):
        raise DataError(
            f"class_names from {source} has {len(names)} names but the labels go up to {top}. "
            "Give one name per class."
        )
    return names


CLASSES_FILE = "classes.txt"  # class names beside the data: one per line, line 1 names label 0


def read_classes_file(path, labels):
    """Class names from a ``classes.txt`` at ``path`` (UTF-8, one name per line, blank lines ignored), checked
    against ``labels`` (a tuple of label arrays or None) like any ``class_names``."""
    try:
        with open(path, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(
            f"Class names file '{path}' cannot be read ({type(e).__name__}: {e}). Write it as "
            "UTF-8 text, one class name per line (line 1 names label 0), or remove it."
        ) from None
    return _as_class_names(np.array(names, dtype=str), labels, f"'{path}' (one name per line)")


def _resize_images(x, size):
    """Resizes [N, H, W, C] uint8/float32 images to size=(H, W) with PIL bilinear."""
    from PIL import Image

    h, w = size
    if x.shape[1:3] == (h, w):
        return x
    out = np.empty((x.shape[0], h, w, x.shape[3]), dtype=x.dtype)
    for i, img in enumerate(x):
        out[i] = _resize_one(img, (h, w), Image)
    return out


def _resize_one(img, size, Image):
    """Resizes one [H, W, C] uint8/float32 image to size=(H, W) with PIL bilinear."""
    h, w = size
    if img.shape[:2] == (h, w):
        return img
    if img.dtype == np.uint8:
        mode_img = Image.fromarray(img[..., 0] if img.shape[2] == 1 else img)
        out = np.asarray(mode_img.resize((w, h), Image.BILINEAR))
        return out.reshape(h, w, img.shape[2])
    chans = [
        np.asarray(Image.fromarray(img[..., k].astype(np.float32), mode="F").resize((w, h), Image.BILINEAR))
        for k in range(img.shape[2])
    ]
    return np.clip(np.stack(chans, axis=-1), 0.0, 1.0).astype(np.float32)


def _target_size(images):
    counts = collections.Counter(im.shape[:2] for im in images)
    return max(counts, key=lambda hw: (counts[hw], hw[0] * hw[1], hw))


def _check_image_size(image_size):
    if image_size is None:
        return None
    if checks.is_integer(image_size, numpy=True):
        image_size = (image_size, image_size)
    try:
        h, w = (int(v) for v in image_size)
        ok = all(checks.is_integer(v, numpy=True) for v in image_size) and h > 0 and w > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(
            f"image_size must be None, a positive int or a (height, width) pair of positive ints. "
            f"Received: image_size={image_size!r}"
        )
    return (h, w)


def _holdout_indices(n):
    """The fixed hold-out rule: (train_idx, test_idx), each sorted."""
    perm = np.random.default_rng(HOLDOUT_SEED).permutation(n)
    n_test = max(1, n // _HOLDOUT_DIVISOR)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def validation_indices(n, fraction, seed):
    """The validation hold-out rule: ``(train_idx, val_idx)`` of ``n`` training images, disjoint, each sorted.

    ``fraction * n`` rounded to the nearest integer (halves up) images are held out: the first
    ones of ``np.random.default_rng(seed).permutation(n)``. The same ``n``, ``fraction`` and
    ``seed`` always give the same split.

    Args:
        n: the number of training images.
        fraction: the share held out for validation, ``0 < fraction < 1``.
        seed: int seed of the permutation.

    Raises:
        ConfigError: ``fraction`` outside (0, 1), or a split that leaves no validation image or no
            training image (the message names the counts).

    Example:
    >>> train_idx, val_idx = validation_indices(10, 0.2, seed=0)
    >>> len(train_idx), len(val_idx), sorted(set(train_idx) | set(val_idx)) == list(range(10))
    (8, 2, True)
    """
    checks.check_number("validation-split", fraction, 0, below=1, strict=True, numpy=True,
                        message="{name} must be a number > 0 and < 1 (the share of the training images held out). "
                                "Received: {value!r}")
    checks.check_integer("seed", seed, numpy=True, message="{name} must be an int. Received: {name}={value!r}")
    n_val = int(np.floor(fraction * n + 0.5))
    if n_val < 1 or n_val >= n:
        kept = "no validation image" if n_val < 1 else "no image to train on"
        fix = "a larger" if n_val < 1 else "a smaller"
        raise ConfigError(
            f"validation-split {fraction:g} of {n} training image(s) holds out {n_val} and keeps "
            f"{n - n_val}, which leaves {kept}. Pass {fix} validation-split, or use a dataset with "
            "more training images."
        )
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def to_float(x):
    """Returns images as float32 in [0, 1].

    Args:
        x: array of uint8 (0..255), bool, other integers in 0..255, or floats in [0, 1].

    Returns:
        float32 array of the same shape.

    Raises:
        DataError: for NaN/inf, values out of range, or a non-numeric dtype.

    Example:
    >>> to_float(np.array([0, 51, 255], np.uint8))
    array([0. , 0.2, 1. ], dtype=float32)
    """
    x = _as_pixels(np.asarray(x), "the array", "to_float()")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    return x.astype(np.float32, copy=False)


def _binarize_uint8(x, seed, chunk=4096):
    """Stochastic binarization as uint8 0/1: pixel is 1 with probability equal to its intensity."""
    x = _as_pixels(np.asarray(x), "the array", "binarize()")
    rng = np.random.default_rng(seed)
    out = np.empty(x.shape, dtype=np.uint8)
    flat_x = x.reshape(len(x), -1) if x.ndim > 1 else x.reshape(1, -1)
    flat_out = out.reshape(flat_x.shape)
    for start in range(0, len(flat_x), chunk):
        block = flat_x[start : start + chunk]
        p = block.astype(np.float32) / np.float32(255.0) if block.dtype == np.uint8 else block
        u = rng.random(block.shape, dtype=np.float32)
        flat_out[start : start + chunk] = u < p
    return out


def binarize(x, seed):
    """Binarizes images once, deterministically: each pixel is 1 with probability = intensity.

    The same ``x`` and ``seed`` always give the same result (uint8 input and its ``to_float``
    version give the same result, too). Used for the classic "statically binarized MNIST".

    Args:
        x: uint8 images (0..255) or floats in [0, 1], any shape.
        seed: int seed of the uniform noise.

    Returns:
        float32 array of 0s and 1s, same shape as ``x``.

    Example:
    >>> b = binarize(np.full((2, 4), 128, np.uint8), seed=1)
    >>> b.dtype.name, sorted(set(b.ravel().tolist())) <= [0.0, 1.0]
    ('float32', True)
    """
    return _binarize_uint8(x, seed).astype(np.float32)


def _describe(v):
    if isinstance(v, np.ndarray):
        return f"array of shape {v.shape} and dtype {v.dtype}"
    return f"{type(v).__name__}"
