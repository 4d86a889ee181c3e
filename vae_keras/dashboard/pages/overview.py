"""The Overview page: headline figures, reconstructions, samples, loss curves and the latent space at once."""

import numpy as np
import streamlit as st

from vae_keras.dashboard import logic as dl
from vae_keras.dashboard.common import file_stem, history_of, no_test_images, sample_images, show_grid, show_metrics

TITLE = "Overview"


def render(sel, listed):
    show_metrics(dl.final_figures(sel.card, history_of(sel.key, sel.model)))
    quality = dl.sample_quality_figures(sel.card)
    if quality:
        st.markdown("**Random samples' quality** (the model card's, from `vae-keras train --sample-quality N`)")
        show_metrics(quality)
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
            rows = np.concatenate([x[:8], xm[:8], x[8:], xm[8:]])
            # One picture that shrinks to its half-page column (8 tiles a row scrolled sideways at 1024 px)
            png = dl.grid_download_png(rows, 8, scale)
            show_grid([png], 1, alt="test images and reconstructions", fit=True,
                      download=(png, f"{file_stem(sel)}-overview-reconstructions.png", "dl_overview_rec"))
            st.caption("Rows 1 and 3: test images; rows 2 and 4: their reconstructions")
    with right:
        st.subheader("Random samples")
        ncol = min(len(sel.class_names), 10) if sel.conditional else 8
        labels = sel.labels(4 * ncol, None)
        x = sample_images(sel.key, sel.model, 4 * ncol, 0, 1.0, labels)
        png = dl.grid_download_png(x, ncol, scale)
        show_grid([png], 1, alt="random samples", fit=True,
                  download=(png, f"{file_stem(sel)}-overview-samples.png", "dl_overview_samples"))
        st.caption(f"Decoded from z drawn by the model's sampler ({dl.sampler_words(sel.card)}), seed 0"
                   + (", one class per column in class order" if sel.conditional and ncol == len(sel.class_names)
                      else ", every class in turn" if sel.conditional else ""))
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
