"""Tests of dashboard/app.py through streamlit.testing.v1.AppTest (no browser).

The models folder (fixture ``dashboard_models_dir`` in conftest.py) holds tiny exported models
(``tiny/1``, ``tiny/2``: 28x28x1, 2-D latent; ``tinycond/1``: the same, conditional on 10 classes;
``tinyrgb/1``: 8x8x3 colour, 3-D latent, the newest) and three
broken folders (``broken/1``, ``nopb/1``, ``corrupt/1``).
"""

import dataclasses
import html
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


def make_app(models_dir, monkeypatch, model=None, page=None):
    monkeypatch.setenv("VAE_KERAS_MODELS_DIR", str(models_dir))
    at = AppTest.from_file(APP, default_timeout=60)
    if model:
        at.session_state["model"] = model
    if page:
        at.session_state["page"] = page
    at.run()
    assert_ok(at)
    return at


def assert_ok(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def goto(at, page):
    """Opens a tab as a click would: the tabs are bound to the ``page`` query parameter (shareable links)."""
    at.session_state["page"] = page
    at.query_params["page"] = page
    at.run()
    assert_ok(at)
    return at


def rerun(at):
    at.run()
    assert_ok(at)
    return at


def charts(at):
    return at.get("vega_lite_chart")


def chart_spec(chart):
    return json.loads(chart.proto.spec)


def chart_data(chart):
    """The data a chart draws (Streamlit sends it beside the spec, as Arrow)."""
    from streamlit import dataframe_util

    proto = chart.proto
    arrow = proto.datasets[0].data.data if len(proto.datasets) else proto.data.data
    return dataframe_util.convert_arrow_bytes_to_pandas_df(arrow)
@dataclasses.dataclass
class Grid:
    """An image grid drawn by `vae_keras.dashboard.common.show_grid` (st.html with inline images)."""

    urls: list
    captions: list
    col_headers: list
    row_headers: list


_CELL = re.compile(r'<figure class="vk-cell"[^>]*><img src="([^"]+)"[^>]*>(?:<figcaption[^>]*>(.*?)</figcaption>)?</figure>')
_COL_HEADER = re.compile(r'<div class="vk-col-header"[^>]*>(.*?)</div>')
_ROW_HEADER = re.compile(r'<div class="vk-row-header"[^>]*>(.*?)</div>')


def grids(at):
    """The image grids on the page, in order."""
    out = []
    for element in at.html:
        body = element.value
        if 'class="vk-grid"' not in body:
            continue
        cells = _CELL.findall(body)
        out.append(Grid([u for u, _ in cells], [html.unescape(c) for _, c in cells],
                        [html.unescape(t) for t in _COL_HEADER.findall(body)],
                        [html.unescape(t) for t in _ROW_HEADER.findall(body)]))
    return out


def images(at):
    """Every image URL on the page: st.image's (AppTest serves them content-addressed, so new pixels = new URL),
    then the inline images of the grids (data URIs: new pixels = new URI)."""
    return [url for img in at.image for url in img.value] + [url for g in grids(at) for url in g.urls]


def page(at):
    """The open tab (pages are lazy tabs: only the open one has content)."""
    return next(t for t in at.tabs if t.children)


def captions(at):
    return [c.value for c in page(at).caption]


def widget(widgets, key):
    return next(w for w in widgets if w.key == key)


@pytest.fixture
def app(dashboard_models_dir, monkeypatch):
    return make_app(dashboard_models_dir, monkeypatch, model="tiny/2")


# ------------------------------------------------------------------------------------------------
# The models list
# ------------------------------------------------------------------------------------------------


def test_sidebar_lists_models_newest_first_and_broken_folders_with_reasons(dashboard_models_dir, monkeypatch):
    at = make_app(dashboard_models_dir, monkeypatch)
    sidebar_text = " ".join(m.value for m in at.sidebar.markdown)
    assert str(dashboard_models_dir) in " ".join(c.value for c in at.sidebar.caption)
    for label in ("tiny/2", "tiny/1", "tinycond/1", "tinyrgb/1"):
        assert f"**{label}**" in sidebar_text
    assert sidebar_text.index("**tiny/2**") < sidebar_text.index("**tiny/1**")
    assert "mnist-10k · z=2 · test NLL" in sidebar_text
    # The list comes from the model cards: corrupt/1 has a good card beside a junk saved_model.pb.
    assert at.sidebar.selectbox[0].options == ["corrupt/1", "tiny/2", "tiny/1", "tinycond/1", "tinyrgb/1"]
    warnings = {w.value.split("**")[1]: w.value for w in at.sidebar.warning}
    assert set(warnings) == {"broken/1", "nopb/1"}
    assert "model_card.json" in warnings["broken/1"]
    assert "no saved_model.pb" in warnings["nopb/1"]
    # The most recently exported model is shown by default.
    assert at.sidebar.selectbox[0].value == "tinyrgb/1" and at.title[0].value == "tinyrgb/1"


def test_a_listed_model_that_does_not_load_says_why_when_shown(dashboard_models_dir, monkeypatch):
    monkeypatch.setenv("VAE_KERAS_MODELS_DIR", str(dashboard_models_dir))
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["model"] = "corrupt/1"
    at.run()
    assert not at.exception and at.title[0].value == "corrupt/1"
    assert len(at.error) == 1 and "corrupt/1 cannot be loaded" in at.error[0].value
    assert "not a loadable SavedModel" in at.error[0].value and "vae-keras train" in at.error[0].value
    at.sidebar.selectbox[0].select("tiny/1").run()  # the other models stay reachable
    assert_ok(at)
    assert at.title[0].value == "tiny/1"


def test_only_the_shown_models_savedmodel_is_loaded(dashboard_models_dir, monkeypatch):
    """Five listed versions: a rerun reads their cards and loads one SavedModel, the one shown."""
    import streamlit as st

    from vae_keras import exported

    loaded = []

    class CountingVAE(exported.ExportedVAE):
        def __init__(self, path):
            loaded.append(os.path.relpath(path, dashboard_models_dir))
            super().__init__(path)

    monkeypatch.setattr(exported, "ExportedVAE", CountingVAE)
    st.cache_resource.clear()  # models other tests loaded would hide the count
    at = make_app(dashboard_models_dir, monkeypatch, model="tiny/1")
    assert loaded == [os.path.join("tiny", "1")]
    assert at.title[0].value == "tiny/1" and len(at.sidebar.selectbox[0].options) == 5
    rerun(at)
    assert loaded == [os.path.join("tiny", "1")]  # cached
    goto(at, "Compare")  # compares tiny/1 with three more by default: those are shown now, so loaded
    assert sorted(loaded) == sorted(os.path.join(*label.split("/")) for label in widget(at.multiselect, "compare_models").value)
    st.cache_resource.clear()  # no CountingVAE left in the cache for other tests


def test_switching_models(app):
    assert app.title[0].value == "tiny/2"
    app.sidebar.selectbox[0].select("tiny/1")
    rerun(app)
    assert app.title[0].value == "tiny/1"
    assert "latent dim 2" in app.main.caption[0].value and "trained on mnist-10k" in app.main.caption[0].value


def test_empty_models_folder_shows_how_to_train(tmp_path, monkeypatch):
    at = make_app(tmp_path, monkeypatch)
    text = " ".join(c.value for c in at.code) + " ".join(i.value for i in at.info)
    assert "vae-keras train --dataset mnist-10k --epochs 5" in text
    assert str(tmp_path) in text
    assert not at.tabs


def test_missing_models_folder_says_so(tmp_path, monkeypatch):
    at = make_app(tmp_path / "nothing-here", monkeypatch)
    assert "does not exist" in at.warning[0].value
    assert "vae-keras train --dataset mnist-10k --epochs 5" in at.code[0].value


def test_folder_with_only_broken_models(tmp_path, monkeypatch):
    (tmp_path / "junk" / "1").mkdir(parents=True)
    (tmp_path / "junk" / "1" / "saved_model.pb").write_bytes(b"junk")
    monkeypatch.setenv("VAE_KERAS_MODELS_DIR", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert "None of the 1 model folder(s)" in at.error[0].value
    assert "junk/1" in at.sidebar.warning[0].value


# ------------------------------------------------------------------------------------------------
# Pages
# ------------------------------------------------------------------------------------------------


def test_overview_shows_everything_at_once(app):
    assert [t.label for t in app.tabs] == ["Overview", "Reconstructions", "Random samples", "Loss curves",
                                           "Latent space", "Factors", "Compare"]
    assert [h.value for h in app.main.subheader] == ["Reconstructions", "Random samples", "Loss curves", "Latent space"]
    assert not app.image and len(grids(app)) == 2  # reconstructions and samples, inline
    kinds = sorted(chart_spec(c)["mark"]["type"] for c in charts(app))
    assert kinds == ["circle", "line"]
    # tiny/2 is a Bernoulli model scored on intensities: its NLL is not called a likelihood.
    assert {m.label for m in app.metric} >= {"Test NLL (not a likelihood of the images)", "Final train loss", "Final val loss"}


def test_reconstructions_page_and_its_controls(app):
    goto(app, "Reconstructions")
    pairs = grids(app)[0]
    assert len(pairs.urls) == 16
    assert all(" · error " in c for c in pairs.captions)
    assert "binary cross-entropy" in " ".join(captions(app))
    first = pairs.urls

    widget(app.slider, "rec_n").set_value(8)
    rerun(app)
    assert len(grids(app)[0].urls) == 8

    widget(app.number_input, "rec_seed").set_value(5)
    rerun(app)
    assert len(grids(app)[0].urls) == 8 and grids(app)[0].urls != first[:8]

    widget(app.selectbox, "rec_which").select("worst reconstructed")
    rerun(app)
    errors = [float(c.rsplit("error ", 1)[1]) for c in grids(app)[0].captions]
    assert errors == sorted(errors, reverse=True)
    assert widget(app.number_input, "rec_seed").disabled


def png_bytes(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def test_uploads_are_reconstructed_or_refused_with_a_message(app):
    goto(app, "Reconstructions")
    digit = np.zeros((100, 80), np.uint8)
    digit[20:80, 35:45] = 255
    truncated = png_bytes(np.zeros((64, 64), np.uint8))[:50]
    uploader = app.file_uploader[0]
    assert set(uploader.allowed_type) >= {".png", ".jpg", ".jpeg"}
    uploader.set_value([("one.png", png_bytes(digit), "image/png"),
                        ("notes.png", b"just some text", "image/png"),
                        ("cut.png", truncated, "image/png"),
                        ("huge.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * (6 * 1024 * 1024), "image/png")])
    app.run()
    assert not app.exception
    messages = [e.value for e in app.error]
    assert len(messages) == 3
    assert any("'notes.png' is not a PNG or JPEG" in m for m in messages)
    assert any("'cut.png' cannot be decoded" in m for m in messages)
    assert any("'huge.png' is 6.0 MB; uploads are limited to 5 MB" in m for m in messages)
    uploaded = grids(app)[-1]
    assert len(uploaded.urls) == 1 and uploaded.captions[0].startswith("one.png · error ")
    before = uploaded.urls

    widget(app.checkbox, "upload_invert").check()
    app.run()
    assert grids(app)[-1].urls != before  # the inverted image is another input


def test_samples_controls_change_the_picture(app):
    goto(app, "Random samples")
    seen = {tuple(images(app))}

    def changed():
        rerun(app)
        urls = tuple(images(app))
        assert urls not in seen
        seen.add(urls)

    widget(app.number_input, "sample_seed").set_value(7)
    changed()
    widget(app.slider, "sample_n").set_value(10)
    changed()
    assert "10 samples" in captions(app)[0]
    widget(app.slider, "sample_t").set_value(0.5)
    changed()
    assert "`decode` signature" in captions(app)[0]
    widget(app.number_input, "sample_seed").increment()  # its + button: draw again
    changed()
    assert "seed 8," in captions(app)[0]


def test_controls_survive_a_page_switch(app):
    goto(app, "Random samples")
    widget(app.slider, "sample_n").set_value(12)
    rerun(app)
    goto(app, "Loss curves")
    goto(app, "Random samples")
    assert widget(app.slider, "sample_n").value == 12


def test_loss_curves_page(app, dashboard_models_dir):
    goto(app, "Loss curves")
    card = json.loads((dashboard_models_dir / "tiny" / "2" / "assets.extra" / "model_card.json").read_text())
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Test NLL (not a likelihood of the images)"] == f"{card['metrics']['test_nll']:.2f} nats"
    assert metrics["Final val loss"] == f"{card['metrics']['final_val_loss']:.2f} nats"
    specs = [chart_spec(c) for c in charts(app)]
    lines = [s for s in specs if s.get("mark", {}).get("type") == "line"]
    assert [s["title"] for s in lines] == ["Loss (negative ELBO)", "Reconstruction  −log p(x|z)", "KL(q(z|x) ‖ p(z))"]
    assert all(s["encoding"]["color"]["field"] == "split" for s in lines)
    assert any(s.get("mark", {}).get("type") == "bar" for s in specs)  # test KL per latent dimension
    assert app.dataframe[0].value["epoch"].tolist() == [1, 2, 3]


def test_latent_space_page_2d(app):
    goto(app, "Latent space")
    specs = [chart_spec(c) for c in charts(app)]
    assert specs[0]["layer"][0]["mark"]["type"] == "circle" and specs[0]["layer"][0]["encoding"]["x"]["title"] == "z₁"
    assert [h.value for h in app.main.subheader] == ["Test images' posterior means", "Decoded manifold",
                                                 "Which latent dims are used", "Latent traversals",
                                                 "Interpolation between two test images"]
    manifold, centre, traversal, strip = (g.urls for g in grids(app))

    widget(app.slider, "manifold_n").set_value(6)
    rerun(app)
    assert grids(app)[0].urls != manifold and [g.urls for g in grids(app)[1:]] == [centre, traversal, strip]

    widget(app.multiselect, "trav_dims").set_value([1])
    rerun(app)
    assert grids(app)[2].urls != traversal
    assert grids(app)[2].row_headers == ["dim 1 · KL 1.000"]  # the fixture's card: KL 0.1 and 1.0

    widget(app.selectbox, "trav_centre").select("a test image's z_mean")
    rerun(app)
    widget(app.number_input, "trav_image").set_value(3)
    rerun(app)
    assert any("test image #3's z_mean" in c for c in captions(app))

    widget(app.number_input, "interp_b").set_value(5)
    rerun(app)
    assert grids(app)[3].urls != strip
    assert "#0" in captions(app)[-1] and "#5" in captions(app)[-1]

    widget(app.multiselect, "trav_dims").set_value([])
    rerun(app)
    assert any("at least one latent dimension" in i.value for i in app.info)


def test_model_dependent_controls_reset_on_a_model_switch(dashboard_models_dir, monkeypatch):
    at = make_app(dashboard_models_dir, monkeypatch, model="tinyrgb/1", page="Latent space")
    assert widget(at.multiselect, "trav_dims").value == [0, 1, 2]
    widget(at.multiselect, "trav_dims").set_value([2])  # a dim the 2-D models do not have
    widget(at.number_input, "interp_b").set_value(19)
    rerun(at)
    at.sidebar.selectbox[0].select("tiny/2")
    rerun(at)
    assert at.title[0].value == "tiny/2"
    assert widget(at.multiselect, "trav_dims").value == [0, 1]
    assert widget(at.number_input, "interp_b").value == 1
    assert len(grids(at)) == 4  # manifold, traversal centre and rows, interpolation


def test_latent_space_page_colour_model_uses_pca(dashboard_models_dir, monkeypatch):
    at = make_app(dashboard_models_dir, monkeypatch, model="tinyrgb/1", page="Latent space")
    scatter = chart_spec(charts(at)[0])
    assert scatter["layer"][0]["encoding"]["x"]["title"].startswith("PC 1")
    assert "principal components" in captions(at)[0]
    assert [h.value for h in at.main.subheader] == ["Test images' posterior means", "Which latent dims are used",
                                               "Latent traversals", "Interpolation between two test images"]
    assert len(grids(at)) == 3  # traversal centre and rows, interpolation; no manifold above 2-D
    goto(at, "Reconstructions")
    assert page(at).label == "Reconstructions"
    assert len(grids(at)[0].urls) == 16
    assert "squared error" in " ".join(captions(at))
    assert any("red-ish" in c for c in grids(at)[0].captions)


def test_conditional_model_pages_pick_a_class(dashboard_models_dir, monkeypatch):
    at = make_app(dashboard_models_dir, monkeypatch, model="tinycond/1")
    assert any("one class per column" in c for c in captions(at))  # the Overview's samples, a grid since it is inline
    goto(at, "Random samples")
    every = images(at)[0]
    assert "every class in turn" in captions(at)[0]
    widget(at.selectbox, "sample_class").select(3)
    rerun(at)
    assert images(at)[0] != every and "of class 3" in captions(at)[0]

    goto(at, "Latent space")
    manifold = images(at)[0]
    widget(at.selectbox, "latent_class").select(7)
    rerun(at)
    assert images(at)[0] != manifold

    goto(at, "Reconstructions")  # test images are reconstructed with their own labels
    assert len(grids(at)[0].urls) == 16
    at.file_uploader[0].set_value(("d.png", png_bytes(np.full((28, 28), 200, np.uint8)), "image/png"))
    rerun(at)
    first = grids(at)[-1].urls
    widget(at.selectbox, next(w.key for w in at.selectbox if w.key.startswith("upload_class_"))).select(5)
    rerun(at)
    assert grids(at)[-1].urls != first


def test_compare_page(app):
    goto(app, "Compare")
    chosen = widget(app.multiselect, "compare_models")
    assert chosen.value == ["tiny/2", "corrupt/1", "tiny/1", "tinycond/1"]  # the shown model and the next three listed
    assert [w.value for w in page(app).warning] == [
        "corrupt/1 cannot be loaded: " + next(w for w in page(app).warning).value.split(": ", 1)[1]]
    assert "not a loadable SavedModel" in page(app).warning[0].value
    assert list(app.dataframe[0].value.index) == ["tiny/2", "tiny/1", "tinycond/1"]
    chosen.set_value(["tiny/2", "tiny/1", "tinycond/1", "tinyrgb/1"])
    rerun(app)
    chosen = widget(app.multiselect, "compare_models")
    table = app.dataframe[0].value
    assert list(table.index) == chosen.value and "test NLL (nats)" in table.columns
    overlay = chart_spec(charts(app)[0])
    assert overlay["encoding"]["color"]["field"] == "model" and overlay["encoding"]["strokeDash"]["field"] == "split"
    # tiny/1, tiny/2 and tinycond/1 share mnist-10k: input row + one row each; tinyrgb/1 has its own group.
    row_labels = [m.value for m in page(app).markdown if m.value.startswith("**")]
    assert row_labels[:2] == ["**mnist-10k** (28×28×1)", "**colour.npz** (8×8×3)"]
    shown = grids(app)  # a grid of reconstructions per dataset, then a grid of samples per model
    assert [g.row_headers for g in shown[:2]] == [["input", "tiny/2", "tiny/1", "tinycond/1"], ["input", "tinyrgb/1"]]
    assert [len(g.urls) for g in shown] == [40, 20, 16, 16, 16, 16]
    assert row_labels[2:] == ["**tiny/2**", "**tiny/1**", "**tinycond/1**", "**tinyrgb/1**"]  # the samples' headings

    widget(app.selectbox, "compare_metric").select("kl")
    rerun(app)
    assert chart_spec(charts(app)[0])["title"]["text"] == "KL(q(z|x) ‖ p(z))"

    widget(app.multiselect, "compare_models").set_value(["tiny/2"])
    rerun(app)
    assert "two or more" in app.info[0].value


def test_every_page_of_every_model_renders(dashboard_models_dir, monkeypatch):
    at = make_app(dashboard_models_dir, monkeypatch)
    for model in at.sidebar.selectbox[0].options:
        if model == "corrupt/1":  # listed from its card, fails when shown (test_a_listed_model_that_does_not_load...)
            continue
        at.sidebar.selectbox[0].select(model)
        for page in [t.label for t in at.tabs]:
            goto(at, page)
            if page == "Factors":  # none of these datasets has factors of variation: the page says so
                assert any("no factors of variation" in i.value for i in at.info), (model, [i.value for i in at.info])
                continue
            assert images(at) or charts(at), (model, page)


def test_models_dir_env_var_is_read_at_each_run(dashboard_models_dir, dashboard_single_model_dir, monkeypatch):
    at = make_app(dashboard_single_model_dir, monkeypatch)
    assert at.sidebar.selectbox[0].options == ["tiny/1"] and not at.sidebar.warning
    monkeypatch.setenv("VAE_KERAS_MODELS_DIR", os.fspath(dashboard_models_dir))
    rerun(at)
    assert len(at.sidebar.selectbox[0].options) == 5


@pytest.mark.parametrize("name", ["../../../etc/passwd", "/etc", "tiny/../../..", "broken/1"])
def test_a_model_name_in_the_url_cannot_leave_the_models_folder(dashboard_models_dir, monkeypatch, name):
    """Only listed, loadable NAME/VERSION folders can be shown, whatever the link says."""
    monkeypatch.setenv("VAE_KERAS_MODELS_DIR", str(dashboard_models_dir))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["model"] = name
    at.run()
    assert not at.exception
    assert at.title[0].value in {"tiny/1", "tiny/2", "tinycond/1", "tinyrgb/1"}


@pytest.mark.parametrize("name", ["nope/1", "broken/1"])
def test_an_unknown_model_in_the_url_is_replaced_by_the_model_shown_and_the_page_says_so(dashboard_models_dir,
                                                                                       monkeypatch, name):
    monkeypatch.setenv("VAE_KERAS_MODELS_DIR", str(dashboard_models_dir))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["model"] = name
    at.run()
    assert_ok(at)
    shown = at.title[0].value
    assert shown == "tinyrgb/1" and at.session_state["model"] == shown  # the widget bound to ?model= holds it
    notes = [w.value for w in at.main.warning]
    assert len(notes) == 1 and repr(name) in notes[0] and f"showing {shown}" in notes[0], notes


def test_a_model_name_in_the_url_selects_that_model(dashboard_models_dir, monkeypatch):
    monkeypatch.setenv("VAE_KERAS_MODELS_DIR", str(dashboard_models_dir))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["model"] = "tiny/1"
    at.run()
    assert at.title[0].value == "tiny/1"  # (the default would be the newest, tinyrgb/1)


# ------------------------------------------------------------------------------------------------
# A model card written by training.train(), not by a fixture
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_models_dir(tmp_path_factory):
    """A model trained and exported by `vae_keras.training.train` (300 digits, 1 epoch, K=5): its card
    holds the metrics train() measured."""
    from vae_keras import data, training

    mnist = data.load_images("mnist-10k").subset(n_train=300, n_test=100)
    out = tmp_path_factory.mktemp("trained") / "models"
    config = training.TrainConfig(dataset="mnist-10k", hidden=(16,), latent_dim=2, epochs=1, eval_iw_samples=5,
                                  out=str(out), name="trained", verbose=0)
    training.train(config, data=mnist)
    return out


def test_the_dashboard_shows_what_train_wrote_in_the_card(trained_models_dir, monkeypatch):
    card = json.loads((trained_models_dir / "trained" / "1" / "assets.extra" / "model_card.json").read_text())
    m = card["metrics"]
    assert m["test_nll_kind"] == "discrete" and card["test_binarized"] is True  # one channel, Bernoulli: binarized
    at = make_app(trained_models_dir, monkeypatch)
    assert at.title[0].value == "trained/1"
    sidebar_text = " ".join(x.value for x in at.sidebar.markdown)
    assert f"**trained/1** · mnist-10k · z=2 · test NLL {m['test_nll']:.2f}" in sidebar_text
    shown = {x.label: x.value for x in at.metric}
    assert shown["Test NLL"] == f"{m['test_nll']:.2f} nats" and shown["Test ELBO"] == f"{m['test_elbo']:.2f} nats"
    assert shown["Test KL"] == f"{m['test_kl']:.2f} nats" and shown["Active units"] == f"{m['test_active_units']:.0f} of 2"
    assert shown["Final train loss"] == f"{m['final_loss']:.2f} nats"
    assert shown["Final val loss"] == f"{m['final_val_loss']:.2f} nats"
    assert shown["Test bits/dim"] == f"{m['test_bits_per_dim']:.3f} bits/dim"  # beside a discrete NLL
    assert "1 epochs" in at.caption[0].value and "bernoulli likelihood" in at.caption[0].value


# ------------------------------------------------------------------------------------------------
# First paint: the shell before TensorFlow
# ------------------------------------------------------------------------------------------------

SHELL_APP = """
import sys

import streamlit as st

from vae_keras.dashboard import common, main


def load_model(path, stamp):  # stands in for the SavedModel load: notes what was imported by then
    st.session_state["tensorflow_before_the_first_load"] = "tensorflow" in sys.modules
    return None, "not loaded in this test"


common.load_model = load_model
main.run(default_models_dir="/nonexistent")
"""
SHELL_RUN = """
import sys
from streamlit.testing.v1 import AppTest

at = AppTest.from_file(sys.argv[1], default_timeout=60).run()
print(at.session_state["tensorflow_before_the_first_load"], at.title[0].value, len(at.sidebar.selectbox[0].options),
      "tensorflow" in sys.modules)
"""


def test_the_shell_is_drawn_before_tensorflow_is_imported(dashboard_models_dir, tmp_path):
    """Title, caption and the models list (from the cards) need no TensorFlow: a fresh process has not
    imported it when the shown model's SavedModel is about to load (first paint in seconds, not 10-12 s)."""
    import subprocess
    import sys

    (tmp_path / "shell_app.py").write_text(SHELL_APP)
    env = dict(os.environ, VAE_KERAS_MODELS_DIR=str(dashboard_models_dir))
    proc = subprocess.run([sys.executable, "-c", SHELL_RUN, str(tmp_path / "shell_app.py")], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "False tinyrgb/1 5 False", proc.stdout + proc.stderr[-2000:]


# ------------------------------------------------------------------------------------------------
# The address bar: links pin the model and the page; Back/Forward; bad parameters are reported (issue 16)
# ------------------------------------------------------------------------------------------------


def test_the_address_names_the_model_and_page_and_back_and_forward_follow_it(dashboard_models_dir, monkeypatch):
    """A shared link keeps its meaning when a newer model is exported: the default (newest) model is in it too.
    Back/Forward rerun the app with the restored address: the address wins over the widgets' last values."""
    at = make_app(dashboard_models_dir, monkeypatch)
    assert at.title[0].value == "tinyrgb/1"
    assert at.query_params["model"] == "tinyrgb/1" and at.query_params["page"] == "Overview"
    at.sidebar.selectbox[0].select("tiny/1")
    rerun(at)
    assert at.query_params["model"] == "tiny/1" and at.query_params["page"] == "Overview"
    goto(at, "Loss curves")
    assert at.title[0].value == "tiny/1" and page(at).label == "Loss curves"
    at.query_params["page"] = "Overview"  # Back: the browser restores the previous entry's address
    rerun(at)
    assert page(at).label == "Overview" and at.title[0].value == "tiny/1"
    at.query_params["model"] = "tinyrgb/1"  # Back again
    rerun(at)
    assert at.title[0].value == "tinyrgb/1" and at.sidebar.selectbox[0].value == "tinyrgb/1"
    at.query_params["model"] = "tiny/1"  # Forward
    rerun(at)
    assert at.title[0].value == "tiny/1" and not at.main.warning


def test_an_unknown_page_in_the_url_is_reported_on_the_page(dashboard_models_dir, monkeypatch):
    monkeypatch.setenv("VAE_KERAS_MODELS_DIR", str(dashboard_models_dir))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["page"] = "Bogus"
    at.run()
    assert_ok(at)
    assert page(at).label == "Overview" and at.query_params["page"] == "Overview"
    notes = [w.value for w in at.main.warning]
    assert len(notes) == 1 and "page 'Bogus'" in notes[0] and "showing Overview" in notes[0], notes
    rerun(at)  # said once, for the link that asked for it
    assert not at.main.warning


def test_a_model_in_the_url_that_exists_but_cannot_load_is_reported_with_its_reason(dashboard_models_dir, monkeypatch):
    monkeypatch.setenv("VAE_KERAS_MODELS_DIR", str(dashboard_models_dir))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["model"] = "broken/1"
    at.run()
    assert_ok(at)
    notes = [w.value for w in at.main.warning]
    assert len(notes) == 1 and "'broken/1', which exists but cannot be loaded" in notes[0], notes
    assert "model_card.json" in notes[0] and at.query_params["model"] == "tinyrgb/1"


# ------------------------------------------------------------------------------------------------
# Overview, Loss curves and Compare (issue 16)
# ------------------------------------------------------------------------------------------------


def test_overview_metrics_have_units_and_download_as_json(app, dashboard_models_dir):
    card = json.loads((dashboard_models_dir / "tiny" / "2" / "assets.extra" / "model_card.json").read_text())
    values = {m.label: m.value for m in app.metric}
    assert all(v.endswith((" nats", " bits/dim")) or " of " in v for v in values.values()), values
    assert values["Active units"] == "2 of 2"
    labels = [b.proto.label for b in app.get("download_button")]
    # the JSON file itself: tests/test_dashboard_browser.py downloads it; then the two grids' PNGs
    assert labels == ["Download metrics (JSON)", "Download PNG", "Download PNG"]
    assert card["metrics"]["test_nll"] is not None


def test_compare_follows_the_model_shown_in_the_sidebar(dashboard_models_dir, monkeypatch):
    """Issue 16 bug 3: model A -> Compare, switch the sidebar to B, back to Compare: B is compared."""
    at = make_app(dashboard_models_dir, monkeypatch, model="tiny/1")
    goto(at, "Compare")
    widget(at.multiselect, "compare_models").set_value(["tiny/1", "tiny/2"])
    rerun(at)
    at.sidebar.selectbox[0].select("tinyrgb/1")
    rerun(at)
    goto(at, "Compare")
    chosen = widget(at.multiselect, "compare_models").value
    assert chosen == ["tinyrgb/1", "tiny/1", "tiny/2"]  # B first, the user's choice kept
    assert list(at.dataframe[0].value.index) == chosen


def test_compare_rows_order_colours_units_and_samples(dashboard_models_dir, monkeypatch):
    from streamlit import dataframe_util

    at = make_app(dashboard_models_dir, monkeypatch, model="tiny/2", page="Compare")
    colours = {}

    def colour_of():
        scale = chart_spec(charts(at)[0])["encoding"]["color"]["scale"]
        return dict(zip(scale["domain"], scale["range"]))

    widget(at.multiselect, "compare_models").set_value(["tinyrgb/1", "tiny/1"])
    rerun(at)
    assert list(at.dataframe[0].value.index) == ["tinyrgb/1", "tiny/1"]  # the chosen order, not the listing's
    shown = dataframe_util.convert_arrow_bytes_to_pandas_df(at.dataframe[0].proto.arrow_data.styler.display_values)
    assert shown.loc["tiny/1", "parameters"] == f"{at.dataframe[0].value.loc['tiny/1', 'parameters']:,.0f}"
    assert "," in shown.loc["tiny/1", "parameters"]  # 26,004
    colours.update(colour_of())
    row_labels = [m.value for m in page(at).markdown if m.value.startswith("**")]
    assert row_labels.index("**tinyrgb/1**") < row_labels.index("**tiny/1**")
    assert len(grids(at)) == 4 and row_labels[-2:] == ["**tinyrgb/1**", "**tiny/1**"]  # samples, in order

    widget(at.multiselect, "compare_models").set_value(["tiny/1", "tinycond/1"])
    rerun(at)
    assert colour_of()["tiny/1"] == colours["tiny/1"]  # the same model keeps its colour

    # Bits per dimension: nats per image ÷ (784 × ln 2) for these 28×28×1 models.
    nats = chart_data(charts(at)[0])["value"].to_numpy()
    widget(at.radio, "compare_unit").set_value("bits/dim")
    rerun(at)
    assert chart_spec(charts(at)[0])["encoding"]["y"]["title"] == "bits per dimension"
    bits = chart_data(charts(at)[0])["value"].to_numpy()
    np.testing.assert_allclose(bits, nats / (784 * np.log(2)), rtol=1e-6)
    widget(at.checkbox, "compare_log").check()
    rerun(at)
    assert chart_spec(charts(at)[0])["encoding"]["y"]["scale"]["type"] == "log"


def test_charts_scroll_the_page_and_show_the_last_point_whole(app):
    """Scrolling over a chart scrolls the page: its scales are bound to drag (pan) without wheel zoom; the
    scales are padded so the first and last points are not clipped at the plot's edge."""
    for spec in (chart_spec(c) for c in charts(app)):
        params = spec.get("params", [])
        bound = [p for p in params if p.get("bind") == "scales"]
        assert bound and all(p["select"].get("zoom") is False for p in bound), params
        if spec["mark"]["type"] == "line":
            assert spec["encoding"]["x"]["scale"]["padding"] > 0 and spec["encoding"]["y"]["scale"]["padding"] > 0


def test_loss_curves_plot_the_kl_warm_up_and_say_when_curves_are_not_comparable(tmp_path, dashboard_models_dir,
                                                                             monkeypatch):
    import shutil

    src = dashboard_models_dir / "tiny" / "2"
    dst = tmp_path / "models" / "warm" / "1"
    shutil.copytree(src, dst)
    history = dst / "assets.extra" / "history.csv"
    lines = history.read_text().splitlines()
    weights = ["0.5", "1.0", "1.0"]
    history.write_text("\n".join([lines[0] + ",kl_weight"] + [f"{row},{w}" for row, w in zip(lines[1:], weights)])
                       + "\n")
    at = make_app(tmp_path / "models", monkeypatch, page="Loss curves")
    notes = [w.value for w in page(at).warning]
    assert len(notes) == 1 and "epoch 1" in notes[0] and "not comparable" in notes[0] and "0.5" in notes[0], notes
    specs = [chart_spec(c) for c in charts(at)]
    weight = next(s for s in specs if s.get("title") == "KL weight of the training loss (warm-up)")
    assert chart_data(charts(at)[specs.index(weight)])["KL weight"].tolist() == [0.5, 1.0, 1.0]
    assert "Loss = reconstruction + β·KL." not in " ".join(captions(at))


def test_reconstruction_caption_says_what_each_mean_is_over(tmp_path, dashboard_models_dir, monkeypatch):
    """Issue 16 bug 7: "over all 2000 test images" was the first 2,000 of 10,000, while the card's NLL used 10,000."""
    import shutil

    dst = tmp_path / "models" / "big" / "1"
    shutil.copytree(dashboard_models_dir / "tiny" / "2", dst)
    card_path = dst / "assets.extra" / "model_card.json"
    card = json.loads(card_path.read_text())
    card["metrics"].update(test_images_available=10000, test_evaluation="all 10,000 images of the test split, K=50")
    card_path.write_text(json.dumps(card))
    at = make_app(tmp_path / "models", monkeypatch, page="Reconstructions")
    text = " ".join(captions(at))
    assert "over all 2000 test images" not in text
    assert "over the first 2,000 of the 10,000 test images" in text, text
    assert "the card's test metrics used all 10,000 images of the test split, K=50" in text
