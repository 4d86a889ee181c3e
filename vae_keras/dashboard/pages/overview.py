"""The Overview page: headline figures, reconstructions, samples, loss curves and the latent space at once."""

import streamlit as st

from vae_keras.dashboard import logic as dl
from vae_keras.dashboard.common import history_of, no_test_images, sample_png, show_metrics

TITLE = "Overview"


def render(sel, listed):
    show_metrics(dl.final_figures(sel.card, history_of(sel.key, sel.model)))
    st.download_button("Download metrics (JSON)", dl.metrics_json(sel.label, sel.card),
                       file_name=f"{sel.label.replace('/', '-')}-metrics.json", mime="application/json",
                       key="download_metrics", help="The model card's metrics, as measured when the model was exported")
    left, right = st.columns(2, gap="large")
    test, out = sel.test()
    scale = dl.display_scale(sel.h, target=56)
    with left:
        st.subheader("Reconstructions")
        if test is None:
            no_test_images(out)
        else:
            idx = dl.pick_indices(len(test.x), 16, seed=0)
            x, xm = test.x[idx], out["x_mean"][idx]
            st.image(dl.rows_png([x[:8], xm[:8], x[8:], xm[8:]], scale=scale),
                     caption="Rows 1 and 3: test images; rows 2 and 4: their reconstructions", output_format="PNG")
    with right:
        st.subheader("Random samples")
        ncol = min(len(sel.class_names), 10) if sel.conditional else 8
        labels = sel.labels(4 * ncol, None)
        st.image(sample_png(sel.key, sel.model, 4 * ncol, 0, 1.0, ncol, scale, labels), output_format="PNG",
                 caption="Decoded from z ~ N(0, I), seed 0" + (", one class per column" if sel.conditional else ""))
    left, right = st.columns(2, gap="large")
    with left:
        st.subheader("Loss curves")
        long = dl.history_long(history_of(sel.key, sel.model))
        if long.empty:
            st.info("This model has no training history (assets.extra/history.csv).")
        else:
            st.altair_chart(dl.loss_chart(long, "loss", height=340), width="stretch")
    with right:
        st.subheader("Latent space")
        if test is None:
            no_test_images(out)
        else:
            frame, titles, note = dl.latent_frame(out["z_mean"], test.label_names())
            st.altair_chart(dl.latent_chart(frame, titles, height=340), width="stretch")
            st.caption(note)
