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
    cols = st.columns(3)
    for col, name in zip(cols, dl.HISTORY_METRICS):
        if (long["metric"] == name).any():
            col.altair_chart(dl.loss_chart(long, name), width="stretch")
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
    kl = dl.kl_per_dim(sel.card)
    if kl is not None:
        st.altair_chart(dl.kl_chart(kl), width="stretch")
    with st.expander("history.csv"):
        st.dataframe(history, hide_index=True)
