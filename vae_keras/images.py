"""Image grids and PNG files (atomic writes, never overwriting unless asked)."""

import io
import math

import numpy as np

from vae_keras import fileio
from vae_keras.errors import ConfigError


def to_uint8(images):
    """float images in [0, 1] (or uint8) -> uint8, clipped."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.round(np.clip(np.nan_to_num(images.astype(np.float32)), 0.0, 1.0) * 255.0).astype(np.uint8)


def make_grid(images, ncol=None, padding=2, pad_value=255):
    """Tiles images [N, H, W, C] into one uint8 picture [rows*(H+p)+p, cols*(W+p)+p, C].

    Args:
        images: N images, float in [0, 1] or uint8, with C in (1, 3).
        ncol: images per row; defaults to ceil(sqrt(N)).
        padding: pixels between images.
        pad_value: uint8 value of the padding.

    Example:
    >>> make_grid(np.zeros((4, 2, 2, 1))).shape
    (10, 10, 1)
    """
    images = to_uint8(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[0] == 0 or images.shape[-1] not in (1, 3):
        raise ConfigError(f"make_grid needs images [N, H, W, C] with N >= 1 and C in (1, 3). Received shape {images.shape}")
    n, h, w, c = images.shape
    ncol = int(ncol or math.ceil(math.sqrt(n)))
    nrow = math.ceil(n / ncol)
    out = np.full((nrow * (h + padding) + padding, ncol * (w + padding) + padding, c), pad_value, np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        out[top:top + h, left:left + w] = img
    return out


def upscale(picture, factor):
    """Nearest-neighbour enlargement of a picture ``[H, W(, C)]`` by an integer ``factor`` (crisp pixels).

    Example:
    >>> upscale(np.array([[0, 255]], np.uint8), 2).tolist()
    [[0, 0, 255, 255], [0, 0, 255, 255]]
    """
    factor = int(factor)
    if factor < 1:
        raise ConfigError(f"upscale needs an integer factor >= 1. Received: factor={factor}")
    if factor == 1:
        return picture
    return np.repeat(np.repeat(picture, factor, axis=0), factor, axis=1)


def png_bytes(picture):
    """Encodes a uint8 picture [H, W, C] (C in 1, 3) or [H, W] as PNG bytes."""
    from PIL import Image

    picture = to_uint8(picture)
    if picture.ndim == 3 and picture.shape[-1] == 1:
        picture = picture[..., 0]
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format="PNG")
    return buf.getvalue()


def save_png(path, picture, overwrite=False):
    """Writes ``picture`` as a PNG file atomically (refuses to overwrite unless ``overwrite``)."""
    fileio.atomic_write_bytes(path, png_bytes(picture), overwrite=overwrite)
