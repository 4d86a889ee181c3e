"""The Loss curves page: the training history's curves, the headline figures and the KL per dimension."""

import streamlit as st

from vae_keras.dashboard import logic as dl
from vae_keras.dashboard.common import history_of, show_metrics

TITLE = "Loss curves"


def render(sel, listed):
    history = history_of(sel.key, sel.model)
    show_metrics(dl.final_figures(sel.card, history))
    long = dl.history_long(history)
    if long.empty:
        st.info("This model has no training history (assets.extra/history.csv), so there are no curves to draw.")
        return
    # One chart per row, across the page: three in a row were cut at 1024 px (about 200 px each beside the sidebar:
    # titles cut to "Loss (negative EL…"). Each keeps the full height: below about 280 px the title, plot, axis and
    # legend do not fit, and Chromium clipped the title (seen at 1024 and 1400 px with 240-260 px).
    for name in dl.HISTORY_METRICS:
        if (long["metric"] == name).any():
            st.altair_chart(dl.loss_chart(long, name), width="stretch")
    beta = sel.card.get("beta")
    beta = 1.0 if beta is None else float(beta)
    warmup = dl.warmup_note(history, beta)
    st.caption("Per epoch, in nats per image; drag to pan, double-click to reset (scrolling over a chart scrolls "
               f"the page). Validation loss = reconstruction + β·KL with β = {beta:g}; "
               + ("the training loss weighs the KL by each epoch's KL weight (the chart below)."
                  if warmup else "the training loss too (no KL warm-up in history.csv)."))
    if warmup:
        st.warning(warmup)
    weights = dl.kl_weight_chart(history)
    if weights is not None:
        st.altair_chart(weights, width="stretch")
    units(sel)
    with st.expander("history.csv"):
        st.dataframe(history, hide_index=True)


def units(sel):
    """The test KL per latent dim and the activity with the active-units threshold (the Latent space page's charts).

    The threshold is not drawn on the per-epoch KL curve: that curve sums the KL over all dims, and the rule is about
    each dim's activity Var_x E[z_j|x], not its KL."""
    test, out = sel.test()
    frame, source = dl.unit_table(sel.card, None if test is None else out["z_mean"])
    kl = dl.kl_per_dim(sel.card)
    if frame is None:
        if kl is not None:
            st.altair_chart(dl.kl_chart(kl), width="stretch")
            st.caption(f"No active-units threshold to draw: {source}")
        return
    kl_bars, activity = dl.units_charts(frame)
    st.altair_chart(kl_bars, width="stretch")  # one per row, as on the Latent space page: side by side, the
    st.altair_chart(activity, width="stretch")  # activity's title was cut at 1024 px
    st.caption(dl.active_units_sentence(frame, source) + " The KL curve above is the KL summed over all dims per epoch, "
               "not a dim's activity, so the threshold is drawn on the activity chart, not on that curve.")
