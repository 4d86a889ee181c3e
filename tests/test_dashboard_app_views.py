"""AppTest tests of the dashboard's views (issue 16, part B): active units, uploads that stay, every click on
"Draw again" counted, inline images, class names, traversal labels, downloads, grid options.

Same models folder as tests/test_dashboard_app.py (fixture ``dashboard_models_dir`` in conftest.py).
"""

import numpy as np
import pytest

pytest.importorskip("streamlit")

from test_dashboard_app import captions, chart_spec, charts, goto, grids, make_app, png_bytes, rerun, widget  # noqa: E402


def upload_captions(at):
    """The captions of the uploaded images' reconstructions (a grid's, or st.image's on older code)."""
    return [c for img in at.image for c in img.captions if "error" in c and not c.startswith("#")] + \
        [c for g in grids(at) for c in g.captions if not c.startswith("#")]


def downloads(at):
    """``(key, served file's extension)`` of the download buttons on the page."""
    return [(d.proto.id.rsplit("-", 1)[-1], d.proto.url.rsplit(".", 1)[-1]) for d in at.get("download_button")]


def test_active_units_name_their_rule_and_the_threshold_is_drawn_with_a_sort(dashboard_models_dir, monkeypatch):
    # Bug 2: the count came with no rule and the KL chart gave no way to check it.
    at = make_app(dashboard_models_dir, monkeypatch, model="tinyrgb/1", page="Latent space")
    specs = [chart_spec(c) for c in charts(at)]
    activity = next(s for s in specs if "layer" in s and any(layer["mark"]["type"] == "rule" for layer in s["layer"]))
    rule = next(layer for layer in activity["layer"] if layer["mark"]["type"] == "rule")
    assert rule["encoding"]["y"]["field"] == "threshold"
    text = " ".join(captions(at))
    assert "Burda et al. 2016" in text and "exceeds 0.01" in text and "of 3 latent dims are active" in text
    kl = next(s for s in specs if s.get("title", {}) == "Test KL per latent dim (nats)" or
              s.get("title") == "Test KL per latent dim (nats)")
    assert kl["encoding"]["x"]["sort"] == ["0", "1", "2"]
    widget(at.radio, "units_sort").set_value("by KL (largest first)")
    rerun(at)
    kl = next(chart_spec(c) for c in charts(at) if chart_spec(c).get("title") == "Test KL per latent dim (nats)")
    assert kl["encoding"]["x"]["sort"] == ["2", "1", "0"]  # the fixture's KL grows with the dim
    goto(at, "Overview")
    assert "Burda et al. 2016" in next(m for m in at.metric if m.label == "Active units").help


def test_uploads_stay_when_the_page_is_left_and_can_be_removed(dashboard_models_dir, monkeypatch):
    # Bug 4: uploads vanished after a visit to another page.
    at = make_app(dashboard_models_dir, monkeypatch, model="tiny/2", page="Reconstructions")
    digit = np.zeros((28, 28), np.uint8)
    digit[5:23, 12:16] = 255
    at.file_uploader[0].set_value(("one.png", png_bytes(digit), "image/png"))
    rerun(at)
    assert [c.split(" · ")[0] for c in upload_captions(at)] == ["one.png"]
    goto(at, "Loss curves")
    goto(at, "Reconstructions")
    assert [c.split(" · ")[0] for c in upload_captions(at)] == ["one.png"]  # still there
    at.file_uploader[0].set_value([("again.png", png_bytes(digit), "image/png"),  # the same content: kept once
                                   ("two.png", png_bytes(255 - digit), "image/png")])
    rerun(at)
    assert [c.split(" · ")[0] for c in grids(at)[-1].captions] == ["one.png", "two.png"]
    next(b for b in at.button if b.key.startswith("upload_remove_")).click()
    rerun(at)
    assert [c.split(" · ")[0] for c in grids(at)[-1].captions] == ["two.png"]
    widget(at.button, "upload_clear").click()
    rerun(at)
    assert len(grids(at)) == 1  # only the test images' grid


def test_every_quick_click_on_draw_again_counts(dashboard_models_dir, monkeypatch):
    # Bug 8: five quick clicks advanced the seed by 2. A click sent before the browser has the previous run's
    # result carries the seed box's old value with it; the old "Draw again" callback added 1 to that old value.
    # Drawing again is now the seed box's +: the browser counts the clicks and sends the newest seed, which is
    # what a request carries after five quick clicks (tests/test_dashboard_browser.py clicks in Chromium).
    at = make_app(dashboard_models_dir, monkeypatch, model="tiny/2", page="Random samples")
    first = grids(at)[0].urls
    assert not [b for b in at.button if b.key == "sample_again"]  # the button that lost clicks is gone
    seed = widget(at.number_input, "sample_seed")
    assert seed.step == 1 and "draws again" in seed.label
    seed.set_value(5)
    rerun(at)
    assert ", seed 5," in captions(at)[0] and grids(at)[0].urls != first
    seed = widget(at.number_input, "sample_seed")
    seed.increment()
    rerun(at)
    assert ", seed 6," in captions(at)[0]


def test_pictures_are_inline_so_they_cannot_expire_between_reruns(dashboard_models_dir, monkeypatch):
    # Bug 8's console 404: st.image's media files are deleted at the end of the next run, while the browser may still
    # be fetching those of a run a quick click replaced. Inline data URIs travel with the page.
    at = make_app(dashboard_models_dir, monkeypatch, model="tiny/2", page="Random samples")
    for page in ("Random samples", "Reconstructions", "Latent space"):
        goto(at, page)
        assert not at.image and grids(at), page
        assert all(url.startswith("data:image/png;base64,") for g in grids(at) for url in g.urls)
        assert downloads(at) and all(ext in ("png", "csv") for _, ext in downloads(at))


def test_temperature_zero_is_refused_and_invert_is_offered_only_for_one_channel(dashboard_models_dir, monkeypatch):
    at = make_app(dashboard_models_dir, monkeypatch, model="tiny/2", page="Random samples")
    widget(at.slider, "sample_t").set_value(0.0)
    at.run()
    assert [e.value for e in at.error] and "must be > 0" in at.error[0].value and not grids(at)
    widget(at.slider, "sample_t").set_value(1.0)
    rerun(at)
    image = png_bytes(np.full((8, 8, 3), 120, np.uint8))
    for model, offered in (("tiny/2", True), ("tinyrgb/1", False)):  # the uploads stay across the switch
        at.sidebar.selectbox[0].select(model)
        goto(at, "Reconstructions")
        if model == "tiny/2":
            at.file_uploader[0].set_value(("c.png", image, "image/png"))
            rerun(at)
        assert any(c.key == "upload_invert" for c in at.checkbox) == offered, model
        assert upload_captions(at)[0].startswith("c.png · error "), model


def test_conditional_models_name_classes_and_decode_images_as_their_own_label(dashboard_models_dir, monkeypatch):
    at = make_app(dashboard_models_dir, monkeypatch, model="tinycond/1", page="Random samples")
    widget(at.slider, "sample_n").set_value(20)
    rerun(at)
    assert grids(at)[0].col_headers == [str(i) for i in range(10)]  # the card's class names, one per column
    goto(at, "Latent space")
    assert widget(at.selectbox, "latent_class").value == "own"
    widget(at.selectbox, "trav_centre").select("a test image's z_mean")
    rerun(at)
    assert any("decoded as class 3." in c for c in captions(at))  # mnist-10k's first test image is a 3
    goto(at, "Reconstructions")
    digit = np.zeros((28, 28), np.uint8)
    at.file_uploader[0].set_value([("a.png", png_bytes(digit), "image/png"), ("b.png", png_bytes(digit + 9), "image/png")])
    rerun(at)
    picks = [w for w in at.selectbox if w.key.startswith("upload_class_")]
    assert len(picks) == 2  # a class per file
    picks[1].select(4)
    rerun(at)
    assert [c.split(" · ")[1] for c in grids(at)[-1].captions] == ["0", "4"]


def test_traversals_label_rows_and_show_the_centre(dashboard_models_dir, monkeypatch):
    at = make_app(dashboard_models_dir, monkeypatch, model="tinyrgb/1", page="Latent space")
    widget(at.multiselect, "trav_dims").set_value([2, 0])
    rerun(at)
    centre, rows = grids(at)[0], grids(at)[1]
    assert len(centre.urls) == 1 and rows.row_headers == ["dim 2 · KL 1.000", "dim 0 · KL 0.100"]
    assert rows.col_headers[0] == "-3.0" and rows.col_headers[-1] == "+3.0"
    assert ("dl_z_mean", "csv") in downloads(at) and ("dl_traversals", "png") in downloads(at)
