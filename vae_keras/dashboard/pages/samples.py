"""The Random samples page: z ~ N(0, T²·I) decoded, with seed, temperature and class."""

import math

import streamlit as st

from vae_keras.dashboard import logic as dl
from vae_keras.dashboard.common import SEED_MAX, bump, file_stem, sample_images, show_grid

TITLE = "Random samples"
DRAWS = "sample_draws"  # clicks on "Draw again" since the seed was last set: a plain counter, owned by no widget


def reset_draws():
    st.session_state[DRAWS] = 0


def render(sel, listed):
    st.subheader("Random samples: z ~ N(0, T²·I) decoded")
    st.session_state.setdefault("sample_seed", 0)
    st.session_state.setdefault(DRAWS, 0)
    c1, c2, c3, c4 = st.columns([3, 3, 2, 1], vertical_alignment="bottom")
    n = c1.slider("Number of samples", 1, 100, 36, key="sample_n", persist_state="page")
    temperature = c2.slider("Temperature T (scale of z)", 0.0, 2.0, 1.0, step=0.05, key="sample_t",
                            persist_state="page", help="Must be > 0")
    base = c3.number_input("Seed", 0, SEED_MAX, key="sample_seed", persist_state="page", on_change=reset_draws,
                           help="Each click on Draw again adds 1 to the seed used")
    # Each click counts: the callback adds 1 to a counter no widget owns. (Bumping the seed widget itself lost
    # clicks: a click sent before the browser had the bumped value sent the old seed back with it.)
    c4.button("Draw again", on_click=bump, args=(DRAWS,), key="sample_again", width="stretch")
    cls = sel.class_select("Class (the model is conditional)", "sample_class", allow_all=True)
    if not temperature > 0:
        st.error(f"Temperature T must be > 0 (received T = {temperature:g}: every code would be z = 0, one image "
                 "repeated). Move the slider to 0.05 or more.")
        return
    seed = (int(base) + int(st.session_state[DRAWS])) % SEED_MAX
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
    draws = int(st.session_state[DRAWS])
    seed_text = f"seed {seed}" + (f" (seed {int(base)} + {draws} draws)" if draws else "")
    st.caption(f"{n} samples{which}, T = {temperature:.2f}, {seed_text}, decoded through {how}; each image is the "
               f"decoder's mean E[x|z]. Lower T keeps z near the origin (cleaner, less varied images).")

