"""Sampling, LogVarianceClip and the likelihoods, checked against closed-form numpy."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from vae_keras import likelihoods
from vae_keras.errors import ConfigError
from vae_keras.layers import LogVarianceClip, Sampling


class TestSampling:
    def test_moments_match_the_posterior(self):
        n = 20000
        mean = np.tile(np.array([[1.5, -2.0, 0.0]], np.float32), (n, 1))
        log_var = np.tile(np.array([[0.0, math.log(4.0), math.log(0.25)]], np.float32), (n, 1))
        z = keras.ops.convert_to_numpy(Sampling(seed=1)([mean, log_var]))
        np.testing.assert_allclose(z.mean(axis=0), [1.5, -2.0, 0.0], atol=0.05)
        np.testing.assert_allclose(z.std(axis=0), [1.0, 2.0, 0.5], rtol=0.03)

    def test_seeded_layers_repeat_and_successive_draws_differ(self):
        zeros = np.zeros((4, 2), np.float32)
        a, b = Sampling(seed=7), Sampling(seed=7)
        first_a, first_b = a([zeros, zeros]), b([zeros, zeros])
        np.testing.assert_array_equal(first_a, first_b)
        assert not np.allclose(first_a, a([zeros, zeros]))

    def test_gradients_reach_mean_and_log_var(self):
        mean = tf.Variable(np.zeros((3, 2), np.float32))
        log_var = tf.Variable(np.zeros((3, 2), np.float32))
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(Sampling(seed=0)([mean, log_var]) ** 2)
        g_mean, g_log_var = tape.gradient(loss, [mean, log_var])
        assert np.abs(g_mean.numpy()).sum() > 0 and np.abs(g_log_var.numpy()).sum() > 0

    def test_config_round_trip(self):
        layer = Sampling(seed=3, name="s")
        clone = Sampling.from_config(layer.get_config())
        assert clone.seed == 3 and clone.name == "s"


class TestLogVarianceClip:
    def test_clips_only_outside_the_range(self):
        out = keras.ops.convert_to_numpy(LogVarianceClip(-5.0, 5.0)(np.array([[-100.0, -1.0, 2.0, 1e6]], np.float32)))
        np.testing.assert_array_equal(out, [[-5.0, -1.0, 2.0, 5.0]])

    def test_bad_range_says_what_was_received(self):
        with pytest.raises(ConfigError, match=r"Received: min_value=3, max_value=1"):
            LogVarianceClip(3, 1)


def _bernoulli_numpy(x, logits):
    p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    return (x * np.log(p) + (1 - x) * np.log1p(-p)).reshape(len(x), -1).sum(axis=1)


class TestBernoulli:
    def test_matches_the_textbook_formula_summed_over_pixels(self, rng):
        x = (rng.random((5, 4, 4, 1)) < 0.5).astype(np.float32)
        logits = rng.normal(0, 3, (5, 4, 4, 1)).astype(np.float32)
        got = keras.ops.convert_to_numpy(likelihoods.Bernoulli().log_prob(x, logits))
        np.testing.assert_allclose(got, _bernoulli_numpy(x, logits), rtol=1e-5)

    def test_stable_for_extreme_logits(self):
        logits = np.array([[[[100.0]], [[-100.0]]]], np.float32).reshape(1, 2, 1, 1)
        x = np.array([0.0, 0.0], np.float32).reshape(1, 2, 1, 1)
        got = float(keras.ops.convert_to_numpy(likelihoods.Bernoulli().log_prob(x, logits))[0])
        # log(1 - sigmoid(100)) = -100 - log1p(e^-100); log(1 - sigmoid(-100)) = -log1p(e^-100)
        assert got == pytest.approx(-100.0, abs=1e-4)

    def test_is_a_proper_distribution_over_binary_pixels(self):
        logits = np.array([-2.0, 0.3, 4.0], np.float32).reshape(3, 1, 1, 1)
        bern = likelihoods.Bernoulli()
        total = sum(np.exp(keras.ops.convert_to_numpy(bern.log_prob(np.full((3, 1, 1, 1), v, np.float32), logits))) for v in (0.0, 1.0))
        np.testing.assert_allclose(total, 1.0, rtol=1e-6)

    def test_output_bias_gives_the_data_mean(self):
        mean = np.array([[[0.2], [0.7]]], np.float32)
        bias = keras.ops.convert_to_numpy(likelihoods.Bernoulli().output_bias(mean))
        np.testing.assert_allclose(1 / (1 + np.exp(-bias)), mean, rtol=1e-5)


class TestGaussian:
    def test_fixed_scale_matches_normal_density(self, rng):
        x = rng.random((3, 2, 2, 1)).astype(np.float32)
        loc = rng.random((3, 2, 2, 1)).astype(np.float32)
        got = keras.ops.convert_to_numpy(likelihoods.Gaussian(scale=0.3).log_prob(x, loc))
        want = (-0.5 * np.log(2 * np.pi * 0.09) - (x - loc) ** 2 / (2 * 0.09)).reshape(3, -1).sum(1)
        np.testing.assert_allclose(got, want, rtol=1e-5)

    def test_learned_scale_integrates_to_one(self):
        grid = np.linspace(-3, 3, 20001, dtype=np.float32).reshape(-1, 1, 1, 1)
        params = np.concatenate([np.full_like(grid, 0.2), np.full_like(grid, math.log(0.4))], axis=-1)
        density = np.exp(keras.ops.convert_to_numpy(likelihoods.Gaussian().log_prob(grid, params)))
        assert np.trapezoid(density, grid.ravel()) == pytest.approx(1.0, abs=1e-4)

    def test_bad_scale_is_rejected(self):
        with pytest.raises(ConfigError, match="Received: scale=-1.0"):
            likelihoods.Gaussian(scale=-1)


@pytest.mark.parametrize("like", [likelihoods.Bernoulli(), likelihoods.Gaussian(scale=0.5), likelihoods.Gaussian()])
def test_likelihood_serialization_round_trip(like):
    clone = likelihoods.get(likelihoods.serialize(like))
    assert type(clone) is type(like) and clone.get_config() == like.get_config()


def test_unknown_likelihood_names_the_choices():
    with pytest.raises(ConfigError, match=r"Received: likelihood='poisson'"):
        likelihoods.get("poisson")
