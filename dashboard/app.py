"""vae_keras dashboard: what each exported VAE learned.

    streamlit run dashboard/app.py                           # the models in saved_models/ (beside dashboard/)
    streamlit run dashboard/app.py -- --models-dir DIR       # or: VAE_KERAS_MODELS_DIR=DIR streamlit run ...

A thin front: the models list comes from the model cards alone (small JSON files); a model's
SavedModel is loaded by `vae_keras.exported.ExportedVAE` only when a page shows it (cached with
st.cache_resource, keyed by its folder and a stamp of its files), test images by `vae_keras.data`
(cached with st.cache_data), and
everything in between is computed by `vae_keras.dashboard_logic`. Pages are lazy tabs: only the open
one runs, and its heavy results are cached, so a page switch or a control change answers quickly.
"""

import math
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

REPO_ROOT = Path(__file__).resolve().parent.parent
try:
    from vae_keras import dashboard_logic as dl
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO_ROOT))
    from vae_keras import dashboard_logic as dl
from vae_keras.errors import ModelDirError, VaeKerasError  # noqa: E402 - after the checkout fallback above
from vae_keras.exported import ExportedVAE, list_models  # noqa: E402

PAGES = ("Overview", "Reconstructions", "Random samples", "Loss curves", "Latent space", "Compare")
SEED_MAX = 2**31 - 1
# Controls whose valid values depend on the model (latent dims, classes, test images): reset on a model switch.
MODEL_CONTROLS = ("trav_dims", "trav_centre", "trav_image", "interp_a", "interp_b", "latent_class", "sample_class",
                  "upload_class")

st.set_page_config(page_title="vae_keras dashboard", layout="wide")


# ------------------------------------------------------------------------------------------------
# Cached loading and computing (keys: the version folder and a stamp of its files)
# ------------------------------------------------------------------------------------------------


@st.cache_resource(show_spinner="Loading the SavedModel…", max_entries=32)
def load_model(path, stamp):
    """(ExportedVAE, None), or (None, reason) for a folder that does not load."""
    try:
        return ExportedVAE(path), None
    except VaeKerasError as e:
        return None, str(e)
    except Exception as e:  # noqa: BLE001 - a broken model folder is listed with its reason, not a crash
        return None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


@st.cache_data(show_spinner="Loading the test images…", max_entries=8)
def load_test_set(spec, image_shape):
    """(TestSet, None) or (None, reason)."""
    try:
        return dl.load_test_set(spec, image_shape), None
    except VaeKerasError as e:
        return None, str(e)
    except Exception as e:  # noqa: BLE001 - shown to the user; the pages that need no images still work
        return None, f"The test images of {spec!r} cannot be loaded: {type(e).__name__}: {e}"


def with_labels(labels):
    """Keyword arguments of ExportedVAE calls: a conditional model's labels, nothing otherwise."""
    return {} if labels is None else {"label": np.asarray(labels, np.int32)}


@st.cache_data(show_spinner="Running the test images through the model…", max_entries=16)
def test_outputs(model_key, _model, spec, conditional=False):
    """x_mean, z_mean and the per-image error of every test image (at most dl.MAX_TEST_IMAGES)."""
    test, _ = load_test_set(spec, _model.image_shape)
    parts = [_model.reconstruct(test.x[i:i + 500], **with_labels(test.y[i:i + 500] if conditional else None))
             for i in range(0, len(test.x), 500)]
    out = {k: np.concatenate([p[k] for p in parts]) for k in ("x_mean", "z_mean", "z_log_var")}
    out["errors"] = dl.reconstruction_error(test.x, out["x_mean"], _model.card.get("likelihood"))
    return out


@st.cache_data(show_spinner="Sampling…", max_entries=64)
def sample_png(model_key, _model, n, seed, temperature, ncol, scale, labels=None):
    x = _model.sample(n, seed=seed, temperature=temperature, **with_labels(labels))["x_mean"]
    return dl.grid_png(x, ncol=ncol, scale=scale)


@st.cache_data(show_spinner="Decoding…", max_entries=64)
def decode_png(model_key, _model, z, ncol, scale, padding=2, labels=None):
    return dl.grid_png(_model.decode(z, **with_labels(labels))["x_mean"], ncol=ncol, scale=scale, padding=padding)


@st.cache_data(show_spinner=False, max_entries=16)
def history_of(model_key, _model):
    return _model.history


# ------------------------------------------------------------------------------------------------
# Small helpers
# ------------------------------------------------------------------------------------------------


class Selected:
    """A listed model: its listing entry and card (read without loading the SavedModel) and a cache key;
    ``model`` loads its SavedModel the first time a page uses it."""

    def __init__(self, entry):
        self.entry = entry
        self.stamp = dl.model_stamp(entry.path)
        self.key = f"{entry.path}@{self.stamp}"
        self.card = entry.card
        self.label = entry.label
        self.h, self.w, self.c = (int(d) for d in self.card["image_shape"])
        self.likelihood = self.card.get("likelihood")
        self.class_names = dl.class_names(self.card)  # None unless the model is conditional
        self.conditional = self.class_names is not None

    @property
    def model(self):
        """The ExportedVAE (loaded once per folder stamp); ModelDirError naming the reason if it does not load."""
        model, reason = load_model(self.entry.path, self.stamp)
        if model is None:
            raise ModelDirError(f"{self.label} cannot be loaded: {reason}")
        return model

    def test(self):
        """(TestSet, outputs) or (None, reason)."""
        test, reason = load_test_set(self.card.get("dataset"), self.model.image_shape)
        if test is None:
            return None, reason
        if self.conditional and test.y is None:
            return None, f"this conditional model needs labelled test images, and {test.spec!r} has no labels."
        return test, test_outputs(self.key, self.model, test.spec, self.conditional)

    def labels(self, n, cls):
        """Labels for n generated images (None for an unconditional model)."""
        return dl.condition_labels(n, cls, len(self.class_names)) if self.conditional else None

    def class_select(self, label, key, allow_all=False, where=st):
        """A class picker for a conditional model: a class index, or None for "every class in turn"."""
        if not self.conditional:
            return None
        options = ([None] if allow_all else []) + list(range(len(self.class_names)))
        return where.selectbox(label, options, key=key, persist_state="page",
                               format_func=lambda c: "every class in turn" if c is None else self.class_names[c])


def guarded(render, *args):
    """Runs one page; a user-caused error becomes a message, never a blank page or a traceback dump."""
    try:
        render(*args)
    except VaeKerasError as e:
        st.error(str(e))
    except Exception as e:  # noqa: BLE001 - one page's failure is shown on it, with the traceback in Details
        st.error(f"This page failed: {type(e).__name__}: {e}")
        with st.expander("Details"):
            st.exception(e)


def reset_model_controls():
    for key in MODEL_CONTROLS:
        st.session_state.pop(key, None)


def bump(key, by=1):
    st.session_state[key] = (int(st.session_state.get(key, 0)) + by) % SEED_MAX


def no_test_images(reason):
    st.info(f"No test images to show: {reason}")


def show_metrics(figures, columns=6):
    if not figures:
        return
    cols = st.columns(min(columns, len(figures)))
    for i, (label, value, help_text) in enumerate(figures):
        cols[i % len(cols)].metric(label, value, help=help_text, border=True)


def fmt_label(labels, i):
    return f" · {labels[i]}" if labels else ""


# ------------------------------------------------------------------------------------------------
# Pages
# ------------------------------------------------------------------------------------------------


def page_overview(sel):
    show_metrics(dl.final_figures(sel.card, history_of(sel.key, sel.model)))
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


def page_reconstructions(sel):
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
            f"{errors.mean():.2f}; over all {len(test.x)} test images: {out['errors'].mean():.2f}.")

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


def page_samples(sel):
    st.subheader("Random samples: z ~ N(0, T²·I) decoded")
    st.session_state.setdefault("sample_seed", 0)
    c1, c2, c3, c4 = st.columns([3, 3, 2, 1], vertical_alignment="bottom")
    n = c1.slider("Number of samples", 1, 100, 36, key="sample_n", persist_state="page")
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


def page_losses(sel):
    history = history_of(sel.key, sel.model)
    show_metrics(dl.final_figures(sel.card, history))
    long = dl.history_long(history)
    if long.empty:
        st.info("This model has no training history (assets.extra/history.csv), so there are no curves to draw.")
        return
    cols = st.columns(3)
    for col, name in zip(cols, dl.HISTORY_METRICS):
        if (long["metric"] == name).any():
            col.altair_chart(dl.loss_chart(long, name), width="stretch")
    st.caption("Per epoch, in nats per image; drag to pan, scroll to zoom, double-click to reset. "
               "Loss = reconstruction + β·KL.")
    kl = dl.kl_per_dim(sel.card)
    if kl is not None:
        st.altair_chart(dl.kl_chart(kl), width="stretch")
    with st.expander("history.csv"):
        st.dataframe(history, hide_index=True)


def page_latent(sel):
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


def page_compare(sel, listed):
    labels = [s.label for s in listed]
    default = [sel.label] + [lb for lb in labels if lb != sel.label][:3]
    chosen = st.multiselect("Models to compare", labels, default=default, key="compare_models", persist_state="page")
    if len(chosen) < 2:
        st.info("Choose two or more models to compare." if len(labels) > 1 else
                f"Only one model is in this folder; train another to compare: `{dl.TRAIN_COMMAND}`.")
        if not chosen:
            return
    models = []
    for s in (s for s in listed if s.label in chosen):  # the chosen ones are loaded now, the others never
        try:
            s.model  # noqa: B018
            models.append(s)
        except VaeKerasError as e:
            st.warning(str(e))
    if not models:
        return

    st.subheader("Metrics")
    st.dataframe(dl.comparison_table([(s.label, s.card) for s in models]))

    st.subheader("Loss curves")
    long = pd.concat([dl.history_long(history_of(s.key, s.model), model=s.label) for s in models], ignore_index=True)
    if long.empty:
        st.info("None of these models has a training history.")
    else:
        metric_name = st.selectbox("Curve", dl.HISTORY_METRICS, format_func=dl.METRIC_TITLES.get, key="compare_metric",
                                   persist_state="page")
        st.altair_chart(dl.loss_chart(long, metric_name, height=400, color="model", dash="split"), width="stretch")

    st.subheader("The same test images reconstructed by each model")
    c1, c2 = st.columns(2)
    n = c1.slider("Images", 4, 16, 10, key="compare_n", persist_state="page")
    seed = c2.number_input("Shuffle seed", 0, SEED_MAX, 0, key="compare_seed", persist_state="page")
    groups = {}
    for s in models:
        groups.setdefault((s.card.get("dataset"), tuple(s.model.image_shape)), []).append(s)
    for (dataset, shape), group in groups.items():
        if len(groups) > 1:
            st.markdown(f"**{dl.short_dataset(dataset)}** ({'×'.join(map(str, shape))})")
        test, out = group[0].test()
        if test is None:
            no_test_images(out)
            continue
        idx = dl.pick_indices(len(test.x), n, seed=seed)
        scale = dl.display_scale(shape[0], target=56)
        rows = [("input", test.x[idx])] + [(s.label, s.test()[1]["x_mean"][idx]) for s in group]
        for name, images in rows:
            left, right = st.columns([1, 6], vertical_alignment="center")
            left.markdown(f"**{name}**")
            right.image(dl.grid_png(images, ncol=len(images), scale=scale), output_format="PNG")


# ------------------------------------------------------------------------------------------------
# The page
# ------------------------------------------------------------------------------------------------


def empty_folder(models_dir, exists):
    st.title("vae_keras dashboard")
    if exists:
        st.info(f"No exported models in `{models_dir}` yet. Train one, and it appears here:")
    else:
        st.warning(f"The models folder `{models_dir}` does not exist. Train a model into it:")
    st.code(dl.train_command(models_dir), language="bash")
    st.markdown("Or point the dashboard at another folder: `streamlit run dashboard/app.py -- --models-dir DIR` "
                f"(or set `{dl.MODELS_DIR_ENV}`).")


def sidebar(models_dir, entries, listed, failed):
    with st.sidebar:
        st.header("Models")
        st.caption(f"Folder: `{models_dir}`")
        if not entries:
            st.info(f"No models yet. Train one:\n\n`{dl.train_command(models_dir)}`")
            return None
        chosen = None
        if listed:
            labels = [s.label for s in listed]
            newest = max(range(len(listed)), key=lambda i: (str(listed[i].card.get("created") or ""), -i))
            chosen = st.selectbox("Show model", labels, index=newest, key="model", bind="query-params",
                                  help="Defaults to the most recently exported model", on_change=reset_model_controls)
            st.markdown("\n".join(f"- **{s.label}** · {dl.describe_entry(s.entry)}" for s in listed))
        if failed:
            st.subheader(f"Not loadable ({len(failed)})")
            for label, reason in failed:
                st.warning(f"**{label}**: {dl.short_reason(reason, models_dir)}")
        return chosen


def main():
    models_dir = dl.resolve_models_dir(sys.argv[1:], os.environ, REPO_ROOT / "saved_models")
    entries = list_models(models_dir)
    # The list comes from the model cards; a SavedModel is loaded only when a page shows it.
    listed = [Selected(entry) for entry in entries if not entry.error]
    failed = [(entry.label, entry.error) for entry in entries if entry.error]
    chosen = sidebar(models_dir, entries, listed, failed)
    if not entries:
        empty_folder(models_dir, os.path.isdir(models_dir))
        return
    if not listed:
        st.title("vae_keras dashboard")
        st.error(f"None of the {len(entries)} model folder(s) in `{models_dir}` can be loaded; the sidebar says why. "
                 "Train a new one:")
        st.code(dl.train_command(models_dir), language="bash")
        return
    sel = next(s for s in listed if s.label == chosen) if chosen else listed[0]
    try:
        sel.model  # noqa: B018 - load the shown model now, so that a broken one is reported here, once
    except VaeKerasError as e:
        st.title(sel.label)
        st.error(f"{e}. Choose another model in the sidebar, or train a new one: `{dl.train_command(models_dir)}`")
        return
    st.title(sel.label)
    st.caption(dl.card_summary(sel.card))
    tabs = st.tabs(PAGES, key="page", on_change="rerun", bind="query-params")
    renders = {
        "Overview": (page_overview, sel),
        "Reconstructions": (page_reconstructions, sel),
        "Random samples": (page_samples, sel),
        "Loss curves": (page_losses, sel),
        "Latent space": (page_latent, sel),
        "Compare": (page_compare, sel, listed),
    }
    for tab, name in zip(tabs, PAGES):
        if tab.open:
            with tab:
                guarded(*renders[name])


main()
