"""Dataset specs -> in-memory images -> `tf.data` pipelines.

A *dataset spec* is what users pass as ``--dataset SPEC`` or to :func:`load_dataset`. It is resolved
in this order:

1. ``"mnist-10k"``: 10,000 real MNIST digits shipped in the package (8,000 train / 2,000 test,
   fixed split), class names ``"0"`` .. ``"9"``. Works offline.
2. an existing path:
   - an ``.npz`` file with ``x_train`` (``y_train``, ``x_test``, ``y_test``, ``class_names``
     optional);
   - a folder of IDX files (``train-images-idx3-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``,
     labels ``train-labels-idx1-ubyte[.gz]`` / ``t10k-labels-idx1-ubyte[.gz]`` optional). Class
     names come from an optional ``classes.txt`` beside them (one name per line, line 1 names
     label 0); without it, Fashion-MNIST's ten names (:data:`FASHION_MNIST_CLASSES`) when the
     training labels are Fashion-MNIST's (recognised by their SHA-256, wherever the folder is);
     otherwise none (labels are then addressed by index);
   - a folder of PNG/JPEG images (extensions matched case-insensitively), either directly in it
     (no labels) or in class subfolders (labels; class names are the sorted names of the
     subfolders that hold images, searched recursively), not both. If the folder has both a
     ``train/`` and a ``test/`` subfolder, those two are the splits (each laid out as above, both
     labelled or both not) and nothing else in the folder is read. Hidden entries and non-image
     files are ignored.
3. a TensorFlow Datasets name (``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``, ...), loaded
   whole into memory: the first ``Image`` feature gives the images, the first ``ClassLabel``
   feature the labels and class names, the ``test`` split (if there is one) the test split.
   Variable-size images follow the image-folder size rule. A dataset already prepared in the TFDS
   data_dir (``~/tensorflow_datasets`` or ``$TFDS_DATA_DIR``) loads without network. Otherwise the
   download host is probed for at most 5 s first; unreachable, or a failed download, is one
   :class:`DataError` naming the data_dir and the local alternatives, and the failed attempt's
   temporary files are removed.

IDX files must hold unsigned bytes (magic ``0x00000803`` for images, ``0x00000801`` for labels);
their byte count must match the header exactly.

Whatever the source, images are validated once and kept in memory as ``uint8`` (0..255) or
``float32`` (in [0, 1]) arrays of shape ``[N, H, W, C]`` with ``C`` in (1, 3); the pipelines turn
each batch into ``float32`` in [0, 1], which is what the models see.

Rules applied to every source:

- **Channels.** 2-D images (``[N, H, W]`` arrays, grayscale files) get one channel. Four channels are
  read as RGBA and *composited onto black* (``rgb * alpha``) to give RGB, so transparent pixels
  become background instead of whatever colour happened to be stored under them. Other channel
  counts are refused. In an image folder, if every image is grayscale (PIL modes ``1``, ``L``,
  ``LA``, ``I``, ``I;16``..., and palette images whose colours are all grey) the data has one
  channel, otherwise three (grayscale images are repeated into R, G and B). 16-bit images are
  scaled to 8 bits (``v / 257``). Image files are decoded by :func:`decode_image_bytes`, the one
  place of these rules (the dashboard decodes its uploads with it too); asked for one channel, it
  turns colour into ITU-R 601-2 luma (``0.299 R + 0.587 G + 0.114 B``).
- **Size.** With ``image_size=(H, W)`` every image is resized to it. An image folder without
  ``image_size`` uses the most common ``(H, W)`` among its images (a tie goes to the larger area);
  other images are resized to that. Resizing is PIL's bilinear filter (which antialiases when
  shrinking); no aspect-ratio preserving crop or pad is done.
- **Hold-out.** A source without a test split (an ``.npz`` without ``x_test``, a folder without
  ``t10k-*`` files or ``test/``, a TFDS dataset without a ``test`` split) gets one: the images are
  permuted with ``np.random.default_rng(0)`` and the first ``max(1, N // 10)`` of that permutation
  become the test split; both splits keep the original order of their images. At least two images
  are needed. A *validation* split is a different, optional thing, taken from the training split
  only (:meth:`ImageData.hold_out_validation`, :func:`validation_indices`; ``vae-keras train
  --validation-split F``).
- **Unreadable files** (corrupt, truncated, wrong format) are errors naming the file, never
  skipped silently. JPEG EXIF orientation is applied.
- **Labels** are one non-negative integer per image (``[N]`` or ``[N, 1]``), stored as ``int32``.
  Either both splits have labels or neither does.

Example:
>>> from vae_keras import data
>>> images = data.load_images("mnist-10k")
>>> images.image_shape, images.num_classes
((28, 28, 1), 10)
>>> train = images.pipeline("train", batch_size=64, with_labels=True)
>>> x, y = next(iter(train))
>>> x.shape, x.dtype.name, y.dtype.name
(TensorShape([64, 28, 28, 1]), 'float32', 'int32')
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import gzip
import hashlib
import importlib.resources
import io
import os
import zipfile
import zlib

import numpy as np
import tensorflow as tf

from vae_keras.errors import ConfigError, DataError

__all__ = [
    "FASHION_MNIST_CLASSES",
    "IMAGE_EXTENSIONS",
    "MNIST_10K",
    "ImageData",
    "binarize",
    "decode_image_bytes",
    "load_dataset",
    "load_images",
    "read_idx",
    "to_float",
    "validation_indices",
]

MNIST_10K = "mnist-10k"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
HOLDOUT_SEED = 0
_HOLDOUT_DIVISOR = 10  # test split = max(1, N // 10) images
_INT32_MAX = np.iinfo(np.int32).max


# --------------------------------------------------------------------------------------------
# Array validation and conversion
# --------------------------------------------------------------------------------------------


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


def _check_image_size(image_size):
    if image_size is None:
        return None
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    try:
        h, w = (int(v) for v in image_size)
        ok = (
            all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in image_size)
            and h > 0
            and w > 0
        )
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
    if (isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating))
            or not 0 < fraction < 1):
        raise ConfigError(
            f"validation-split must be a number > 0 and < 1 (the share of the training images held out). "
            f"Received: {fraction!r}"
        )
    if not _is_int(seed):
        raise ConfigError(f"seed must be an int. Received: seed={seed!r}")
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


# --------------------------------------------------------------------------------------------
# Image files
# --------------------------------------------------------------------------------------------

_LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, the weights of PIL's "L" conversion
_GRAY_MODES = ("1", "L", "F")  # 8-bit (or float) grayscale PIL modes; "I*" (16/32-bit) is scaled


def _check_image_shape(image_shape):
    """None, or ``(H, W, C)`` as ints with H, W > 0 and C in (1, 3)."""
    if image_shape is None:
        return None
    try:
        h, w, c = image_shape
        ok = all(_is_int(v) for v in (h, w, c)) and h > 0 and w > 0 and c in (1, 3)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(
            "image_shape must be None or (height, width, channels) with positive ints and 1 or 3 "
            f"channels. Received: image_shape={image_shape!r}"
        )
    return int(h), int(w), int(c)


def _convert_channels(x, channels):
    """uint8 ``[..., 1 or 3]`` -> ``[..., channels]``: grey repeated into R, G and B; colour to luma."""
    if x.shape[-1] == channels:
        return x
    if channels == 3:
        return np.repeat(x, 3, axis=-1)
    luma = x.astype(np.float64) @ np.asarray(_LUMA_WEIGHTS)
    return np.clip(np.floor(luma + 0.5), 0, 255).astype(np.uint8)[..., np.newaxis]


def _conform(pixels, image_shape):
    """uint8 ``[H, W, 1 or 3]`` -> ``image_shape`` ``(h, w, c)``: channels converted, then resized."""
    from PIL import Image

    h, w, c = image_shape
    return _resize_one(_convert_channels(pixels, c), (h, w), Image)


def _undecodable(name, formats, error):
    """The DataError for image bytes that cannot be read or decoded."""
    cause = f"{type(error).__name__}: {error}"
    if type(error).__name__ == "UnidentifiedImageError":  # PIL's message names only its in-memory buffer
        cause = "PIL recognises no image format in it"
    if formats:
        what = " or ".join(formats)
        return DataError(f"{name} cannot be decoded as a {what} ({cause}); the file is corrupt or truncated.")
    return DataError(
        f"{name} cannot be read ({cause}). It is corrupt, truncated or not a PNG/JPEG: replace or remove it."
    )


def _pil_pixels(im):
    """A loaded PIL image -> uint8 ``[H, W, 1]`` (grayscale) or ``[H, W, 3]`` (colour), alpha on black."""
    mode = im.mode
    if mode in _GRAY_MODES:
        return np.asarray(im.convert("L"))[..., np.newaxis]
    if mode.startswith("I"):  # 16-bit (or 32-bit) grayscale
        arr = np.asarray(im).astype(np.float64)
        return np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)[..., np.newaxis]
    if mode in ("LA", "La"):
        return _composite_on_black(np.asarray(im.convert("LA")))
    if mode in ("P", "PA"):
        rgb = _composite_on_black(np.asarray(im.convert("RGBA")))
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return rgb[..., :1]
        return rgb
    if mode in ("RGBA", "RGBa"):
        return _composite_on_black(np.asarray(im.convert("RGBA")))
    return np.asarray(im.convert("RGB"))


def decode_image_bytes(payload, image_shape=None, *, name="The image", formats=None, max_pixels=None):
    """Decodes one image file's bytes with the module's channel rules: the one decoder of image files.

    Image folders are read with it, and so are the dashboard's uploads, so an uploaded file reaches
    a model as the same file would in a training folder. The rules: JPEG EXIF orientation is
    applied; 16-bit grayscale is scaled to 8 bits (``v / 257``); alpha (RGBA, LA, transparent
    palettes) is composited onto black (``v * alpha``); grayscale modes (``1``, ``L``, ``LA``,
    ``I``, ``I;16``..., ``F``, palettes whose colours are all grey) give one channel, everything
    else three. With ``image_shape=(H, W, C)`` the pixels are then converted to ``C`` channels
    (grey repeated into R, G and B; colour to ITU-R 601-2 luma ``0.299 R + 0.587 G + 0.114 B``,
    rounded) and resized to ``H x W`` with PIL's bilinear filter.

    Args:
        payload: the file's bytes.
        image_shape: None keeps the image's size and channels; ``(H, W, C)`` with ``C`` in (1, 3)
            converts it to a model's input shape.
        name: how error messages name the image, e.g. ``"Image file '/data/a.png'"``.
        formats: PIL format names to accept, e.g. ``("PNG",)``; None accepts any format PIL reads.
        max_pixels: refuse images with more pixels than this before decoding them (None: PIL's own
            decompression-bomb limit).

    Returns:
        uint8 ``[H, W, C]`` (0..255); ``C`` is 1 or 3.

    Raises:
        DataError: the bytes are not a decodable image (of ``formats``), or it has too many pixels.
        ConfigError: ``image_shape`` is not ``(H, W, 1 or 3)``.

    Example:
    >>> import io; from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGBA", (3, 2), (200, 100, 50, 128)).save(buf, "PNG")
    >>> decode_image_bytes(buf.getvalue())[0, 0].tolist()  # RGB * 128 / 255, rounded
    [100, 50, 25]
    >>> decode_image_bytes(buf.getvalue(), (4, 4, 1)).shape
    (4, 4, 1)
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    image_shape = _check_image_shape(image_shape)
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise DataError(f"{name} must be given as the bytes of an image file. Received: {type(payload).__name__}")
    try:
        with Image.open(io.BytesIO(payload), formats=list(formats) if formats else None) as im:
            if max_pixels is not None and im.width * im.height > max_pixels:
                raise DataError(
                    f"{name} is {im.width} x {im.height} pixels; at most {max_pixels:,} pixels are accepted."
                )
            im.load()
            pixels = _pil_pixels(ImageOps.exif_transpose(im))
    except DataError:
        raise
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise _undecodable(name, formats, e) from None
    if image_shape is not None:
        pixels = _conform(pixels, image_shape)
    return pixels


# --------------------------------------------------------------------------------------------
# ImageData
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class ImageData:
    """A dataset held in memory: validated images and labels of a train and a test split.

    Build one with :func:`load_images` or :meth:`ImageData.from_arrays` (which validate and
    convert); the constructor only checks the invariants below.

    Attributes:
        name: the dataset spec, canonical (``"mnist-10k"``, a TFDS name, or an absolute path).
        x_train: ``[N, H, W, C]`` uint8 (0..255) or float32 in [0, 1], ``C`` in (1, 3).
        y_train: int32 ``[N]`` class indices, or None.
        x_test: ``[M, H, W, C]``, same image shape as ``x_train``.
        y_test: int32 ``[M]`` or None (None exactly when ``y_train`` is None).
        class_names: one name per class, or None.

    Example:
    >>> d = ImageData.from_arrays(np.zeros((20, 8, 8), np.uint8), np.arange(20) % 2)
    >>> d.image_shape, d.num_classes, len(d.x_train), len(d.x_test)
    ((8, 8, 1), 2, 18, 2)
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    class_names: tuple[str, ...] | None = None

    def __post_init__(self):
        for what in ("x_train", "x_test"):
            x = getattr(self, what)
            if not (
                isinstance(x, np.ndarray)
                and x.ndim == 4
                and x.dtype in (np.uint8, np.float32)
                and x.shape[-1] in (1, 3)
                and len(x) > 0
            ):
                raise DataError(
                    f"ImageData.{what} must be a non-empty uint8 or float32 array [N, H, W, C] with "
                    f"C in (1, 3). Received: {_describe(x)}. Use ImageData.from_arrays() to "
                    "validate and convert arrays."
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(
                f"ImageData x_test images have shape {self.x_test.shape[1:]} but x_train images "
                f"have shape {self.x_train.shape[1:]}; both splits need the same image shape."
            )
        if (self.y_train is None) != (self.y_test is None):
            raise DataError(
                "ImageData needs labels for both splits or for neither. Received: "
                f"y_train={_describe(self.y_train)}, y_test={_describe(self.y_test)}."
            )
        for xw, yw in (("x_train", "y_train"), ("x_test", "y_test")):
            y = getattr(self, yw)
            if y is None:
                continue
            if not (
                isinstance(y, np.ndarray) and y.dtype == np.int32 and y.shape == (len(getattr(self, xw)),)
            ):
                raise DataError(
                    f"ImageData.{yw} must be int32 of shape ({len(getattr(self, xw))},), one label "
                    f"per image of {xw}. Received: {_describe(y)}."
                )
        if self.class_names is not None:
            object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_arrays(
        cls,
        x_train,
        y_train=None,
        x_test=None,
        y_test=None,
        *,
        class_names=None,
        name="arrays",
        image_size=None,
        source=None,
    ):
        """Validates and converts numpy arrays into an :class:`ImageData`.

        Applies the module's rules (channel axis, RGBA compositing, value checks, hold-out when
        ``x_test`` is None, optional resize).

        Args:
            x_train: images ``[N, H, W]`` or ``[N, H, W, C]``; uint8/bool/ints in 0..255 or
                floats in [0, 1].
            y_train: optional integer labels ``[N]``.
            x_test: optional test images with the same image shape as ``x_train``.
            y_test: test labels; required when ``x_test`` and ``y_train`` are given.
            class_names: optional sequence of names, one per class.
            name: the dataset name to record.
            image_size: optional ``(H, W)`` (or int) to resize every image to.
            source: how to name the data in error messages (default: ``name``).

        Raises:
            DataError: if the arrays cannot be used as image data.
        """
        source = source or repr(name)
        image_size = _check_image_size(image_size)
        if x_train is None:
            raise DataError(f"{source} has no x_train images. Provide x_train.")
        x_tr = _as_images(x_train, "x_train", source)
        y_tr = None if y_train is None else _as_labels(y_train, len(x_tr), "y_train", "x_train", source)
        if x_test is None:
            if y_test is not None:
                raise DataError(
                    f"{source} has y_test but no x_test. Provide x_test, or drop y_test to hold "
                    "out 10% of x_train as the test split."
                )
            if len(x_tr) < 2:
                raise DataError(
                    f"{source} has only {len(x_tr)} image and no test split; at least 2 images are "
                    "needed to hold out a test split. Add images or an x_test array."
                )
            tr, te = _holdout_indices(len(x_tr))
            x_te, y_te = x_tr[te], (None if y_tr is None else y_tr[te])
            x_tr, y_tr = x_tr[tr], (None if y_tr is None else y_tr[tr])
        else:
            x_te = _as_images(x_test, "x_test", source)
            if x_te.shape[1:] != x_tr.shape[1:]:
                raise DataError(
                    f"x_test from {source} has images of shape {x_te.shape[1:]} but x_train has "
                    f"{x_tr.shape[1:]}. Both splits need the same (H, W, C)."
                )
            if (y_tr is None) != (y_test is None):
                have, missing = ("y_train", "y_test") if y_tr is not None else ("y_test", "y_train")
                raise DataError(
                    f"{source} has {have} but no {missing}. Provide labels for both splits, or "
                    f"drop {have} to use the data unlabelled."
                )
            y_te = None if y_test is None else _as_labels(y_test, len(x_te), "y_test", "x_test", source)
            if x_tr.dtype != x_te.dtype:
                x_tr, x_te = to_float(x_tr), to_float(x_te)
        if class_names is not None:
            if y_tr is None:
                raise DataError(
                    f"{source} has class_names but no labels. Add y_train (and y_test), or drop class_names."
                )
            class_names = _as_class_names(class_names, (y_tr, y_te), source)
        if image_size is not None:
            x_tr, x_te = _resize_images(x_tr, image_size), _resize_images(x_te, image_size)
        return cls(str(name), x_tr, y_tr, x_te, y_te, class_names)

    # -- properties --------------------------------------------------------------------------

    @property
    def image_shape(self):
        """``(H, W, C)`` as a tuple of Python ints."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self):
        """``len(class_names)``, else the largest label + 1, else None (unlabelled)."""
        if self.class_names is not None:
            return len(self.class_names)
        if self.y_train is None:
            return None
        return int(max(self.y_train.max(initial=-1), self.y_test.max(initial=-1))) + 1

    @property
    def has_labels(self):
        return self.y_train is not None

    def __repr__(self):
        return (
            f"ImageData(name={self.name!r}, image_shape={self.image_shape}, "
            f"train={len(self.x_train)}, test={len(self.x_test)}, num_classes={self.num_classes})"
        )

    # -- derived data ------------------------------------------------------------------------

    def subset(self, n_train=None, n_test=None):
        """The first ``n_train`` training and ``n_test`` test images (None keeps a split whole).

        Example:
        >>> d = load_images("mnist-10k").subset(100, 10)
        >>> len(d.x_train), len(d.x_test)
        (100, 10)
        """
        for arg, v in (("n_train", n_train), ("n_test", n_test)):
            if v is not None and (not _is_int(v) or v < 1):
                raise ConfigError(f"{arg} must be None or a positive int. Received: {arg}={v!r}")

        def cut(a, n):
            return a if a is None or n is None else a[:n]

        return dataclasses.replace(
            self,
            x_train=cut(self.x_train, n_train),
            y_train=cut(self.y_train, n_train),
            x_test=cut(self.x_test, n_test),
            y_test=cut(self.y_test, n_test),
        )

    def hold_out_validation(self, fraction, seed=0):
        """Splits the training images into the part to train on and a held-out validation part.

        The split follows :func:`validation_indices` (a seeded random ``fraction``); labels follow
        their images. ``vae-keras train --validation-split F`` uses it.

        Returns:
            An :class:`ImageData` whose *train* split holds the images kept for training and whose
            *test* split holds the held-out validation images, so ``pipeline("test")`` gives the
            validation batches. The original test split is not part of it.

        Raises:
            ConfigError: see :func:`validation_indices`.

        Example:
        >>> d = load_images("mnist-10k").subset(100, 10).hold_out_validation(0.2, seed=0)
        >>> len(d.x_train), len(d.x_test)
        (80, 20)
        """
        train_idx, val_idx = validation_indices(len(self.x_train), fraction, seed)
        y = self.y_train
        return dataclasses.replace(
            self,
            x_train=self.x_train[train_idx],
            y_train=None if y is None else y[train_idx],
            x_test=self.x_train[val_idx],
            y_test=None if y is None else y[val_idx],
        )

    def pipeline(
        self,
        split="train",
        batch_size=128,
        shuffle=None,
        seed=0,
        with_labels=False,
        binarize_seed=None,
        drop_remainder=False,
        cache=True,
        skip_epochs=0,
    ):
        """A ``tf.data.Dataset`` of float32 batches in [0, 1] of shape ``[B, H, W, C]``.

        Images stay uint8 in memory; each batch is gathered and converted in one op (shuffling
        shuffles indices, not images), and batches are prefetched with ``tf.data.AUTOTUNE``.

        Args:
            split: ``"train"`` or ``"test"``.
            batch_size: images per batch.
            shuffle: reshuffle every epoch; defaults to True for ``"train"``, False for ``"test"``.
            seed: shuffle seed; a fixed seed gives the same order of epochs in every run.
            with_labels: yield ``(x, y)`` with int32 ``y`` instead of ``x``.
            binarize_seed: if an int, binarize the images once with :func:`binarize` (the same
                0/1 images in every epoch and every call with this seed).
            drop_remainder: drop the last, smaller batch.
            cache: keep the converted float32 batches of an unshuffled pipeline in memory after
                the first pass (ignored when shuffling, where batches differ every epoch).
            skip_epochs: a shuffled pipeline starts with the order of pass ``skip_epochs + 1`` of a
                pipeline built with the same seed (a run resumed after that many epochs sees the
                data in the order of the uninterrupted run).

        Raises:
            DataError: ``with_labels=True`` on unlabelled data.
            ConfigError: for an unknown split or a bad batch size or seed.

        Example:
        >>> d = load_images("mnist-10k").subset(256, 64)
        >>> [tuple(x.shape) for x in d.pipeline("test", batch_size=50)]
        [(50, 28, 28, 1), (14, 28, 28, 1)]
        """
        if split not in ("train", "test"):
            raise ConfigError(f"split must be 'train' or 'test'. Received: split={split!r}")
        if not _is_int(batch_size) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive int. Received: batch_size={batch_size!r}")
        if not _is_int(seed):
            raise ConfigError(f"seed must be an int. Received: seed={seed!r}")
        if not _is_int(skip_epochs) or skip_epochs < 0:
            raise ConfigError(f"skip_epochs must be an int >= 0. Received: skip_epochs={skip_epochs!r}")
        if binarize_seed is not None and not _is_int(binarize_seed):
            raise ConfigError(
                f"binarize_seed must be None or an int. Received: binarize_seed={binarize_seed!r}"
            )
        x = self.x_train if split == "train" else self.x_test
        y = self.y_train if split == "train" else self.y_test
        if with_labels and y is None:
            raise DataError(
                f"Dataset {self.name!r} has no labels, so with_labels=True (e.g. a conditional "
                "model) cannot be used. Use a dataset with labels (class subfolders, y_train/y_test "
                "arrays or label files), or train without labels."
            )
        if shuffle is None:
            shuffle = split == "train"
        scale = 255.0
        if binarize_seed is not None:
            x, scale = _binarize_uint8(x, int(binarize_seed)), 1.0
        elif x.dtype != np.uint8:
            scale = 1.0
        n = len(x)
        with tf.device("/CPU:0"):
            x_t = tf.constant(x)
            y_t = tf.constant(y) if with_labels else None

        def fetch(idx):
            xb = tf.cast(tf.gather(x_t, idx), tf.float32)
            if scale != 1.0:
                xb = xb / scale
            if with_labels:
                return xb, tf.gather(y_t, idx)
            return xb

        if shuffle:
            ds = _shuffled_index_batches(n, int(batch_size), int(seed), bool(drop_remainder), int(skip_epochs))
        else:
            ds = tf.data.Dataset.range(n).batch(int(batch_size), drop_remainder=bool(drop_remainder))
        ds = ds.map(fetch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if cache and not shuffle:
            ds = ds.cache()
        return ds.prefetch(tf.data.AUTOTUNE)


def _shuffled_index_batches(n, batch_size, seed, drop_remainder, skip_epochs=0):
    """Batches of indices into ``n`` images, in a new random order on every pass over the dataset.

    Each pass draws one permutation in a single op and cuts it into batches, so tf.data handles
    ``n / batch_size`` index vectors per epoch instead of shuffling ``n`` scalars one by one, which
    halves tf.data's own time per epoch. Seeded: pipelines built with the same seed give the same
    sequence of epoch orders; ``skip_epochs`` starts that sequence at pass ``skip_epochs + 1``.
    """
    full = n // batch_size
    rest = n - full * batch_size
    lengths = [batch_size] * full + ([rest] if rest and not drop_remainder else [])

    def one_pass(pass_seed):
        perm = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([pass_seed, tf.constant(seed, tf.int64)]))
        if drop_remainder:  # a static batch size, as batch(drop_remainder=True) gives
            return tf.data.Dataset.from_tensor_slices(tf.reshape(perm[: full * batch_size], (full, batch_size)))
        # Rows of a ragged tensor slice into plain [None] tensors, so the last batch may be shorter.
        return tf.data.Dataset.from_tensor_slices(tf.RaggedTensor.from_row_lengths(perm[: sum(lengths)], lengths))

    # One fresh seed per pass (Keras iterates the dataset anew in every epoch). flat_map hides the
    # number of batches, which Keras needs for its progress bar and steps per epoch: state it.
    pass_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    for _ in range(skip_epochs):  # each new iterator advances the pass seeds' generator by one pass
        iter(pass_seeds)
    ds = pass_seeds.take(1).flat_map(one_pass)
    return ds.apply(tf.data.experimental.assert_cardinality(len(lengths)))


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _describe(v):
    if isinstance(v, np.ndarray):
        return f"array of shape {v.shape} and dtype {v.dtype}"
    return f"{type(v).__name__}"


# --------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------


def _load_mnist_10k(image_size):
    ref = importlib.resources.files("vae_keras") / "data_files" / "mnist10k.npz"
    with importlib.resources.as_file(ref) as path:
        d = _load_npz(path, MNIST_10K, image_size)
    return dataclasses.replace(d, class_names=tuple(str(i) for i in range(10)))


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
    return ImageData.from_arrays(
        arrays.get("x_train"),
        arrays.get("y_train"),
        arrays.get("x_test"),
        arrays.get("y_test"),
        class_names=arrays.get("class_names"),
        name=name,
        image_size=image_size,
        source=source,
    )


# -- IDX ---------------------------------------------------------------------------------------

_IDX_MAGIC = {"images": 0x00000803, "labels": 0x00000801}
IDX_CLASSES_FILE = "classes.txt"
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
# IDX files carry no class names. Known datasets are recognised by their training labels: the SHA-256 of
# the 60,000 label bytes after the IDX header (so the same whether the file is gzipped or not, and
# wherever the folder is). A classes.txt beside the files always wins.
_KNOWN_IDX_CLASS_NAMES = {
    "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7": FASHION_MNIST_CLASSES,  # Fashion-MNIST
}


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
        try:
            with open(classes_txt, encoding="utf-8") as f:
                names = [line.strip() for line in f if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(
                f"Class names file '{classes_txt}' cannot be read ({type(e).__name__}: {e}). Write it as "
                "UTF-8 text, one class name per line (line 1 names label 0), or remove it."
            ) from None
        class_names = _as_class_names(np.array(names, dtype=str), (y_tr, y_te), f"'{classes_txt}' (one name per line)")
    elif y_tr is not None:
        class_names = _KNOWN_IDX_CLASS_NAMES.get(hashlib.sha256(np.ascontiguousarray(y_tr).tobytes()).hexdigest())
    return ImageData.from_arrays(
        x_tr,
        y_tr,
        x_te,
        y_te,
        class_names=class_names,
        name=name,
        image_size=image_size,
        source=f"IDX folder '{folder}'",
    )


# -- image folders -----------------------------------------------------------------------------


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


def _target_size(images):
    counts = collections.Counter(im.shape[:2] for im in images)
    return max(counts, key=lambda hw: (counts[hw], hw[0] * hw[1], hw))


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


# -- TensorFlow Datasets -----------------------------------------------------------------------


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


# TFDS's own download host (its bucket of prepared datasets, and the mirror of mnist and many others).
_TFDS_PROBE_URL = "https://storage.googleapis.com/tfds-data/"
_TFDS_PROBE_SECONDS = 5.0


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
    return ImageData.from_arrays(
        x_tr,
        y_tr,
        x_te,
        y_te,
        class_names=class_names,
        name=name,
        image_size=image_size,
        source=f"TensorFlow Datasets {name!r}",
    )


# -- spec resolution ---------------------------------------------------------------------------


def load_images(spec, image_size=None):
    """Loads the dataset named by ``spec`` into memory, validated; see the module docstring.

    Args:
        spec: ``"mnist-10k"``, a path (``.npz`` file, IDX folder, image folder) or a TensorFlow
            Datasets name.
        image_size: optional ``(H, W)`` (or an int for square images) to resize every image to.

    Returns:
        An :class:`ImageData`.

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
            "'mnist-10k', a path to an .npz file or folder, or a TensorFlow Datasets name."
        )
    image_size = _check_image_size(image_size)
    if spec.strip().lower() == MNIST_10K:
        return _load_mnist_10k(image_size)
    path = os.path.expanduser(spec)
    if os.path.exists(path):
        path = os.path.abspath(path)
        if os.path.isdir(path):
            if _find_idx(path, "train", "images") or _find_idx(path, "t10k", "images"):
                return _load_idx_folder(path, path, image_size)
            return _load_image_folder(path, path, image_size)
        if path.lower().endswith(".npz"):
            return _load_npz(path, path, image_size)
        raise DataError(
            f"Dataset file '{path}' is not an .npz file. Pass an .npz with x_train (y_train, "
            "x_test, y_test optional), a folder of IDX files or images, 'mnist-10k', or a "
            "TensorFlow Datasets name."
        )
    looks_like_path = os.sep in spec or "/" in spec or spec.lower().endswith(".npz")
    builder = None if spec.lower().endswith(".npz") else _tfds_builder(spec)
    if builder is not None:
        return _load_tfds(builder, spec, image_size)
    what = "No such file or folder, and it" if looks_like_path else "It"
    raise DataError(
        f"Dataset spec {spec!r} cannot be loaded. {what} is not 'mnist-10k', an existing .npz "
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
