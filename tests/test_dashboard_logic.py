"""Tests of vae_keras.dashboard.logic: the dashboard's computations, without Streamlit.

Expected values are written out independently (hand-computed numbers, PIL, numpy identities).
"""

import io
import json
import os
import statistics
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import vae_keras
from vae_keras.dashboard import logic as dl
from vae_keras.exported import ModelEntry


def test_importing_the_package_and_the_dashboards_logic_imports_neither_streamlit_nor_tensorflow():
    """The dashboard is an optional extra: `import vae_keras` (and the logic the pages use, and the models
    list the shell draws first) must work without Streamlit and before TensorFlow."""
    code = ("import sys\nimport vae_keras, vae_keras.cli, vae_keras.dashboard, vae_keras.dashboard.logic, vae_keras.exported\n"
            "print(sorted(m for m in ('streamlit', 'altair', 'tensorflow', 'keras') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout


def png(array, mode=None):
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def jpeg(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def decode_png(data):
    return Image.open(io.BytesIO(data))


# ------------------------------------------------------------------------------------------------
# Models folder and cards
# ------------------------------------------------------------------------------------------------


class TestModelsFolder:
    def test_command_line_beats_environment_beats_default(self, tmp_path):
        env = {dl.MODELS_DIR_ENV: str(tmp_path / "env")}
        assert dl.resolve_models_dir(["--models-dir", str(tmp_path / "cli")], env, "/d") == str(tmp_path / "cli")
        assert dl.resolve_models_dir([f"--models-dir={tmp_path / 'cli'}"], env, "/d") == str(tmp_path / "cli")
        assert dl.resolve_models_dir([], env, "/d") == str(tmp_path / "env")
        assert dl.resolve_models_dir([], {}, tmp_path / "default") == str(tmp_path / "default")

    def test_unknown_arguments_are_ignored_and_paths_made_absolute(self, monkeypatch, tmp_path):
        monkeypatch.chdir(tmp_path)
        assert dl.resolve_models_dir(["-q", "tests/x.py", "--models-dir", "rel"], {}, "/d") == str(tmp_path / "rel")

    def test_train_command_names_the_folder(self):
        assert dl.train_command() == "vae-keras train --dataset mnist-10k --epochs 5"
        assert dl.train_command("/a b").endswith("--out '/a b'")

    def test_models_table_and_descriptions(self):
        card = {"dataset": "mnist-10k", "latent_dim": 16, "likelihood": "bernoulli",
                "metrics": {"test_nll": 107.529, "test_nll_kind": "discrete", "epochs_trained": 20, "test_active_units": 12}}
        entries = [ModelEntry("a", 2, "/m/a/2", card, None), ModelEntry("a", 1, "/m/a/1", {"latent_dim": 2}, None),
                   ModelEntry("bad", 1, "/m/bad/1", None, "no saved_model.pb")]
        table = dl.models_table(entries)
        assert list(table["model"]) == ["a/2", "a/1"]  # broken entries are left out, order kept
        assert table.loc[0, "test NLL"] == pytest.approx(107.529)
        assert pd.isna(table.loc[1, "test NLL"])
        assert dl.describe_entry(entries[0]) == "mnist-10k · z=16 · test NLL 107.53"
        assert dl.describe_entry(entries[1]) == "unknown dataset · z=2 · no test NLL"
        # A density is never called a plain NLL, nor is a Bernoulli cross-entropy of intensities.
        density = ModelEntry("g", 1, "/m/g/1", {"latent_dim": 2, "likelihood": "gaussian", "metrics": {"test_nll": -50.0}}, None)
        assert dl.describe_entry(density) == "unknown dataset · z=2 · test NLL (density, not comparable with discrete models) -50.00"
        soft = {"latent_dim": 2, "likelihood": "bernoulli", "metrics": {"test_nll": 80.0, "test_nll_kind": "not_a_likelihood"}}
        assert dl.models_table([ModelEntry("s", 1, "/m/s/1", soft, None)]).loc[0, "test NLL is"] == "NLL (not a likelihood of the images)"

    def test_paths_are_shortened_for_display(self, tmp_path):
        assert dl.short_dataset(str(tmp_path / "colour.npz")) == "colour.npz"
        assert dl.short_dataset(str(tmp_path / "folder") + "/") == "folder"
        entry = ModelEntry("c", 1, "/m/c/1", {"dataset": str(tmp_path / "colour.npz"), "latent_dim": 3}, None)
        assert dl.describe_entry(entry).startswith("colour.npz · z=3")
        reason = f"'{tmp_path / 'models' / 'broken' / '1'}' has no model card"
        assert dl.short_reason(reason, tmp_path / "models") == "'broken/1' has no model card"

    def test_metric_ignores_missing_and_non_numbers(self):
        card = {"metrics": {"a": 1, "b": "x", "c": float("nan"), "d": True}}
        assert dl.metric(card, "a") == 1.0
        assert [dl.metric(card, k) for k in "bcde"] == [None] * 4
        assert dl.metric(None, "a") is None

    def test_card_summary(self):
        text = dl.card_summary({"dataset": "mnist-10k", "image_shape": [28, 28, 1], "latent_dim": 2,
                                "likelihood": "bernoulli", "network": "mlp", "hidden": [256, 128],
                                "parameters": 469268, "metrics": {"epochs_trained": 20}, "beta": 4.0})
        for part in ("trained on mnist-10k", "28×28×1 images", "latent dim 2", "bernoulli likelihood",
                     "mlp network (256, 128)", "469,268 parameters", "20 epochs", "β = 4.0"):
            assert part in text
        assert dl.card_summary({}) == "latent dim ?"
        assert "mixed_bfloat16 networks" in dl.card_summary({"dtype_policy": "mixed_bfloat16"})
        assert "networks" not in dl.card_summary({"dtype_policy": "float32"})  # the default goes unsaid

    def test_comparison_table(self):
        table = dl.comparison_table([("a/1", {"latent_dim": 2, "metrics": {"test_nll": 150.0}}),
                                     ("b/1", {"latent_dim": 16, "metrics": {"test_nll": 107.5, "test_kl": 17.6}})])
        assert list(table.index) == ["a/1", "b/1"]
        assert list(table["test NLL (nats)"]) == [150.0, 107.5]
        assert pd.isna(table.loc["a/1", "test KL (nats)"]) and table.loc["b/1", "test KL (nats)"] == 17.6
        assert dl.comparison_table([]).empty
        # bits/dim only for a discrete likelihood of discrete images, whatever an older card recorded.
        table = dl.comparison_table([
            ("bin/1", {"likelihood": "bernoulli", "test_binarized": True, "metrics": {"test_nll": 90.0, "test_bits_per_dim": 0.17}}),
            ("gauss/1", {"likelihood": "gaussian", "metrics": {"test_nll": -900.0, "test_bits_per_dim": -1.6}})])
        assert table.loc["bin/1", "bits/dim"] == 0.17 and pd.isna(table.loc["gauss/1", "bits/dim"])
        assert table.loc["gauss/1", "test NLL is"] == "NLL (density, not comparable with discrete models)"

    def test_final_figures_from_card_then_history(self):
        history = pd.DataFrame({"epoch": [1, 2], "loss": [200.0, 150.25], "val_loss": [190.0, 151.5]})
        figures = dl.final_figures({"likelihood": "bernoulli", "test_binarized": True, "latent_dim": 16,
                                    "metrics": {"test_nll": 107.529, "test_active_units": 12}}, history)
        assert [(label, value) for label, value, _ in figures] == [
            ("Test NLL", "107.53 nats"), ("Active units", "12 of 16"), ("Final train loss", "150.25 nats"),
            ("Final val loss", "151.50 nats")]
        assert "last epoch of history.csv" in figures[2][2]  # the card had no final_loss
        assert dl.final_figures({}, None) == []
        (label, value, help_text), = dl.final_figures({"likelihood": "gaussian", "metrics": {"test_nll": -5.0}}, None)
        assert label == "Test NLL (density, not comparable with discrete models)" and value == "-5.00 nats"
        assert "nats of density (not comparable with discrete models)" in help_text
        source = "10% of the training split held out (seed 0): 800 images; trained on the other 7,200"
        (label, value, help_text), = dl.final_figures({"metrics": {"final_val_loss": 99.0, "validation_data": source,
                                                                   "weights_epoch": 7}}, None)
        assert (label, value) == ("Final val loss", "99.00 nats")
        assert help_text == ("Negative ELBO on the validation data (nats per image) at epoch 7, the epoch whose weights "
                             f"were exported; validation data: {source} Exact value: 99.")

    def test_final_figures_are_short_with_units_and_bits_per_dim_beside_a_discrete_nll(self):
        """Issue 16 bug 1: the cards cut "1546…" and "-156…"; every value fits a card at 1024 px and has a unit."""
        card = {"likelihood": "bernoulli", "test_binarized": True, "latent_dim": 16,
                "metrics": {"test_nll": 1546.2345, "test_bits_per_dim": 0.1973, "test_elbo": -15634.71,
                            "test_kl": 17.6, "test_active_units": 9, "final_loss": 123456.7, "final_val_loss": 2.5e7,
                            "test_evaluation": "all 10,000 images of the test split, K=5000"}}
        figures = {label: (value, help_text) for label, value, help_text in dl.final_figures(card)}
        assert list(figures) == ["Test NLL", "Test bits/dim", "Test ELBO", "Test KL", "Active units",
                                 "Final train loss", "Final val loss"]
        assert [v for v, _ in figures.values()] == ["1,546.2 nats", "0.197 bits/dim", "-15,635 nats", "17.60 nats",
                                                    "9 of 16", "123,457 nats", "25.0 M nats"]
        assert all(len(v.split(" ")[0]) <= 8 for v, _ in figures.values())
        assert "Exact value: 1,546.2345." in figures["Test NLL"][1]  # the help text has what the card was cut to
        assert "all 10,000 images of the test split" in figures["Test NLL"][1]
        assert "last epoch" not in figures["Final train loss"][1]  # final_* are the exported weights' epoch
        # No bits/dim for a density: it is not a discrete likelihood.
        gauss = dict(card, likelihood="gaussian", test_binarized=False)
        assert "Test bits/dim" not in [label for label, _, _ in dl.final_figures(gauss)]

    def test_compact_numbers(self):
        assert [dl.compact_number(v) for v in (0.0, -156.789, 999.994, 1000.0, 9999.94, 10000.4, -1234567.0)] == [
            "0.00", "-156.79", "999.99", "1,000.0", "9,999.9", "10,000", "-1.2 M"]
        assert dl.compact_number(None) == "n/a" and dl.exact_number(-0.00001) == "0"

    def test_metrics_json_is_the_cards_metrics(self):
        import json

        card = {"dataset": "mnist-10k", "latent_dim": 2, "metrics": {"test_nll": 90.5, "epochs_trained": 3}}
        doc = json.loads(dl.metrics_json("a/1", card))
        assert doc["model"] == "a/1" and doc["metrics"] == card["metrics"] and doc["dataset"] == "mnist-10k"

    def test_default_traversal_dims_are_the_most_informative(self):
        card = {"metrics": {"test_kl_per_dim": [0.01, 2.0, 0.0, 1.5, 3.0]}}
        assert dl.default_traversal_dims(card, 5, k=3) == [1, 3, 4]
        assert dl.default_traversal_dims({}, 5, k=3) == [0, 1, 2]
        assert dl.default_traversal_dims(card, 4, k=3) == [0, 1, 2]  # card disagrees with the model: no guess
        assert dl.default_traversal_dims({}, 1, k=3) == [0]

    def test_class_names_only_for_conditional_models(self):
        assert dl.class_names({"conditional": False, "class_names": ["a", "b"]}) is None
        assert dl.class_names({"conditional": True, "num_classes": 2, "class_names": ["a", "b"]}) == ["a", "b"]
        assert dl.class_names({"conditional": True, "num_classes": 3}) == ["0", "1", "2"]
        assert dl.class_names({"conditional": True, "num_classes": 3, "class_names": ["a"]}) == ["0", "1", "2"]

    def test_condition_labels(self):
        assert dl.condition_labels(7, None, 3).tolist() == [0, 1, 2, 0, 1, 2, 0]
        labels = dl.condition_labels(3, 2, 3)
        assert labels.tolist() == [2, 2, 2] and labels.dtype == np.int32
        with pytest.raises(ValueError, match="outside 0..2"):
            dl.condition_labels(3, 3, 3)

    def test_model_stamp_changes_when_files_change(self, tmp_path):
        (tmp_path / "saved_model.pb").write_bytes(b"a")
        before = dl.model_stamp(tmp_path)
        (tmp_path / "saved_model.pb").write_bytes(b"ab")
        assert dl.model_stamp(tmp_path) != before


# ------------------------------------------------------------------------------------------------
# Test images
# ------------------------------------------------------------------------------------------------


class TestTestImages:
    def test_mnist_10k_as_floats_with_labels(self):
        test = dl.load_test_set("mnist-10k", (28, 28, 1), limit=50)
        raw = np.load(os.path.join(os.path.dirname(vae_keras.__file__), "data_files", "mnist10k.npz"))
        assert test.x.shape == (50, 28, 28, 1) and test.x.dtype == np.float32
        np.testing.assert_allclose(test.x[..., 0], raw["x_test"][:50] / 255.0, atol=1e-6)  # intensities, not binarized
        assert test.label_names([0, 1]) == [str(v) for v in raw["y_test"][:2]]

    def test_resized_to_the_model(self):
        assert dl.load_test_set("mnist-10k", (14, 14, 1), limit=3).x.shape == (3, 14, 14, 1)

    def test_colour_npz_keeps_rgb_and_class_names(self, tmp_path):
        x = np.zeros((20, 8, 8, 3), np.uint8)
        x[..., 0] = 255
        np.savez(tmp_path / "c.npz", x_train=x, y_train=np.arange(20) % 2, x_test=x[:4], y_test=[0, 1, 1, 0],
                 class_names=np.array(["cat", "dog"]))
        test = dl.load_test_set(str(tmp_path / "c.npz"), (8, 8, 3))
        assert test.x.shape == (4, 8, 8, 3) and test.x[0, 0, 0].tolist() == [1.0, 0.0, 0.0]
        assert test.label_names() == ["cat", "dog", "dog", "cat"]

    @pytest.mark.parametrize("spec, match", [(None, "names no dataset"), ("no/such/dir", "cannot be loaded")])
    def test_unusable_datasets_are_clear_errors(self, spec, match):
        with pytest.raises(dl.DataError, match=match):
            dl.load_test_set(spec, (28, 28, 1))

    def test_channel_mismatch(self):
        with pytest.raises(dl.DataError, match="1-channel images but the model takes 3"):
            dl.load_test_set("mnist-10k", (28, 28, 3))

    def test_pick_and_rank_indices(self):
        idx = dl.pick_indices(100, 10, seed=3)
        assert len(set(idx.tolist())) == 10 and idx.max() < 100
        assert np.array_equal(idx, dl.pick_indices(100, 10, seed=3))
        assert not np.array_equal(idx, dl.pick_indices(100, 10, seed=4))
        assert len(dl.pick_indices(5, 10)) == 5
        errors = np.array([3.0, 9.0, 1.0, 5.0])
        assert dl.rank_indices(errors, 2, worst=True).tolist() == [1, 3]
        assert dl.rank_indices(errors, 2, worst=False).tolist() == [2, 0]


# ------------------------------------------------------------------------------------------------
# Uploads
# ------------------------------------------------------------------------------------------------


class TestUploads:
    def test_png_to_grayscale_and_resized(self):
        img = np.zeros((56, 56), np.uint8)
        img[:28] = 255
        x = dl.decode_upload("half.png", png(img), (28, 28, 1))
        assert x.shape == (28, 28, 1) and x.dtype == np.float32
        assert x[:12].min() == pytest.approx(1.0) and x[16:].max() == pytest.approx(0.0)

    def test_colour_jpeg_for_an_rgb_model_and_luma_for_a_gray_one(self):
        img = np.zeros((10, 10, 3), np.uint8)
        img[..., 1] = 255  # pure green
        rgb = dl.decode_upload("g.jpg", jpeg(img), (10, 10, 3))
        assert rgb.shape == (10, 10, 3)
        assert rgb[5, 5, 1] > 0.95 and rgb[5, 5, 0] < 0.1
        gray = dl.decode_upload("g.png", png(img), (10, 10, 1))
        assert gray[5, 5, 0] == pytest.approx(0.587, abs=0.01)  # ITU-R 601 luma of green

    def test_transparent_pixels_become_black_and_invert(self):
        rgba = np.zeros((4, 4, 4), np.uint8)
        rgba[..., :3] = 255
        rgba[:2, :, 3] = 255  # top half opaque white, bottom half transparent white
        x = dl.decode_upload("t.png", png(rgba, mode="RGBA"), (4, 4, 1))
        assert x[:2].min() == pytest.approx(1.0) and x[2:].max() == pytest.approx(0.0)
        inv = dl.decode_upload("t.png", png(rgba, mode="RGBA"), (4, 4, 1), invert=True)
        np.testing.assert_allclose(inv, 1.0 - x, atol=1e-6)

    def test_sixteen_bit_png(self):
        img = np.full((6, 6), 65535, np.uint16)
        assert dl.decode_upload("16.png", png(img), (6, 6, 1)).min() == pytest.approx(1.0)

    def test_sixteen_bit_values_are_scaled_not_saturated(self):
        img = np.array([[1000, 30000]], np.uint16)
        x = dl.decode_upload("16.png", png(img), (1, 2, 1))
        np.testing.assert_allclose(x[0, :, 0], np.round(img[0] / 257.0) / 255.0, atol=1e-6)

    def test_an_upload_is_decoded_like_the_same_file_in_a_training_folder(self, tmp_path):
        from vae_keras import data

        rng = np.random.default_rng(0)
        rgba = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
        for i in range(3):  # a colour folder: the RGBA file plus two RGB ones
            arr = rgba if i == 0 else rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / f"{i}.png")
        folder = data.load_images(tmp_path)
        in_folder = np.concatenate([folder.x_train, folder.x_test])
        upload = dl.decode_upload("0.png", (tmp_path / "0.png").read_bytes(), (6, 5, 3))
        assert any(np.array_equal(upload, im.astype(np.float32) / 255.0) for im in in_folder)
        assert upload[..., 0].tolist() != (rgba[..., 0] / 255.0).tolist()  # alpha did change the pixels

    @pytest.mark.parametrize("name, payload, match", [
        ("empty.png", b"", "is empty"),
        ("notes.png", b"hello, I am text pretending to be a PNG", "not a PNG or JPEG"),
        ("pic.gif", b"GIF89a" + b"\x00" * 40, "not a PNG or JPEG"),
        ("cut.png", png(np.zeros((64, 64), np.uint8))[:60], "cannot be decoded as a PNG"),
        ("cut.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 30, "cannot be decoded as a JPEG"),
    ])
    def test_bad_files_are_clear_errors(self, name, payload, match):
        with pytest.raises(dl.UploadError, match=match) as info:
            dl.decode_upload(name, payload, (28, 28, 1))
        assert repr(name) in str(info.value)

    def test_oversized_file(self):
        payload = png(np.zeros((8, 8), np.uint8)) + b"\x00" * (dl.MAX_UPLOAD_BYTES + 1)
        with pytest.raises(dl.UploadError, match="limited to 5 MB"):
            dl.decode_upload("big.png", payload, (28, 28, 1))
        with pytest.raises(dl.UploadError, match="limited to 1 MB"):
            dl.decode_upload("x.png", b"\x89PNG" + b"0" * 2_000_000, (28, 28, 1), max_bytes=1024 * 1024)

    def test_too_many_pixels(self, monkeypatch):
        monkeypatch.setattr(dl.pictures, "MAX_UPLOAD_PIXELS", 100)  # the module that reads it
        with pytest.raises(dl.UploadError, match="11 x 10 pixels"):
            dl.decode_upload("wide.png", png(np.zeros((10, 11), np.uint8)), (28, 28, 1))

    def test_decode_uploads_keeps_good_files_and_reports_bad_ones(self):
        good = png(np.full((28, 28), 128, np.uint8))
        x, names, messages = dl.decode_uploads([("a.png", good), ("b.txt", b"text"), ("c.png", good)], (28, 28, 1))
        assert x.shape == (2, 28, 28, 1) and names == ["a.png", "c.png"]
        assert len(messages) == 1 and "'b.txt'" in messages[0]
        x, names, messages = dl.decode_uploads([("b.txt", b"text")], (28, 28, 1))
        assert x is None and names == [] and len(messages) == 1


# ------------------------------------------------------------------------------------------------
# Errors and pictures
# ------------------------------------------------------------------------------------------------


class TestErrorsAndPictures:
    def test_binary_cross_entropy_summed_over_pixels(self):
        x = np.array([[1.0, 0.0, 0.5, 1.0]]).reshape(1, 2, 2, 1)
        p = np.array([[0.9, 0.2, 0.5, 0.5]]).reshape(1, 2, 2, 1)
        expected = -(np.log(0.9) + np.log(0.8) + np.log(0.5) + np.log(0.5))
        assert dl.reconstruction_error(x, p, "bernoulli")[0] == pytest.approx(expected)
        assert "binary cross-entropy" in dl.error_name("bernoulli")

    def test_bce_is_finite_for_saturated_probabilities(self):
        x = np.array([1.0, 0.0]).reshape(1, 1, 2, 1)
        err = dl.reconstruction_error(x, 1.0 - x, "bernoulli")
        assert np.isfinite(err).all() and err[0] > 20

    def test_mse_per_pixel_for_other_likelihoods(self):
        x = np.zeros((2, 2, 2, 3))
        m = np.stack([np.full((2, 2, 3), 0.5), np.zeros((2, 2, 3))])
        assert dl.reconstruction_error(x, m, "gaussian").tolist() == [0.25, 0.0]
        assert "squared error" in dl.error_name("gaussian")

    def test_shape_mismatch(self):
        with pytest.raises(ValueError, match="differ in shape"):
            dl.reconstruction_error(np.zeros((1, 2, 2, 1)), np.zeros((1, 3, 3, 1)), "bernoulli")

    def test_upscale_is_nearest_neighbour(self):
        pic = np.array([[0, 255], [255, 0]], np.uint8)
        big = dl.upscale(pic, 3)
        assert big.shape == (6, 6) and (big[:3, :3] == 0).all() and (big[:3, 3:] == 255).all()
        assert dl.upscale(pic, 1) is pic
        assert dl.display_scale(28, target=84) == 3 and dl.display_scale(200) == 1

    def test_grid_png_gray_and_colour(self):
        gray = decode_png(dl.grid_png(np.ones((4, 5, 5, 1)), ncol=2, scale=2))
        assert gray.mode == "L" and gray.size == (2 * (2 * 7 + 2), 2 * (2 * 7 + 2))
        colour = np.zeros((3, 4, 4, 3), np.float32)
        colour[..., 2] = 1.0
        pic = decode_png(dl.grid_png(colour, ncol=3))
        assert pic.mode == "RGB"
        assert np.asarray(pic)[3, 3].tolist() == [0, 0, 255]  # blue stays blue

    def test_pairs_and_rows(self):
        x, xm = np.zeros((3, 4, 4, 1)), np.ones((3, 4, 4, 1))
        pairs = dl.pair_pngs(x, xm, scale=1)
        assert len(pairs) == 3
        arr = np.asarray(decode_png(pairs[0]))
        assert arr[3, 3] == 0 and arr[3, 3 + 6] == 255  # left: input, right: reconstruction
        rows = np.asarray(decode_png(dl.rows_png([x, xm], scale=1)))
        assert rows.shape == (2 * 6 + 2, 3 * 6 + 2)
        assert rows[3, 3] == 0 and rows[3 + 6, 3] == 255  # row 1 inputs, row 2 reconstructions


# ------------------------------------------------------------------------------------------------
# Latent space
# ------------------------------------------------------------------------------------------------


class TestLatentSpace:
    def test_pca_recovers_the_main_axes(self):
        rng = np.random.default_rng(0)
        z = rng.normal(size=(500, 5)) * np.array([5.0, 0.1, 2.0, 0.1, 0.1])
        points, explained = dl.pca_2d(z)
        assert points.shape == (500, 2)
        assert abs(np.corrcoef(points[:, 0], z[:, 0])[0, 1]) > 0.99
        assert abs(np.corrcoef(points[:, 1], z[:, 2])[0, 1]) > 0.99
        total = ((z - z.mean(0)) ** 2).sum()
        assert explained[0] == pytest.approx((points[:, 0] ** 2).sum() / total)
        assert explained[0] > explained[1] > 0

    def test_pca_signs_are_stable_and_degenerate_cases(self):
        z = np.random.default_rng(1).normal(size=(50, 4))
        a, _ = dl.pca_2d(z)
        b, _ = dl.pca_2d(z * 1.0)
        np.testing.assert_allclose(a, b)
        points, explained = dl.pca_2d(np.arange(5.0)[:, None])
        assert points.shape == (5, 2) and (points[:, 1] == 0).all() and explained.tolist() == [1.0, 0.0]
        assert dl.pca_2d(np.ones((3, 3)))[1].tolist() == [0.0, 0.0]
        with pytest.raises(ValueError):
            dl.pca_2d(np.zeros((0, 3)))

    def test_latent_frame_2d_direct_and_pca_above(self):
        z2 = np.array([[1.0, 2.0], [3.0, 4.0]])
        frame, titles, note = dl.latent_frame(z2, ["a", "b"])
        assert frame[["x", "y"]].to_numpy().tolist() == z2.tolist()
        assert list(frame["label"]) == ["a", "b"] and list(frame["image"]) == [0, 1]
        assert titles == ("z₁", "z₂") and "as it is" in note
        frame, titles, note = dl.latent_frame(np.random.default_rng(0).normal(size=(20, 6)))
        assert titles[0].startswith("PC 1") and "principal components" in note
        assert set(frame["label"]) == {"unlabelled"}

    def test_normal_quantiles(self):
        q = dl.normal_quantiles(5, mass=0.9)
        assert q[0] == pytest.approx(statistics.NormalDist().inv_cdf(0.05))
        assert q[2] == pytest.approx(0.0, abs=1e-12) and q[4] == pytest.approx(-q[0])
        assert dl.normal_quantiles(1) == [0.0]
        with pytest.raises(ValueError):
            dl.normal_quantiles(3, mass=1.0)

    def test_manifold_is_row_major_with_z2_decreasing_down(self):
        z = dl.manifold_z(3, mass=0.9)
        q = dl.normal_quantiles(3, 0.9)
        assert z.shape == (9, 2) and z.dtype == np.float32
        assert z[0].tolist() == pytest.approx([q[0], q[2]])  # top-left: smallest z1, largest z2
        assert z[2].tolist() == pytest.approx([q[2], q[2]])  # top-right
        assert z[8].tolist() == pytest.approx([q[2], q[0]])  # bottom-right

    def test_traversal_changes_one_dim_per_row(self):
        base = np.array([0.5, -1.0, 2.0])
        z = dl.latent_traversal(base, [2, 0], [-1.0, 1.0])
        assert z.tolist() == [[0.5, -1.0, -1.0], [0.5, -1.0, 1.0], [-1.0, -1.0, 2.0], [1.0, -1.0, 2.0]]
        with pytest.raises(ValueError, match="out of range"):
            dl.latent_traversal(base, [3], [0.0])

    def test_linear_and_spherical_interpolation(self):
        a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
        lin = dl.interpolate(a, b, 3)
        np.testing.assert_allclose(lin, [[1, 0], [0.5, 0.5], [0, 1]])
        sph = dl.interpolate(a, b, 3, spherical=True)
        np.testing.assert_allclose(sph[1], [np.sqrt(0.5), np.sqrt(0.5)], atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(sph, axis=1), 1.0, atol=1e-6)  # stays on the circle
        np.testing.assert_allclose(dl.interpolate(a, -a, 3, spherical=True), [[1, 0], [0, 0], [-1, 0]], atol=1e-6)
        with pytest.raises(ValueError):
            dl.interpolate(a, b, 1)


# ------------------------------------------------------------------------------------------------
# Histories and charts
# ------------------------------------------------------------------------------------------------


class TestHistories:
    HISTORY = pd.DataFrame({"epoch": [1, 2], "loss": [10.0, 8.0], "reconstruction": [7.0, 6.0], "kl": [3.0, 2.0],
                            "val_loss": [11.0, np.nan], "val_reconstruction": [8.0, 7.0], "val_kl": [3.0, 2.5],
                            "time": [1.0, 2.0]})

    def test_long_format(self):
        long = dl.history_long(self.HISTORY, model="m/1")
        assert list(long.columns) == ["epoch", "metric", "split", "value", "model"]
        assert len(long) == 11  # 6 columns x 2 epochs, minus one NaN
        row = long[(long.metric == "kl") & (long.split == "validation") & (long.epoch == 2)]
        assert row["value"].tolist() == [2.5] and row["model"].tolist() == ["m/1"]
        assert "time" not in set(long["metric"])

    def test_missing_history_and_columns(self):
        assert dl.history_long(None).empty and dl.history_long(pd.DataFrame()).empty
        only_loss = dl.history_long(pd.DataFrame({"loss": [3.0, 2.0]}))
        assert only_loss["epoch"].tolist() == [1, 2] and set(only_loss["split"]) == {"train"}

    def test_charts_are_interactive_altair_specs(self):
        long = pd.concat([dl.history_long(self.HISTORY, "a"), dl.history_long(self.HISTORY, "b")])
        spec = dl.loss_chart(long, "kl", color="model", dash="split").to_dict()
        assert spec["mark"]["type"] == "line"
        assert spec["encoding"]["color"]["field"] == "model" and spec["encoding"]["strokeDash"]["field"] == "split"
        assert spec["encoding"]["strokeDash"]["scale"]["range"][0] == [1, 0]  # train solid
        assert spec["title"]["subtitle"] == "solid: train · dashed: validation"
        assert any("select" in p for p in spec.get("params", []))  # .interactive(): zoom and pan
        data = spec["datasets"][next(iter(spec["datasets"]))]
        assert {r["metric"] for r in data} == {"kl"} and len(data) == 8
        frame, titles, _ = dl.latent_frame(np.zeros((3, 2)), ["0", "1", "1"])
        scatter = dl.latent_chart(frame, titles).to_dict()
        assert scatter["mark"]["type"] == "circle" and scatter["encoding"]["color"]["field"] == "label"
        bars = dl.kl_chart([0.1, 2.0]).to_dict()
        assert json.dumps(bars).count("KL (nats)") >= 1

    def test_kl_per_dim(self):
        assert dl.kl_per_dim({"metrics": {"test_kl_per_dim": [1, 2]}}).tolist() == [1.0, 2.0]
        assert dl.kl_per_dim({"metrics": {"test_kl_per_dim": "x"}}) is None
        assert dl.kl_per_dim({}) is None
