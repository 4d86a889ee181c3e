"""What every dashboard page shares: the cached loaders (keyed by a model's folder and a stamp of its
files), the shown model (`Selected`: its card at once, its SavedModel on first use) and small widgets.

TensorFlow is imported the first time a SavedModel or test images load, never to draw the shell.
"""

import dataclasses

import numpy as np
import streamlit as st

from vae_keras import exported
from vae_keras.dashboard import logic as dl
from vae_keras.dashboard.logic import gallery
from vae_keras.errors import ModelDirError, VaeKerasError

SEED_MAX = 2**31 - 1
# Controls whose valid values depend on the model (latent dims, classes, test images): reset on a model switch.
MODEL_CONTROLS = ("trav_dims", "trav_centre", "trav_image", "interp_a", "interp_b", "latent_class", "sample_class",
                  "upload_class", "factors_gif_latent")
MODEL_CONTROL_PREFIXES = ("upload_class_",)  # one control per uploaded file


# ------------------------------------------------------------------------------------------------
# Cached loading and computing (keys: the version folder and a stamp of its files)
# ------------------------------------------------------------------------------------------------


@st.cache_resource(show_spinner="Loading TensorFlow and the SavedModel…", max_entries=32)
def load_model(path, stamp):
    """(ExportedVAE, None), or (None, reason) for a folder that does not load."""
    try:
        return exported.ExportedVAE(path), None  # looked up at each call: tests count the loads
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
def sample_images(model_key, _model, n, seed, temperature, labels=None):
    """The decoder means of ``n`` samples z ~ N(0, temperature² I) (float [n, H, W, C])."""
    return np.asarray(_model.sample(n, seed=seed, temperature=temperature, **with_labels(labels))["x_mean"])


@st.cache_data(show_spinner="Sampling from the prior…", max_entries=64)
def standard_prior_images(model_key, _model, n, seed, labels=None):
    """The decoder means of ``n`` codes z ~ N(0, I) of the standard prior (TensorFlow's stateless normal, seed
    [seed, 0]: `ExportedVAE.standard_normal_z`) through `decode` (with ``labels`` for a conditional model), for a
    model whose `sample` draws from a fitted mixture."""
    return np.asarray(_model.decode(_model.standard_normal_z(n, seed), **with_labels(labels))["x_mean"])


@st.cache_resource(show_spinner="Loading the sample-quality classifier…", max_entries=4)
def sample_classifier(spec):
    """``(classifier, None)``: the dataset's shipped or cached sample-quality classifier
    (`vae_keras.sample_quality.find_classifier`), or ``(None, reason)``. It never trains one: that takes minutes."""
    from vae_keras import sample_quality
    from vae_keras.data import load_images

    try:
        classifier = sample_quality.find_classifier(load_images(spec))
    except VaeKerasError as e:
        return None, str(e)
    if classifier is None:
        return None, (f"{spec!r} has no trained sample-quality classifier yet (the dashboard does not train one: it takes "
                      f"minutes). Train it once: `python -m vae_keras.sample_quality --train {spec}`")
    return classifier, None


@st.cache_data(show_spinner="Classifying the samples…", max_entries=32)
def predicted_classes(model_key, _model, spec, _classifier, n, seed, temperature, labels):
    """The class the sample-quality classifier of dataset ``spec`` sees in each of the ``n`` samples that
    `sample_images` draws with the same arguments."""
    return np.asarray(_classifier.predict(sample_images(model_key, _model, n, seed, temperature, labels)))


@st.cache_data(show_spinner="Classifying the prior's samples…", max_entries=32)
def predicted_prior_classes(model_key, _model, spec, _classifier, n, seed, labels):
    """The class the sample-quality classifier of dataset ``spec`` sees in each of `standard_prior_images`."""
    return np.asarray(_classifier.predict(standard_prior_images(model_key, _model, n, seed, labels)))


@st.cache_data(show_spinner="Decoding…", max_entries=64)
def decode_png(model_key, _model, z, ncol, scale, padding=2, labels=None):
    return dl.grid_png(_model.decode(z, **with_labels(labels))["x_mean"], ncol=ncol, scale=scale, padding=padding)


@st.cache_data(show_spinner=False, max_entries=16)
def history_of(model_key, _model):
    return _model.history


# ------------------------------------------------------------------------------------------------
# The shown model and small helpers
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
        self.prior = exported.card_prior(self.card)  # "vamp" or "mog": a learned p(z)

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
        names = self.card.get("class_names")
        if test.y is not None and not test.class_names and isinstance(names, list) and names:
            test = dataclasses.replace(test, class_names=tuple(str(n) for n in names))  # the names training recorded
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
    for key in [k for k in st.session_state if str(k).startswith(MODEL_CONTROL_PREFIXES)]:
        st.session_state.pop(key, None)


def no_test_images(reason):
    st.info(f"No test images to show: {reason}")


# Metric cards wrap their label and value instead of cutting them ("1546…"): readable at 1024 px and up.
METRIC_CSS = """<style>
[data-testid="stMetricLabel"] *, [data-testid="stMetricValue"], [data-testid="stMetricValue"] * {
  white-space: normal !important; overflow: visible !important; text-overflow: clip !important;
  overflow-wrap: anywhere;
}
[data-testid="stMetricValue"] { font-size: 1.5rem; }
</style>"""


def show_metrics(figures, columns=4):
    """Metric cards, ``columns`` per row (the numbers are compact: `dl.compact_number`; the cards wrap)."""
    if not figures:
        return
    st.html(METRIC_CSS)
    for start in range(0, len(figures), columns):
        row = figures[start:start + columns]
        cols = st.columns(columns)
        for col, (label, value, help_text) in zip(cols, row):
            col.metric(label, value, help=help_text, border=True)


def fmt_label(labels, i):
    return f" · {labels[i]}" if labels else ""


# ------------------------------------------------------------------------------------------------
# Image grids and downloads (every page draws its pictures with these)
# ------------------------------------------------------------------------------------------------


def show_grid(tiles, ncol, captions=None, col_headers=None, row_headers=None, download=None, alt="image", fit=False):
    """Draws PNG ``tiles`` as an aligned grid with the images inline (they cannot expire: see
    `vae_keras.dashboard.logic.gallery`), and a download button when ``download=(png bytes, file name, key)``."""
    st.html(gallery.grid_html(tiles, ncol, captions=captions, col_headers=col_headers, row_headers=row_headers, alt=alt,
                              fit=fit))
    if download is not None:
        download_png(*download)


def download_png(png, file_name, key):
    st.download_button("Download PNG", png, file_name=file_name, mime="image/png", key=key, on_click="ignore",
                       icon=":material/download:")


def download_csv(frame, file_name, key, label="Download CSV"):
    st.download_button(label, gallery.csv_bytes(frame), file_name=file_name, mime="text/csv", key=key,
                       on_click="ignore", icon=":material/download:")


def file_stem(sel):
    """A file-name prefix naming the shown model: ``NAME-vVERSION``."""
    return sel.label.replace("/", "-v").replace(" ", "_")
