"""The VAE model: its loss maths, training with model.fit, and serialization."""

import keras
import numpy as np
import pytest

from vae_keras import VAE, build_vae, networks
from vae_keras.errors import ConfigError


def _numpy_kl(z_mean, z_log_var):
    return 0.5 * (np.exp(z_log_var) + z_mean**2 - 1.0 - z_log_var)


def _numpy_bce_sum(x, logits):
    logits = logits.astype(np.float64)
    per_pixel = np.maximum(logits, 0) - logits * x + np.log1p(np.exp(-np.abs(logits)))
    return per_pixel.reshape(len(x), -1).sum(axis=1)


def _numpy_log_weights(vae, x, eps):
    """log w [K, B] of a Bernoulli VAE for the noise eps [K, B, D], in float64 numpy from encode/decode."""
    z_mean, z_log_var = (keras.ops.convert_to_numpy(t).astype(np.float64) for t in vae.encode(x))
    eps = np.asarray(eps, np.float64)
    z = z_mean[None] + np.exp(0.5 * z_log_var)[None] * eps
    k, b, d = eps.shape
    logits = keras.ops.convert_to_numpy(vae.decode(z.reshape(k * b, d).astype(np.float32))).reshape((k, b) + x.shape[1:])
    log_px = -np.stack([_numpy_bce_sum(x, logits[i]) for i in range(k)])
    log_2pi = np.log(2 * np.pi)
    log_pz = -0.5 * np.sum(z**2 + log_2pi, axis=-1)
    log_qz = -0.5 * np.sum(eps**2 + log_2pi + z_log_var[None], axis=-1)
    return log_px + log_pz - log_qz


@pytest.fixture
def batch(mnist_small):
    from vae_keras import data

    return data.to_float(mnist_small.x_test[:16])


class TestLoss:
    def test_elbo_is_pixel_sum_plus_analytic_kl(self, batch):
        """Recompute the negative ELBO in numpy from the same noise: pixel-summed BCE + summed KL."""
        vae = build_vae((28, 28, 1), latent_dim=3, hidden=(16,), seed=5)
        losses = {k: float(v) for k, v in vae.compute_vae_losses(batch, training=False).items()}
        z_mean, z_log_var = (keras.ops.convert_to_numpy(t) for t in vae.encode(batch))
        eps = keras.ops.convert_to_numpy(keras.random.normal(z_mean.shape, seed=keras.random.SeedGenerator(5)))
        z = z_mean + np.exp(0.5 * z_log_var) * eps
        logits = keras.ops.convert_to_numpy(vae.decode(z))
        reconstruction = _numpy_bce_sum(batch, logits).mean()
        kl = _numpy_kl(z_mean, z_log_var).sum(axis=1).mean()
        assert losses["reconstruction"] == pytest.approx(reconstruction, rel=1e-4)
        assert losses["kl"] == pytest.approx(kl, rel=1e-4)
        assert losses["loss"] == pytest.approx(reconstruction + kl, rel=1e-4)
        # Summed over 784 pixels, not averaged: an untrained decoder costs hundreds of nats.
        assert losses["reconstruction"] > 100

    def test_beta_weights_the_kl(self, batch):
        vae = build_vae((28, 28, 1), latent_dim=3, hidden=(16,), seed=5, beta=4.0)
        losses = {k: float(v) for k, v in vae.compute_vae_losses(batch, training=False).items()}
        assert losses["loss"] == pytest.approx(losses["reconstruction"] + 4.0 * losses["kl"], rel=1e-5)

    def test_free_bits_floor_each_dims_batch_mean_kl(self, batch):
        vae = build_vae((28, 28, 1), latent_dim=4, hidden=(16,), seed=0, free_bits=0.5)
        vae.compile(optimizer="adam")
        losses = vae.compute_vae_losses(batch, training=True)
        z_mean, z_log_var = (keras.ops.convert_to_numpy(t) for t in vae.encode(batch))
        expected = np.maximum(_numpy_kl(z_mean, z_log_var).mean(axis=0), 0.5).sum()
        assert float(losses["loss"] - losses["reconstruction"]) == pytest.approx(expected, rel=1e-4)
        assert expected > float(losses["kl"])  # the floor is active for an untrained encoder

    def test_kl_warmup_ramps_the_weight_from_zero_to_beta(self):
        vae = build_vae((28, 28, 1), latent_dim=2, hidden=(8,), beta=2.0, kl_warmup_steps=10)
        vae.compile(optimizer="adam")
        weights = []
        for step in (0, 4, 9, 50):
            vae.optimizer.iterations.assign(step)
            weights.append(float(vae.kl_weight()))
        np.testing.assert_allclose(weights, [0.2, 1.0, 2.0, 2.0], rtol=1e-6)

    def test_dynamic_binarization_is_binary_with_the_right_mean(self):
        vae = build_vae((28, 28, 1), latent_dim=2, hidden=(8,), binarize=True, seed=0)
        x = np.full((200, 28, 28, 1), 0.3, np.float32)
        b = keras.ops.convert_to_numpy(vae.binarize_batch(keras.ops.convert_to_tensor(x)))
        assert set(np.unique(b)) == {0.0, 1.0}
        assert b.mean() == pytest.approx(0.3, abs=0.01)

    def test_log_importance_weights_recomputed_by_hand_from_the_same_noise(self, batch):
        """log w_k = log p(x|z_k) + log N(z_k; 0, I) - log N(z_k; mu, sigma^2), z_k = mu + sigma * eps_k, in numpy."""
        vae = build_vae((28, 28, 1), latent_dim=3, hidden=(16,), seed=1)
        k = 6
        log_w = keras.ops.convert_to_numpy(vae.log_importance_weights(batch, k, seed=keras.random.SeedGenerator(7)))
        eps = keras.ops.convert_to_numpy(keras.random.normal((k, len(batch), 3), seed=keras.random.SeedGenerator(7)))
        np.testing.assert_allclose(log_w, _numpy_log_weights(vae, batch, eps), rtol=1e-5, atol=2e-3)

    def test_iwae_objective_trains_on_the_iw_bound(self, batch):
        """One `fit` step logs -mean_x(logsumexp_k log w_k - log K), recomputed in numpy from the step's noise
        (the first K x B x D normal draw of the model's latent noise, the Sampling layer's seed generator), and that differs from the ELBO on the same noise."""
        k, seed = 8, 1
        vae = build_vae((28, 28, 1), latent_dim=3, hidden=(16,), seed=seed, objective="iwae", iw_samples=k,
                        kl_warmup_steps=0, beta=1.0)
        vae.compile(optimizer=keras.optimizers.Adam(1e-3))
        eps = keras.ops.convert_to_numpy(keras.random.normal((k, len(batch), 3), seed=keras.random.SeedGenerator(seed)))
        log_w = _numpy_log_weights(vae, batch, eps)  # with the weights before the step
        iw_loss = -np.mean(np.logaddexp.reduce(log_w, axis=0) - np.log(k))
        elbo_loss = -np.mean(log_w.mean(axis=0))
        before = [w.copy() for w in vae.get_weights()]
        history = vae.fit(batch, batch_size=len(batch), epochs=1, shuffle=False, verbose=0).history
        assert history["loss"][0] == pytest.approx(iw_loss, abs=2e-3)
        assert elbo_loss - iw_loss > 0.05  # the two objectives really differ here, so the check above can tell them apart
        assert any(not np.array_equal(b, a) for b, a in zip(before, vae.get_weights()))  # and fit took the step


class TestTraining:
    def test_a_gradient_step_changes_every_weight_and_fitting_lowers_the_loss(self, mnist_small):
        from vae_keras import data

        x = data.to_float(mnist_small.x_train)
        vae = build_vae((28, 28, 1), latent_dim=4, hidden=(32,), seed=0)
        vae.compile(optimizer=keras.optimizers.Adam(1e-3))
        before = [w.copy() for w in vae.get_weights()]
        vae.train_on_batch(x[:32])
        trainable_changed = [not np.array_equal(b, a) for b, a, v in zip(before, vae.get_weights(), vae.weights) if v.trainable]
        assert all(trainable_changed)
        history = vae.fit(x, epochs=3, batch_size=64, verbose=0).history
        assert history["loss"][-1] < history["loss"][0] - 20

    def test_fit_on_tf_data_with_validation_callbacks_and_evaluate(self, mnist_small):
        train = mnist_small.pipeline("train", batch_size=128)
        test = mnist_small.pipeline("test", batch_size=128)
        vae = build_vae((28, 28, 1), latent_dim=4, hidden=(32,), seed=0)
        vae.compile(optimizer="adam")
        seen = []
        cb = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(sorted(logs)))
        history = vae.fit(train, validation_data=test, epochs=2, callbacks=[cb], verbose=0).history
        assert set(history) == {"loss", "reconstruction", "kl", "val_loss", "val_reconstruction", "val_kl"}
        assert len(seen) == 2 and "val_loss" in seen[0]
        result = vae.evaluate(test, verbose=0, return_dict=True)
        assert result["loss"] == pytest.approx(result["reconstruction"] + result["kl"], rel=1e-4)
        assert result["loss"] == pytest.approx(history["val_loss"][-1], rel=0.02)

    def test_metrics_are_reset_each_epoch(self, mnist_small):
        from vae_keras import data

        x = data.to_float(mnist_small.x_train[:128])
        vae = build_vae((28, 28, 1), latent_dim=2, hidden=(8,), seed=0)
        vae.compile(optimizer="adam")
        assert {m.name for m in vae.metrics} == {"loss", "reconstruction", "kl"}
        vae.fit(x, epochs=1, batch_size=128, verbose=0)
        single = vae.evaluate(x, batch_size=128, verbose=0, return_dict=True)["loss"]
        again = vae.evaluate(x, batch_size=128, verbose=0, return_dict=True)["loss"]
        # With stale trackers the second result would average in the first run.
        assert abs(single - again) < 0.1 * single

    def test_several_steps_per_execution_make_the_same_updates(self, mnist_small):
        """steps_per_execution only batches the calls: same noise, same KL warm-up weights, same weights."""
        from vae_keras import data

        x = data.to_float(mnist_small.x_train[:320])
        weights, kl_weights = [], []
        for spe in (1, 4):
            keras.utils.set_random_seed(0)
            vae = build_vae((28, 28, 1), latent_dim=3, hidden=(16,), binarize=True, kl_warmup_steps=7, seed=0)
            vae.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=spe)
            history = vae.fit(x, epochs=2, batch_size=32, shuffle=False, verbose=0).history  # 10 steps per epoch
            weights.append(vae.get_weights())
            kl_weights.append(history["kl_weight"])
            assert int(vae.optimizer.iterations) == 20
        assert kl_weights[0] == pytest.approx(kl_weights[1]) and kl_weights[0][-1] == 1.0
        for a, b in zip(*weights):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert not all(np.array_equal(a, b) for a, b in zip(weights[0], build_vae((28, 28, 1), latent_dim=3, hidden=(16,)).get_weights()))

    @pytest.mark.parametrize("policy, compute", [("mixed_bfloat16", "bfloat16"), ("mixed_float16", "float16")])
    def test_trains_under_a_mixed_policy_with_float32_losses(self, mnist_small, policy, compute):
        from vae_keras import data

        x = data.to_float(mnist_small.x_train[:64])
        before = keras.config.dtype_policy().name
        vae = build_vae((28, 28, 1), latent_dim=3, hidden=(16,), seed=0, dtype_policy=policy)
        assert keras.config.dtype_policy().name == before  # the global policy is left alone
        vae.compile(optimizer="adam")
        history = vae.fit(x, epochs=2, batch_size=32, verbose=0).history
        losses = vae.compute_vae_losses(x[:8])
        params = vae.decode(vae.encode(x[:8])[0])
        assert vae.decoder.layers[-1].compute_dtype == compute  # the networks really ran in low precision
        assert {w.dtype for w in vae.trainable_weights} == {"float32"}  # variables stay float32
        assert {keras.backend.standardize_dtype(t.dtype) for t in [*losses.values(), params]} == {"float32"}
        assert np.all(np.isfinite(history["loss"])) and history["loss"][-1] < history["loss"][0]

    def test_mixed_float16_scales_the_loss_so_its_update_matches_float32(self, mnist_small):
        """Under mixed_float16 `compile` wraps the optimizer in a LossScaleOptimizer, which divides the
        gradients by its scale (32768 at first): train_step must multiply the loss by it, or each update
        is 32768 times too small."""
        from vae_keras import data

        x = data.to_float(mnist_small.x_train[:32])
        deltas = {}
        for policy in ("float32", "mixed_float16"):
            keras.utils.set_random_seed(0)  # same initial weights and noise
            vae = build_vae((28, 28, 1), latent_dim=3, hidden=(16,), seed=0, dtype_policy=policy)
            vae.compile(optimizer=keras.optimizers.SGD(0.01))
            before = [w.copy() for w in vae.get_weights()]
            vae.fit(x, epochs=1, batch_size=32, shuffle=False, verbose=0)
            deltas[policy] = np.concatenate([(a - b).ravel() for a, b in zip(vae.get_weights(), before)])
            if policy == "mixed_float16":
                assert isinstance(vae.optimizer, keras.optimizers.LossScaleOptimizer)
        d32, d16 = deltas["float32"], deltas["mixed_float16"]
        assert np.linalg.norm(d32) > 0
        assert np.linalg.norm(d16 - d32) / np.linalg.norm(d32) < 0.01, np.linalg.norm(d16) / np.linalg.norm(d32)

    def test_an_unknown_dtype_policy_is_refused_with_the_choices(self):
        with pytest.raises(ConfigError, match=r"dtype_policy must be one of \['float32', 'mixed_bfloat16', 'mixed_float16'\] "
                                              r"or None. Received: 'bfloat16'"):
            build_vae((28, 28, 1), latent_dim=2, hidden=(8,), dtype_policy="bfloat16")
        with pytest.raises(ConfigError):  # a failure while building still restores the global policy
            build_vae((28, 28, 1), latent_dim=2, network="resnet", dtype_policy="mixed_bfloat16")
        assert keras.config.dtype_policy().name == "float32"

    def test_labels_in_the_data_are_ignored_by_an_unconditional_model(self, mnist_small):
        ds = mnist_small.pipeline("train", batch_size=128, with_labels=True)
        vae = build_vae((28, 28, 1), latent_dim=2, hidden=(8,), seed=0)
        vae.compile(optimizer="adam")
        assert np.isfinite(vae.fit(ds, epochs=1, verbose=0).history["loss"][0])


class TestSerialization:
    @pytest.mark.parametrize("network, dtype_policy", [("mlp", None), ("conv", None), ("conv", "mixed_bfloat16")])
    def test_keras_file_round_trip_gives_identical_outputs(self, tmp_path, batch, network, dtype_policy):
        vae = build_vae((28, 28, 1), latent_dim=3, network=network, hidden=(8, 16) if network == "conv" else (16,),
                        beta=2.0, binarize=True, free_bits=0.1, seed=4, dtype_policy=dtype_policy)
        vae.compile(optimizer="adam")
        vae.fit(batch, epochs=1, batch_size=8, verbose=0)
        path = str(tmp_path / "m.keras")
        vae.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
        assert isinstance(loaded, VAE)
        np.testing.assert_array_equal(loaded.predict(batch, verbose=0), vae.predict(batch, verbose=0))
        for a, b in zip(loaded.encode(batch), vae.encode(batch)):
            np.testing.assert_array_equal(a, b)
        assert (loaded.beta, loaded.binarize, loaded.free_bits, loaded.seed) == (2.0, True, 0.1, 4)
        policies = [[layer.dtype_policy.name for layer in m.decoder.layers if layer.weights] for m in (vae, loaded)]
        assert policies[0] == policies[1] == [dtype_policy or "float32"] * len(policies[0])
        loaded.fit(batch, epochs=1, batch_size=8, verbose=0)  # still trains after loading

    def test_get_config_mirrors_init(self):
        vae = build_vae((28, 28, 1), latent_dim=2, hidden=(8,), beta=3.0, kl_warmup_steps=7, objective="iwae", iw_samples=5)
        clone = VAE.from_config(vae.get_config())
        for key in ("beta", "kl_warmup_steps", "objective", "iw_samples", "free_bits", "binarize"):
            assert getattr(clone, key) == getattr(vae, key)
        assert clone.latent_dim == 2 and clone.image_shape == (28, 28, 1)

    def test_custom_encoder_decoder(self, batch):
        enc = networks.build_encoder((28, 28, 1), 2, "mlp", (8,))
        dec = networks.build_decoder((28, 28, 1), 2, 1, "mlp", (8,))
        vae = VAE(enc, dec)
        assert tuple(vae(batch).shape) == batch.shape


class TestOutputBias:
    @pytest.mark.parametrize("network", ["mlp", "conv"])
    def test_bias_matches_the_data_mean(self, network):
        vae = build_vae((28, 28, 1), latent_dim=2, network=network, hidden=(8, 8) if network == "conv" else (8,))
        pixel_mean = np.random.default_rng(0).uniform(0.05, 0.95, (28, 28, 1)).astype(np.float32)
        vae.initialize_output_bias(pixel_mean)
        bias = vae.decoder.get_layer("x_params").bias.numpy()
        logit = np.log(pixel_mean) - np.log1p(-pixel_mean)
        want = logit.reshape(-1) if network == "mlp" else logit.mean(axis=(0, 1))
        np.testing.assert_allclose(bias, want, rtol=1e-4)


class TestValidation:
    @pytest.mark.parametrize("kwargs, message", [
        ({"beta": -1.0}, r"Received: beta=-1.0"),
        ({"free_bits": float("nan")}, r"Received: free_bits=nan"),
        ({"objective": "vamp"}, r"Received: objective='vamp'"),
        ({"iw_samples": 0}, r"Received: iw_samples=0"),
        ({"kl_warmup_steps": -3}, r"Received: kl_warmup_steps=-3"),
        ({"likelihood": "gaussian", "binarize": True}, r"binarize=True cannot be combined with likelihood='gaussian'"),
    ])
    def test_bad_arguments_name_what_was_received(self, kwargs, message):
        with pytest.raises(ConfigError, match=message):
            build_vae((28, 28, 1), latent_dim=2, hidden=(8,), **kwargs)

    @pytest.mark.parametrize("kwargs, message", [
        ({"latent_dim": 0}, r"Received: latent_dim=0"),
        ({"network": "resnet"}, r"Received: network='resnet'"),
        ({"image_shape": (28, 28)}, r"Received: image_shape=\(28, 28\)"),
    ])
    def test_bad_network_arguments(self, kwargs, message):
        args = {"image_shape": (28, 28, 1), "latent_dim": 2, "network": "mlp"} | kwargs
        with pytest.raises(ConfigError, match=message):
            networks.build_encoder(**args)


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3), (64, 64, 3), (30, 27, 1), (5, 5, 1)])
@pytest.mark.parametrize("network", ["mlp", "conv"])
def test_networks_fit_any_image_shape(shape, network):
    vae = build_vae(shape, latent_dim=4, network=network, hidden=(8, 8) if network == "conv" else (16,))
    x = np.random.default_rng(0).random((2,) + shape).astype(np.float32)
    assert tuple(vae(x).shape) == (2,) + shape
    z_mean, z_log_var = vae.encode(x)
    assert tuple(z_mean.shape) == (2, 4) == tuple(z_log_var.shape)


def test_default_conv_depth_grows_with_image_size():
    assert networks.default_hidden("conv", (28, 28, 1)) == (32, 64)
    assert networks.default_hidden("conv", (64, 64, 3)) == (32, 64, 128)
