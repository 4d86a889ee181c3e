"""Integrity checks of the model's maths and structure that the option-contract and distribution tests do not
cover: log q(z|x) from the noise, sample weights in evaluate, and one training step that the model module owns."""

import math
import subprocess
import sys

import keras
import numpy as np
import pytest

from vae_keras import build_vae

from conftest import REPO_ROOT


def test_log_q_is_exact_where_the_posterior_is_far_narrower_than_its_mean():
    """z = mean + sigma * eps with sigma = e^-15 and |mean| = 1000: z - mean keeps no digit of sigma * eps in
    float32, so log q computed from (z - mean) / sigma is garbage; from eps it is exact."""
    vae = build_vae((4, 4, 1), latent_dim=2, hidden=(4,), seed=0)
    mean_layer, log_var_layer = vae.encoder.get_layer("z_mean"), vae.encoder.get_layer("z_log_var_raw")
    mean_layer.kernel.assign(np.zeros(mean_layer.kernel.shape, "float32"))
    mean_layer.bias.assign(np.full(mean_layer.bias.shape, 1000.0, "float32"))
    log_var_layer.kernel.assign(np.zeros(log_var_layer.kernel.shape, "float32"))
    log_var_layer.bias.assign(np.full(log_var_layer.bias.shape, -30.0, "float32"))
    x = np.zeros((3, 4, 4, 1), "float32")
    eps = np.random.default_rng(0).standard_normal((5, 3, 2)).astype("float32")
    z_mean, z_log_var = vae.encode(x)
    _, _, log_qz = vae._log_weight_terms(x, None, z_mean, z_log_var, keras.ops.convert_to_tensor(eps))
    expected = np.sum(-0.5 * (math.log(2 * math.pi) - 30.0 + eps.astype(np.float64) ** 2), axis=-1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(log_qz), expected, rtol=1e-5)


def test_sample_weight_reaches_the_loss_in_fit_and_evaluate():
    """Keras drops sample_weight for arrays without y; the VAE keeps it: all-ones weights change nothing, and
    weighting a single image by 3 triples its share of the batch mean."""
    x = np.random.default_rng(1).random((4, 4, 4, 1)).astype("float32")

    def evaluate(weights):
        keras.utils.set_random_seed(0)  # the same initial weights every time
        vae = build_vae((4, 4, 1), latent_dim=2, hidden=(4,), seed=0)
        vae._latent_noise = lambda shape: keras.ops.zeros(shape)  # deterministic
        vae.compile(optimizer="sgd")
        return vae.evaluate(x, sample_weight=weights, batch_size=4, verbose=0, return_dict=True)["loss"]

    per_image = [evaluate(np.eye(4, dtype="float32")[i] * 4) for i in range(4)]  # image i alone, weight 4: its loss
    ones = evaluate(np.ones(4, "float32"))
    assert ones == pytest.approx(evaluate(None), rel=1e-6)
    assert ones == pytest.approx(np.mean(per_image), rel=1e-5)
    tripled = evaluate(np.array([3, 1, 1, 1], "float32"))
    assert tripled == pytest.approx((3 * per_image[0] + sum(per_image[1:])) / 4, rel=1e-5)
    assert tripled != pytest.approx(ones, rel=1e-3)


def test_the_model_module_does_not_import_the_distribution_module():
    code = ("import sys, vae_keras.models.vae, vae_keras.replica; "
            "print('vae_keras.distribute' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
