"""The Reconstructions page: test images beside their reconstructions (random, worst, best) and uploads."""

import streamlit as st

from vae_keras.dashboard import logic as dl
from vae_keras.dashboard.common import SEED_MAX, fmt_label, no_test_images, with_labels

TITLE = "Reconstructions"


def render(sel, listed):
    st.subheader("Test images and their reconstructions")
    test, out = sel.test()
    if test is None:
        no_test_images(out)
    else:
        c1, c2, c3 = st.columns(3)
        which = c1.selectbox("Which test images", ("random", "worst reconstructed", "best reconstructed"),
                             key="rec_which", persist_state="page")
        n = c2.slider("Number of images", 4, 48, 16, step=4, key="rec_n", persist_state="page")
        seed = c3.number_input("Shuffle seed", 0, SEED_MAX, 0, key="rec_seed", persist_state="page",
                               disabled=which != "random")
        if which == "random":
            idx = dl.pick_indices(len(test.x), n, seed=seed)
        else:
            idx = dl.rank_indices(out["errors"], n, worst=which.startswith("worst"))
        labels = test.label_names(idx)
        errors = out["errors"][idx]
        st.image(dl.pair_pngs(test.x[idx], out["x_mean"][idx], scale=dl.display_scale(sel.h)),
                 caption=[f"#{i}{fmt_label(labels, k)} · error {e:.2f}" for k, (i, e) in enumerate(zip(idx, errors))],
                 output_format="PNG")
        st.caption(
            f"Each pair: test image (left), reconstruction E[x|z = z_mean] (right). Error = "
            f"{dl.error_name(sel.likelihood)} against the input intensities. Mean over these {len(idx)}: "
            f"{errors.mean():.2f}; over {dl.over_test_images(sel.card, len(test.x), dl.MAX_TEST_IMAGES)}: "
            f"{out['errors'].mean():.2f}.")

    st.subheader("Your own images")
    h, w, c = sel.model.image_shape
    files = st.file_uploader(
        f"PNG or JPEG files, at most {dl.MAX_UPLOAD_MB} MB each (resized to {h}×{w}, "
        f"{'grayscale' if c == 1 else 'RGB'})", type=["png", "jpg", "jpeg"], accept_multiple_files=True,
        max_upload_size=dl.MAX_UPLOAD_MB, key="uploads")
    invert = st.checkbox("Invert colours (for dark strokes on a light background, e.g. a drawn digit)",
                         key="upload_invert", persist_state="page")
    upload_class = sel.class_select("Class of your images (the model is conditional)", "upload_class")
    if files:
        x, names, messages = dl.decode_uploads([(f.name, f.getvalue()) for f in files], sel.model.image_shape,
                                               invert=invert)
        for message in messages:
            st.error(message)
        if x is not None:
            with st.spinner("Reconstructing your images…"):
                xm = sel.model.reconstruct(x, **with_labels(sel.labels(len(x), upload_class)))["x_mean"]
            errors = dl.reconstruction_error(x, xm, sel.likelihood)
            st.image(dl.pair_pngs(x, xm, scale=dl.display_scale(h)),
                     caption=[f"{name} · error {e:.2f}" for name, e in zip(names, errors)], output_format="PNG")
