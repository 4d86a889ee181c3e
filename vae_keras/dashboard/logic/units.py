"""Which latent dims the model uses: per-dim KL and activity (the active-units rule of
`vae_keras.active_units`, the one the model card and ``vae-keras evaluate`` use), and their chart.

No Streamlit or TensorFlow here; altair and pandas are imported by the builders.
"""

from __future__ import annotations

import numpy as np

from vae_keras.active_units import ACTIVE_UNIT_RULE, ACTIVE_UNIT_THRESHOLD, activity_per_dim, is_active
from vae_keras.dashboard.logic.cards import kl_per_dim, metric, metric_vector

UNIT_SORTS = ("by dim", "by KL (largest first)")


def card_activity(card):
    """``test_activity_per_dim`` of the card as a float array, or None (older cards do not record it)."""
    return metric_vector(card, "test_activity_per_dim")


def unit_table(card, z_mean=None):
    """Per latent dim: ``dim``, ``KL (nats)`` (the card's test KL, NaN if absent), ``activity`` (Var_x E_q[z_j|x])
    and ``active`` (the rule), with a sentence saying where the activity comes from.

    The activity is the card's (measured on the test images the card's metrics used) if recorded; else it is
    computed from ``z_mean`` (the test images the dashboard encoded). Returns ``(frame, source)``, or
    ``(None, reason)`` when neither the card nor ``z_mean`` gives it.
    """
    import pandas as pd

    kl = kl_per_dim(card)
    activity = card_activity(card)
    n_card = metric(card, "test_num_images")
    source = ("the model card's test evaluation" + (f" ({n_card:,.0f} test images)" if n_card else ""))
    if activity is None and z_mean is not None:
        activity = activity_per_dim(z_mean)
        source = (f"the posterior means of the {len(z_mean):,} test images encoded here (the model card records no "
                  f"per-dim activity, so its count of active units may differ)")
    if activity is None:
        return None, "the model card records no per-dim activity and no test images are available to measure it."
    d = len(activity)
    if kl is None or len(kl) != d:
        kl = np.full(d, np.nan)
    frame = pd.DataFrame({"dim": np.arange(d), "KL (nats)": kl, "activity": activity,
                          "active": np.where(is_active(activity), "active", "inactive")})
    return frame, source


def active_units_sentence(frame, source):
    """One sentence: the count, the rule, and where the numbers come from."""
    n_active = int((frame["active"] == "active").sum())
    return (f"{n_active} of {len(frame)} latent dims are active: {ACTIVE_UNIT_RULE}. Activity from {source}. "
            f"The dashed line marks the threshold {ACTIVE_UNIT_THRESHOLD:g}.")


def no_kl_per_dim_reason(prior):
    """Why a model's card has no per-dim KL, in a sentence (``prior``: the card's prior).

    >>> no_kl_per_dim_reason("vamp")[:43]
    "This model's prior is learned ('vamp'): its"
    """
    if prior and prior != "standard":
        return (f"This model's prior is learned ({prior!r}): its KL has no closed form and does not split into dims, "
                "so there is no per-dim KL, only the activity.")
    return ("The model card records no per-dim KL (the run skipped its test evaluation, or the card is older), so "
            "only the activity is shown.")


def sort_order(frame, sort):
    """The dims in display order: ``UNIT_SORTS[0]`` by index, ``UNIT_SORTS[1]`` by decreasing KL (then activity)."""
    if sort not in UNIT_SORTS:
        raise ValueError(f"sort must be one of {UNIT_SORTS}. Received: {sort!r}")
    if sort == UNIT_SORTS[0]:
        return [int(d) for d in frame["dim"]]
    keys = frame.assign(_kl=frame["KL (nats)"].fillna(-np.inf))
    return [int(d) for d in keys.sort_values(["_kl", "activity"], ascending=False, kind="stable")["dim"]]


def units_charts(frame, sort=UNIT_SORTS[0], height=220):
    """Two bar charts over the latent dims, in ``sort`` order: ``(KL chart, activity chart)``: the test KL, and the
    activity (log scale) with the active-units threshold drawn as a dashed rule; bars are coloured active / inactive."""
    import altair as alt

    order = [str(d) for d in sort_order(frame, sort)]
    data = frame.assign(dim=frame["dim"].astype(str), threshold=ACTIVE_UNIT_THRESHOLD)
    x = alt.X("dim:N", title="latent dim", sort=order, axis=alt.Axis(labelAngle=0))
    color = alt.Color("active:N", title=None, scale=alt.Scale(domain=["active", "inactive"], range=["#4c78a8", "#bab0ac"]),
                      legend=alt.Legend(orient="right"))
    tooltip = [alt.Tooltip("dim:N", title="latent dim"), alt.Tooltip("KL (nats):Q", format=".4f"),
               alt.Tooltip("activity:Q", title="Var_x E[z_j|x]", format=".4g"), "active:N"]
    kl = (alt.Chart(data, title="Test KL per latent dim (nats)").mark_bar()
          .encode(x=x, y=alt.Y("KL (nats):Q", title="KL (nats)"), color=color, tooltip=tooltip)
          .properties(height=height, width="container"))
    floor = max(min(float(data["activity"].min()), ACTIVE_UNIT_THRESHOLD) / 2, 1e-6)  # the threshold stays in view
    bars = (alt.Chart(data).mark_bar()
            .encode(x=x, y=alt.Y("activity:Q", title="Var_x E[z_j|x]", scale=alt.Scale(type="log", domainMin=floor)),
                    y2=alt.datum(floor), color=color, tooltip=tooltip))
    rule = (alt.Chart(data.head(1)).mark_rule(strokeDash=[6, 4], color="#e45756")
            .encode(y=alt.Y("threshold:Q"), tooltip=[alt.Tooltip("threshold:Q", title="active-units threshold")]))
    activity = (alt.layer(bars, rule, title=f"Activity per latent dim (log scale; dashed: threshold {ACTIVE_UNIT_THRESHOLD:g})")
                .properties(height=height, width="container"))
    return kl, activity
