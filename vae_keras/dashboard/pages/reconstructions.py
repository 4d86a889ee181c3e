"""The Reconstructions page: test images beside their reconstructions (random, worst, best) and uploads.

Uploads are kept in the session (keyed by their content, so the same file twice is kept once) until removed: they
survive a visit to another page or a model switch, and are decoded for whichever model is shown.
"""

import hashlib

import numpy as np
import streamlit as st

from vae_keras.dashboard import logic as dl
from vae_keras.dashboard.common import (
    SEED_MAX,
    download_csv,
    file_stem,
    fmt_label,
    no_test_images,
    show_grid,
    with_labels,
)

TITLE = "Reconstructions"
UPLOADS = "upload_store"  # {sha256 of the content: {"name": str, "data": bytes}}, in upload order
UPLOADER_NONCE = "upload_nonce"  # a fresh (empty) uploader after each upload: the files live in UPLOADS
CLASS_KEY = "upload_class_"  # + the file's hash: a conditional model's class of one uploaded file


def render(sel, listed):
    st.subheader("Test images and their reconstructions")
    test, out = sel.test()
    if test is None:
        no_test_images(out)
    else:
        test_images(sel, test, out)
    st.subheader("Your own images")
    uploads(sel)


def test_images(sel, test, out):
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
    scale = dl.display_scale(sel.h)
    pairs = dl.pair_pngs(test.x[idx], out["x_mean"][idx], scale=scale)
    ncol = 4
    strip = np.stack([im for pair in zip(test.x[idx], out["x_mean"][idx]) for im in pair])
    show_grid(pairs, ncol, captions=[f"#{i}{fmt_label(labels, k)} · error {e:.2f}" for k, (i, e) in enumerate(zip(idx, errors))],
              alt="test image and reconstruction",
              download=(dl.grid_download_png(strip, 2 * ncol, scale), f"{file_stem(sel)}-reconstructions.png", "dl_rec_png"))
    name = dl.error_name(sel.likelihood)
    st.caption(
        f"Each pair: test image (left), reconstruction E[x|z = z_mean] (right). Error = {name} against the input "
        f"intensities. Mean over these {len(idx)}: {errors.mean():.2f}; over "
        f"{dl.over_test_images(sel.card, len(test.x), dl.MAX_TEST_IMAGES)}: {out['errors'].mean():.2f}.")
    y = test.y
    download_csv(dl.errors_frame(np.arange(len(test.x)), out["errors"], name, None if y is None else y,
                                 test.label_names()),
                 f"{file_stem(sel)}-errors.csv", "dl_rec_csv", label=f"Download the errors of all {len(test.x):,} (CSV)")


def take_uploads(key):
    """The uploader's callback: moves its new files into the session's store (once per content), then gives the
    page a fresh uploader."""
    store = st.session_state.setdefault(UPLOADS, {})
    for f in st.session_state.get(key) or []:
        data = f.getvalue()
        store.setdefault(hashlib.sha256(data).hexdigest(), {"name": f.name, "data": data})
    st.session_state[UPLOADER_NONCE] = st.session_state.get(UPLOADER_NONCE, 0) + 1


def remove_upload(digest):
    st.session_state.get(UPLOADS, {}).pop(digest, None)
    st.session_state.pop(CLASS_KEY + digest, None)


def clear_uploads():
    for digest in list(st.session_state.get(UPLOADS, {})):
        remove_upload(digest)


def uploads(sel):
    h, w, c = sel.model.image_shape
    key = f"uploads_{st.session_state.get(UPLOADER_NONCE, 0)}"
    st.file_uploader(
        f"PNG or JPEG files, at most {dl.MAX_UPLOAD_MB} MB each (resized to {h}×{w}, "
        f"{'grayscale' if c == 1 else 'RGB'}); they stay here until you remove them", type=["png", "jpg", "jpeg"],
        accept_multiple_files=True, max_upload_size=dl.MAX_UPLOAD_MB, key=key, on_change=take_uploads, args=(key,))
    store = st.session_state.get(UPLOADS, {})
    if not store:
        return
    invert = False
    if c == 1:  # inverting colours is offered for one-channel models only
        invert = st.checkbox("Invert (for dark strokes on a light background, e.g. a drawn digit)",
                             key="upload_invert", persist_state="page")
    digests = list(store)
    decoded = {}  # digest -> image, for the files that decode
    for d in digests:
        try:
            decoded[d] = dl.decode_upload(store[d]["name"], store[d]["data"], (h, w, c), invert=invert)
        except dl.UploadError as e:
            st.error(str(e))
    good = [d for d in digests if d in decoded]
    names = [store[d]["name"] for d in good]
    x = np.stack([decoded[d] for d in good]).astype(np.float32) if good else None
    st.markdown(f"**{len(digests)} uploaded file(s)**" + (" · choose each image's class (the model is conditional)"
                                                        if sel.conditional else ""))
    classes = {}
    for d in digests:
        cols = st.columns([4, 3, 1] if sel.conditional else [7, 1], vertical_alignment="center")
        cols[0].markdown(f"`{store[d]['name']}`" + ("" if d in good else " (not usable: see the message above)"))
        if sel.conditional:
            classes[d] = cols[1].selectbox("Class", range(len(sel.class_names)), key=CLASS_KEY + d,
                                           format_func=lambda k: sel.class_names[k], label_visibility="collapsed")
        cols[-1].button("Remove", key=f"upload_remove_{d}", on_click=remove_upload, args=(d,), width="stretch")
    st.button("Remove all", key="upload_clear", on_click=clear_uploads)
    if x is None:
        return
    labels = np.asarray([classes[d] for d in good], np.int32) if sel.conditional else None
    with st.spinner("Reconstructing your images…"):
        xm = sel.model.reconstruct(x, **with_labels(labels))["x_mean"]
    errors = dl.reconstruction_error(x, xm, sel.likelihood)
    scale = dl.display_scale(h)
    class_text = [f" · {sel.class_names[k]}" for k in labels] if labels is not None else [""] * len(names)
    strip = np.stack([im for pair in zip(x, xm) for im in pair])
    show_grid(dl.pair_pngs(x, xm, scale=scale), 4,
              captions=[f"{name}{t} · error {e:.2f}" for name, t, e in zip(names, class_text, errors)],
              alt="upload and reconstruction",
              download=(dl.grid_download_png(strip, 8, scale), f"{file_stem(sel)}-uploads.png", "dl_upload_png"))
