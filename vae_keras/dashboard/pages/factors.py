"""The Factors page: for a model of a dataset with factors of variation (dsprites), which latent follows which
factor: the latent x factor mutual-information heatmap, the disentanglement metrics, and per latent a traversal
strip named by the factor it follows, with an animated GIF to download."""

import numpy as np
import streamlit as st

from vae_keras.dashboard import logic as dl
from vae_keras.dashboard.common import file_stem, show_grid
from vae_keras.dashboard.logic import factors as fl

TITLE = "Factors"
METRIC_SAMPLES = (1000, 10000)  # on-demand sizes; 10,000 is disentanglement_lib's
TRAVERSAL_STEPS = 9
TRAVERSAL_LIMIT = 2.5


@st.cache_resource(show_spinner="Loading the dataset's factors…", max_entries=4)
def load_factor_data(spec):
    """(the dataset, None) or (None, reason). Loaded once per dataset: the metrics render images from it."""
    from vae_keras import load_images

    try:
        return load_images(spec), None
    except Exception as e:  # noqa: BLE001 - the page says why it has nothing to show
        return None, f"the dataset {spec!r} cannot be loaded: {type(e).__name__}: {e}"


@st.cache_data(show_spinner="Encoding the test images…", max_entries=8)
def mutual_information(model_key, _model, _data, spec):
    """(MI [D, F], the test factors used): the test images' posterior means against their factors."""
    from vae_keras.data import to_float

    x = _data.x_test
    codes = np.concatenate([_model.encode(to_float(x[i:i + 500]))["z_mean"] for i in range(0, len(x), 500)])
    return fl.mutual_information(codes, _data.factors_test), np.asarray(_data.factors_test)


@st.cache_data(show_spinner=False, max_entries=64)
def metric(model_key, _model, _data, spec, name, num_train, seed=0):
    """One metric of `evaluate_disentanglement` (its own samples; cached per model, metric and size)."""
    from vae_keras import disentanglement as dis

    return dis.evaluate_disentanglement(dis.representation_from_export(_model), _data, num_train=num_train, seed=seed,
                                        metrics=(name,))


@st.cache_data(show_spinner="Decoding the traversals…", max_entries=16)
def traversal_images(model_key, _model, latent_dim, steps, limit):
    """Decoded traversals around z = 0: [latent_dim, steps, H, W, C]."""
    z = dl.latent_traversal(np.zeros(latent_dim, np.float32), range(latent_dim), fl.traversal_values(steps, limit))
    x = np.asarray(_model.decode(z)["x_mean"])
    return x.reshape(latent_dim, steps, *x.shape[1:])


def render(sel, listed):
    st.subheader("Factors of variation: which latent follows which factor")
    spec = sel.card.get("dataset")
    data, reason = load_factor_data(spec) if spec else (None, "its model card names no dataset")
    if data is None:
        st.info(f"Nothing to show for this model: {reason}.")
        return
    missing = fl.missing_factors(data)
    if missing:
        st.info(fl.no_factors_message(spec, missing))
        return
    if sel.conditional:
        st.info("Nothing to show for this model: it is conditional, and its encoder needs a label for every image, "
                "which the factors do not give. The Factors page reads unconditional models of a dataset with factors.")
        return
    names = list(data.factor_names)
    mi, factors = mutual_information(sel.key, sel.model, data, spec)
    followed = fl.followed_factors(mi, factors, names)
    st.altair_chart(fl.mi_heatmap(fl.mi_frame(mi, names), names), use_container_width=True)
    st.caption(f"I(z_j; factor) of the {len(factors):,} test images' posterior means, each latent in 20 equal-width "
               "bins (MIG's estimate, `vae_keras.disentanglement.mutual_information_matrix`). A disentangled model "
               "has one dark cell per factor column, each in its own row.")
    metrics_section(sel, data, spec)
    traversals_section(sel, followed)


def metrics_section(sel, data, spec):
    from vae_keras import disentanglement as dis

    st.markdown("#### Disentanglement metrics")
    stored = fl.card_metrics(sel.card)
    if stored is not None:
        st.dataframe(fl.metrics_rows(stored), hide_index=True)
        st.caption("From the model card (computed when the model was evaluated).")
        return
    c1, c2 = st.columns([2, 3], vertical_alignment="bottom")
    num_train = c1.selectbox("Samples per metric", METRIC_SAMPLES, key="factors_samples", persist_state="page",
                             format_func=lambda n: f"{n:,}" + (" (disentanglement_lib's size)" if n == 10000 else ""))
    key = f"factors_metrics:{sel.key}:{int(num_train)}"
    if not st.session_state.get(key) and not c2.button("Compute the metrics", key="factors_compute",
                                                       help="MIG, FactorVAE score, SAP, DCI (random forest) and beta-VAE "
                                                            "score on images rendered from the dataset's factors; "
                                                            "cached for this model"):
        st.caption("Not computed yet: the model card carries no disentanglement metrics.")
        return
    st.session_state[key] = True  # computed once: later runs read the cache without another click
    progress = st.progress(0.0, text="Computing the metrics…")
    summary = {}
    for i, name in enumerate(dis.METRICS):
        progress.progress(i / len(dis.METRICS), text=f"Computing {name} ({i + 1} of {len(dis.METRICS)})…")
        summary.update(metric(sel.key, sel.model, data, spec, name, int(num_train))["summary"])
    progress.empty()
    st.dataframe(fl.metrics_rows(summary), hide_index=True)
    st.caption(f"{int(num_train):,} training samples per metric (test samples half of it), seed 0; DCI with the "
               f"{dis.DCI_PREDICTOR} predictor; the FactorVAE and beta-VAE scores' votes drawn from a pool of "
               f"{dis.POOL_SIZE:,} images encoded once. `vae-keras evaluate MODEL --disentanglement` computes the same "
               "numbers.")


def traversals_section(sel, followed):
    st.markdown("#### Traversals: each latent from -2.5 to 2.5 around z = 0, named by the factor it follows")
    d = int(sel.model.latent_dim)
    x = traversal_images(sel.key, sel.model, d, TRAVERSAL_STEPS, TRAVERSAL_LIMIT)
    scale = dl.display_scale(sel.h, target=64)
    rows = x.reshape(-1, *x.shape[2:])
    headers = [f"z{f['latent']} · {f['factor']} ({f['share']:.0%})" for f in followed]
    show_grid(dl.tile_pngs(rows, scale), TRAVERSAL_STEPS, row_headers=headers, alt="traversal",
              col_headers=[f"{v:+.1f}" for v in fl.traversal_values(TRAVERSAL_STEPS, TRAVERSAL_LIMIT)],
              download=(dl.grid_download_png(rows, TRAVERSAL_STEPS, scale), f"{file_stem(sel)}-factor-traversals.png",
                        "dl_factor_traversals"))
    st.caption("Each row: the latent's value moves, the others stay 0. The factor named is the one of highest "
               "mutual information with that latent; the percentage is that information's share of the factor's "
               "entropy (100%: the latent tells the factor exactly).")
    c1, c2 = st.columns([2, 3], vertical_alignment="bottom")
    j = c1.selectbox("Animated GIF of latent", range(d), key="factors_gif_latent", persist_state="page",
                     format_func=lambda k: headers[k])
    gif = fl.traversal_gif(x[int(j)], scale=dl.display_scale(sel.h, target=128))
    c2.download_button("Download GIF", gif, file_name=f"{file_stem(sel)}-z{int(j)}-traversal.gif", mime="image/gif",
                       key="dl_factor_gif", on_click="ignore", icon=":material/download:")
    st.image(gif, caption=f"z{int(j)}: forward and back, {TRAVERSAL_STEPS} steps")
