"""The dashboard's training histories and altair charts (altair and pandas are imported by the builders)."""

from __future__ import annotations

import numpy as np

HISTORY_METRICS = ("loss", "reconstruction", "kl")
PALETTE = ("#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac")
UNITS = {"nats": "nats per image", "bits/dim": "bits per dimension"}
# Pixels of room around the data: the first and last points are drawn whole (charts clip marks to the plot).
SCALE_PADDING = 12
METRIC_TITLES = {"loss": "Loss (negative ELBO)", "reconstruction": "Reconstruction  −log p(x|z)", "kl": "KL(q(z|x) ‖ p(z))"}
SPLIT_NAMES = {"": "train", "val_": "validation"}


def history_long(history, model=None):
    """history.csv in long format: one row per (epoch, metric, split) with its ``value``.

    Columns: ``epoch``, ``metric`` (loss / reconstruction / kl), ``split`` (train / validation),
    ``value`` and, if ``model`` is given, ``model``. Missing columns and NaNs are left out.
    """
    import pandas as pd

    columns = ["epoch", "metric", "split", "value"] + (["model"] if model is not None else [])
    if history is None or len(history) == 0:
        return pd.DataFrame(columns=columns)
    epochs = history["epoch"] if "epoch" in history else pd.Series(np.arange(1, len(history) + 1))
    parts = []
    for name in HISTORY_METRICS:
        for prefix, split in SPLIT_NAMES.items():
            col = prefix + name
            if col not in history:
                continue
            part = pd.DataFrame({"epoch": np.asarray(epochs), "metric": name, "split": split,
                                 "value": pd.to_numeric(history[col], errors="coerce").to_numpy()})
            parts.append(part.dropna(subset=["value"]))
    if not parts:
        return pd.DataFrame(columns=columns)
    out = pd.concat(parts, ignore_index=True)
    if model is not None:
        out["model"] = model
    return out[columns]


def pan_only():
    """Drag to pan, double-click to reset, and no zoom on the scroll wheel: scrolling over a chart scrolls the
    page (``.interactive()`` would zoom it)."""
    import altair as alt

    return alt.selection_interval(bind="scales", zoom=False)


def model_colors(labels):
    """A fixed colour per model: ``labels`` is every listed model in listing order, so a model keeps its colour
    whichever models are compared with it. Returns ``(domain, range)`` for an altair colour scale.

    Example:
    >>> model_colors(["a/1", "b/1"])
    (['a/1', 'b/1'], ['#4c78a8', '#f58518'])
    """
    labels = list(labels)
    return labels, [PALETTE[i % len(PALETTE)] for i in range(len(labels))]


def per_dimension(long, dims):
    """:func:`history_long` data in bits per dimension: nats per image ÷ (``dims`` × ln 2), ``dims`` being the
    image's pixels × channels; makes models of different image sizes comparable on one chart."""
    out = long.copy()
    out["value"] = out["value"].astype(float) / (float(dims) * np.log(2.0))
    return out


def loss_chart(long, metric_name, height=340, color="split", dash=None, title=None, unit="nats", log=False,
               color_scale=None):
    """An altair line chart (drag to pan, tooltips; no scroll zoom) of one metric of :func:`history_long` data.

    ``color`` and ``dash`` name the columns that set line colour and stroke dash (e.g. ``model`` and
    ``split`` to overlay several models); ``unit`` is ``"nats"`` or ``"bits/dim"`` (the y title; the values
    must already be in it, see :func:`per_dimension`); ``log`` draws a log y scale (every value must be > 0);
    ``color_scale`` is ``(domain, range)`` from :func:`model_colors`.
    """
    import altair as alt

    data = long[long["metric"] == metric_name]
    if log and len(data) and not (data["value"] > 0).all():
        raise ValueError(f"A log scale needs values > 0; the {metric_name} curves go down to {data['value'].min():.4g}.")
    colors = {"scheme": "tableau10"} if color_scale is None else {"domain": list(color_scale[0]),
                                                                    "range": list(color_scale[1])}
    enc = {
        "x": alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1), scale=alt.Scale(padding=SCALE_PADDING)),
        "y": alt.Y("value:Q", title=UNITS[unit] + (" (log scale)" if log else ""),
                   scale=alt.Scale(type="log", padding=SCALE_PADDING) if log else
                   alt.Scale(zero=False, padding=SCALE_PADDING)),
        # No legend title for train / validation: the entries say it (a title did not fit a half-width chart)
        "color": alt.Color(f"{color}:N", title=None if color == "split" else color, scale=alt.Scale(**colors),
                           legend=alt.Legend(orient="bottom", direction="horizontal")),
        "tooltip": [c for c in ("model", "split", "epoch") if c in data.columns]
        + [alt.Tooltip("value:Q", title=unit, format=",.4f" if unit == "bits/dim" else ",.2f")],
    }
    chart_title = title or METRIC_TITLES.get(metric_name, metric_name)
    if dash:
        # Legend symbols of dashes do not render under Streamlit's theme: the subtitle says it instead.
        values = sorted(data[dash].unique()) if dash in data else []
        patterns = [[1, 0], [6, 4], [2, 2], [8, 3, 2, 3]]
        enc["strokeDash"] = alt.StrokeDash(f"{dash}:N", legend=None, scale=alt.Scale(
            domain=values, range=[patterns[i % len(patterns)] for i in range(len(values))]))
        names = ("solid", "dashed", "dotted", "dash-dot")
        subtitle = " · ".join(f"{names[i % len(names)]}: {v}" for i, v in enumerate(values))
        chart_title = alt.TitleParams(chart_title, subtitle=subtitle, anchor="start")
    return (
        alt.Chart(data, title=chart_title)
        .mark_line(point=True)
        .encode(**enc)
        .properties(height=height, width="container")
        .add_params(pan_only())
    )


def kl_weight_chart(history, height=200):
    """The KL weight of each epoch's training loss (history.csv's ``kl_weight``, logged with KL warm-up), or
    None without that column. Validation losses always use the full weight β."""
    import altair as alt
    import pandas as pd

    if history is None or "kl_weight" not in getattr(history, "columns", ()):
        return None
    epochs = history["epoch"] if "epoch" in history else pd.Series(np.arange(1, len(history) + 1))
    frame = pd.DataFrame({"epoch": np.asarray(epochs),
                          "KL weight": pd.to_numeric(history["kl_weight"], errors="coerce").to_numpy()}).dropna()
    return (
        alt.Chart(frame, title="KL weight of the training loss (warm-up)")
        .mark_line(point=True)
        .encode(x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1), scale=alt.Scale(padding=SCALE_PADDING)),
                y=alt.Y("KL weight:Q", scale=alt.Scale(padding=SCALE_PADDING)),
                tooltip=["epoch:Q", alt.Tooltip("KL weight:Q", format=".3f")])
        .properties(height=height, width="container")
        .add_params(pan_only())
    )


def warmup_note(history, beta=1.0):
    """Words saying when train and validation curves are not comparable (the training loss weighed the KL
    less than β during warm-up), or None when every epoch used the full weight."""
    if history is None or "kl_weight" not in getattr(history, "columns", ()):
        return None
    import pandas as pd

    weights = pd.to_numeric(history["kl_weight"], errors="coerce").to_numpy()
    epochs = np.asarray(history["epoch"]) if "epoch" in history else np.arange(1, len(history) + 1)
    beta = 1.0 if beta is None else float(beta)
    lower = [(int(e), float(w)) for e, w in zip(epochs, weights) if np.isfinite(w) and w < beta - 1e-9]
    if not lower:
        return None
    first, last = lower[0], lower[-1]
    span = f"epoch {first[0]}" if first[0] == last[0] else f"epochs {first[0]}–{last[0]}"
    return (f"KL warm-up: in {span} the training loss weighed the KL by {first[1]:.3g}"
            + (f"…{last[1]:.3g}" if last is not first else "")
            + f" while the validation loss used β = {beta:g}, so the train and validation loss curves are not "
            "comparable there (their reconstruction and KL curves are).")


def latent_chart(frame, titles, height=420):
    """An interactive altair scatter of :func:`latent_frame` points coloured by label."""
    import altair as alt

    return (
        alt.Chart(frame)
        .mark_circle(size=22, opacity=0.75)
        .encode(
            x=alt.X("x:Q", title=titles[0]),
            y=alt.Y("y:Q", title=titles[1] or None),
            color=alt.Color("label:N", title="label", sort="ascending", scale=alt.Scale(scheme="tableau10")),
            tooltip=[alt.Tooltip("image:Q", title="test image #"), "label:N",
                     alt.Tooltip("x:Q", format=".2f"), alt.Tooltip("y:Q", format=".2f")],
        )
        .properties(height=height, width="container")
        .add_params(pan_only())
    )


def kl_chart(kl, height=200):
    """A bar chart of the test KL per latent dimension (which dims carry information)."""
    import altair as alt
    import pandas as pd

    frame = pd.DataFrame({"dim": np.arange(len(kl)), "KL (nats)": np.asarray(kl, np.float64)})
    return (
        alt.Chart(frame, title="Test KL per latent dimension")
        .mark_bar()
        .encode(x=alt.X("dim:O", title="latent dim"), y=alt.Y("KL (nats):Q"),
                tooltip=["dim:O", alt.Tooltip("KL (nats):Q", format=".3f")])
        .properties(height=height, width="container")
    )
