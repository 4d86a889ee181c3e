"""Unit tests of the dashboard's view logic (no Streamlit): active units, image grids, downloads, the latent scatter."""

import html
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from vae_keras import active_units as au
from vae_keras.dashboard import logic as dl


def test_activity_and_active_units_follow_burdas_rule_computed_independently():
    rng = np.random.default_rng(0)
    z_mean = np.stack([rng.normal(0, 1, 400), rng.normal(0, 0.2, 400), rng.normal(0, 0.05, 400), np.zeros(400)], 1)
    expected = np.diag(np.cov(z_mean.T, bias=True))  # Cov_x(E_q[z|x]), its diagonal
    assert au.activity_per_dim(z_mean) == pytest.approx(expected)
    assert au.active_units(z_mean) == int(sum(expected > 0.01)) == 2
    assert au.activity_per_dim(z_mean[:1]) is None and au.active_units(z_mean[:1]) is None
    assert "0.01" in au.ACTIVE_UNIT_RULE and "Burda" in au.ACTIVE_UNIT_RULE


def test_unit_table_prefers_the_cards_activity_and_says_where_it_comes_from():
    card = {"metrics": {"test_kl_per_dim": [0.5, 0.01, 2.0], "test_activity_per_dim": [0.3, 0.004, 0.9],
                        "test_num_images": 10000}}
    frame, source = dl.unit_table(card, z_mean=np.zeros((5, 3)))  # the card's figures win over the dashboard's
    assert frame["active"].tolist() == ["active", "inactive", "active"]
    assert "model card" in source and "10,000" in source
    assert dl.active_units_sentence(frame, source).startswith("2 of 3 latent dims are active: ")
    assert dl.sort_order(frame, "by dim") == [0, 1, 2] and dl.sort_order(frame, "by KL (largest first)") == [2, 0, 1]
    with pytest.raises(ValueError, match="sort must be one of"):
        dl.sort_order(frame, "by name")
    older = {"metrics": {"test_kl_per_dim": [0.5, 0.01]}}  # an older card: measured here, and said so
    z = np.stack([np.linspace(-1, 1, 50), np.full(50, 0.3)], 1)
    frame, source = dl.unit_table(older, z_mean=z)
    assert frame["activity"].tolist() == pytest.approx(np.var(z, axis=0).tolist())
    assert "50 test images encoded here" in source and "may differ" in source
    assert dl.unit_table(older)[0] is None


def test_units_charts_mark_the_threshold_and_follow_the_sort():
    frame, _ = dl.unit_table({"metrics": {"test_kl_per_dim": [0.5, 0.01, 2.0], "test_activity_per_dim": [0.3, 0.004, 0.9]}})
    kl, activity = (c.to_dict() for c in dl.units_charts(frame, "by KL (largest first)"))
    assert kl["encoding"]["x"]["sort"] == ["2", "0", "1"]
    rule = next(layer for layer in activity["layer"] if layer["mark"]["type"] == "rule")
    datasets = activity["datasets"]
    rows = next(iter(datasets.values()))
    assert rule["encoding"]["y"]["field"] == "threshold" and {r["threshold"] for r in rows} == {au.ACTIVE_UNIT_THRESHOLD}
    assert activity["layer"][0]["encoding"]["y"]["scale"]["type"] == "log"
    high, _ = dl.unit_table({"metrics": {"test_activity_per_dim": [0.5, 2.0]}})  # all far above the threshold
    bars = dl.units_charts(high)[1].to_dict()["layer"][0]["encoding"]["y"]["scale"]
    assert bars["domainMin"] < au.ACTIVE_UNIT_THRESHOLD  # the threshold line stays inside the chart


def decode_png(uri):
    assert uri.startswith("data:image/png;base64,")
    import base64

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))


def test_grid_html_keeps_every_image_the_same_size_and_names_rows_and_columns():
    x = np.random.default_rng(0).random((5, 4, 6, 1)).astype(np.float32)
    tiles = dl.tile_pngs(x, scale=3)
    page = dl.grid_html(tiles, 3, captions=["a", "a much longer caption <b>" * 5, "", "d", "e"],
                        col_headers=["one", "two", "three"], row_headers=["dim 0 · KL 1.2", "dim 1"])
    sizes = re.findall(r'<img src="[^"]+" width="(\d+)" height="(\d+)"', page)
    assert sizes == [("18", "12")] * 5  # captions do not change image sizes
    assert "grid-template-columns:max-content repeat(3, 20px)" in page
    assert page.count("border:1px solid") == 5  # a thin border: white images stay visible
    assert "&lt;b&gt;" in page and "<b>" not in page  # captions are text, not markup
    assert [html.unescape(h) for h in re.findall(r'vk-row-header"[^>]*>(.*?)</div>', page)] == ["dim 0 · KL 1.2", "dim 1"]
    first = decode_png(re.search(r'<img src="([^"]+)"', page).group(1))
    assert first.shape == (12, 18) and np.array_equal(first[::3, ::3], np.round(x[0, ..., 0] * 255).astype(np.uint8))
    big = dl.grid_html(tiles[:1], 1, fit=True)  # one large picture shrinks to the page's width
    assert "width:100%;height:auto" in big and 'class="vk-cell"' in big
    with pytest.raises(ValueError, match="col_headers needs 3 entries"):
        dl.grid_html(tiles, 3, col_headers=["one"])


def test_downloads_pngs_and_csvs_hold_the_shown_numbers():
    x = np.random.default_rng(1).random((6, 4, 4, 3)).astype(np.float32)
    png = Image.open(io.BytesIO(dl.grid_download_png(x, 3, scale=2)))
    assert png.size == (3 * (8 + 4) + 4, 2 * (8 + 4) + 4)  # 3 x 2 images, 2 px gaps (scaled)
    z = np.arange(6.0).reshape(3, 2)
    import pandas as pd

    table = pd.read_csv(io.BytesIO(dl.csv_bytes(dl.z_mean_frame(z, np.array([4, 5, 4]), ["a", "b", "a"]))))
    assert table.columns.tolist() == ["image", "label", "class", "z_0", "z_1"]
    assert table[["z_0", "z_1"]].to_numpy().tolist() == z.tolist() and table["class"].tolist() == ["a", "b", "a"]
    errors = pd.read_csv(io.BytesIO(dl.csv_bytes(dl.errors_frame([7, 2], [0.5, 1.25], "mse"))))
    assert errors.to_dict("list") == {"image": [7, 2], "error (mse)": [0.5, 1.25]}


def test_the_latent_scatter_names_its_axes_shows_the_image_and_the_manifold_region():
    z = np.random.default_rng(2).normal(size=(30, 4))
    frame, titles, _ = dl.latent_frame(z, [str(i % 3) for i in range(30)])
    x = np.random.default_rng(3).random((30, 8, 8, 1)).astype(np.float32)
    spec = dl.latent_scatter(frame, titles, images=dl.thumbnails(x), region=dl.manifold_region([-1.5, 0, 1.5])).to_dict()
    points, box = spec["layer"]
    tips = {t.get("title", t["field"]): t["field"] for t in points["encoding"]["tooltip"]}
    assert tips[titles[0]] == "x" and tips[titles[1]] == "y" and titles[0].startswith("PC 1")
    assert tips["image"] == "image"  # vega-tooltip draws a field named "image" as a picture
    rows = spec["datasets"][points.get("data", spec.get("data", {})).get("name")] if "data" in points else None
    rows = rows or next(v for v in spec["datasets"].values() if "image" in v[0])
    assert decode_png(rows[4]["image"])[::7, ::7].shape == (8, 8) and rows[4]["test image #"] == 4
    assert box["mark"]["type"] == "rect"
    box_rows = next(v for v in spec["datasets"].values() if "x2" in v[0])
    assert box_rows[0]["x"] == -1.5 and box_rows[0]["y2"] == 1.5
    assert dl.thumbnails(np.zeros((2, 65, 65, 1))) is None  # too large for a tooltip
    assert dl.thumbnails(x, max_bytes=len(dl.thumbnails(x)[0]) * 3) is None  # too many bytes for the chart
    json.dumps(spec)


def test_recognition_table_counts_each_class_against_a_confusion_matrix():
    rng = np.random.default_rng(0)
    labels = np.arange(200) % 4
    predicted = np.where(rng.random(200) < 0.7, labels, rng.integers(0, 4, 200))
    frame, overall = dl.recognition_table(labels, predicted, ["a", "b", "c", "d"])
    confusion = np.zeros((4, 4), int)
    np.add.at(confusion, (labels, predicted), 1)  # rows: drawn class, columns: seen as
    np.testing.assert_array_equal(frame["recognised"], np.diag(confusion))
    np.testing.assert_array_equal(frame["samples"], confusion.sum(1))
    np.testing.assert_allclose(frame["share"], np.diag(confusion) / confusion.sum(1))
    assert frame["most often seen as"].tolist() == [["a", "b", "c", "d"][k] for k in confusion.argmax(1)]
    assert overall == pytest.approx(np.trace(confusion) / 200)
    with pytest.raises(ValueError, match="same shape"):
        dl.recognition_table(labels, predicted[:-1], ["a", "b", "c", "d"])


def test_sample_quality_figures_and_sampler_words_from_the_card():
    card = {"metrics": {"test_sample_fd": 1234.5, "test_sample_precision": 0.25, "test_sample_recall": 1.0,
                        "test_sample_quality": "500 random samples"}}
    figures = {label: (value, help_text) for label, value, help_text in dl.sample_quality_figures(card)}
    assert list(figures) == ["Sample FD", "Sample precision", "Sample recall"]  # no class accuracy in this card
    assert figures["Sample FD"][0] == f"{dl.compact_number(1234.5, 2)} (lower is better)"
    assert figures["Sample precision"][0] == "25.0 %" and figures["Sample recall"][0] == "100.0 %"
    assert all("Measured on 500 random samples." in h for _, h in figures.values())
    assert dl.sample_quality_figures({"metrics": {}}) == []
    assert dl.sampler_words({"sampler": {"name": "gmm:5"}, "prior": "vamp"}).startswith("z ~ the gmm:5 mixture")
    assert dl.sampler_words({"prior": "mog", "sampler": None}) == "z ~ the learned 'mog' prior"
