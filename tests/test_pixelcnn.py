"""The autoregressive (PixelCNN) decoder: its masks, its likelihood's normalisation, sequential decoding,
save/load, the export's signatures and a tiny fit.

Independent checks: the Jacobian of every output logit with respect to every input pixel (zero exactly for the
pixel itself and every later one); the sum of p(x|z) over all 2^(H*W*C) binary images of a tiny image (1 if and
only if the autoregressive factorisation is a distribution); the frequencies of sequentially sampled images
against that enumerated distribution.
"""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from vae_keras import build_vae
from vae_keras.autoregressive import MaskedConv2D, sequential_decode
from vae_keras.errors import ConfigError


def _pixelcnn(shape, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    vae = build_vae(shape, latent_dim=2, hidden=(8,), seed=seed, decoder="pixelcnn", **kwargs)
    # Random weights everywhere (a fresh model's logits are all near 0), scaled by 1/sqrt(fan-in) so that the
    # logits are O(1): neither near 0 nor saturated, where a wrong factorisation could hide (a pixel that sees
    # itself through a saturated logit still "sums to one").
    rng = np.random.default_rng(seed)
    vae.decoder.set_weights([(rng.normal(0, 1.0 / np.sqrt(np.prod(w.shape[:-1])), w.shape) if w.ndim > 1
                              else rng.normal(0, 0.5, w.shape)).astype("float32") for w in vae.decoder.get_weights()])
    return vae


def _all_binary_images(shape):
    n = int(np.prod(shape))
    return np.array(list(itertools.product((0.0, 1.0), repeat=n)), "float32").reshape((-1,) + tuple(shape))


@pytest.mark.parametrize("shape", [(4, 4, 1), (3, 3, 2)])
def test_a_pixels_logits_depend_on_the_earlier_pixels_only(shape):
    """d logit(p, c) / d x(q, c') is exactly 0 for q = p (any channel) and every later q, and not 0 for the pixel
    just before p and the one above it. Fails when a mask lets the centre or a later pixel through."""
    vae = _pixelcnn(shape)
    h, w, c = shape
    x = tf.constant(np.random.default_rng(1).random((1,) + shape), tf.float32)
    z = tf.constant([[0.3, -0.7]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = vae.decode(z, x=x)
    jac = tape.jacobian(logits, x).numpy().reshape(h * w, c, h * w, c)  # [out pixel, out ch, in pixel, in ch]
    dependence = np.abs(jac).max(axis=(1, 3))  # [out pixel, in pixel]
    for p in range(h * w):
        assert np.all(dependence[p, p:] == 0.0), (p, dependence[p])
        if p >= 1:
            assert dependence[p, p - 1] > 0, p
        if p >= w:
            assert dependence[p, p - w] > 0, p


@pytest.mark.parametrize("shape", [(3, 3, 1), (2, 2, 2)])
def test_p_x_given_z_sums_to_one_over_every_binary_image(shape):
    """sum over all 2^(H*W*C) binary images of exp(log p(x|z)) = 1 for any z (and label): the autoregressive
    likelihood is a distribution. Fails when mask A keeps the centre pixel (then it sums to far more than 1)."""
    vae = _pixelcnn(shape, num_classes=3)
    images = _all_binary_images(shape)
    for z, label in (([0.0, 0.0], 0), ([1.5, -2.0], 2)):
        zs = np.tile(np.array([z], "float32"), (len(images), 1))
        labels = np.full(len(images), label, "int32")
        log_p = vae.likelihood.log_prob(images, vae.decode(zs, labels, x=images)).numpy().astype(np.float64)
        assert np.logaddexp.reduce(log_p) == pytest.approx(0.0, abs=1e-5)
        assert log_p.max() - log_p.min() > 1.0 and log_p.max() < np.log(0.5)  # neither uniform nor one image


def test_sequential_sampling_draws_from_the_likelihood_and_greedy_takes_the_likelier_value():
    """Images sampled pixel by pixel have the frequencies exp(log p(x|z)) of the enumerated distribution (2x2:
    16 images, 4,000 draws); a greedy image's every pixel is its likelier value. Fails when the sampler compares
    with the wrong probability or writes a pixel in the wrong place."""
    shape = (2, 2, 1)
    vae = _pixelcnn(shape, seed=3)
    images = _all_binary_images(shape)
    z = np.tile(np.array([[0.4, -0.2]], "float32"), (4000, 1))
    drawn, logits = sequential_decode(vae.decoder, z, seed=5)
    # Along the drawn path the returned logits are the teacher-forced ones.
    np.testing.assert_allclose(logits.numpy(), vae.decode(z, x=drawn).numpy(), atol=1e-5)
    codes = drawn.numpy().reshape(len(z), -1) @ (2 ** np.arange(3, -1, -1))
    freq = np.bincount(codes.astype(int), minlength=16) / len(z)
    log_p = vae.likelihood.log_prob(images, vae.decode(z[:16], x=images)).numpy()
    p = np.exp(log_p)
    assert np.abs(freq - p).max() < 4 * np.sqrt(p * (1 - p) / len(z)).max() + 1e-3, (freq, p)
    greedy, greedy_logits = sequential_decode(vae.decoder, z[:3])
    np.testing.assert_array_equal(greedy.numpy(), (greedy_logits.numpy() >= 0).astype("float32"))
    again, _ = sequential_decode(vae.decoder, z, seed=5)
    np.testing.assert_array_equal(again.numpy(), drawn.numpy())


def test_masked_conv_round_trips_and_refuses_what_it_cannot_mask():
    layer = MaskedConv2D(4, 3, mask_type="A", name="m")
    clone = MaskedConv2D.from_config(layer.get_config())
    assert clone.mask_type == "A" and clone.kernel_size == (3, 3)
    for kwargs in ({"strides": 2}, {"padding": "valid"}, {"mask_type": "C"}, {"dilation_rate": 2}):
        with pytest.raises(ConfigError):
            MaskedConv2D(4, 3, **kwargs)
    with pytest.raises(ConfigError, match="odd"):
        MaskedConv2D(4, 2)


def test_a_non_bernoulli_likelihood_is_refused_naming_both():
    with pytest.raises(ConfigError, match="decoder='pixelcnn'.*likelihood='gaussian'"):
        build_vae((4, 4, 1), latent_dim=2, likelihood="gaussian", decoder="pixelcnn")
    with pytest.raises(ConfigError, match="decoder"):
        build_vae((4, 4, 1), latent_dim=2, decoder="pixel")


def test_save_load_round_trip(tmp_path):
    vae = _pixelcnn((5, 5, 1))
    path = str(tmp_path / "m.keras")
    vae.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.decoder_kind == "pixelcnn" and loaded.autoregressive
    x = (np.random.default_rng(0).random((3, 5, 5, 1)) > 0.5).astype("float32")
    for model in (vae, loaded):
        model.noise = keras.random.SeedGenerator(11)
    np.testing.assert_allclose(loaded.log_importance_weights(x, 4), vae.log_importance_weights(x, 4), atol=1e-5)
    z = np.array([[0.5, 0.1]], "float32")
    np.testing.assert_allclose(loaded.decode(z, seed=4), vae.decode(z, seed=4), atol=1e-5)


def test_export_sample_and_decode_run_and_are_deterministic(tmp_path):
    """The SavedModel's `sample` is the library's seeded sequential sampling (same seed, same images; another seed,
    other images) and `decode` its greedy decoding."""
    from vae_keras.export import export_model

    vae = _pixelcnn((4, 4, 1))
    path = export_model(vae, tmp_path, "pc")
    served = tf.saved_model.load(path)
    sample = served.signatures["sample"]
    a = sample(num_samples=tf.constant(6), seed=tf.constant(7))
    b = sample(num_samples=tf.constant(6), seed=tf.constant(7))
    c = sample(num_samples=tf.constant(6), seed=tf.constant(8))
    np.testing.assert_array_equal(a["x_mean"].numpy(), b["x_mean"].numpy())
    assert np.abs(a["x_mean"].numpy() - c["x_mean"].numpy()).max() > 0.05
    np.testing.assert_allclose(a["x_mean"].numpy(), vae.decode_mean(a["z"], seed=tf.constant(7)).numpy(), atol=1e-5)
    z = np.random.default_rng(2).normal(size=(3, 2)).astype("float32")
    decoded = served.signatures["decode"](z=tf.constant(z))
    np.testing.assert_allclose(decoded["x_mean"].numpy(), vae.decode_mean(z).numpy(), atol=1e-5)
    x = (np.random.default_rng(3).random((2, 4, 4, 1)) > 0.5).astype("float32")
    recon = served.signatures["serving_default"](x=tf.constant(x))
    np.testing.assert_allclose(recon["x_mean"].numpy(), vae(x).numpy(), atol=1e-5)


def test_a_tiny_fit_reduces_the_loss_and_evaluation_runs():
    from vae_keras import evaluation

    keras.utils.set_random_seed(0)
    vae = build_vae((6, 6, 1), latent_dim=2, hidden=(8,), seed=0, decoder="pixelcnn", binarize=True)
    rng = np.random.default_rng(0)
    # Stripes: each row is all 0 or all 1, so the pixel to the left predicts a pixel well.
    x = np.repeat(rng.random((64, 6, 1, 1)) > 0.5, 6, axis=2).astype("float32")
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    loss = vae.fit(x, epochs=10, batch_size=16, verbose=0).history["loss"]
    assert loss[-1] < 0.6 * loss[0], loss
    log_px = evaluation.iw_log_likelihood(vae, x[:8], num_samples=4, batch_size=8)["log_px"]
    assert log_px.shape == (8,) and np.all(np.isfinite(log_px)) and np.all(log_px < 0)
