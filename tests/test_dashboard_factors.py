"""The dashboard's Factors page (issue 17): Streamlit AppTest with a tiny dsprites model (fixture
``dashboard_factors_dir``), and the page's logic (`vae_keras.dashboard.logic.factors`) against independent numbers."""

import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("streamlit")

from test_dashboard_app import assert_ok, chart_data, chart_spec, charts, goto, grids, make_app  # noqa: E402

from vae_keras.dashboard.logic import factors as fl  # noqa: E402

GIFS = []  # every GIF the page made (the page calls fl.traversal_gif; the fixture records what it returns)


@pytest.fixture(scope="module")
def factors_page(dashboard_factors_dir, monkeypatch_module):
    made = fl.traversal_gif

    def recording(*args, **kwargs):
        GIFS.append(made(*args, **kwargs))
        return GIFS[-1]

    monkeypatch_module.setattr(fl, "traversal_gif", recording)
    at = make_app(dashboard_factors_dir, monkeypatch_module, model="sprites/1")
    return goto(at, "Factors")


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_the_heatmap_is_the_library_mutual_information_of_the_test_codes(factors_page, dashboard_factors_dir):
    from vae_keras import disentanglement, exported, load_images
    from vae_keras.data import to_float

    heat = [c for c in charts(factors_page) if chart_spec(c)["mark"]["type"] == "rect"]
    assert len(heat) == 1
    model = exported.ExportedVAE(str(dashboard_factors_dir / "sprites" / "1"))
    data = load_images("dsprites")
    codes = model.encode(to_float(data.x_test))["z_mean"]
    expected = disentanglement.mutual_information_matrix(codes, data.factors_test)
    assert expected.shape == (3, 5) and expected.max() > 0.01  # a non-trivial matrix is compared
    got = np.zeros_like(expected)
    frame = chart_data(heat[0])
    assert len(frame) == expected.size
    for row in frame.itertuples():
        got[int(row.latent[1:]), list(data.factor_names).index(row.factor)] = row.mi
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)
    # Every traversal row is named by the factor of highest information of its latent.
    (grid,) = grids(factors_page)
    assert len(grid.urls) == 3 * 9
    for j, header in enumerate(grid.row_headers):
        assert header.startswith(f"z{j} · {data.factor_names[int(np.argmax(expected[j]))]} (")


def test_the_gif_is_a_valid_multi_frame_gif(factors_page):
    button = [b for b in factors_page.get("download_button") if b.proto.label == "Download GIF"]
    assert len(button) == 1 and factors_page.image  # offered, and shown
    assert GIFS
    with Image.open(io.BytesIO(GIFS[-1])) as im:
        assert im.format == "GIF" and im.n_frames == 9 + 7  # forward (9 steps), then back without the ends
        assert im.size == (128, 128) and im.info.get("loop") == 0  # 64x64 shown twice as large; loops forever
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("L")))
    assert any(not np.array_equal(frames[0], f) for f in frames[1:])  # it moves


def test_the_metrics_are_computed_on_demand_with_a_progress_bar_and_cached(factors_page):
    at = factors_page
    assert any("Not computed yet" in c.value for c in at.caption)
    at.selectbox(key="factors_samples").set_value(1000)
    at.button(key="factors_compute").click()
    at.run(timeout=600)  # seven metrics on 1,000 samples each: well over AppTest's 60 s on a loaded machine
    assert_ok(at)
    table = at.dataframe[0].value
    assert list(table["metric"]) == ["MIG", "FactorVAE score", "SAP", "DCI disentanglement", "DCI completeness",
                                     "DCI informativeness", "beta-VAE score"]
    assert table["value"].between(0, 1).all()
    at.run()  # a later run shows the cached numbers without another click
    assert_ok(at)
    assert at.dataframe[0].value.equals(table)


def test_a_model_without_factors_gets_the_reason(dashboard_models_dir, monkeypatch):
    at = make_app(dashboard_models_dir, monkeypatch, model="tiny/1")
    goto(at, "Factors")
    assert any("no factors of variation" in i.value and "mnist-10k" in i.value for i in at.info)
    assert not at.get("download_button")


def test_traversal_gif_frames_are_the_traversal(rng):
    frames = rng.random((4, 3, 5, 1)).astype(np.float32)
    with Image.open(io.BytesIO(fl.traversal_gif(frames))) as im:
        got = []
        for i in range(im.n_frames):
            im.seek(i)
            got.append(np.asarray(im.convert("L"), np.float64) / 255)
    order = [0, 1, 2, 3, 2, 1]  # forward, then back without repeating the ends (the loop closes the circle)
    assert len(got) == len(order)
    for g, i in zip(got, order):
        np.testing.assert_allclose(g, frames[i, ..., 0], atol=1 / 255 + 1e-6)
    with pytest.raises(ValueError, match="at least 2 frames"):
        fl.traversal_gif(frames[:1])


def test_followed_factors_and_metrics_rows():
    factors = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 25)
    mi = np.array([[0.1, 0.6], [0.69, 0.0]])
    rows = fl.followed_factors(mi, factors, ["a", "b"])
    assert [(r["latent"], r["factor"]) for r in rows] == [(0, "b"), (1, "a")]
    assert rows[1]["share"] == pytest.approx(0.69 / np.log(2))
    assert [r["metric"] for r in fl.metrics_rows({"summary": {"mig": 0.2, "sap": 0.1}})] == ["MIG", "SAP"]
    assert fl.card_metrics({"disentanglement": {"summary": {"mig": 0.3}}})["summary"]["mig"] == 0.3
    assert fl.card_metrics({}) is None
