"""Two stochastic layers (vae_keras.models.hierarchical): the importance-weighted estimate of the joint
model converges to the exact log p(x) of a linear-Gaussian hierarchy; round trips, export, training, CLI.

The loss formula of every option combined with ``latent_layers`` is checked in tests/test_options.py.
"""

import json
import os

import keras
import numpy as np
import pytest

from vae_keras import build_vae, data
from vae_keras.evaluation import iw_log_likelihood
from vae_keras.likelihoods import Gaussian
from vae_keras.models.hierarchical import HierarchicalVAE

# ------------------------------------------------------------------------------------------------
# THE test: a linear-Gaussian two-layer model, whose log p(x) is known in closed form
# ------------------------------------------------------------------------------------------------

DX, D1, D2 = 4, 3, 2  # x is a 2 x 2 x 1 image


def _np_log_normal_full(x, mean, cov):
    d = x - mean
    _, logdet = np.linalg.slogdet(cov)
    return -0.5 * (len(mean) * np.log(2 * np.pi) + logdet + np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d))


def _dense(inputs, units, kernel, bias):
    layer = keras.layers.Dense(units)
    out = layer(inputs)
    layer.set_weights([np.asarray(kernel, "float32"), np.asarray(bias, "float32")])
    return out


def _linear_gaussian_model(rng):
    """A HierarchicalVAE with linear networks, set by hand to p(z2) = N(0, I), p(z1|z2) = N(A z2 + a, diag s1),
    p(x|z1) = N(B z1 + b, diag s0^2) (the gaussian likelihood's second parameter is the log standard deviation),
    and an encoder made deliberately imperfect: its means shrunk 10% from the exact posterior means, its
    variances 1.5 times the exact posterior's diagonal (which also ignores the posterior's correlations).

    Returns (model, exact mean of x, exact covariance of x): p(x) = N(B a + b, B (A A^T + diag s1) B^T + diag s0^2).
    """
    A, a = rng.normal(size=(D1, D2)), rng.normal(size=D1)
    s1 = np.array([0.5, 0.8, 0.3]) ** 2
    B, b = rng.normal(size=(DX, D1)), rng.normal(size=DX)
    s0 = np.array([0.4, 0.6, 0.5, 0.7])
    cov_z1 = A @ A.T + np.diag(s1)
    mean_x, cov_x = B @ a + b, B @ cov_z1 @ B.T + np.diag(s0 ** 2)
    # The exact posteriors (Gaussian conditioning), which the encoder approximates on purpose badly.
    gain1 = cov_z1 @ B.T @ np.linalg.inv(cov_x)  # E[z1|x] = a + gain1 (x - mean_x)
    var1 = np.diag(cov_z1 - gain1 @ B @ cov_z1)
    gain2 = A.T @ np.linalg.inv(cov_z1)  # E[z2|z1] = gain2 (z1 - a)
    var2 = np.diag(np.eye(D2) - gain2 @ A)

    x_in = keras.Input((2, 2, 1))
    flat = keras.layers.Flatten()(x_in)
    encoder = keras.Model(x_in, [_dense(flat, D1, 0.9 * gain1.T, a - 0.9 * gain1 @ mean_x + 0.1),
                                 _dense(flat, D1, np.zeros((DX, D1)), np.log(1.5 * var1))])
    z1 = keras.Input((D1,))
    q_z2 = keras.Model(z1, [_dense(z1, D2, 0.9 * gain2.T, -0.9 * gain2 @ a), _dense(z1, D2, np.zeros((D1, D2)), np.log(1.5 * var2))])
    z2 = keras.Input((D2,))
    p_z1 = keras.Model(z2, [_dense(z2, D1, A.T, a), _dense(z2, D1, np.zeros((D2, D1)), np.log(s1))])
    z1_dec = keras.Input((D1,))
    loc = keras.layers.Reshape((2, 2, 1))(_dense(z1_dec, DX, B.T, b))
    log_scale = keras.layers.Reshape((2, 2, 1))(_dense(z1_dec, DX, np.zeros((D1, DX)), np.log(s0)))
    decoder = keras.Model(z1_dec, keras.layers.Concatenate()([loc, log_scale]))  # [x_loc, x_log_scale] channels
    model = HierarchicalVAE(encoder, decoder, [q_z2], [p_z1], likelihood=Gaussian("learned"), seed=0)
    return model, mean_x, cov_x


def test_iw_estimate_converges_to_the_exact_log_px_of_a_linear_gaussian_hierarchy():
    """Fails when a term of the joint importance weight is wrong (dropping log p(z1|z2), or reading the
    likelihood's log-scale as a log-variance, leaves a gap that does not close as K grows)."""
    rng = np.random.default_rng(0)
    model, mean_x, cov_x = _linear_gaussian_model(rng)
    n = 200
    x = rng.multivariate_normal(mean_x, cov_x, size=n)
    exact = _np_log_normal_full(x, mean_x, cov_x)
    images = x.reshape(n, 2, 2, 1).astype("float32")
    gaps, rms, stderr = [], [], []
    for k in (1, 10, 100, 1000):
        error = exact - iw_log_likelihood(model, images, num_samples=k, batch_size=n, seed=1)["log_px"]
        gaps.append(error.mean())
        rms.append(np.sqrt(np.mean(error ** 2)))
        stderr.append(error.std() / np.sqrt(n))
    assert gaps[0] > 1.0, gaps  # the encoder is imperfect: K = 1 (the ELBO) is well below log p(x)
    assert gaps[0] > gaps[1] > gaps[2] > gaps[3], gaps  # the bound tightens with K ...
    assert rms[0] > rms[1] > rms[2] > rms[3], rms
    assert abs(gaps[3]) < 3 * stderr[3] + 1e-3, (gaps, stderr)  # ... to log p(x), within Monte-Carlo error at K = 1000
    assert rms[3] < 0.1, rms


def test_top_latent_interface_follows_the_means():
    """encode is q(z2|z1) at z1 = E[z1|x]; decode(z2) is p(x|z1) at z1 = E[z1|z2] (composed here from the networks)."""
    model, _, _ = _linear_gaussian_model(np.random.default_rng(0))
    x = np.random.default_rng(1).normal(size=(5, 2, 2, 1)).astype("float32")
    m1, _ = model.encoder(x)
    expected_mean, expected_log_var = model.latent_encoders[0](m1)
    z_mean, z_log_var = model.encode(x)
    np.testing.assert_allclose(z_mean, expected_mean, rtol=1e-6)
    np.testing.assert_allclose(z_log_var, expected_log_var, rtol=1e-6)
    z2 = np.random.default_rng(2).normal(size=(5, D2)).astype("float32")
    np.testing.assert_allclose(model.decode(z2), model.decoder(model.latent_decoders[0](z2)[0]), rtol=1e-6)
    assert model.latent_dim == D2 and model.latent_dims == (D1, D2) and model.latent_layers == 2


def test_mismatched_latent_networks_are_refused_with_their_sizes():
    model, _, _ = _linear_gaussian_model(np.random.default_rng(0))
    with pytest.raises(Exception, match=r"latent_decoders\[0\] must map z_2 \[B, 2\] to \[mean, log_var\] of size 3"):
        HierarchicalVAE(model.encoder, model.decoder, model.latent_encoders, [model.latent_encoders[0]])


# ------------------------------------------------------------------------------------------------
# A trained two-layer model: fit, round trip, export
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(mnist_small):
    keras.utils.set_random_seed(0)
    vae = build_vae((28, 28, 1), latent_dim=(8, 4), latent_layers=2, hidden=(32,), binarize=True, seed=0,
                    objective="iwae", iw_samples=3)
    vae.compile(optimizer=keras.optimizers.Adam(3e-3))
    vae.initial_latent_weights = [net.get_weights() for net in vae.latent_encoders + vae.latent_decoders]
    history = vae.fit(data.to_float(mnist_small.x_train), epochs=4, batch_size=64, verbose=0).history
    return vae, history


def test_a_tiny_fit_reduces_the_loss(trained):
    """Fails when the gradient does not reach the upper layers' networks (their weights would stay as built)."""
    vae, history = trained
    assert history["loss"][-1] < history["loss"][0] - 20, history["loss"]
    for net, before in zip(vae.latent_encoders + vae.latent_decoders, vae.initial_latent_weights):
        assert all(not np.allclose(w, w0) for w, w0 in zip(net.get_weights(), before)), net.name


def test_keras_round_trip_gives_identical_outputs(trained, mnist_small, tmp_path):
    vae, _ = trained
    path = str(tmp_path / "h.keras")
    vae.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, HierarchicalVAE) and loaded.latent_dims == (8, 4) and loaded.objective == "iwae"
    x = data.binarize(data.to_float(mnist_small.x_test[:16]), seed=0)
    for a, b in zip(vae.encode(x), loaded.encode(x)):
        np.testing.assert_array_equal(a, b)
    z = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    np.testing.assert_array_equal(vae.decode(z), loaded.decode(z))
    estimates = [iw_log_likelihood(model, x, num_samples=20, seed=3)["log_px"] for model in (vae, loaded)]
    np.testing.assert_allclose(estimates[0], estimates[1], rtol=1e-6)


def test_export_signatures_work_on_the_top_latent(trained, mnist_small, tmp_path):
    import tensorflow as tf

    from vae_keras.export import export_model

    vae, _ = trained
    version = export_model(vae, tmp_path, "hier")
    card = json.load(open(os.path.join(version, "assets.extra", "model_card.json")))
    assert card["latent_dim"] == 4 and card["model_class"] == "HierarchicalVAE"
    saved = tf.saved_model.load(version)
    x = data.to_float(mnist_small.x_test[:5])
    encoded = saved.signatures["encode"](x=tf.constant(x))
    np.testing.assert_allclose(encoded["z_mean"], vae.encode(x)[0], rtol=1e-5, atol=1e-6)
    z = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    np.testing.assert_allclose(saved.signatures["decode"](z=tf.constant(z))["x_mean"], vae.decode_mean(z), rtol=1e-5, atol=1e-6)
    sample = saved.signatures["sample"](num_samples=tf.constant(7), seed=tf.constant(0))
    assert sample["x_mean"].shape == (7, 28, 28, 1) and sample["z"].shape == (7, 4)
    assert saved.signatures["serving_default"](x=tf.constant(x))["x_mean"].shape == (5, 28, 28, 1)
    # The log_weights signature samples every layer (noise over all of them, bottom first): the joint model's
    # importance weights, the same as the library's on the same noise.
    binary = (x > 0.5).astype("float32")
    log_w = saved.signatures["log_weights"](x=tf.constant(binary), num_samples=tf.constant(6), seed=tf.constant(3))["log_w"]
    z_mean, z_log_var = vae._first_posterior(binary)
    eps = tf.random.stateless_normal([6, 5, vae._noise_dim], seed=[3, 0])
    expected = sum(t * s for t, s in zip(vae._log_weight_terms(binary, None, z_mean, z_log_var, eps), (1, 1, -1)))
    assert log_w.shape == (6, 5)
    np.testing.assert_allclose(log_w, expected, rtol=1e-5, atol=1e-3)


def test_cli_trains_two_layers_end_to_end_on_mnist_10k(tmp_path, capsys):
    from vae_keras import exported
    from vae_keras.cli import main

    assert main(["train", "--dataset", "mnist-10k", "--latent-layers", "2", "--latent-dim", "8,4", "--hidden", "32",
                 "--epochs", "1", "--batch-size", "500", "--eval-iw-samples", "2", "--out", str(tmp_path), "--name", "h2",
                 "--verbose", "0"]) == 0
    version = tmp_path / "h2" / "1"
    card = exported.read_card(str(version))
    assert card["latent_dim"] == 4 and np.isfinite(card["metrics"]["test_nll"])
    assert json.loads((version / "assets.extra" / "config.json").read_text())["latent_dim"] == [8, 4]
    assert exported.ExportedVAE(str(version)).sample(3)["x_mean"].shape == (3, 28, 28, 1)
