"""Issue 5's variants: beta / controlled capacity, conditional VAE, IWAE, likelihoods, colour images."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from vae_keras import build_vae, data, exported, likelihoods
from vae_keras.cli import main
from vae_keras.errors import ConfigError
from vae_keras.export import export_model


class TestDiscretizedLogistic:
    @pytest.mark.parametrize("loc, scale", [(0.3, 0.05), (0.0, 0.001), (1.2, 0.3), (0.5, 1e-3), (0.5019, 1e-4), (-3.0, 0.01)])
    def test_masses_of_the_256_levels_sum_to_one(self, loc, scale):
        x = (np.arange(256) / 255.0).astype(np.float32).reshape(256, 1, 1, 1)
        params = np.concatenate([np.full_like(x, loc), np.full_like(x, np.log(scale))], axis=-1)
        log_p = keras.ops.convert_to_numpy(likelihoods.DiscretizedLogistic().log_prob(x, params))
        assert np.all(np.isfinite(log_p))
        assert np.exp(log_p.astype(np.float64)).sum() == pytest.approx(1.0, abs=2e-4)

    def test_bin_mass_matches_the_logistic_cdf(self):
        def cdf(v, loc, s):
            return 1 / (1 + np.exp(-(v - loc) / s))

        k, loc, s = np.array([0, 37, 128, 255]), 0.45, 0.2
        x = (k / 255.0).astype(np.float32).reshape(4, 1, 1, 1)
        params = np.concatenate([np.full_like(x, loc), np.full_like(x, np.log(s))], axis=-1)
        got = np.exp(keras.ops.convert_to_numpy(likelihoods.DiscretizedLogistic().log_prob(x, params)))
        h = 0.5 / 255
        want = [cdf(h, loc, s), cdf(37 / 255 + h, loc, s) - cdf(37 / 255 - h, loc, s),
                cdf(128 / 255 + h, loc, s) - cdf(128 / 255 - h, loc, s), 1 - cdf(1 - h, loc, s)]
        np.testing.assert_allclose(got, want, rtol=1e-4)

    def test_a_sharp_model_centred_on_each_pixel_and_the_scale_floor(self):
        k = np.random.default_rng(0).integers(0, 256, (4, 3, 3, 3))
        k[0, 0, 0, 0], k[0, 0, 0, 1] = 0, 255
        x = (k / 255).astype(np.float32)
        # Asked for scale 1e-4, the model uses its floor e^-7: a bin is then +-2.2 scales wide.
        params = np.concatenate([x, np.full_like(x, np.log(1e-4))], axis=-1)
        nll = -keras.ops.convert_to_numpy(likelihoods.DiscretizedLogistic().log_prob(x, params))
        t = (0.5 / 255) / np.exp(-7.0)
        sig = 1 / (1 + np.exp(-t))
        per_pixel = np.where((k == 0) | (k == 255), -np.log(sig), -np.log(2 * sig - 1))
        np.testing.assert_allclose(nll, per_pixel.reshape(4, -1).sum(axis=1), rtol=1e-4)


class TestCapacity:
    def test_training_loss_is_reconstruction_plus_gamma_times_the_kl_gap(self, mnist_small):
        vae = build_vae((28, 28, 1), latent_dim=3, hidden=(16,), seed=0, capacity_max=20.0, capacity_steps=10, capacity_gamma=50.0)
        vae.compile(optimizer="adam")
        x = data.to_float(mnist_small.x_test[:16])
        vae.optimizer.iterations.assign(4)
        losses = {k: float(v) for k, v in vae.compute_vae_losses(x, training=True).items()}
        assert float(vae.capacity()) == pytest.approx(10.0)
        assert losses["loss"] == pytest.approx(losses["reconstruction"] + 50.0 * abs(losses["kl"] - 10.0), rel=1e-5)

    def test_capacity_is_logged_per_epoch_and_pulls_the_kl_up(self, mnist_small):
        x = data.to_float(mnist_small.x_train)
        vae = build_vae((28, 28, 1), latent_dim=8, hidden=(64,), seed=0, capacity_max=25.0, capacity_steps=16, capacity_gamma=5.0)
        vae.compile(optimizer=keras.optimizers.Adam(2e-3))
        history = vae.fit(x, epochs=4, batch_size=64, verbose=0).history
        assert history["capacity"] == pytest.approx([8 / 16 * 25.0, 25.0, 25.0, 25.0])
        assert history["kl"][-1] > 15.0  # the KL follows the target instead of collapsing

    def test_cli_flags_reach_the_model(self, tmp_path):
        x = np.random.default_rng(0).integers(0, 256, (64, 8, 8), dtype=np.uint8)
        np.savez(tmp_path / "d.npz", x_train=x)
        assert main(["train", "--dataset", str(tmp_path / "d.npz"), "--epochs", "2", "--hidden", "8", "--latent-dim", "2",
                     "--capacity-max", "5", "--capacity-epochs", "1", "--eval-iw-samples", "0", "--out", str(tmp_path / "m"), "--verbose", "0"]) == 0
        history = exported.read_history(str(tmp_path / "m" / "d" / "1"))
        assert history["capacity"].tolist() == pytest.approx([5.0, 5.0])
        assert exported.read_card(str(tmp_path / "m" / "d" / "1"))["capacity_max"] == 5.0


@pytest.fixture(scope="module")
def cvae(mnist_small):
    keras.utils.set_random_seed(0)
    vae = build_vae((28, 28, 1), latent_dim=4, hidden=(64,), num_classes=10, binarize=True, seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(2e-3))
    vae.fit(mnist_small.pipeline("train", batch_size=64, with_labels=True), epochs=3, verbose=0)
    return vae


class TestConditional:
    def test_decoder_output_depends_on_the_label(self, cvae):
        z = np.zeros((10, 4), np.float32)
        means = keras.ops.convert_to_numpy(cvae.decode_mean(z, np.arange(10)))
        # Ten different digits from the same z: pairwise mean absolute differences are large.
        diffs = [np.abs(means[i] - means[j]).mean() for i in range(10) for j in range(i + 1, 10)]
        assert min(diffs) > 0.01

    def test_fit_without_labels_is_a_clear_error(self, cvae):
        with pytest.raises(ConfigError, match="trains on \\(images, labels\\) pairs"):
            cvae.fit(np.zeros((8, 28, 28, 1), np.float32), epochs=1, verbose=0)

    def test_keras_round_trip(self, cvae, tmp_path):
        cvae.save(tmp_path / "c.keras")
        loaded = keras.saving.load_model(tmp_path / "c.keras", safe_mode=True)
        x = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
        y = np.array([1, 5, 9], np.int32)
        np.testing.assert_array_equal(loaded.predict([x, y], verbose=0), cvae.predict([x, y], verbose=0))
        assert loaded.num_classes == 10

    def test_export_takes_labels_and_rejects_out_of_range_ones(self, cvae, tmp_path):
        path = export_model(cvae, tmp_path, "cvae", card_extra={"class_names": [str(i) for i in range(10)]})
        card = exported.read_card(path)
        assert card["conditional"] is True and card["num_classes"] == 10
        saved = tf.saved_model.load(path)
        for name in ("serving_default", "encode", "decode", "sample"):
            assert "label" in saved.signatures[name].structured_input_signature[1]
        vae = exported.ExportedVAE(path)
        a = vae.sample(4, seed=0, label=3)["x_mean"]
        b = vae.sample(4, seed=0, label=7)["x_mean"]
        assert not np.allclose(a, b)  # same z, other class, other images
        np.testing.assert_allclose(a, keras.ops.convert_to_numpy(cvae.decode_mean(vae.sample(4, seed=0, label=3)["z"], np.full(4, 3))), atol=1e-6)
        with pytest.raises(ConfigError, match=r"Label 10 is outside the trained range 0..9"):
            vae.sample(2, label=10)
        with pytest.raises(ConfigError, match="needs a label"):
            vae.reconstruct(np.zeros((1, 28, 28, 1), np.float32))
        with pytest.raises(tf.errors.InvalidArgumentError, match="label must be < num_classes = 10"):
            saved.signatures["decode"](z=tf.zeros([1, 4]), label=tf.constant([10]))

    def test_iw_evaluation_uses_the_labels(self, cvae, mnist_small):
        from vae_keras import evaluation

        x = data.binarize(mnist_small.x_test[:64], 0)
        right = evaluation.evaluate(cvae, x, iw_samples=20, labels=mnist_small.y_test[:64])
        wrong = evaluation.evaluate(cvae, x, iw_samples=20, labels=(mnist_small.y_test[:64] + 5) % 10)
        assert right["nll"] < wrong["nll"]  # the true labels explain the digits better
        with pytest.raises(ConfigError, match="labels=None"):
            evaluation.evaluate(cvae, x, iw_samples=2)

    def test_cli_conditional_train_and_sample_a_row_per_class(self, tmp_path, capsys):
        d = np.load(os.path.join(os.path.dirname(os.path.dirname(data.__file__)), "data_files", "mnist10k.npz"))
        np.savez(tmp_path / "d.npz", x_train=d["x_train"][:300], y_train=d["y_train"][:300],
                 x_test=d["x_test"][:50], y_test=d["y_test"][:50], class_names=np.array(list("abcdefghij")))
        assert main(["train", "--dataset", str(tmp_path / "d.npz"), "--conditional", "--epochs", "1", "--hidden", "16",
                     "--latent-dim", "2", "--eval-iw-samples", "3", "--out", str(tmp_path / "m"), "--verbose", "0"]) == 0
        model_dir = str(tmp_path / "m" / "d" / "1")
        card = exported.read_card(model_dir)
        assert card["class_names"] == list("abcdefghij") and card["conditional"] is True
        assert main(["sample", model_dir, "--label", "all", "--num", "3", "--output", str(tmp_path / "all.png")]) == 0
        assert Image.open(tmp_path / "all.png").size == (3 * 30 + 2, 10 * 30 + 2)  # a row per class
        assert main(["sample", model_dir, "--label", "c", "--num", "4", "--output", str(tmp_path / "c.png")]) == 0
        capsys.readouterr()
        assert main(["sample", model_dir, "--label", "12", "--output", str(tmp_path / "x.png")]) == 2
        assert "outside the trained range 0..9" in capsys.readouterr().err
        assert main(["sample", model_dir, "--output", str(tmp_path / "y.png")]) == 2
        assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()
        assert main(["evaluate", model_dir, "--iw-samples", "2", "--json"]) == 0

    def test_conditional_without_labels_in_the_dataset(self, tmp_path, capsys):
        np.savez(tmp_path / "n.npz", x_train=np.zeros((20, 8, 8), np.uint8))
        assert main(["train", "--dataset", str(tmp_path / "n.npz"), "--conditional", "--out", str(tmp_path / "m")]) == 2
        assert "--conditional needs labels" in capsys.readouterr().err


def _colour_folder(root, size, n_per_class=12):
    rng = np.random.default_rng(0)
    for c, colour in enumerate([(220, 40, 40), (40, 200, 60)]):
        folder = root / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(n_per_class):
            img = np.clip(rng.normal(colour, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(folder / f"{i}.png")


@pytest.mark.parametrize("size", [32, 64])
def test_rgb_image_folder_trains_with_conv_and_logistic_and_exports(tmp_path, size, capsys):
    _colour_folder(tmp_path / "imgs", size)
    assert main(["train", "--dataset", str(tmp_path / "imgs"), "--model", "conv", "--hidden", "8,16", "--likelihood", "logistic",
                 "--latent-dim", "4", "--epochs", "2", "--batch-size", "8", "--eval-iw-samples", "3",
                 "--out", str(tmp_path / "m"), "--verbose", "0"]) == 0
    path = str(tmp_path / "m" / "imgs" / "1")
    card = exported.read_card(path)
    assert card["image_shape"] == [size, size, 3] and card["likelihood"] == "logistic"
    assert card["likelihood_params"] == ["x_loc", "x_log_scale"] and card["metrics"]["test_bits_per_dim"] > 0
    vae = exported.ExportedVAE(path)
    dec = vae.decode(np.zeros((2, 4), np.float32))
    assert set(dec) == {"x_mean", "x_loc", "x_log_scale"} and dec["x_mean"].shape == (2, size, size, 3)
    assert main(["sample", path, "--num", "4", "--output", str(tmp_path / "g.png")]) == 0
    assert Image.open(tmp_path / "g.png").mode == "RGB"


def test_gaussian_likelihood_trains_and_exports_its_scale(tmp_path):
    x = np.random.default_rng(0).random((64, 8, 8, 1)).astype(np.float32)
    vae = build_vae((8, 8, 1), latent_dim=2, hidden=(16,), likelihood="gaussian")
    vae.compile(optimizer="adam")
    vae.fit(x, epochs=1, batch_size=32, verbose=0)
    path = export_model(vae, tmp_path, "g")
    dec = exported.ExportedVAE(path).decode(np.zeros((1, 2), np.float32))
    assert set(dec) == {"x_mean", "x_loc", "x_log_scale"}
    assert json.load(open(os.path.join(path, "assets.extra", "model_card.json")))["likelihood"] == "gaussian"


def test_tfds_colour_dataset_trains_with_conv(tmp_path, tfds_prepared_dir):
    """A TFDS colour dataset by name (prepared, mocked: no network here) through the CLI, conv + logistic."""
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=24, data_dir=tfds_prepared_dir):
        assert main(["train", "--dataset", "cifar10", "--model", "conv", "--hidden", "8,16", "--likelihood", "logistic",
                     "--latent-dim", "4", "--epochs", "1", "--batch-size", "8", "--eval-iw-samples", "2",
                     "--out", str(tmp_path), "--verbose", "0"]) == 0
    card = exported.read_card(str(tmp_path / "cifar10" / "1"))
    assert card["image_shape"] == [32, 32, 3] and card["dataset"] == "cifar10"
