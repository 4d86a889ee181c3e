"""A VAE with two or more stochastic layers: Burda et al. (2016)'s bottom-up hierarchy.

Inference is bottom-up, q(z_1..z_L|x) = q(z_1|x) q(z_2|z_1) ... q(z_L|z_{L-1}); the generative model is
top-down, p(x, z_1..z_L) = p(z_L) p(z_{L-1}|z_L) ... p(z_1|z_2) p(x|z_1), with p(z_L) = N(0, I) and every
other factor a diagonal Gaussian whose mean and log-variance a small network computes. Sizes are given
bottom first (Burda et al.'s two-layer MNIST model: z_1 = 100, z_2 = 50).

`HierarchicalVAE` is a `VAE`: the same `train_step`/`test_step`, objectives and options (`vae_keras.options`
says how they combine); it overrides only the VAE's latent hooks. The importance weights
(`log_importance_weights`) are those of the joint model, log p(x, z_1..z_L) - log q(z_1..z_L|x), so
`vae_keras.evaluation.iw_log_likelihood` estimates its log p(x) unchanged.

The top latent is the model's face to the outside: ``latent_dim`` is z_L's size; `encode` returns the
posterior of z_L reached through the bottom-up path with means (z_1 = E[z_1|x], z_2 = E[z_2|z_1], ...);
`decode(z_L)` goes down with means (z_{L-1} = E[z_{L-1}|z_L], ... to z_1) and returns p(x|z_1)'s
parameters; so `sample`, the export's signatures and the dashboard work on z_L ~ N(0, I).
"""

import keras
from keras import layers, ops

from vae_keras import checks
from vae_keras import options as options_lib
from vae_keras.errors import ConfigError
from vae_keras.gaussian import LOG_2PI, gaussian_kl, standard_normal_log_prob
from vae_keras.layers import LogVarianceClip
from vae_keras.models.vae import VAE


def _log_normal_of_noise(eps, log_var):
    """Per-dim log N(z; mean, exp(log_var)) at z = mean + exp(log_var / 2) * eps (from the noise, as
    `vae_keras.gaussian.diag_normal_log_prob_of_noise`, not summed)."""
    return -0.5 * (LOG_2PI + log_var + ops.square(eps))


def _log_normal(z, mean, log_var):
    """Per-dim log N(z; mean, exp(log_var))."""
    return -0.5 * (LOG_2PI + log_var + ops.square(z - mean) * ops.exp(-log_var))


def build_latent_network(input_dim, output_dim, units, activation="relu", name="latent"):
    """A Gaussian layer between two latents: z_in [B, input_dim] -> [mean, log_var], each [B, output_dim].

    Two dense layers of ``units`` (Burda et al.: 100 tanh units each, between z_1 = 100 and z_2 = 50),
    then a mean and a clipped log-variance head, as the encoder's.
    """
    for argument, value in (("input_dim", input_dim), ("output_dim", output_dim), ("units", units)):
        checks.check_integer(argument, value, 1)
    z_in = keras.Input(shape=(input_dim,), name="z_in")
    h = z_in
    for i in range(2):
        h = layers.Dense(units, activation=activation, name=f"dense_{i}")(h)
    mean = layers.Dense(output_dim, name="mean")(h)
    log_var = LogVarianceClip(name="log_var")(layers.Dense(output_dim, name="log_var_raw")(h))
    return keras.Model(z_in, [mean, log_var], name=name)


@keras.saving.register_keras_serializable(package="vae_keras")
class HierarchicalVAE(VAE):
    """A VAE with L >= 2 stochastic layers (Burda et al. 2016), bottom-up inference.

    Args:
        encoder: q(z_1|x), as for `VAE` (x or [x, label] -> [mean, log_var] of z_1).
        decoder: p(x|z_1), as for `VAE` (z_1 or [z_1, label] -> the likelihood's parameters).
        latent_encoders: L - 1 models; the l-th maps z_l [B, d_l] to [mean, log_var] of q(z_{l+1}|z_l).
        latent_decoders: L - 1 models; the l-th maps z_{l+1} [B, d_{l+1}] to [mean, log_var] of p(z_l|z_{l+1}).
        **kwargs: every other `VAE` argument (likelihood, beta, objective, free_bits, ..., num_classes, seed).
            A conditional model's label enters q(z_1|x, y) and p(x|z_1, y) only.

    Example:
    >>> from vae_keras import build_vae
    >>> vae = build_vae((28, 28, 1), latent_dim=(100, 50), latent_layers=2)
    >>> vae.latent_dims, vae.latent_dim
    ((100, 50), 50)
    """

    def __init__(self, encoder, decoder, latent_encoders, latent_decoders, **kwargs):
        latent_encoders, latent_decoders = list(latent_encoders), list(latent_decoders)
        if not latent_encoders or len(latent_encoders) != len(latent_decoders):
            raise ConfigError(
                "A HierarchicalVAE needs one latent encoder and one latent decoder per stochastic layer above the "
                f"first (at least one of each). Received {len(latent_encoders)} latent encoders and "
                f"{len(latent_decoders)} latent decoders")
        dims = [int(encoder.outputs[0].shape[-1])]
        for level, (up, down) in enumerate(zip(latent_encoders, latent_decoders), start=1):
            size = int(up.outputs[0].shape[-1])
            shapes = {"latent_encoders": ([int(up.inputs[0].shape[-1])], [int(t.shape[-1]) for t in up.outputs]),
                      "latent_decoders": ([int(down.inputs[0].shape[-1])], [int(t.shape[-1]) for t in down.outputs])}
            expected = {"latent_encoders": ([dims[-1]], [size, size]), "latent_decoders": ([size], [dims[-1], dims[-1]])}
            for part, (got_in, got_out) in shapes.items():
                want_in, want_out = expected[part]
                if len(got_in) != 1 or got_in != want_in or got_out != want_out:
                    raise ConfigError(
                        f"{part}[{level - 1}] must map z_{level if part == 'latent_encoders' else level + 1} "
                        f"[B, {want_in[0]}] to [mean, log_var] of size {want_out[0]}. Received a model with input sizes "
                        f"{got_in} and output sizes {got_out}")
            dims.append(size)
        # The pairs of the option contract that involve the number of stochastic layers (VAE.__init__ checks the rest).
        given = {k: kwargs[k] for k in ("objective", "iw_samples", "iwae_gradient", "dataset_size", "gamma", "lambda_od",
                                        "lambda_d", "free_bits", "capacity_max", "beta") if k in kwargs}
        prior = kwargs.get("prior", "standard")
        options_lib.check_model_options(prior=getattr(prior, "kind", prior), latent_layers=len(dims), **given)
        # Known before VAE.__init__, which sizes the prior by `latent_dim` (the top layer's); a plain tuple of ints,
        # so it is set past Keras's attribute tracking, which starts in that __init__.
        object.__setattr__(self, "_dims", tuple(dims))
        super().__init__(encoder, decoder, **kwargs)
        self.latent_encoders = latent_encoders
        self.latent_decoders = latent_decoders

    # ----------------------------------------------------------------- shapes
    @property
    def latent_dims(self):
        """Sizes of z_1..z_L, bottom first."""
        return self._dims

    @property
    def latent_layers(self):
        return len(self._dims)

    @property
    def latent_dim(self):
        """Size of the top latent z_L (the one `encode`, `decode` and `sample` use)."""
        return self._dims[-1]

    @property
    def _noise_dim(self):
        return sum(self._dims)

    # ----------------------------------------------------------------- the top latent's face
    @staticmethod
    def _gaussian(net, z, training=False):
        mean, log_var = net(z, training=training)
        return ops.cast(mean, "float32"), ops.cast(log_var, "float32")

    def encode(self, x, label=None, training=False):
        """(mean, log_var) of q(z_L|z_{L-1}) at the bottom-up path of means: z_1 = E[z_1|x], z_l = E[z_l|z_{l-1}]."""
        mean, log_var = VAE.encode(self, x, label, training=training)
        for net in self.latent_encoders:
            mean, log_var = self._gaussian(net, mean, training)
        return mean, log_var

    def decode(self, z, label=None, training=False, x=None, seed=None):
        """p(x|z_1)'s raw parameters for top latents z = z_L [B, latent_dim], going down with the means of
        p(z_l|z_{l+1}) (decode is deterministic given z_L; `log_importance_weights` samples every layer).
        ``x`` and ``seed`` are `VAE.decode`'s (used by an autoregressive decoder, which the contract refuses
        with several latent layers)."""
        z = ops.convert_to_tensor(z, "float32")
        for net in reversed(self.latent_decoders):
            z, _ = self._gaussian(net, z, training)
        return VAE.decode(self, z, label, training=training, x=x, seed=seed)

    # ----------------------------------------------------------------- the VAE's latent hooks
    def _first_posterior(self, x, label=None, training=False):
        return VAE.encode(self, x, label, training=training)

    def _sample_path(self, z_mean, z_log_var, eps, training=False):
        """Samples z_1..z_L bottom-up for noise eps [K, B, sum(d_l)] (z_1 = z_mean + sigma * eps_1, ...).

        Returns (z_1 [K, B, d_1], per-dim log q [K, B, d_l] of each layer, per-dim log p(z_l|z_{l+1}) of each layer
        below the top, the top posterior's (mean, log_var) [K, B, d_L]).
        """
        num_samples, batch = ops.shape(eps)[0], ops.shape(eps)[1]
        offsets = [0]
        for d in self._dims:
            offsets.append(offsets[-1] + d)
        noise = [eps[..., offsets[i]:offsets[i + 1]] for i in range(len(self._dims))]
        mean, log_var = z_mean[None], z_log_var[None]
        z = mean + ops.exp(0.5 * log_var) * noise[0]
        zs, log_q, log_p = [z], [_log_normal_of_noise(noise[0], log_var)], []
        for level, (up, down) in enumerate(zip(self.latent_encoders, self.latent_decoders), start=1):
            d = self._dims[level]
            mean, log_var = (ops.reshape(t, (num_samples, batch, d))
                             for t in self._gaussian(up, ops.reshape(zs[-1], (-1, self._dims[level - 1])), training))
            z = mean + ops.exp(0.5 * log_var) * noise[level]
            log_q.append(_log_normal_of_noise(noise[level], log_var))
            p_mean, p_log_var = (ops.reshape(t, (num_samples, batch, self._dims[level - 1]))
                                 for t in self._gaussian(down, ops.reshape(z, (-1, d)), training))
            log_p.append(_log_normal(zs[-1], p_mean, p_log_var))
            zs.append(z)
        return zs[0], log_q, log_p, (mean, log_var), zs[-1]

    def _log_weight_terms(self, x, label, z_mean, z_log_var, eps, training=False):
        """(log p(x|z_1), log p(z_1..z_L), log q(z_1..z_L|x)), each [K, B]: the joint model's importance weights."""
        z_1, log_q, log_p, _, z_top = self._sample_path(z_mean, z_log_var, eps, training)
        log_pz = standard_normal_log_prob(z_top) + sum(ops.sum(t, axis=-1) for t in log_p)
        log_qz = sum(ops.sum(t, axis=-1) for t in log_q)
        return self._log_px(x, label, z_1, training=training), log_pz, log_qz

    def _kl_per_dim(self, z_mean, z_log_var, eps, training=False):
        """[B, sum(d_l)]: per dim of the layers below the top, the one-sample log q(z_lj|.) - log p(z_lj|z_{l+1});
        of the top layer, the analytic KL(q(z_Lj|z_{L-1}) || N(0, 1)) given the sampled z_{L-1}."""
        _, log_q, log_p, (top_mean, top_log_var), _ = self._sample_path(z_mean, z_log_var, eps, training)
        parts = [(q - p)[0] for q, p in zip(log_q[:-1], log_p)]
        parts.append(gaussian_kl(top_mean[0], top_log_var[0]))
        return ops.concatenate(parts, axis=-1)

    # ----------------------------------------------------------------- serialization
    def get_config(self):
        config = super().get_config()
        config.update({
            "latent_encoders": [keras.saving.serialize_keras_object(net) for net in self.latent_encoders],
            "latent_decoders": [keras.saving.serialize_keras_object(net) for net in self.latent_decoders],
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("latent_encoders", "latent_decoders"):
            config[key] = [keras.saving.deserialize_keras_object(net) for net in config[key]]
        return super().from_config(config)


def build_hierarchical_vae(image_shape, latent_dims, network="mlp", hidden=None, likelihood="bernoulli",
                           activation="relu", num_classes=None, **kwargs):
    """Builds a `HierarchicalVAE` with stochastic layers of sizes ``latent_dims`` (bottom first).

    q(z_1|x) and p(x|z_1) are `build_vae`'s encoder and decoder for z_1; between z_l and z_{l+1}, q and p are
    `build_latent_network`s with two dense layers as wide as z_l. Call it inside a dtype policy scope, as
    `build_vae` does.
    """
    from vae_keras import likelihoods as likelihoods_lib
    from vae_keras import networks

    like = likelihoods_lib.get(likelihood)
    dims = tuple(latent_dims)
    encoder = networks.build_encoder(image_shape, dims[0], network, hidden, activation, num_classes=num_classes)
    decoder = networks.build_decoder(image_shape, dims[0], like.params_per_channel, network, hidden, activation,
                                     num_classes=num_classes)
    ups = [build_latent_network(dims[i], dims[i + 1], dims[i], activation, name=f"q_z{i + 2}") for i in range(len(dims) - 1)]
    downs = [build_latent_network(dims[i + 1], dims[i], dims[i], activation, name=f"p_z{i + 1}") for i in range(len(dims) - 1)]
    return HierarchicalVAE(encoder, decoder, ups, downs, likelihood=like, num_classes=num_classes, **kwargs)
