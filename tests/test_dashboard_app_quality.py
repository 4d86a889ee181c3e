"""AppTest tests of the dashboard's remaining views (issues 16 and 14): Overview and Compare pictures inline with PNG
downloads, the card's sample quality on the Overview and in the Compare table, a fitted mixture's samples beside the
prior's, how often a conditional model's samples are recognised as their class, the Loss curves page's layout and
active-units threshold, and the Compare help naming the active-units rule.

Same models folder as tests/test_dashboard_app.py (fixture ``dashboard_models_dir`` in conftest.py), plus a
folder with a model whose sampler is a fitted mixture (``gmm_models_dir`` below).
"""

import base64
import io
import json
import shutil

import numpy as np
import pytest

pytest.importorskip("streamlit")

from test_dashboard_app import captions, chart_spec, charts, goto, grids, make_app, page, rerun, widget  # noqa: E402


def downloads(at):
    """The download buttons' keys."""
    return [d.proto.id.rsplit("-", 1)[-1] for d in at.get("download_button")]


def tile_arrays(grid, size):
    """The images of a grid's inline PNGs as float arrays [N, size, size, C] in [0, 1] (each tile shrunk back by its
    integer upscale factor)."""
    from PIL import Image

    out = []
    for url in grid.urls:
        assert url.startswith("data:image/png;base64,")
        a = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))), np.float64) / 255.0
        k = a.shape[0] // size
        out.append(a[::k, ::k].reshape(size, size, -1))
    return np.stack(out)


def charts_per_row(block):
    """For each row of ``st.columns`` under ``block`` (a block whose children are columns) that holds charts: how
    many of its columns hold one."""
    from streamlit.testing.v1.element_tree import Block, Column

    out = []
    children = [c for c in block.children.values() if isinstance(c, Block)]
    if any(isinstance(c, Column) for c in children):
        n = sum(1 for c in children if isinstance(c, Column) and len(c.get("vega_lite_chart")))
        if n:
            out.append(n)
    for child in children:
        out += charts_per_row(child)
    return out


def exported(path):
    from vae_keras.exported import ExportedVAE

    return ExportedVAE(str(path))


# ------------------------------------------------------------------------------------------------
# 1. Overview and Compare: inline grids with PNG downloads (st.image's media files expire across reruns)
# ------------------------------------------------------------------------------------------------


def test_overview_and_compare_pictures_are_inline_grids_with_png_downloads(dashboard_models_dir, monkeypatch):
    at = make_app(dashboard_models_dir, monkeypatch, model="tinycond/1")
    assert not at.image  # no media files
    from vae_keras.dashboard.logic import png_size

    rec, samples = grids(at)  # one picture each, shrinking to its half-page column
    assert len(rec.urls) == len(samples.urls) == 1
    (w_rec, h_rec), (w_s, h_s) = [png_size(base64.b64decode(g.urls[0].split(",", 1)[1])) for g in (rec, samples)]
    assert w_rec / h_rec == pytest.approx(8 / 4, rel=0.05)  # 4 rows of 8: tests, reconstructions, tests, recons
    assert w_s / h_s == pytest.approx(10 / 4, rel=0.05)  # 4 rows of the 10 classes
    assert "one class per column in class order" in " ".join(captions(at))
    assert {"dl_overview_rec", "dl_overview_samples"} <= set(downloads(at))
    goto(at, "Compare")
    widget(at.multiselect, "compare_models").set_value(["tinyrgb/1", "tiny/1"])
    rerun(at)
    assert not at.image
    shown = grids(at)
    # one reconstruction grid per dataset (input row + one row per model), then one sample grid per model
    assert [g.row_headers for g in shown[:2]] == [["input", "tinyrgb/1"], ["input", "tiny/1"]]
    assert [len(g.urls) for g in shown[2:]] == [16, 16]
    assert [m.value for m in page(at).markdown if m.value in ("**tinyrgb/1**", "**tiny/1**")] == \
        ["**tinyrgb/1**", "**tiny/1**"]  # the samples' headings, in the chosen order
    assert {"dl_compare_rec_0", "dl_compare_rec_1", "dl_compare_samples_0", "dl_compare_samples_1"} <= set(downloads(at))


# ------------------------------------------------------------------------------------------------
# 2. Sample quality from the card: Overview figures with units and meanings, Compare columns
# ------------------------------------------------------------------------------------------------

QUALITY = {"test_sample_fd": 25.04, "test_sample_precision": 0.8125, "test_sample_recall": 0.5,
           "test_sample_class_accuracy": 0.9375,
           "test_sample_quality": "2,000 random samples (prior, seed 0) against 2,000 test images"}


@pytest.fixture(scope="module")
def quality_models_dir(dashboard_models_dir, tmp_path_factory):
    """tiny/2 and tinycond/1 whose cards carry sample-quality metrics (tinycond's with its class accuracy)."""
    out = tmp_path_factory.mktemp("quality") / "models"
    for name, keys in (("tiny/2", list(QUALITY)[:3] + ["test_sample_quality"]), ("tinycond/1", list(QUALITY))):
        dst = out / name
        shutil.copytree(dashboard_models_dir / name, dst)
        card_path = dst / "assets.extra" / "model_card.json"
        card = json.loads(card_path.read_text())
        card["metrics"].update({k: QUALITY[k] for k in keys})
        card_path.write_text(json.dumps(card))
    shutil.copytree(dashboard_models_dir / "tiny" / "1", out / "tiny" / "1")
    return out


def test_sample_quality_of_the_card_is_on_the_overview_and_in_the_compare_table(quality_models_dir, monkeypatch):
    at = make_app(quality_models_dir, monkeypatch, model="tinycond/1")
    metrics = {m.label: m for m in at.metric}
    assert metrics["Sample FD"].value == "25.04 (lower is better)"
    assert metrics["Sample precision"].value == "81.2 %" and metrics["Sample recall"].value == "50.0 %"
    assert metrics["Sample class accuracy"].value == "93.8 %"
    assert "Fréchet distance" in metrics["Sample FD"].help and QUALITY["test_sample_quality"] in metrics["Sample FD"].help
    assert "recognises as the class" in metrics["Sample class accuracy"].help
    at.sidebar.selectbox[0].select("tiny/2")
    rerun(at)
    labels = [m.label for m in at.metric]
    assert "Sample FD" in labels and "Sample class accuracy" not in labels  # unconditional: no class accuracy
    goto(at, "Compare")
    widget(at.multiselect, "compare_models").set_value(["tiny/2", "tinycond/1", "tiny/1"])
    rerun(at)
    table = at.dataframe[0].value
    assert table.loc["tinycond/1", "sample FD"] == pytest.approx(25.04)
    assert table.loc["tinycond/1", "sample class accuracy"] == pytest.approx(0.9375)
    assert table.loc["tiny/2", "sample recall"] == pytest.approx(0.5)
    assert np.isnan(table.loc["tiny/2", "sample class accuracy"]) and np.isnan(table.loc["tiny/1", "sample FD"])


# ------------------------------------------------------------------------------------------------
# 3. A fitted mixture's samples beside the prior's
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gmm_models_dir(tmp_path_factory):
    """One 28x28 model with ``sampler="gmm:3"`` (its `sample` signature draws from the fitted mixture)."""
    from vae_keras import data

    from conftest import _dashboard_export_tiny

    out = tmp_path_factory.mktemp("gmm") / "models"
    out.mkdir()
    mnist = data.load_images("mnist-10k")
    _dashboard_export_tiny(out, "gmm", (28, 28, 1), 2, data.to_float(mnist.x_train[:512]),
                           data.to_float(mnist.x_test[:256]), "mnist-10k", seed=3, sampler="gmm:3")
    _dashboard_export_tiny(out, "gmmcond", (28, 28, 1), 2, data.to_float(mnist.x_train[:512]),
                           data.to_float(mnist.x_test[:256]), "mnist-10k", seed=3, sampler="gmm:2",
                           labels=(mnist.y_train[:512], mnist.y_test[:256]), num_classes=10)
    return out


def test_a_fitted_mixture_is_shown_beside_the_prior_with_the_same_seed(gmm_models_dir, monkeypatch):
    import tensorflow as tf

    at = make_app(gmm_models_dir, monkeypatch, model="gmm/1", page="Random samples")
    widget(at.slider, "sample_n").set_value(9)
    widget(at.number_input, "sample_seed").set_value(4)
    rerun(at)
    assert not [s for s in at.slider if s.key == "sample_t"]  # a mixture has no temperature
    prior, mixture = grids(at)
    model = exported(gmm_models_dir / "gmm" / "1")
    # The prior's: z ~ N(0, I) from TensorFlow's stateless normal with seed [4, 0], decoded.
    z = tf.random.stateless_normal([9, 2], seed=[4, 0]).numpy()
    np.testing.assert_allclose(tile_arrays(prior, 28), np.asarray(model.decode(z)["x_mean"]), atol=1 / 255 + 1e-6)
    # The mixture's: the sample signature with the same seed.
    np.testing.assert_allclose(tile_arrays(mixture, 28), np.asarray(model.sample(9, seed=4)["x_mean"]),
                               atol=1 / 255 + 1e-6)
    assert prior.urls != mixture.urls
    text = " ".join(captions(at)) + " ".join(m.value for m in page(at).markdown)
    assert "From the prior p(z)" in text and "From the fitted mixture (gmm:3)" in text and "seed [4, 0]" in text
    assert {"dl_samples_prior", "dl_samples"} <= set(downloads(at))


def test_a_conditional_models_class_mixtures_beside_the_prior_with_both_recognition_shares(gmm_models_dir, monkeypatch):
    """A conditional model with one mixture per class: the prior's grid decodes N(0, I) codes with the same labels,
    the mixture's is the `sample` signature; the table counts the mixture's samples and a caption gives the prior's
    share, both recomputed here with the shipped classifier."""
    import tensorflow as tf

    from vae_keras import sample_quality
    from vae_keras.data import load_images

    at = make_app(gmm_models_dir, monkeypatch, model="gmmcond/1", page="Random samples")
    widget(at.slider, "sample_n").set_value(20)
    rerun(at)
    prior, mixture = grids(at)
    model = exported(gmm_models_dir / "gmmcond" / "1")
    labels = np.arange(20) % 10
    x_prior = np.asarray(model.decode(tf.random.stateless_normal([20, 2], seed=[0, 0]).numpy(), label=labels)["x_mean"])
    x_mixture = np.asarray(model.sample(20, seed=0, label=labels)["x_mean"])
    np.testing.assert_allclose(tile_arrays(prior, 28), x_prior, atol=1 / 255 + 1e-6)
    np.testing.assert_allclose(tile_arrays(mixture, 28), x_mixture, atol=1 / 255 + 1e-6)
    classifier = sample_quality.find_classifier(load_images("mnist-10k"))
    mixture_share = np.mean(classifier.predict(x_mixture) == labels)
    prior_share = np.mean(classifier.predict(x_prior) == labels)
    table = page(at).dataframe[0].value
    assert table["recognised"].sum() == round(mixture_share * 20)
    text = " ".join(captions(at))
    assert f"{mixture_share:.0%} of the 20 samples above are recognised" in text
    assert f"with the same labels and seed: {prior_share:.0%} recognised as their class" in text


# ------------------------------------------------------------------------------------------------
# 4. Conditional models: how often the samples are recognised as their class (issue 16)
# ------------------------------------------------------------------------------------------------


def test_conditional_samples_are_checked_by_the_shipped_classifier_per_class(dashboard_models_dir, monkeypatch):
    from vae_keras import sample_quality
    from vae_keras.data import load_images

    at = make_app(dashboard_models_dir, monkeypatch, model="tinycond/1", page="Random samples")
    widget(at.slider, "sample_n").set_value(30)
    rerun(at)
    table = page(at).dataframe[0].value
    # Independently: the shipped mnist-10k classifier on the sample signature's images, 3 per class in turn.
    classifier = sample_quality.find_classifier(load_images("mnist-10k"))
    labels = np.arange(30) % 10
    x = np.asarray(exported(dashboard_models_dir / "tinycond" / "1").sample(30, seed=0, label=labels)["x_mean"])
    predicted = classifier.predict(x)
    expected = [float(np.mean(predicted[labels == k] == k)) for k in range(10)]
    assert table["class"].tolist() == [str(k) for k in range(10)] and table["samples"].tolist() == [3] * 10
    np.testing.assert_allclose(table["share"].to_numpy(), expected)
    assert f"{np.mean(predicted == labels):.0%} of the 30 samples above are recognised" in " ".join(captions(at))
    # An unconditional model gets no such table.
    at.sidebar.selectbox[0].select("tiny/2")
    rerun(at)
    assert not page(at).dataframe


def test_a_dataset_without_a_cached_classifier_is_not_trained_in_the_ui(dashboard_models_dir, monkeypatch, tmp_path):
    from vae_keras import sample_quality
    from vae_keras.dashboard.common import sample_classifier

    def no_training(*args, **kwargs):
        raise AssertionError("the dashboard trained a classifier")

    monkeypatch.setattr(sample_quality, "train_classifier", no_training)
    monkeypatch.setattr(sample_quality, "SHIPPED", ())  # as if mnist-10k shipped none, and nothing is cached
    monkeypatch.setenv(sample_quality.CACHE_ENV, str(tmp_path / "cache"))
    sample_classifier.clear()  # the classifier an earlier test loaded (cached per process); cleared again after
    try:
        at = make_app(dashboard_models_dir, monkeypatch, model="tinycond/1", page="Random samples")
    finally:
        sample_classifier.clear()
    notes = [i.value for i in page(at).info]
    assert any("python -m vae_keras.sample_quality --train mnist-10k" in n for n in notes), notes
    assert not page(at).dataframe


# ------------------------------------------------------------------------------------------------
# 5. Loss curves: one chart per row (titles whole at 1024 px), the active-units threshold on the per-dim activity
# ------------------------------------------------------------------------------------------------


def test_loss_curves_are_one_chart_per_row_and_the_threshold_is_drawn(dashboard_models_dir, monkeypatch):
    at = make_app(dashboard_models_dir, monkeypatch, model="tinyrgb/1", page="Loss curves")
    tab = page(at)
    lines = [chart_spec(c) for c in charts(at) if chart_spec(c).get("mark", {}).get("type") == "line"]
    loss = next(s for s in lines if s["title"] == "Loss (negative ELBO)")
    assert not (loss["encoding"]["color"].get("title") or "").strip()  # "train" / "validation" need no legend title
    # No charts side by side (three in a row were cut at 1024 px; two in a row clipped their titles): one per row.
    assert charts_per_row(tab) == [], charts_per_row(tab)
    assert len(charts(at)) == 5  # loss, reconstruction, KL; KL per dim, activity
    specs = [chart_spec(c) for c in charts(at)]
    activity = next(s for s in specs if "layer" in s and any(layer["mark"]["type"] == "rule" for layer in s["layer"]))
    assert next(layer for layer in activity["layer"] if layer["mark"]["type"] == "rule")["encoding"]["y"]["field"] == \
        "threshold"
    text = " ".join(captions(at))
    assert "of 3 latent dims are active" in text and "summed over all dims per epoch" in text


# ------------------------------------------------------------------------------------------------
# 6. Compare: the active units' help names the rule
# ------------------------------------------------------------------------------------------------


def test_compare_column_help_names_the_active_units_rule(dashboard_models_dir, monkeypatch):
    from vae_keras.active_units import ACTIVE_UNIT_RULE

    at = make_app(dashboard_models_dir, monkeypatch, model="tiny/2", page="Compare")
    config = json.loads(at.dataframe[0].proto.columns)
    assert ACTIVE_UNIT_RULE in config["active units"]["help"]
    assert "lower is better" in config["sample FD"]["help"]
