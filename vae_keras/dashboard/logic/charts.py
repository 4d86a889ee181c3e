"""The dashboard's training histories and altair charts (altair and pandas are imported by the builders)."""

from __future__ import annotations

import numpy as np

HISTORY_METRICS = ("loss", "reconstruction", "kl")
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


def loss_chart(long, metric_name, height=340, color="split", dash=None, title=None):
    """An interactive altair line chart (zoom/pan, tooltips) of one metric of :func:`history_long` data.

    ``color`` and ``dash`` name the columns that set line colour and stroke dash (e.g. ``model`` and
    ``split`` to overlay several models).
    """
    import altair as alt

    data = long[long["metric"] == metric_name]
    enc = {
        "x": alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1)),
        "y": alt.Y("value:Q", title="nats per image", scale=alt.Scale(zero=False)),
        "color": alt.Color(f"{color}:N", title=color, scale=alt.Scale(scheme="tableau10"),
                           legend=alt.Legend(orient="bottom", direction="horizontal")),
        "tooltip": [c for c in ("model", "split", "epoch") if c in data.columns] + [alt.Tooltip("value:Q", format=".2f")],
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
        .interactive()
    )


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
        .interactive()
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
