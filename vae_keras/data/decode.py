"""Image files: :func:`decode_image_bytes`, the one decoder of image files (image folders, dashboard uploads)."""

from __future__ import annotations

import io

import numpy as np

from vae_keras import checks
from vae_keras.data.arrays import _composite_on_black, _resize_one
from vae_keras.errors import ConfigError, DataError

_LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, the weights of PIL's "L" conversion
_GRAY_MODES = ("1", "L", "F")  # 8-bit (or float) grayscale PIL modes; "I*" (16/32-bit) is scaled


def _check_image_shape(image_shape):
    """None, or ``(H, W, C)`` as ints with H, W > 0 and C in (1, 3)."""
    if image_shape is None:
        return None
    try:
        h, w, c = image_shape
        ok = all(checks.is_integer(v, numpy=True) for v in (h, w, c)) and h > 0 and w > 0 and c in (1, 3)
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
