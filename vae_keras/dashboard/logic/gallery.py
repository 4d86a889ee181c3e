"""Image grids as HTML (images inline as data URIs) and the files the pages offer for download (PNG, CSV).

Why inline images: ``st.image`` serves each picture as a media file that Streamlit deletes at the end of the next
script run. With quick reruns (several clicks on "Draw again") the browser still fetches a picture of a run that a
newer run has already replaced and gets a 404. A data URI travels with the page itself and cannot expire.

The grid is a CSS grid of fixed-size cells: every image has the same width and height whatever its caption (a long
caption wraps below its image), each image has a thin border (white images stay visible on a white page), and optional
column headers (e.g. class names) and row headers (e.g. a traversal's dim and KL) sit beside the cells they name.

No Streamlit here.
"""

from __future__ import annotations

import base64
import html
import io
import struct

import numpy as np

from vae_keras.dashboard.logic.pictures import grid_png

BORDER = "1px solid rgba(128, 128, 128, 0.45)"
GAP_PX = 6


def png_size(png):
    """``(width, height)`` of PNG bytes, read from the IHDR chunk.

    Example:
    >>> png_size(grid_png(np.zeros((1, 3, 5, 1)), padding=0))
    (5, 3)
    """
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    return struct.unpack(">II", png[16:24])


def data_uri(png):
    """A ``data:image/png;base64,...`` URI of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def tile_pngs(images, scale=1):
    """One PNG per image of ``images [N, H, W, C]``, upscaled ``scale`` times, no padding (the grid draws a border)."""
    return [grid_png(np.asarray(images)[i:i + 1], ncol=1, scale=scale, padding=0) for i in range(len(images))]


def grid_html(tiles, ncol, captions=None, col_headers=None, row_headers=None, alt="image", fit=False):
    """HTML of ``tiles`` (PNG bytes of equal size) in a grid of ``ncol`` columns, row by row.

    Args:
        tiles: PNG bytes, all of the same size (the first one's size is every cell's size).
        ncol: cells per row.
        captions: one caption per tile (under it, wrapped to the cell's width), or None.
        col_headers: one header per column, above it (e.g. class names), or None.
        row_headers: one header per row, left of it, or None.
        alt: the images' alternative text (with the caption, if any).
        fit: one large picture (e.g. a manifold) shrinks to the page's width instead of scrolling.
    """
    tiles = list(tiles)
    if not tiles:
        return ""
    ncol = max(1, min(int(ncol), len(tiles)))
    nrow = -(-len(tiles) // ncol)
    for name, values, n in (("captions", captions, len(tiles)), ("col_headers", col_headers, ncol),
                            ("row_headers", row_headers, nrow)):
        if values is not None and len(values) != n:
            raise ValueError(f"{name} needs {n} entries for {len(tiles)} tiles in {ncol} columns. Received {len(values)}")
    w, h = png_size(tiles[0])
    if fit and len(tiles) == 1 and captions is None and col_headers is None and row_headers is None:
        return (f'<div class="vk-grid"><figure class="vk-cell" style="margin:0;max-width:{w + 2}px">'
                f'<img src="{data_uri(tiles[0])}" alt="{html.escape(alt, quote=True)}" style="display:block;width:100%;'
                f'height:auto;border:{BORDER};image-rendering:pixelated"></figure></div>')
    columns = ("max-content " if row_headers is not None else "") + f"repeat({ncol}, {w + 2}px)"
    cells = []
    head = "font-size:0.8rem;line-height:1.2;font-weight:600;overflow-wrap:anywhere;"
    if col_headers is not None:
        if row_headers is not None:
            cells.append("<div></div>")
        cells += [f'<div class="vk-col-header" style="{head}width:{w + 2}px;text-align:center">{html.escape(str(t))}</div>'
                  for t in col_headers]
    for r in range(nrow):
        if row_headers is not None:
            cells.append(f'<div class="vk-row-header" style="{head}align-self:center;text-align:right;padding-right:4px">'
                         f'{html.escape(str(row_headers[r]))}</div>')
        for i in range(r * ncol, min((r + 1) * ncol, len(tiles))):
            caption = captions[i] if captions is not None else None
            label = html.escape(f"{alt}: {caption}" if caption else alt, quote=True)
            text = (f'<figcaption style="font-size:0.75rem;line-height:1.2;overflow-wrap:anywhere;margin-top:2px">'
                    f'{html.escape(str(caption))}</figcaption>') if caption else ""
            cells.append(f'<figure class="vk-cell" style="margin:0;width:{w + 2}px">'
                         f'<img src="{data_uri(tiles[i])}" width="{w}" height="{h}" alt="{label}" '
                         f'style="display:block;width:{w}px;height:{h}px;border:{BORDER};image-rendering:pixelated">'
                         f'{text}</figure>')
    return (f'<div class="vk-grid" style="overflow-x:auto"><div style="display:grid;grid-template-columns:{columns};'
            f'gap:{GAP_PX}px;align-items:start;width:max-content">{"".join(cells)}</div></div>')


def grid_download_png(images, ncol, scale=1):
    """The PNG file offered for download of a grid of ``images [N, H, W, C]``: tiled row by row, 2 px white gaps."""
    return grid_png(images, ncol=ncol, scale=scale, padding=2)


def csv_bytes(frame):
    """UTF-8 CSV bytes of a DataFrame, without its index."""
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue().encode("utf-8")


def z_mean_frame(z_mean, labels=None, names=None):
    """A DataFrame of posterior means: ``image`` (test image #), ``label`` (if any), ``z_0`` .. ``z_{D-1}``."""
    import pandas as pd

    z_mean = np.asarray(z_mean, np.float64)
    frame = pd.DataFrame({"image": np.arange(len(z_mean))})
    if labels is not None:
        frame["label"] = np.asarray(labels)
        if names is not None:
            frame["class"] = names
    for j in range(z_mean.shape[1]):
        frame[f"z_{j}"] = z_mean[:, j]
    return frame


def errors_frame(indices, errors, error_name, labels=None, names=None):
    """A DataFrame of per-image reconstruction errors: ``image``, ``label``/``class`` (if any) and the error."""
    import pandas as pd

    frame = pd.DataFrame({"image": np.asarray(indices, np.int64)})
    if labels is not None:
        frame["label"] = np.asarray(labels)
        if names is not None:
            frame["class"] = names
    frame[f"error ({error_name})"] = np.asarray(errors, np.float64)
    return frame
