"""The importance-weighted estimator against a model whose log-likelihood is known in closed form.

A linear-Gaussian VAE (probabilistic PCA): p(z) = N(0, I), p(x|z) = N(W z + b, s^2 I), so
p(x) = N(b, W W^T + s^2 I) exactly. With W's columns orthogonal the true posterior is diagonal,
so an encoder can represent it exactly (then every importance weight equals p(x)), or be made
deliberately wrong (then the ELBO is below log p(x) and the IW estimate climbs towards it with K).
"""

import keras
import numpy as np
import pytest

from vae_keras import VAE, evaluation, likelihoods

D_X, D_Z, SIGMA = 6, 2, 0.5


def _ppca(rng):
    q, _ = np.linalg.qr(rng.normal(size=(D_X, D_Z)))
    w = q * np.array([2.0, 1.2])  # orthogonal columns
    b = rng.normal(0, 0.5, D_X)
    return w.astype(np.float64), b.astype(np.float64)


def _exact_log_px(x, w, b):
    cov = w @ w.T + SIGMA**2 * np.eye(D_X)
    diff = x.reshape(len(x), -1) - b
    _, logdet = np.linalg.slogdet(cov)
    maha = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(cov), diff)
    return -0.5 * (D_X * np.log(2 * np.pi) + logdet + maha)


def _linear_vae(w, b, mean_shift=0.0, var_scale=1.0):
    """Decoder x = W z + b; encoder = the exact posterior, optionally shifted / mis-scaled."""
    m = w.T @ w + SIGMA**2 * np.eye(D_Z)  # diagonal because W's columns are orthogonal
    m_inv = np.linalg.inv(m)
    enc_kernel = (m_inv @ w.T).T  # x -> z_mean
    enc_bias = -(m_inv @ w.T @ b) + mean_shift
    post_log_var = np.log(np.diag(SIGMA**2 * m_inv) * var_scale)

    x_in = keras.Input((D_X, 1, 1))
    flat = keras.layers.Flatten()(x_in)
    z_mean = keras.layers.Dense(D_Z, name="z_mean")(flat)
    z_log_var = keras.layers.Dense(D_Z, name="z_log_var")(flat)
    encoder = keras.Model(x_in, [z_mean, z_log_var])
    encoder.get_layer("z_mean").set_weights([enc_kernel.astype(np.float32), enc_bias.astype(np.float32)])
    encoder.get_layer("z_log_var").set_weights([np.zeros((D_X, D_Z), np.float32), post_log_var.astype(np.float32)])

    z_in = keras.Input((D_Z,))
    h = keras.layers.Dense(D_X, name="x_params")(z_in)
    decoder = keras.Model(z_in, keras.layers.Reshape((D_X, 1, 1))(h))
    decoder.get_layer("x_params").set_weights([w.T.astype(np.float32), b.astype(np.float32)])
    return VAE(encoder, decoder, likelihood=likelihoods.Gaussian(scale=SIGMA))


@pytest.fixture
def ppca_data():
    rng = np.random.default_rng(0)
    w, b = _ppca(rng)
    z = rng.normal(size=(40, D_Z))
    x = z @ w.T + b + SIGMA * rng.normal(size=(40, D_X))
    return w, b, x.reshape(40, D_X, 1, 1).astype(np.float32)


def test_exact_posterior_gives_the_exact_log_likelihood_for_any_k(ppca_data):
    w, b, x = ppca_data
    vae = _linear_vae(w, b)
    exact = _exact_log_px(x, w, b)
    for k in (1, 7):
        got = evaluation.iw_log_likelihood(vae, x, num_samples=k, batch_size=16, seed=1)
        np.testing.assert_allclose(got["log_px"], exact, atol=2e-4)
        np.testing.assert_allclose(got["elbo"], exact, atol=2e-4)
    # Each importance weight on its own, not only their logsumexp: w_k = p(x|z_k) p(z_k) / q(z_k|x) = p(x).
    log_w = keras.ops.convert_to_numpy(vae.log_importance_weights(x, 5, seed=keras.random.SeedGenerator(2)))
    np.testing.assert_allclose(log_w, np.broadcast_to(exact, log_w.shape), atol=2e-4)


def test_estimate_converges_to_the_exact_value_and_the_elbo_stays_below(ppca_data):
    w, b, x = ppca_data
    vae = _linear_vae(w, b, mean_shift=0.8, var_scale=3.0)  # a poor posterior approximation
    exact = _exact_log_px(x, w, b)
    gaps = {}
    for k in (1, 10, 100, 2000):
        got = evaluation.iw_log_likelihood(vae, x, num_samples=k, batch_size=16, max_decodes=1600, seed=3)
        gaps[k] = float(np.mean(exact - got["log_px"]))
        # The ELBO (mean log-weight over 2000 samples is accurate) never exceeds log p(x).
        if k == 2000:
            assert np.all(got["elbo"] <= exact + 0.02)
            assert np.mean(exact - got["elbo"]) > 0.3  # the wrong posterior really costs something
    assert gaps[1] > gaps[10] > gaps[100] > gaps[2000]
    assert gaps[2000] < 0.02


def test_seeded_estimates_repeat_and_chunking_does_not_change_the_result(ppca_data):
    w, b, x = ppca_data
    vae = _linear_vae(w, b, mean_shift=0.5, var_scale=2.0)
    a = evaluation.iw_log_likelihood(vae, x, num_samples=50, batch_size=40, max_decodes=100000, seed=9)["log_px"]
    b_ = evaluation.iw_log_likelihood(vae, x, num_samples=50, batch_size=40, max_decodes=100000, seed=9)["log_px"]
    np.testing.assert_array_equal(a, b_)
    # Chunks of 5 samples merged by a running logsumexp: same estimator, different noise draws.
    c = evaluation.iw_log_likelihood(vae, x, num_samples=50, batch_size=40, max_decodes=200, seed=9)["log_px"]
    assert abs(np.mean(c) - np.mean(a)) < 0.05


def test_evaluate_reports_consistent_figures_and_calls_a_gaussian_a_density(ppca_data):
    w, b, x = ppca_data
    vae = _linear_vae(w, b, mean_shift=0.5, var_scale=2.0)
    result = evaluation.evaluate(vae, x, iw_samples=20, batch_size=16)
    exact = _exact_log_px(x, w, b)
    assert -np.mean(exact) - 0.01 <= result["nll"] <= -np.mean(exact) + 0.5
    assert result["elbo"] < np.mean(exact) - 0.05  # the shifted posterior's ELBO is below the exact log p(x)
    # A Gaussian density is not a probability of the images: no bits/dim, and it says so.
    assert result["nll_kind"] == evaluation.DENSITY and result["bits_per_dim"] is None
    assert result["nll_meaning"] == "nats of density (not comparable with discrete models)"
    assert len(result["kl_per_dim"]) == D_Z and result["kl"] == pytest.approx(sum(result["kl_per_dim"]))
    assert result["active_units"] == 2 and result["num_images"] == 40
    # The activity behind the count (the card's test_activity_per_dim): the covariance diagonal of the posterior means.
    z_mean = np.asarray(vae.encode(x)[0], np.float64)
    assert result["activity_per_dim"] == pytest.approx(np.diag(np.cov(z_mean.T, bias=True)).tolist(), rel=1e-5)
    assert result["active_units"] == sum(a > 0.01 for a in result["activity_per_dim"])


def test_bits_per_dim_only_for_a_discrete_likelihood_of_discrete_images():
    kind = evaluation.nll_kind
    on_grid = np.arange(256, dtype=np.float32) / np.float32(255)
    assert kind("bernoulli", np.array([0.0, 1.0, 1.0])) == kind("bernoulli", None, binarized=True) == evaluation.DISCRETE
    assert kind("bernoulli", np.array([0.0, 0.5])) == evaluation.NOT_A_LIKELIHOOD
    assert kind("bernoulli", None) is None and kind("logistic", None) is None  # depends on the images
    assert kind(likelihoods.DiscretizedLogistic(), on_grid) == kind("logistic", on_grid) == evaluation.DISCRETE
    assert kind("logistic", on_grid + 0.3 / 255) == evaluation.DENSITY
    assert kind(likelihoods.DiscretizedLogistic(num_levels=4), on_grid) == evaluation.DENSITY  # not its 4 levels
    assert kind(likelihoods.DiscretizedLogistic(num_levels=4), np.array([0, 1 / 3, 2 / 3, 1], np.float32)) == evaluation.DISCRETE
    assert kind("gaussian", np.array([0.0, 1.0])) == kind(likelihoods.Gaussian()) == evaluation.DENSITY
    # Model cards: what training recorded, else what the card implies.
    assert evaluation.card_nll_kind({"metrics": {"test_nll_kind": "density"}, "likelihood": "bernoulli"}) == "density"
    assert evaluation.card_nll_kind({"likelihood": "bernoulli", "test_binarized": True}) == evaluation.DISCRETE
    assert evaluation.card_nll_kind({"likelihood": "bernoulli", "test_binarized": False}) is None
    assert evaluation.card_nll_kind({"likelihood": "gaussian"}) == evaluation.DENSITY


def test_a_bernoulli_model_on_intensities_reports_no_bits_per_dim():
    from vae_keras import build_vae

    vae = build_vae((4, 4, 1), latent_dim=2, hidden=(8,), seed=0)
    x = np.random.default_rng(0).random((10, 4, 4, 1)).astype(np.float32)
    soft = evaluation.evaluate(vae, x, iw_samples=2)
    assert soft["nll_kind"] == evaluation.NOT_A_LIKELIHOOD and soft["bits_per_dim"] is None
    assert "not a likelihood of the images" in soft["nll_meaning"]
    hard = evaluation.evaluate(vae, (x > 0.5).astype(np.float32), iw_samples=2)
    assert hard["nll_kind"] == evaluation.DISCRETE
    assert hard["bits_per_dim"] == pytest.approx(hard["nll"] / (16 * np.log(2)))


def test_active_units_counts_dims_whose_mean_varies():
    rng = np.random.default_rng(0)
    z_mean = np.stack([rng.normal(0, 1, 500), rng.normal(0, 0.05, 500), np.zeros(500)], axis=1)
    assert evaluation.active_units(z_mean) == 1
    assert evaluation.active_units(z_mean, threshold=0.001) == 2


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_samples=0"):
        evaluation.iw_log_likelihood(None, np.zeros((1, 6, 1, 1)), num_samples=0)
