"""The Random samples page: z ~ N(0, T²·I) decoded, with seed, temperature and class."""

import math

import streamlit as st

from vae_keras.dashboard import logic as dl
from vae_keras.dashboard.common import SEED_MAX, bump, sample_png

TITLE = "Random samples"


def render(sel, listed):
    st.subheader("Random samples: z ~ N(0, T²·I) decoded")
    st.session_state.setdefault("sample_seed", 0)
    c1, c2, c3, c4 = st.columns([3, 3, 2, 1], vertical_alignment="bottom")
    n = c1.slider("Number of samples", 1, 100, 36, key="sample_n", persist_state="page")
    learned_prior = getattr(sel.model, "prior", "standard") != "standard"
    if learned_prior:  # z comes from the learned prior, which has no temperature (ExportedVAE.sample refuses one)
        temperature = 1.0
        c2.caption(f"z ~ the learned {sel.model.prior!r} prior (no temperature)")
    else:
        temperature = c2.slider("Temperature T (scale of z)", 0.0, 2.0, 1.0, step=0.05, key="sample_t",
                                persist_state="page")
    seed = c3.number_input("Seed", 0, SEED_MAX, key="sample_seed", persist_state="page")
    c4.button("Draw again", on_click=bump, args=("sample_seed",), key="sample_again", width="stretch")
    cls = sel.class_select("Class (the model is conditional)", "sample_class", allow_all=True)
    ncol = max(1, math.ceil(math.sqrt(n)))
    if sel.conditional and cls is None and len(sel.class_names) <= 16:
        ncol = len(sel.class_names)  # one class per column
    scale = dl.display_scale(sel.h, target=max(28, min(84, 640 // (ncol * (sel.h + 2)) * sel.h)))
    labels = sel.labels(int(n), cls)
    st.image(sample_png(sel.key, sel.model, int(n), int(seed), float(temperature), ncol, scale, labels),
             output_format="PNG")
    how = "the `sample` signature" if temperature == 1.0 else "the `decode` signature"
    which = ""
    if sel.conditional:
        which = " of every class in turn" if cls is None else f" of class {sel.class_names[cls]}"
    st.caption(f"{n} samples{which}, T = {temperature:.2f}, seed {seed}, decoded through {how}; each image is the "
               f"decoder's mean E[x|z]. Lower T keeps z near the origin (cleaner, less varied images).")
