"""The dashboard's pictures: a model's test images, validated uploads, per-image errors and PNG grids.

No Streamlit here; `vae_keras.data` (TensorFlow) is imported only when test images or uploads are decoded.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vae_keras import images as images_lib
from vae_keras.errors import DataError

MAX_UPLOAD_MB = 5
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
MAX_UPLOAD_PIXELS = 40_000_000  # decoded size limit (a small PNG can decode to gigabytes)
MAX_TEST_IMAGES = 2000  # test images used for errors and the latent scatter
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_EPS = 1e-7


class UploadError(DataError):
    """An uploaded file that cannot be used as an image (its message is shown to the user)."""


# ------------------------------------------------------------------------------------------------
# Test images
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TestSet:
    """Test images of a dataset, as the models see them (float32 in [0, 1]), with their labels.

    Pixels are intensities (not binarized): reconstructions of Bernoulli models are the pixel
    probabilities, compared with these intensities.
    """

    __test__ = False  # not a pytest test class

    spec: str
    x: np.ndarray
    y: np.ndarray | None
    class_names: tuple | None

    def label_names(self, indices=None):
        """The class name of each image (or of ``indices``); ``None`` without labels."""
        if self.y is None:
            return None
        y = self.y if indices is None else self.y[np.asarray(indices)]
        if self.class_names:
            return [self.class_names[int(v)] if 0 <= int(v) < len(self.class_names) else str(int(v)) for v in y]
        return [str(int(v)) for v in y]


def load_test_set(spec, image_shape, limit=MAX_TEST_IMAGES):
    """The first ``limit`` test images of dataset ``spec`` (the model card's ``dataset``), sized for the model.

    Args:
        spec: a dataset spec understood by :func:`vae_keras.data.load_images`.
        image_shape: the model's ``(H, W, C)``; images are resized to ``H x W`` if needed.
        limit: at most this many images.

    Raises:
        DataError: no dataset in the card, the dataset cannot be loaded, or its channels differ.
    """
    from vae_keras import data

    if not spec or not isinstance(spec, str):
        raise DataError("The model card names no dataset, so there are no test images to show. Upload PNG/JPEG files instead.")
    h, w, c = (int(d) for d in image_shape)
    loaded = data.load_images(spec, image_size=(h, w))
    if loaded.image_shape[-1] != c:
        raise DataError(f"Dataset {spec!r} has {loaded.image_shape[-1]}-channel images but the model takes {c} channels.")
    x = data.to_float(loaded.x_test[:limit])
    y = None if loaded.y_test is None else np.asarray(loaded.y_test[:limit], np.int32)
    return TestSet(spec=spec, x=x, y=y, class_names=tuple(loaded.class_names) if loaded.class_names else None)


def pick_indices(n_total, n, seed=0):
    """``n`` distinct indices out of ``n_total``, chosen at random with ``seed`` (fewer if ``n_total < n``)."""
    n = max(0, min(int(n), int(n_total)))
    return np.random.default_rng(int(seed)).permutation(int(n_total))[:n]


def rank_indices(errors, n, worst=True):
    """Indices of the ``n`` largest (``worst``) or smallest errors, in that order."""
    order = np.argsort(np.asarray(errors), kind="stable")
    if worst:
        order = order[::-1]
    return order[: max(0, int(n))]


# ------------------------------------------------------------------------------------------------
# Uploads
# ------------------------------------------------------------------------------------------------


def decode_upload(name, payload, image_shape, invert=False, max_bytes=MAX_UPLOAD_BYTES):
    """Validates an uploaded PNG/JPEG and converts it to the model's input: float32 ``[H, W, C]`` in [0, 1].

    After the upload checks (size, PNG/JPEG by content, pixel count) the bytes are decoded by
    :func:`vae_keras.data.decode_image_bytes`, the decoder of training images: EXIF orientation
    applied, transparent pixels composited onto black, converted to the model's channels (colour
    to ITU-R 601-2 luma for a grayscale model) and resized to ``H x W`` (bilinear, no aspect-ratio
    crop). ``invert`` turns dark-on-light drawings into the light-on-dark digits MNIST models know.

    Raises:
        UploadError: empty, too large, not a PNG/JPEG (checked by content, not by name), corrupt or
            truncated, or too many pixels.

    Example:
    >>> import io; from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGB", (50, 40), (255, 0, 0)).save(buf, "PNG")
    >>> decode_upload("red.png", buf.getvalue(), (28, 28, 1)).shape
    (28, 28, 1)
    """
    from vae_keras import data

    h, w, c = (int(d) for d in image_shape)
    size = len(payload)
    if size == 0:
        raise UploadError(f"{name!r} is empty.")
    if size > max_bytes:
        raise UploadError(f"{name!r} is {size / 1024 / 1024:.1f} MB; uploads are limited to {max_bytes / 1024 / 1024:.0f} MB per image.")
    if payload.startswith(_PNG_MAGIC):
        kind = "PNG"
    elif payload.startswith(_JPEG_MAGIC):
        kind = "JPEG"
    else:
        raise UploadError(f"{name!r} is not a PNG or JPEG image (its content is something else). Upload .png or .jpg files.")
    try:
        pixels = data.decode_image_bytes(payload, (h, w, c), name=repr(name), formats=(kind,), max_pixels=MAX_UPLOAD_PIXELS)
    except DataError as e:
        raise UploadError(str(e)) from None
    x = data.to_float(pixels)
    return 1.0 - x if invert else x


def decode_uploads(files, image_shape, invert=False, max_bytes=MAX_UPLOAD_BYTES):
    """Decodes ``[(name, bytes), ...]``; returns ``(x [N, H, W, C] or None, names, messages)``.

    Files that fail are left out; each failure gives one message for the user.
    """
    good, names, messages = [], [], []
    for name, payload in files:
        try:
            good.append(decode_upload(name, payload, image_shape, invert=invert, max_bytes=max_bytes))
            names.append(name)
        except UploadError as e:
            messages.append(str(e))
    x = np.stack(good).astype(np.float32) if good else None
    return x, names, messages


# ------------------------------------------------------------------------------------------------
# Reconstruction errors and pictures
# ------------------------------------------------------------------------------------------------


def error_name(likelihood):
    """What :func:`reconstruction_error` measures for a model with this likelihood, for the UI."""
    if likelihood == "bernoulli":
        return "binary cross-entropy (nats, summed over pixels)"
    return "mean squared error (per pixel)"


def reconstruction_error(x, x_mean, likelihood):
    """Per-image reconstruction error between inputs ``x`` and reconstructions ``x_mean`` ``[N, H, W, C]``.

    Bernoulli models: binary cross-entropy of the pixel probabilities ``x_mean`` against the
    intensities ``x``, summed over pixels (nats, the scale of the loss's reconstruction term).
    Other likelihoods: mean squared error per pixel.

    Example:
    >>> x = np.zeros((1, 2, 2, 1), np.float32)
    >>> float(reconstruction_error(x, x + 0.5, "gaussian")[0])
    0.25
    """
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    m = np.asarray(x_mean, np.float64).reshape(len(x_mean), -1)
    if x.shape != m.shape:
        raise ValueError(f"inputs and reconstructions differ in shape: {x.shape} vs {m.shape}")
    if likelihood == "bernoulli":
        p = np.clip(m, _EPS, 1.0 - _EPS)
        return -(x * np.log(p) + (1.0 - x) * np.log1p(-p)).sum(axis=1)
    return ((x - m) ** 2).mean(axis=1)


def display_scale(height, target=84):
    """Integer nearest-neighbour scale factor that shows an image about ``target`` pixels tall."""
    return max(1, round(target / max(1, int(height))))


upscale = images_lib.upscale  # nearest-neighbour enlargement (also `vae-keras sample --scale`)


def grid_png(images, ncol=None, scale=1, padding=2):
    """PNG bytes of ``images [N, H, W, C]`` tiled by :func:`vae_keras.images.make_grid`, upscaled ``scale`` times.

    C = 1 is saved as a grayscale PNG, C = 3 as RGB.
    """
    grid = images_lib.make_grid(images, ncol=ncol, padding=padding)
    return images_lib.png_bytes(images_lib.upscale(grid, scale))


def pair_pngs(x, x_mean, scale=1):
    """One PNG per image: the input beside its reconstruction."""
    return [grid_png(np.stack([a, b]), ncol=2, scale=scale) for a, b in zip(x, x_mean)]


def rows_png(rows, scale=1):
    """PNG bytes of equally long rows of images ``[[N, H, W, C], ...]`` stacked (e.g. input, then each model)."""
    stacked = np.concatenate([np.asarray(images_lib.to_uint8(r)) for r in rows])
    return grid_png(stacked, ncol=len(rows[0]), scale=scale)
