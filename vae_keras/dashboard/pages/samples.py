"""The Random samples page: z ~ N(0, T²·I) decoded, with seed, temperature and class."""

import math

import streamlit as st

from vae_keras.dashboard import logic as dl
from vae_keras.dashboard.common import SEED_MAX, file_stem, sample_images, show_grid

TITLE = "Random samples"


def render(sel, listed):
    st.subheader("Random samples: z ~ N(0, T²·I) decoded")
    c1, c2, c3 = st.columns([3, 3, 2], vertical_alignment="bottom")
    n = c1.slider("Number of samples", 1, 100, 36, key="sample_n", persist_state="page")
    prior = getattr(sel.model, "prior", "standard")
    sampler = ((sel.card or {}).get("sampler") or {}).get("name", "prior")
    if prior != "standard" or sampler != "prior":
        # z comes from a learned prior or a fitted mixture, which have no temperature (ExportedVAE.sample refuses one)
        temperature = 1.0
        c2.caption(f"z ~ the learned {prior!r} prior (no temperature)" if sampler == "prior" else
                   f"z ~ the {sampler} mixture fitted to the training images' posterior means (no temperature)")
    else:
        temperature = c2.slider("Temperature T (scale of z)", 0.0, 2.0, 1.0, step=0.05, key="sample_t",
                                persist_state="page", help="Must be > 0")
    # Drawing again is the seed box's + button: the browser adds 1 per click and sends the new seed, so every click
    # counts however fast they come. (A "Draw again" button lost clicks: Streamlit merges the clicks of one button
    # that arrive while the page is still running into one, and a callback that bumped the seed read the seed box's
    # old value when a click came before the browser had the new one.)
    seed = c3.number_input("Seed (+ draws again)", 0, SEED_MAX, 0, key="sample_seed", persist_state="page",
                           help="Click + (or press ↑) to draw new samples: each click adds 1 to the seed")
    seed = int(seed)
    cls = sel.class_select("Class (the model is conditional)", "sample_class", allow_all=True)
    if not temperature > 0:
        st.error(f"Temperature T must be > 0 (received T = {temperature:g}: every code would be z = 0, one image "
                 "repeated). Move the slider to 0.05 or more.")
        return
    ncol = max(1, math.ceil(math.sqrt(n)))
    per_class = sel.conditional and cls is None and len(sel.class_names) <= 16
    if per_class:
        ncol = len(sel.class_names)  # one class per column
    scale = dl.display_scale(sel.h, target=max(28, min(84, 640 // (ncol * (sel.h + 2)) * sel.h)))
    labels = sel.labels(int(n), cls)
    x = sample_images(sel.key, sel.model, int(n), seed, float(temperature), labels)
    show_grid(dl.tile_pngs(x, scale), ncol, col_headers=list(sel.class_names) if per_class and n >= ncol else None,
              alt="sample", download=(dl.grid_download_png(x, ncol, scale),
                                      f"{file_stem(sel)}-samples-seed{seed}-T{temperature:g}.png", "dl_samples"))
    how = "the `sample` signature" if temperature == 1.0 else "the `decode` signature"
    which = ""
    if sel.conditional:
        which = " of every class in turn (one class per column)" if cls is None else f" of class {sel.class_names[cls]}"
    st.caption(f"{n} samples{which}, T = {temperature:.2f}, seed {seed}, decoded through {how}; each image is the "
               f"decoder's mean E[x|z]. Lower T keeps z near the origin (cleaner, less varied images).")

