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
    st.caption("Per epoch, in nats per image; drag to pan, scroll to zoom, double-click to reset. "
               "Loss = reconstruction + β·KL.")
    kl = dl.kl_per_dim(sel.card)
    if kl is not None:
        st.altair_chart(dl.kl_chart(kl), width="stretch")
    with st.expander("history.csv"):
        st.dataframe(history, hide_index=True)
