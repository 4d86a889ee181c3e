"""The Latent space page: the posterior means' scatter, the decoded manifold, which dims are used, traversals and
interpolation."""

import numpy as np
import streamlit as st

from vae_keras.dashboard import logic as dl
from vae_keras.dashboard.common import download_csv, file_stem, no_test_images, show_grid, with_labels

TITLE = "Latent space"
OWN = "own"  # "Decode as class": each test image's own label


def render(sel, listed):
    test, out = sel.test()
    d = sel.model.latent_dim
    cls = class_choice(sel, test)
    if test is None:
        no_test_images(out)
        if d == 2:
            manifold(sel, fixed_class(sel, cls))
    else:
        frame, titles, note = dl.latent_frame(out["z_mean"], test.label_names())
        region = None
        if d == 2:  # the manifold's square, at the mass its slider (drawn below) holds
            region = dl.manifold_region(dl.normal_quantiles(2, st.session_state.get("manifold_mass", 0.90)))
        left, right = st.columns(2, gap="large")
        with left:
            st.subheader("Test images' posterior means")
            thumbs = scatter_images(test.spec, test.x.shape, test.x)
            st.altair_chart(dl.latent_scatter(frame, titles, images=thumbs, region=region), width="stretch")
            hover = ("its image and coordinates" if thumbs is not None else
                     "its coordinates (these images are too large to put in tooltips)")
            st.caption(f"{note} {len(frame):,} test images, coloured by label; hover a point for {hover}"
                       + ("; the dashed square is the area the decoded manifold covers." if region else "."))
            download_csv(dl.z_mean_frame(out["z_mean"], test.y, test.label_names()), f"{file_stem(sel)}-z_mean.csv",
                         "dl_z_mean", label=f"Download z_mean of the {len(frame):,} test images (CSV)")
        with right:
            if d == 2:
                manifold(sel, fixed_class(sel, cls))
            else:
                units(sel, out["z_mean"])
    if d == 2:
        units(sel, None if test is None else out["z_mean"])
    traversals(sel, test, out, cls)
    interpolation(sel, test, out, cls)


@st.cache_data(show_spinner=False, max_entries=8)
def scatter_images(spec, shape, _x):
    return dl.thumbnails(_x)


def class_choice(sel, test):
    """A conditional model's "Decode as class": a class, or `OWN` (each test image's own label, the default)."""
    if not sel.conditional:
        return None
    own = test is not None and test.y is not None
    options = ([OWN] if own else []) + list(range(len(sel.class_names)))
    return st.selectbox("Decode as class (the model is conditional; used by the grids below)", options, key="latent_class",
                        persist_state="page", format_func=lambda c: "the test image's own label" if c == OWN else
                        sel.class_names[c], help="Views decoded from a test image's code default to its own label")


def fixed_class(sel, cls):
    """The class of a view with no test image (manifold, traversals around z = 0): `OWN` means the first class."""
    return 0 if cls == OWN else cls


def units(sel, z_mean):
    st.subheader("Which latent dims are used")
    frame, source = dl.unit_table(sel.card, z_mean)
    if frame is None:
        st.info(f"No per-dim figures: {source}")
        return
    has_kl = bool(frame["KL (nats)"].notna().any())
    sort = (st.radio("Order", dl.UNIT_SORTS, key="units_sort", horizontal=True, persist_state="page") if has_kl
            else dl.UNIT_SORTS[0])
    kl_chart, activity_chart = dl.units_charts(frame, sort)
    if has_kl:
        st.altair_chart(kl_chart, width="stretch")
    st.altair_chart(activity_chart, width="stretch")
    if has_kl:
        st.caption(dl.active_units_sentence(frame, source) + " A dim with KL near 0 is unused: its posterior equals the "
                   "prior whatever the image, and its traversal changes nothing.")
    else:
        st.caption(dl.active_units_sentence(frame, source) + " " + dl.no_kl_per_dim_reason(sel.prior) + " A dim with "
                   "activity near 0 is unused: its posterior mean is the same whatever the image, and its traversal "
                   "changes nothing.")


def manifold(sel, cls=None):
    st.subheader("Decoded manifold")
    c1, c2 = st.columns(2)
    n = c1.slider("Grid size", 5, 30, 15, key="manifold_n", persist_state="page")
    mass = c2.slider("Prior mass covered", 0.50, 0.99, 0.90, step=0.01, key="manifold_mass", persist_state="page")
    scale = max(1, round(560 / (n * (sel.h + 2))))
    z = dl.manifold_z(n, mass)
    x = decode(sel, z, sel.labels(len(z), cls))
    show_grid([dl.grid_download_png(x, n, scale)], 1, alt="decoded manifold", fit=True,
              download=(dl.grid_download_png(x, n, scale), f"{file_stem(sel)}-manifold.png", "dl_manifold"))
    q = dl.normal_quantiles(n, mass)
    st.caption(f"z₁ from {q[0]:.2f} (left) to {q[-1]:.2f} (right), z₂ from {q[-1]:.2f} (top) to {q[0]:.2f} "
               f"(bottom), at evenly spaced quantiles of N(0, 1)"
               + (f"; decoded as class {sel.class_names[cls]}." if sel.conditional else "."))


def decode(sel, z, labels=None):
    return decoded(sel.key, sel.model, z, labels)


@st.cache_data(show_spinner="Decoding…", max_entries=64)
def decoded(model_key, _model, z, labels=None):
    return np.asarray(_model.decode(z, **with_labels(labels))["x_mean"])


def traversals(sel, test, out, cls=None):
    st.subheader("Latent traversals")
    d = sel.model.latent_dim
    # The dims get a row of their own: chosen dims stay visible as chips, however many there are.
    dims = st.multiselect("Dimensions (one row each)", list(range(d)),
                          default=dl.default_traversal_dims(sel.card, d, k=min(3, d)), key="trav_dims",
                          persist_state="page", help="By default the dims with the largest test KL")
    c2, c3, c4 = st.columns(3)
    limit = c2.slider("Range ±", 0.5, 4.0, 3.0, step=0.5, key="trav_limit", persist_state="page")
    steps = c3.slider("Steps", 3, 15, 9, key="trav_steps", persist_state="page")
    zero = "z = 0 (prior mean)" if sel.prior == "standard" else "z = 0"  # a learned prior's mean is elsewhere
    image = ["a test image's z_mean"] if test is not None else []
    centres = [zero] + image if sel.prior == "standard" else image + [zero]  # a learned prior: a real code first
    centre = c4.selectbox("Around", centres, key="trav_centre", persist_state="page")
    if not dims:
        st.info("Choose at least one latent dimension to traverse.")
        return
    base = np.zeros(d, np.float32)
    caption_base = "z = 0"
    label = fixed_class(sel, cls)
    if centre != zero:
        i = st.number_input("Test image #", 0, len(test.x) - 1, 0, key="trav_image", persist_state="page")
        base = out["z_mean"][i]
        caption_base = f"test image #{i}'s z_mean"
        if cls == OWN:
            label = int(test.y[i])
    values = np.linspace(-limit, limit, steps)
    z = np.concatenate([base[None, :], dl.latent_traversal(base, dims, values)])
    x = decode(sel, z, sel.labels(len(z), label))
    centre_image, rows = x[:1], x[1:]
    scale = dl.display_scale(sel.h, target=64)
    kl = dl.kl_per_dim(sel.card)
    kl_text = (lambda k: f" · KL {kl[k]:.3f}") if kl is not None and len(kl) == d else (lambda k: "")
    st.caption("The centre: " + caption_base + " decoded (every row starts from it).")
    show_grid(dl.tile_pngs(centre_image, scale), 1, alt="centre")
    show_grid(dl.tile_pngs(rows, scale), steps, col_headers=[f"{v:+.1f}" for v in values],
              row_headers=[f"dim {k}{kl_text(k)}" for k in dims], alt="traversal",
              download=(dl.grid_download_png(rows, steps, scale), f"{file_stem(sel)}-traversals.png", "dl_traversals"))
    st.caption(f"Around {caption_base}; each row sets one dimension (named on its left"
               + (", with its test KL in nats" if kl is not None and len(kl) == d else "") + ") to the "
               f"value above its column, {values[0]:.1f} … {values[-1]:.1f}"
               + (f"; decoded as class {sel.class_names[label]}." if sel.conditional else "."))


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
    label = int(test.y[a]) if cls == OWN else cls
    decoded_x = decode(sel, z, sel.labels(len(z), label))
    strip = np.concatenate([test.x[a:a + 1], decoded_x, test.x[b:b + 1]])
    scale = dl.display_scale(sel.h, target=64)
    show_grid(dl.tile_pngs(strip, scale), len(strip), col_headers=["A"] + [""] * steps + ["B"], alt="interpolation",
              download=(dl.grid_download_png(strip, len(strip), scale), f"{file_stem(sel)}-interpolation.png",
                        "dl_interpolation"))
    labels = test.label_names([a, b])
    how = ""
    if sel.conditional:
        how = f", decoded as class {sel.class_names[label]}" + (" (A's own label)" if cls == OWN else "")
    st.caption(f"Ends: test images #{a}{' (' + labels[0] + ')' if labels else ''} and #{b}"
               f"{' (' + labels[1] + ')' if labels else ''}; between them, decodings of {steps} codes on the "
               f"{'great circle' if spherical else 'straight line'} from A's z_mean to B's{how}.")


def random_pair(n_test):
    rng = np.random.default_rng()
    a, b = rng.choice(n_test, size=2, replace=n_test < 2)
    st.session_state["interp_a"], st.session_state["interp_b"] = int(a), int(b)
