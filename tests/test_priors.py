"""Learned priors (vae_keras.priors), the DReG gradient (vae_keras.dreg), and the log_weights / log_prior export.

Each test computes something independently: a prior's density integrated on a grid, a histogram of its samples
against that density, the importance weights recomputed in numpy from the encode/decode/log_prior signatures,
Tucker et al.'s DReG written as their surrogate loss, and the plain and DReG gradients averaged over many draws.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from vae_keras import build_vae, priors
from vae_keras.errors import ConfigError

SHAPE = (6, 6, 1)
LEARNED = ("vamp", "mog")


def _vae(prior="standard", latent_dim=1, k=3, **kwargs):
    keras.utils.set_random_seed(0)
    vae = build_vae(SHAPE, latent_dim=latent_dim, hidden=(8,), seed=0, prior=prior,
                    prior_components=None if prior == "standard" else k, **kwargs)
    if prior == "mog":  # a mixture far from N(0, I): spread means, unequal widths and weights
        rng = np.random.default_rng(1)
        vae.prior.means.assign(rng.normal(0, 2.5, (k, latent_dim)))
        vae.prior.log_vars.assign(rng.uniform(-2, 1, (k, latent_dim)))
        vae.prior.logits.assign(rng.normal(0, 1, k))
    return vae


def _np(t):
    return keras.ops.convert_to_numpy(t).astype(np.float64)


def _log_prob(vae, z):
    return _np(vae.prior.log_prob(keras.ops.convert_to_tensor(z, "float32")))


# ------------------------------------------------------------------------------------------------
# The priors as densities
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prior", LEARNED + ("standard",))
@pytest.mark.parametrize("latent_dim", [1, 2])
def test_a_priors_density_integrates_to_one(prior, latent_dim):
    vae = _vae(prior, latent_dim=latent_dim)
    if latent_dim == 1:
        grid = np.linspace(-20, 20, 40001)
        integral = np.trapezoid(np.exp(_log_prob(vae, grid[:, None])), grid)
    else:
        axis = np.linspace(-12, 12, 601)
        zz = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
        density = np.exp(_log_prob(vae, zz)).reshape(len(axis), len(axis))
        integral = np.trapezoid(np.trapezoid(density, axis, axis=1), axis)
    assert integral == pytest.approx(1.0, abs=2e-3), (prior, latent_dim)


@pytest.mark.parametrize("prior", LEARNED + ("standard",))
def test_samples_follow_the_density_and_the_seed(prior):
    vae = _vae(prior, latent_dim=1)
    n = 20000
    z = _np(vae.prior.sample(n, seed=5))[:, 0]
    np.testing.assert_array_equal(z, _np(vae.prior.sample(n, seed=5))[:, 0])
    assert not np.allclose(z[:10], _np(vae.prior.sample(10, seed=6))[:, 0])
    # The histogram against the density's mass per bin (quadrature): each bin within 5 standard errors.
    edges = np.quantile(z, np.linspace(0, 1, 21))[1:-1]  # 20 bins, the outer two open
    edges = np.concatenate([[-30.0], edges, [30.0]])
    fine = np.linspace(-30, 30, 120001)
    cdf = np.concatenate([[0.0], np.cumsum(np.exp(_log_prob(vae, fine[:, None]))[1:] * np.diff(fine))])
    expected = np.diff(np.interp(edges, fine, cdf))
    observed = np.histogram(z, edges)[0] / n
    se = np.sqrt(expected * (1 - expected) / n)
    assert np.all(np.abs(observed - expected) < 5 * se), (prior, observed, expected)


def test_vamp_pseudo_inputs_start_from_images_and_refuse_bad_ones():
    vae = _vae("vamp", latent_dim=2, k=4)
    images = np.random.default_rng(0).random((10,) + SHAPE).astype("float32")
    vae.prior.initialize_from_images(images, seed=3)
    pseudo = _np(vae.prior.pseudo_inputs)
    assert all(any(np.allclose(p, im) for im in images) for p in pseudo)
    assert len({tuple(p.ravel()) for p in pseudo}) == 4  # without replacement
    with pytest.raises(ConfigError, match=r"float images in \[0, 1\]"):
        vae.prior.initialize_from_images((images * 255).astype("uint8"))
    with pytest.raises(ConfigError, match="needs an unconditional VAE|prior"):
        build_vae(SHAPE, latent_dim=2, hidden=(8,), prior="vamp", num_classes=3)


def test_a_prior_instance_and_a_bad_name():
    prior = priors.MixtureOfGaussiansPrior(5, latent_dim=2, seed=0)
    vae = build_vae(SHAPE, latent_dim=2, hidden=(8,), prior=prior)
    assert vae.prior is prior and vae.get_config()["prior"]["config"]["num_components"] == 5
    with pytest.raises(ConfigError, match="prior must be one of"):
        build_vae(SHAPE, latent_dim=2, hidden=(8,), prior="flow")
    with pytest.raises(ConfigError, match="prior='auto' is a training run's default"):  # resolved by TrainConfig only
        build_vae(SHAPE, latent_dim=2, hidden=(8,), prior="auto")


@pytest.mark.parametrize("prior", LEARNED)
def test_a_tiny_fit_with_a_learned_prior_decreases_the_loss(prior, mnist_small):
    from vae_keras import data

    x = data.binarize(data.to_float(mnist_small.x_train), seed=0)  # 512 digits: 128 to score, 384 to fit
    keras.utils.set_random_seed(0)
    vae = build_vae((28, 28, 1), latent_dim=4, hidden=(32,), seed=0, prior=prior, prior_components=10)
    vae.compile(optimizer=keras.optimizers.Adam(3e-3))
    before = float(vae.compute_vae_losses(x[:128])["loss"])  # the validation loss of 128 held-out digits
    history = vae.fit(x[128:], epochs=2, batch_size=32, verbose=0).history
    after = float(vae.compute_vae_losses(x[:128])["loss"])
    assert np.all(np.isfinite(history["loss"]))
    assert after < before - 100, (before, after)  # ~545 nats at the start


# ------------------------------------------------------------------------------------------------
# Round trips: model.keras and the SavedModel (log_weights, log_prior, sample)
# ------------------------------------------------------------------------------------------------


def _np_log_weights(sm, x, k, seed, label=None):
    """log w [K, B] from the encode / decode / log_prior signatures, in numpy (Bernoulli likelihood)."""
    extra = {} if label is None else {"label": tf.constant(label)}
    enc = sm.signatures["encode"](x=tf.constant(x), **extra)
    mean, log_var = enc["z_mean"].numpy().astype(np.float64), enc["z_log_var"].numpy().astype(np.float64)
    eps = tf.random.stateless_normal([k, len(x), mean.shape[1]], seed=[seed, 0]).numpy().astype(np.float64)
    z = mean[None] + np.exp(0.5 * log_var)[None] * eps
    flat = z.reshape(-1, mean.shape[1]).astype("float32")
    if label is not None:
        extra = {"label": tf.constant(np.tile(label, k))}
    logits = sm.signatures["decode"](z=tf.constant(flat), **extra)["x_logits"].numpy().astype(np.float64)
    xr = np.tile(x, (k, 1, 1, 1)).astype(np.float64)
    log_px = (xr * logits - np.logaddexp(0, logits)).reshape(k, len(x), -1).sum(-1)
    if "log_prior" in sm.signatures:
        log_pz = sm.signatures["log_prior"](z=tf.constant(flat))["log_pz"].numpy().reshape(k, len(x))
    else:
        log_pz = np.sum(-0.5 * (z ** 2 + math.log(2 * math.pi)), -1)
    log_qz = np.sum(-0.5 * (math.log(2 * math.pi) + log_var[None] + eps ** 2), -1)
    return log_px + log_pz - log_qz


@pytest.mark.parametrize("prior, conditional", [("vamp", False), ("standard", True)])
def test_the_export_scores_images_like_the_library(prior, conditional, tmp_path):
    from scipy.special import logsumexp

    from vae_keras import exported
    from vae_keras.export import export_model
    from vae_keras.layout import SIGNATURES

    kwargs = {"num_classes": 3} if conditional else {}
    vae = _vae(prior, latent_dim=2, k=3, **kwargs)
    rng = np.random.default_rng(0)
    x = (rng.random((5,) + SHAPE) > 0.5).astype("float32")
    label = (np.arange(5) % 3).astype("int32") if conditional else None
    path = export_model(vae, tmp_path, "m")
    sm = tf.saved_model.load(path)  # the SavedModel alone
    expected_signatures = set(SIGNATURES) | ({"log_prior"} if prior != "standard" else set())
    assert set(sm.signatures) == expected_signatures
    ev = exported.ExportedVAE(path)
    assert set(ev.card["signatures"]) == expected_signatures and ev.card["prior"] == prior
    k, seed = 64, 11
    log_w = ev.log_weights(x, k, seed=seed, label=label)
    assert log_w.shape == (k, 5) and log_w.dtype == np.float32
    # Independent: numpy from the encode/decode(/log_prior) signatures, the same stateless noise.
    np.testing.assert_allclose(log_w, _np_log_weights(sm, x, k, seed, label), rtol=1e-5, atol=1e-3)
    # The library's own estimate on the same noise (an int seed draws TensorFlow's stateless [seed, 0]).
    ours = _np(vae.log_importance_weights(x, k, seed=seed, label=label))
    np.testing.assert_allclose(logsumexp(log_w, 0) - math.log(k), logsumexp(ours, 0) - math.log(k), atol=1e-4)
    if prior != "standard":
        z = rng.normal(0, 2, (7, 2)).astype("float32")
        np.testing.assert_allclose(sm.signatures["log_prior"](z=tf.constant(z))["log_pz"].numpy(),
                                   _log_prob(vae, z), rtol=1e-6, atol=1e-5)
        out = ev.sample(6, seed=4)
        np.testing.assert_allclose(out["z"], _np(vae.prior.sample(6, seed=4)), atol=1e-6)
        np.testing.assert_allclose(out["x_mean"], _np(vae.decode_mean(out["z"])), atol=1e-6)
        np.testing.assert_array_equal(out["z"], ev.sample(6, seed=4)["z"])
        with pytest.raises(ConfigError, match="temperature"):
            ev.sample(6, seed=4, temperature=0.5)


@pytest.mark.parametrize("prior", LEARNED)
def test_a_learned_prior_round_trips_through_model_keras(prior, tmp_path):
    vae = _vae(prior, latent_dim=2, k=3, objective="iwae", iw_samples=4, iwae_gradient="dreg")
    vae.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.prior) is type(vae.prior) and loaded.iwae_gradient == "dreg"
    z = np.random.default_rng(0).normal(0, 2, (9, 2)).astype("float32")
    np.testing.assert_array_equal(_log_prob(loaded, z), _log_prob(vae, z))
    np.testing.assert_array_equal(_np(loaded.prior.sample(5, seed=2)), _np(vae.prior.sample(5, seed=2)))
    x = (np.random.default_rng(1).random((4,) + SHAPE) > 0.5).astype("float32")
    np.testing.assert_array_equal(_np(loaded.log_importance_weights(x, 3, seed=1)),
                                  _np(vae.log_importance_weights(x, 3, seed=1)))


# ------------------------------------------------------------------------------------------------
# DReG
# ------------------------------------------------------------------------------------------------


def _dreg_pair(k, beta=1.0, prior="standard", weights=None):
    """Two models with the same weights, plain and DReG, whose latent noise is a variable we set."""
    kwargs = dict(latent_dim=2, objective="iwae", iw_samples=k, beta=beta)
    plain, dreg = _vae(prior, **kwargs), _vae(prior, iwae_gradient="dreg", **kwargs)
    if weights is not None:
        plain.set_weights(weights)
    dreg.set_weights(plain.get_weights())
    noise = tf.Variable(tf.zeros([k, 4, 2]))
    for model in (plain, dreg):
        model._latent_noise = lambda shape: tf.convert_to_tensor(noise)
    return plain, dreg, noise


def _gradients(model, x):
    with tf.GradientTape() as tape:
        loss = model.compute_vae_losses(x, training=True)["loss"]
    return loss, tape.gradient(loss, model.trainable_weights)


def _split(model, grads):
    encoder = {id(v) for v in model.encoder.trainable_weights}
    enc = [g for v, g in zip(model.trainable_weights, grads) if id(v) in encoder]
    dec = [g for v, g in zip(model.trainable_weights, grads) if id(v) not in encoder]
    return enc, dec


def _x():
    return tf.constant((np.random.default_rng(3).random((4,) + SHAPE) > 0.5).astype("float32"))


def _tucker_encoder_gradient(model, x, eps, c):
    """Tucker et al.'s surrogate: -M[sum_k stop(w~_k ((1 - c) + c w~_k)) log w_k], log q with the encoder's
    outputs held fixed (their w~_k^2 at c = 1), differentiated with respect to the encoder."""
    with tf.GradientTape() as tape:
        mean, log_var = model.encoder(x)
        z = mean[None] + tf.exp(0.5 * log_var)[None] * eps
        flat = tf.reshape(z, [-1, 2])
        logits = model.decoder(flat)
        xr = tf.tile(x, [eps.shape[0], 1, 1, 1])
        log_px = tf.reshape(tf.reduce_sum(tf.reshape(xr * logits - tf.math.softplus(logits), [len(flat), -1]), -1),
                            eps.shape[:2])
        log_pz = tf.reduce_sum(-0.5 * (z ** 2 + math.log(2 * math.pi)), -1)
        m, lv = tf.stop_gradient(mean)[None], tf.stop_gradient(log_var)[None]
        log_qz = tf.reduce_sum(-0.5 * (math.log(2 * math.pi) + lv + (z - m) ** 2 / tf.exp(lv)), -1)
        log_w = log_px + c * (log_pz - log_qz)
        w = tf.nn.softmax(tf.stop_gradient(log_w), axis=0)
        surrogate = -tf.reduce_mean(tf.reduce_sum(tf.stop_gradient(w * ((1 - c) + c * w)) * log_w, 0))
    return tape.gradient(surrogate, model.encoder.trainable_weights)


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_dreg_is_tuckers_estimator_and_leaves_the_decoder_gradient_alone(beta):
    plain, dreg, noise = _dreg_pair(8, beta=beta)
    x = _x()
    noise.assign(tf.random.stateless_normal([8, 4, 2], seed=[1, 0]))
    loss_plain, g_plain = _gradients(plain, x)
    loss_dreg, g_dreg = _gradients(dreg, x)
    assert float(loss_dreg) == pytest.approx(float(loss_plain), rel=1e-6)  # the loss value is the IWAE bound
    (enc_p, dec_p), (enc_d, dec_d) = _split(plain, g_plain), _split(dreg, g_dreg)
    for a, b in zip(dec_p, dec_d):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-7)
    reference = _tucker_encoder_gradient(dreg, x, tf.convert_to_tensor(noise), beta)
    for got, want in zip(enc_d, reference):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-6)
    assert not all(np.allclose(a.numpy(), b.numpy()) for a, b in zip(enc_p, enc_d))  # it is another estimator


@pytest.fixture(scope="module")
def fitted_weights():
    """The tiny model's weights after 200 plain-IWAE Adam steps on the four images of `_x`: q(z|x) moves
    towards the model's posterior, the regime Tucker et al. study. Measured (noisy machine, 200 draws): DReG's
    total encoder-gradient variance is 0.4-0.5x the plain one at K=16 and 0.14-0.16x at K=64 here; 0.02x and
    0.002x on a better fit (loss 2.4 nats); but at the random initial weights, where the normalised weights
    are degenerate, 2.1x (K=16) and 5.7x (K=64), although its median per-parameter variance was 0.25x."""
    keras.utils.set_random_seed(0)
    vae = build_vae(SHAPE, latent_dim=2, hidden=(8,), seed=0, objective="iwae", iw_samples=16)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2), steps_per_execution=50)
    vae.fit(np.repeat(_x().numpy(), 8 * 200, 0), epochs=1, batch_size=32, shuffle=False, verbose=0)
    return vae.get_weights()


def _gradient_draws(k, draws, prior="standard", weights=None):
    """Flattened encoder gradients [draws, P] of both estimators, each draw with the same noise for both."""
    plain, dreg, noise = _dreg_pair(k, prior=prior, weights=weights)
    x = _x()

    @tf.function
    def both():
        return (tf.concat([tf.reshape(g, [-1]) for g in _split(plain, _gradients(plain, x)[1])[0]], 0),
                tf.concat([tf.reshape(g, [-1]) for g in _split(dreg, _gradients(dreg, x)[1])[0]], 0))

    out_p, out_d = [], []
    for i in range(draws):
        noise.assign(tf.random.stateless_normal([k, 4, 2], seed=[100 + i, 0]))
        p, d = both()
        out_p.append(p.numpy().astype(np.float64))
        out_d.append(d.numpy().astype(np.float64))
    return np.array(out_p), np.array(out_d)


@pytest.mark.parametrize("k, prior, fitted", [(16, "standard", True), (64, "standard", True), (16, "mog", False)])
def test_dreg_has_the_plain_gradients_mean_and_a_lower_variance(k, prior, fitted, request):
    draws = 200
    weights = request.getfixturevalue("fitted_weights") if fitted else None
    g_plain, g_dreg = _gradient_draws(k, draws, prior=prior, weights=weights)
    diff = g_plain - g_dreg  # the same noise for both: the paired difference has mean 0
    se = diff.std(axis=0, ddof=1) / math.sqrt(draws)
    live = se > 0
    z_scores = np.abs(diff.mean(axis=0)[live]) / se[live]
    assert z_scores.max() < 5.0, (k, prior, z_scores.max())
    ratio = g_dreg.var(axis=0).sum() / g_plain.var(axis=0).sum()
    print(f"DReG / plain encoder-gradient variance at K={k} ({prior} prior, {'fitted' if fitted else 'initial'} "
          f"weights, {draws} draws): {ratio:.4f}")
    if fitted:
        assert ratio < 1.0
