"""The latent scatter of the Latent space page: hovering a point names both axes and shows the test image, and the
region the decoded manifold covers is drawn on it (2-D latents).

No Streamlit here; altair is imported by the builder.
"""

from __future__ import annotations

import numpy as np

from vae_keras.dashboard.logic.gallery import data_uri
from vae_keras.dashboard.logic.pictures import grid_png

MAX_THUMBNAIL_SIDE = 64  # larger images are not put into tooltips (the chart would grow too large)
MAX_TOOLTIP_BYTES = 4_000_000  # all the tooltips' images together


def thumbnails(x, target=56, max_bytes=MAX_TOOLTIP_BYTES):
    """A PNG data URI per image of ``x [N, H, W, C]`` (about ``target`` px tall, never enlarged more than needed), or
    None when the images are larger than `MAX_THUMBNAIL_SIDE` or all of them together exceed ``max_bytes`` (the chart
    is sent to the browser at each rerun)."""
    x = np.asarray(x)
    if max(x.shape[1], x.shape[2]) > MAX_THUMBNAIL_SIDE:
        return None
    scale = max(1, round(target / x.shape[1]))
    uris, total = [], 0
    for i in range(len(x)):
        uris.append(data_uri(grid_png(x[i:i + 1], ncol=1, scale=scale, padding=0)))
        total += len(uris[-1])
        if total > max_bytes:
            return None
    return uris


def manifold_region(quantiles):
    """The square a manifold grid covers in the 2-D latent space: ``{"x": lo, "x2": hi, "y": lo, "y2": hi}``."""
    lo, hi = float(min(quantiles)), float(max(quantiles))
    return {"x": lo, "x2": hi, "y": lo, "y2": hi}


def latent_scatter(frame, titles, images=None, region=None, height=420):
    """An interactive scatter of :func:`vae_keras.dashboard.logic.latent_frame` points coloured by label.

    The tooltip names the axes by their titles (e.g. PC 1 / PC 2) and, given ``images`` (data URIs, one per point,
    from :func:`thumbnails`), shows the test image (vega-tooltip shows a field named ``image`` as a picture).
    ``region`` (from :func:`manifold_region`) draws the manifold's square.
    """
    import altair as alt

    x_title, y_title = titles[0], titles[1] or "0"
    data = frame.rename(columns={"image": "test image #"})
    if images is not None:
        data = data.assign(image=list(images))
    tooltip = [alt.Tooltip("test image #:Q"), alt.Tooltip("label:N"),
               alt.Tooltip("x:Q", title=x_title, format=".2f"), alt.Tooltip("y:Q", title=y_title, format=".2f")]
    if images is not None:
        tooltip.append(alt.Tooltip("image:N"))
    points = (alt.Chart(data).mark_circle(size=22, opacity=0.75)
              .encode(x=alt.X("x:Q", title=titles[0]), y=alt.Y("y:Q", title=titles[1] or None),
                      color=alt.Color("label:N", title="label", sort="ascending", scale=alt.Scale(scheme="tableau10")),
                      tooltip=tooltip))
    layers = [points]
    if region is not None:
        import pandas as pd

        box = pd.DataFrame([{**region, "what": "the decoded manifold's area"}])
        layers.append(alt.Chart(box).mark_rect(fillOpacity=0, stroke="#e45756", strokeWidth=2, strokeDash=[6, 3])
                      .encode(x="x:Q", x2="x2:Q", y="y:Q", y2="y2:Q", tooltip=[alt.Tooltip("what:N", title="region")]))
    return alt.layer(*layers).properties(height=height, width="container").interactive()
