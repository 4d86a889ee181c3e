"""The Latent space page: the posterior means' scatter, the decoded manifold, traversals and interpolation."""

import numpy as np
import streamlit as st

from vae_keras.dashboard import logic as dl
from vae_keras.dashboard.common import decode_png, no_test_images, with_labels

TITLE = "Latent space"


def render(sel, listed):
    test, out = sel.test()
    d = sel.model.latent_dim
    cls = sel.class_select("Decode as class (the model is conditional; used by the grids below)", "latent_class")
    if test is None:
        no_test_images(out)
        if d == 2:
            manifold(sel, cls)
    else:
        frame, titles, note = dl.latent_frame(out["z_mean"], test.label_names())
        left, right = st.columns(2, gap="large")
        with left:
            st.subheader("Test images' posterior means")
            st.altair_chart(dl.latent_chart(frame, titles), width="stretch")
            st.caption(f"{note} {len(frame)} test images, coloured by label; hover for the image number.")
        with right:
            if d == 2:
                manifold(sel, cls)
            else:
                kl_per_dim(sel)
    traversals(sel, test, out, cls)
    interpolation(sel, test, out, cls)


def kl_per_dim(sel):
    st.subheader("Information per latent dimension")
    kl = dl.kl_per_dim(sel.card)
    if kl is None:
        st.info("The model card has no test KL per dimension.")
        return
    st.altair_chart(dl.kl_chart(kl, height=360), width="stretch")
    active = dl.metric(sel.card, "test_active_units")
    st.caption("A dimension with KL near 0 is unused: its posterior equals the prior, whatever the image."
               + (f" The model card counts {active:.0f} active units of {len(kl)}." if active is not None else ""))


def manifold(sel, cls=None):
    st.subheader("Decoded manifold")
    c1, c2 = st.columns(2)
    n = c1.slider("Grid size", 5, 30, 15, key="manifold_n", persist_state="page")
    mass = c2.slider("Prior mass covered", 0.50, 0.99, 0.90, step=0.01, key="manifold_mass", persist_state="page")
    scale = max(1, round(560 / (n * (sel.h + 2))))
    z = dl.manifold_z(n, mass)
    st.image(decode_png(sel.key, sel.model, z, n, scale, padding=1, labels=sel.labels(len(z), cls)),
             output_format="PNG")
    q = dl.normal_quantiles(n, mass)
    st.caption(f"z₁ from {q[0]:.2f} (left) to {q[-1]:.2f} (right), z₂ from {q[-1]:.2f} (top) to {q[0]:.2f} "
               f"(bottom), at evenly spaced quantiles of N(0, 1).")


def traversals(sel, test, out, cls=None):
    st.subheader("Latent traversals")
    d = sel.model.latent_dim
    c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
    dims = c1.multiselect("Dimensions (one row each)", list(range(d)),
                          default=dl.default_traversal_dims(sel.card, d, k=min(3, d)), key="trav_dims",
                          persist_state="page", help="By default the dims with the largest test KL")
    limit = c2.slider("Range ±", 0.5, 4.0, 3.0, step=0.5, key="trav_limit", persist_state="page")
    steps = c3.slider("Steps", 3, 15, 9, key="trav_steps", persist_state="page")
    centres = ["z = 0 (prior mean)"] + (["a test image's z_mean"] if test is not None else [])
    centre = c4.selectbox("Around", centres, key="trav_centre", persist_state="page")
    if not dims:
        st.info("Choose at least one latent dimension to traverse.")
        return
    base = np.zeros(d, np.float32)
    caption_base = "z = 0"
    if centre != centres[0]:
        i = st.number_input("Test image #", 0, len(test.x) - 1, 0, key="trav_image", persist_state="page")
        base = out["z_mean"][i]
        caption_base = f"test image #{i}'s z_mean"
    values = np.linspace(-limit, limit, steps)
    z = dl.latent_traversal(base, dims, values)
    st.image(decode_png(sel.key, sel.model, z, steps, dl.display_scale(sel.h, target=64),
                        labels=sel.labels(len(z), cls)), output_format="PNG")
    kl = dl.kl_per_dim(sel.card)
    rows = ", ".join(f"dim {k}" + (f" (KL {kl[k]:.2f})" if kl is not None and len(kl) == d else "") for k in dims)
    st.caption(f"Around {caption_base}; each row sets one dimension to {values[0]:.1f} … {values[-1]:.1f} "
               f"(left to right). Rows: {rows}.")


def interpolation(sel, test, out, cls=None):
    st.subheader("Interpolation between two test images")
    if test is None:
        no_test_images(out)
        return
    n_test = len(test.x)
    st.session_state.setdefault("interp_a", 0)
    st.session_state.setdefault("interp_b", 1 % n_test)
    c1, c2, c3, c4, c5 = st.columns(5, vertical_alignment="bottom")
    a = c1.number_input("Test image A", 0, n_test - 1, key="interp_a", persist_state="page")
    b = c2.number_input("Test image B", 0, n_test - 1, key="interp_b", persist_state="page")
    steps = c3.slider("Steps", 3, 15, 10, key="interp_steps", persist_state="page")
    spherical = c4.checkbox("Spherical (slerp)", key="interp_slerp", persist_state="page")
    c5.button("Random pair", on_click=random_pair, args=(n_test,), key="interp_random", width="stretch")
    z = dl.interpolate(out["z_mean"][a], out["z_mean"][b], steps, spherical=spherical)
    decoded = sel.model.decode(z, **with_labels(sel.labels(len(z), cls)))["x_mean"]
    strip = np.concatenate([test.x[a:a + 1], decoded, test.x[b:b + 1]])
    st.image(dl.grid_png(strip, ncol=len(strip), scale=dl.display_scale(sel.h, target=64)), output_format="PNG")
    labels = test.label_names([a, b])
    st.caption(f"Ends: test images #{a}{' (' + labels[0] + ')' if labels else ''} and #{b}"
               f"{' (' + labels[1] + ')' if labels else ''}; between them, decodings of {steps} codes on the "
               f"{'great circle' if spherical else 'straight line'} from A's z_mean to B's"
               + (f", decoded as class {sel.class_names[cls]}." if sel.conditional else "."))


def random_pair(n_test):
    rng = np.random.default_rng()
    a, b = rng.choice(n_test, size=2, replace=n_test < 2)
    st.session_state["interp_a"], st.session_state["interp_b"] = int(a), int(b)
