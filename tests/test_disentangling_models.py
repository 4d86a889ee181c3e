"""The disentangling objectives (beta-TCVAE, FactorVAE, DIP-VAE-I/II) and the conv64 network.

Independent checks: the total-correlation estimate against a numpy re-implementation and against the
closed form of a Gaussian aggregate posterior; DIP-VAE's covariance penalty against numpy; FactorVAE's
discriminator trained in the same step with its own optimizer, absent from the export, restored exactly
on resume; conv64's shapes and a fit on random 64x64 binary images. (Each objective's loss in every
combination with the other options is checked by tests/test_options.py.)
"""

import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from vae_keras import build_vae, networks, regularizers, training
from vae_keras import data as data_lib
from vae_keras.errors import ConfigError
from vae_keras.export import export_model
from vae_keras.networks import build_decoder, build_encoder

from reference_losses import np_mss_total_correlation
from training_helpers import InterruptAtEpoch

# ------------------------------------------------------------------------------------------------
# Total correlation (minibatch stratified sampling)
# ------------------------------------------------------------------------------------------------


def test_total_correlation_matches_a_numpy_reimplementation():
    rng = np.random.default_rng(0)
    z_mean = rng.normal(size=(12, 4))
    z_log_var = rng.normal(scale=0.5, size=(12, 4)) - 1.0
    z = z_mean + np.exp(0.5 * z_log_var) * rng.normal(size=(12, 4))
    got = regularizers.total_correlation(z, z_mean, z_log_var, dataset_size=500).numpy()
    np.testing.assert_allclose(got, np_mss_total_correlation(z, z_mean, z_log_var, 500), rtol=1e-4, atol=1e-4)


def test_mss_weights_are_a_mixture_of_the_batch():
    log_w = regularizers.mss_log_weights(5, 1000).numpy()
    np.testing.assert_allclose(np.exp(log_w).sum(axis=1), 1.0, rtol=1e-6)
    assert np.exp(log_w[2, 2]) == pytest.approx(1 / 1000)
    np.testing.assert_allclose(regularizers.mss_log_weights(1, 1000).numpy(), [[0.0]])  # one image: q(z) = q(z|x)


def _gaussian_aggregate_tc(rho, n, sigma=0.3):
    """The mean MSS estimate for posteriors N(mu_i, sigma^2 I) with mu_i ~ N(0, [[1, rho], [rho, 1]]), the batch
    being the whole dataset (N = n), and the closed form of the aggregate N(0, cov + sigma^2 I)."""
    rng = np.random.default_rng(1)
    covariance = np.array([[1.0, rho], [rho, 1.0]])
    z_mean = rng.multivariate_normal(np.zeros(2), covariance, size=n)
    z_log_var = np.full((n, 2), 2 * math.log(sigma))
    z = z_mean + sigma * rng.normal(size=(n, 2))
    estimate = float(np.mean(regularizers.total_correlation(z, z_mean, z_log_var, dataset_size=n).numpy()))
    return estimate, regularizers.gaussian_total_correlation(covariance + sigma**2 * np.eye(2))


@pytest.mark.parametrize("rho", [0.0, 0.8])
def test_total_correlation_approaches_a_gaussian_aggregates_closed_form(rho):
    """The aggregate posterior of the batch is a Gaussian convolved with N(0, sigma^2 I), whose TC is
    -0.5 log det(correlation): 0 when factorised, 0.39 nats at rho = 0.8. The estimate is biased upwards
    by each image's own posterior (a kernel density estimate's self term), which fades as the batch grows."""
    small, _ = _gaussian_aggregate_tc(rho, 500)
    estimate, expected = _gaussian_aggregate_tc(rho, 2000)
    assert estimate == pytest.approx(expected, abs=0.015), (estimate, expected)
    assert abs(estimate - expected) < abs(small - expected)  # approaches it
    if rho:
        assert expected > 0.35  # clearly positive: the estimate is not near the answer by accident


def test_total_correlation_refuses_a_batch_larger_than_the_dataset():
    z = np.zeros((4, 2), "float32")
    with pytest.raises(tf.errors.InvalidArgumentError, match="dataset_size"):
        regularizers.total_correlation(z, z, z, dataset_size=3)


# ------------------------------------------------------------------------------------------------
# DIP-VAE's covariance penalty
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dipvae1", "dipvae2"])
def test_dip_penalty_matches_numpy(kind):
    rng = np.random.default_rng(2)
    z_mean = rng.normal(size=(50, 4)) @ rng.normal(size=(4, 4))
    z_log_var = rng.normal(size=(50, 4))
    weights = rng.random(50) + 0.5
    w = weights[:, None] / weights.sum()
    mu = (w * z_mean).sum(0)
    cov = ((z_mean - mu) * w).T @ (z_mean - mu)  # the weighted covariance, written the other way round
    if kind == "dipvae2":
        cov = cov + np.diag((w * np.exp(z_log_var)).sum(0))
    off = cov - np.diag(np.diag(cov))
    expected = 3.0 * (off**2).sum() + 0.5 * ((np.diag(cov) - 1) ** 2).sum()
    covariance = regularizers.dip_covariance(z_mean, z_log_var, kind, sample_weight=weights)
    np.testing.assert_allclose(covariance.numpy(), cov, rtol=1e-4, atol=1e-5)
    assert float(regularizers.dip_penalty(covariance, 3.0, 0.5)) == pytest.approx(expected, rel=1e-4)


def test_dip_lambda_d_defaults_follow_kumar_et_al():
    one = build_vae((6, 6, 1), latent_dim=2, hidden=(8,), objective="dipvae1", lambda_od=2.0)
    two = build_vae((6, 6, 1), latent_dim=2, hidden=(8,), objective="dipvae2", lambda_od=2.0)
    given = build_vae((6, 6, 1), latent_dim=2, hidden=(8,), objective="dipvae1", lambda_od=2.0, lambda_d=0.5)
    assert (one.dip_lambda_d, two.dip_lambda_d, given.dip_lambda_d) == (20.0, 2.0, 0.5)


# ------------------------------------------------------------------------------------------------
# FactorVAE
# ------------------------------------------------------------------------------------------------

SHAPE = (8, 8, 1)


def _binary_images(n, shape=SHAPE, seed=0):
    return (np.random.default_rng(seed).random((n,) + shape) > 0.6).astype("float32")


def _factorvae(**kwargs):
    keras.utils.set_random_seed(0)
    vae = build_vae(SHAPE, latent_dim=3, hidden=(16,), objective="factorvae", gamma=5.0,
                    discriminator_hidden=(32, 32), seed=0, **kwargs)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    return vae


def test_factorvae_trains_its_discriminator_with_its_own_optimizer_in_the_same_step():
    vae = _factorvae()
    before = vae.discriminator.get_weights()
    vae_before = [w.copy() for w in vae.encoder.get_weights()]
    history = vae.fit(_binary_images(64), epochs=1, batch_size=16, verbose=0).history
    assert all(not np.allclose(a, b) for a, b in zip(before, vae.discriminator.get_weights()))
    assert not np.allclose(vae_before[0], vae.encoder.get_weights()[0])
    assert int(vae.discriminator_optimizer.iterations.numpy()) == int(vae.optimizer.iterations.numpy()) == 4
    # The model's optimizer holds no discriminator slot and the discriminator's no encoder one.
    discriminator_ids = {id(v) for v in vae.discriminator.weights}
    assert not discriminator_ids & {id(v) for v in vae.trainable_weights}
    assert {"tc", "discriminator_loss"} <= set(history)


def test_factorvae_tc_term_is_the_discriminators_logit_difference():
    vae = _factorvae()
    x = _binary_images(16)
    vae._latent_noise = lambda shape: keras.ops.zeros(shape)  # z = z_mean
    z_mean, _ = vae.encode(x)
    logits = vae.discriminator(z_mean).numpy()
    losses = vae.compute_vae_losses(x, training=False)
    assert float(losses["tc"]) == pytest.approx(float(np.mean(logits[:, 0] - logits[:, 1])), rel=1e-5, abs=1e-6)
    without = float(losses["reconstruction"] + losses["kl"])
    assert float(losses["loss"]) == pytest.approx(without + 5.0 * float(losses["tc"]), rel=1e-5)
    # The discriminator's loss: cross-entropy of q(z) samples as class 0 and permuted samples as class 1.
    assert float(losses["discriminator_loss"]) > 0


def test_permute_dims_shuffles_each_dimension_separately():
    vae = _factorvae()
    z = np.arange(40, dtype="float32").reshape(10, 4) + np.arange(4) * 1000
    permuted = keras.ops.convert_to_numpy(vae.permute_dims(z))
    for d in range(4):  # every column keeps its values
        np.testing.assert_array_equal(np.sort(permuted[:, d]), z[:, d])
    assert not all(np.array_equal(np.argsort(permuted[:, 0]), np.argsort(permuted[:, d])) for d in range(1, 4))


def test_the_export_and_its_keras_file_hold_no_discriminator(tmp_path):
    vae = _factorvae()
    vae.fit(_binary_images(32), epochs=1, batch_size=16, verbose=0)
    path = export_model(vae, tmp_path, "fvae")
    names = [name for name, _ in tf.train.list_variables(os.path.join(path, "variables", "variables"))]
    assert not [n for n in names if "discriminator" in n.lower()]
    exported_size = sum(int(np.prod(shape)) for name, shape in tf.train.list_variables(
        os.path.join(path, "variables", "variables")) if name.split("/")[-2:-1] != ["seed_generator_state"]
        and "VARIABLE_VALUE" in name)
    network_size = vae.encoder.count_params() + vae.decoder.count_params()
    assert exported_size <= network_size + 8, (exported_size, network_size)  # + the seed generators' states
    with open(os.path.join(path, "assets.extra", "model_card.json"), encoding="utf-8") as f:
        card = json.load(f)
    assert card["parameters"] == network_size and card["objective_options"] == {"gamma": 5.0, "discriminator_hidden": [32, 32]}
    reloaded = keras.saving.load_model(os.path.join(path, "assets.extra", "model.keras"))
    assert reloaded.discriminator is None and reloaded.objective == "factorvae"
    x = _binary_images(4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded(x)), keras.ops.convert_to_numpy(vae(x)), atol=1e-6)


def test_a_compiled_factorvae_round_trips_through_a_keras_file_with_its_discriminator(tmp_path):
    vae = _factorvae()
    vae.fit(_binary_images(32), epochs=1, batch_size=16, verbose=0)
    vae.save(tmp_path / "f.keras")
    loaded = keras.saving.load_model(tmp_path / "f.keras")
    for key in ("objective", "gamma", "discriminator_hidden", "beta", "seed"):
        assert loaded.get_config()[key] == vae.get_config()[key]
    assert loaded.discriminator_optimizer.learning_rate.numpy() == pytest.approx(1e-4)
    for a, b in zip(loaded.discriminator.get_weights(), vae.discriminator.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(loaded.discriminator_optimizer.variables, vae.discriminator_optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_discriminator_optimizer_without_factorvae_is_refused():
    vae = build_vae(SHAPE, latent_dim=2, hidden=(8,))
    with pytest.raises(ConfigError, match="discriminator_optimizer.*objective='elbo'"):
        vae.compile(optimizer="adam", discriminator_optimizer="adam")


# Exact resume with the discriminator: its weights, its Adam state and the permutation noise come back.
RESUME_CONFIG = {"latent_dim": 3, "hidden": [16], "batch_size": 32, "epochs": 2, "kl_warmup_epochs": 1.5,
                 "objective": "factorvae", "gamma": 6.0, "eval_iw_samples": 0, "verbose": 0, "name": "fresume",
                 "steps_per_execution": 2}


def test_an_interrupted_factorvae_run_resumes_to_the_uninterrupted_runs_weights(tmp_path, monkeypatch):
    small = data_lib.load_images("mnist-10k").subset(n_train=128, n_test=32)
    # The command line's discriminator is the paper's 6 x 1000; a small one keeps the checkpoints small here.
    build = networks.build_discriminator
    monkeypatch.setattr(networks, "build_discriminator", lambda latent_dim, hidden: build(latent_dim, (32, 32)))

    def run(tag, interrupt_at=None):
        config = training.TrainConfig(**RESUME_CONFIG, out=str(tmp_path / f"m-{tag}"), checkpoint_dir=str(tmp_path / f"c-{tag}"))
        if interrupt_at is not None:
            with pytest.raises(training.TrainingInterrupted):
                training.train(config, data=small, callbacks=[InterruptAtEpoch(interrupt_at)])
        return training.train(config, data=small)

    reference, resumed = run("whole"), run("resumed", interrupt_at=1)
    for model in (reference["model"], resumed["model"]):
        assert model.discriminator is not None
    for a, b in zip(resumed["model"].get_weights(), reference["model"].get_weights()):  # discriminator included
        np.testing.assert_allclose(a, b, atol=1e-5)
    for a, b in zip(resumed["model"].discriminator_optimizer.variables, reference["model"].discriminator_optimizer.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
    assert resumed["model"].discriminator.count_params() == 3 * 32 + 32 + 32 * 32 + 32 + 32 * 2 + 2
    assert resumed["history"][-1]["discriminator_loss"] == pytest.approx(reference["history"][-1]["discriminator_loss"], rel=1e-5)


# ------------------------------------------------------------------------------------------------
# beta-TCVAE and DIP-VAE through train(): N is the training split's size
# ------------------------------------------------------------------------------------------------


def test_train_passes_the_training_split_size_as_tcvae_n(tmp_path):
    small = data_lib.load_images("mnist-10k").subset(n_train=100, n_test=20)
    config = training.TrainConfig(latent_dim=2, hidden=[8], batch_size=50, epochs=1, objective="tcvae", beta=4.0,
                                  validation_split=0.2, eval_iw_samples=0, verbose=0, out=str(tmp_path), name="tc")
    result = training.train(config, data=small)
    assert result["model"].dataset_size == 80  # 100 images, 20% held out for validation
    assert np.isfinite(result["history"][-1]["tc"])


# ------------------------------------------------------------------------------------------------
# conv64 (Higgins et al. 2017)
# ------------------------------------------------------------------------------------------------


def test_conv64_has_the_papers_layers():
    encoder = build_encoder((64, 64, 1), 10, network="conv64")
    convs = [layer for layer in encoder.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [32, 32, 64, 64]
    assert all(c.kernel_size == (4, 4) and c.strides == (2, 2) for c in convs)
    assert tuple(convs[-1].output.shape) == (None, 4, 4, 64)
    assert encoder.get_layer("dense").units == 256
    assert [tuple(t.shape) for t in encoder.outputs] == [(None, 10), (None, 10)]
    decoder = build_decoder((64, 64, 3), 10, params_per_channel=2, network="conv64")
    assert tuple(decoder.output.shape) == (None, 64, 64, 6)
    deconvs = [layer for layer in decoder.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert [d.filters for d in deconvs] == [64, 32, 32, 6] and decoder.get_layer("dense_map").units == 4 * 4 * 64


def test_conv64_fits_random_64x64_binary_images():
    x = _binary_images(32, (64, 64, 1), seed=3)
    keras.utils.set_random_seed(0)
    vae = build_vae((64, 64, 1), latent_dim=10, network="conv64", objective="tcvae", dataset_size=32, beta=6.0, seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = vae.fit(x, epochs=3, batch_size=16, verbose=0).history
    assert np.all(np.isfinite(history["loss"])) and history["loss"][-1] < history["loss"][0]
    assert keras.ops.convert_to_numpy(vae(x[:2])).shape == (2, 64, 64, 1)


@pytest.mark.parametrize("shape, hidden, match", [((28, 28, 1), None, r"64x64 images. Received image_shape=\(28, 28, 1\)"),
                                                  ((64, 64, 1), (32, 64), "four conv filter counts|4 conv filter counts")])
def test_conv64_refuses_other_sizes(shape, hidden, match):
    with pytest.raises(ConfigError, match=match):
        build_vae(shape, latent_dim=10, network="conv64", hidden=hidden)
