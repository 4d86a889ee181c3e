"""Priors p(z) of the VAE's latent space: the standard normal and two learned priors.

Each prior is a small registered Keras layer with ``log_prob(z)`` (log p(z) in nats, summed over the
latent dims; z [..., D] -> [...]) and ``sample(num_samples, seed)`` (z [num_samples, D], TensorFlow's
stateless random ops seeded by the int or int32 scalar ``seed``: the same seed gives the same draws,
in Python and in the exported ``sample`` signature). `VAE.prior` holds one; the model's loss, its
importance weights and the export use nothing else of it.

- ``standard``: N(0, I). The ELBO keeps its analytic KL for it.
- ``vamp``: the VampPrior (Tomczak & Welling 2018): K trainable pseudo-inputs u_k (images, kept in
  [0, 1] by a clip, the paper's hardtanh) are passed through the encoder, and
  p(z) = 1/K sum_k q(z|u_k). The pseudo-inputs start as uniform noise (seeded), or as K random
  training images when `vae_keras.train` knows the data (`VampPrior.initialize_from_images`).
- ``mog``: a mixture of K diagonal Gaussians with trainable means (start: N(0, I) draws, seeded),
  log-variances (start: 0) and mixture weights (softmax of trainable logits, start: uniform).

With a learned prior the KL of the ELBO has no closed form: the model uses the one-sample Monte-Carlo
term log q(z|x) - log p(z) at the z that the reconstruction uses (`vae_keras.options`).
"""

import math

import keras
from keras import ops

from vae_keras import checks
from vae_keras.errors import ConfigError
from vae_keras.gaussian import diag_normal_mixture_log_prob, standard_normal_log_prob

PRIORS = ("standard", "vamp", "mog")
# K when prior_components is not given.
DEFAULT_COMPONENTS = {"vamp": 100, "mog": 10}


def _stateless_seed(seed, stream):
    """The [2] seed of TensorFlow's stateless ops: [seed, stream] (stream 0 is the normal noise, as the
    standard prior has always drawn it; 1 picks mixture components)."""
    import tensorflow as tf

    return tf.stack([tf.cast(seed, tf.int32), tf.constant(stream, tf.int32)])


def _sample_mixture(num_samples, seed, means, log_vars, log_weights):
    import tensorflow as tf

    num_samples = tf.cast(num_samples, tf.int32)
    k = tf.random.stateless_categorical(log_weights[None], num_samples, seed=_stateless_seed(seed, 1))[0]
    eps = tf.random.stateless_normal(tf.stack([num_samples, tf.shape(means)[-1]]), seed=_stateless_seed(seed, 0))
    return tf.gather(means, k) + tf.exp(0.5 * tf.gather(log_vars, k)) * eps


class Prior(keras.layers.Layer):
    """The interface: ``kind`` (one of `PRIORS`), ``learned``, ``latent_dim``, ``log_prob``, ``sample``."""

    kind = None
    learned = True

    def __init__(self, latent_dim, **kwargs):
        kwargs.setdefault("dtype", "float32")  # densities stay float32 under a mixed dtype policy
        super().__init__(**kwargs)
        self.latent_dim = checks.check_integer("latent_dim", latent_dim, 1)

    def bind(self, model):
        """Called by the `VAE` that owns the prior (the VampPrior encodes its pseudo-inputs with it)."""

    def call(self, z):
        return self.log_prob(z)

    def log_prob(self, z):
        """log p(z) [...] for z [..., D]; every concrete prior defines it (the base class is the interface)."""
        raise NotImplementedError(f"{type(self).__name__} is a Prior without log_prob: subclass Prior and define "
                                  "log_prob(z) and sample(num_samples, seed)")

    def sample(self, num_samples, seed):
        """z [num_samples, D], stateless and seeded; every concrete prior defines it."""
        raise NotImplementedError(f"{type(self).__name__} is a Prior without sample: subclass Prior and define "
                                  "log_prob(z) and sample(num_samples, seed)")

    def get_config(self):
        config = super().get_config()
        config.update({"latent_dim": self.latent_dim})
        return config


class _MixturePrior(Prior):
    """A prior that is a mixture of diagonal Gaussians given by `components()` (means, log_vars, log_weights)."""

    def log_prob(self, z):
        return diag_normal_mixture_log_prob(z, *self.components())

    def sample(self, num_samples, seed):
        return _sample_mixture(num_samples, seed, *self.components())


@keras.saving.register_keras_serializable(package="vae_keras")
class StandardNormalPrior(Prior):
    """p(z) = N(0, I). No weights.

    Example:
    >>> prior = StandardNormalPrior(latent_dim=2)
    >>> tuple(prior.sample(3, seed=0).shape)
    (3, 2)
    """

    kind = "standard"
    learned = False

    def __init__(self, latent_dim, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.built = True  # no weights: built from the start, like the learned priors (VAE.build_optimizer needs it)

    def log_prob(self, z):
        return standard_normal_log_prob(z)

    def sample(self, num_samples, seed):
        import tensorflow as tf

        shape = tf.stack([tf.cast(num_samples, tf.int32), self.latent_dim])
        return tf.random.stateless_normal(shape, seed=_stateless_seed(seed, 0))


@keras.saving.register_keras_serializable(package="vae_keras")
class MixtureOfGaussiansPrior(_MixturePrior):
    """p(z) = sum_k pi_k N(z; mu_k, diag exp(log_var_k)), all trainable, pi = softmax(logits).

    Args:
        num_components: K.
        latent_dim: D.
        seed: seed of the means' initial N(0, I) draws.
    """

    kind = "mog"

    def __init__(self, num_components, latent_dim, seed=None, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.num_components = checks.check_integer("prior_components", num_components, 1)
        self.seed = seed
        self.build()

    def build(self, input_shape=None):
        if self.built:
            return
        k, d = self.num_components, self.latent_dim
        self.means = self.add_weight(shape=(k, d), name="means",
                                     initializer=keras.initializers.RandomNormal(stddev=1.0, seed=self.seed))
        self.log_vars = self.add_weight(shape=(k, d), name="log_vars", initializer="zeros")
        self.logits = self.add_weight(shape=(k,), name="logits", initializer="zeros")
        self.built = True

    def components(self):
        """(means [K, D], log_vars [K, D], log_weights [K])."""
        return (ops.convert_to_tensor(self.means), ops.convert_to_tensor(self.log_vars),
                ops.log_softmax(self.logits))

    def get_config(self):
        config = super().get_config()
        config.update({"num_components": self.num_components, "seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="vae_keras")
class VampPrior(_MixturePrior):
    """p(z) = 1/K sum_k q(z|u_k) with K trainable pseudo-inputs u_k (Tomczak & Welling 2018).

    The owning `VAE` binds its encoder (`bind`); ``log_prob`` and ``sample`` then encode the
    pseudo-inputs, clipped to [0, 1], at every call, so the prior follows the encoder as it trains.

    Args:
        num_components: K, the number of pseudo-inputs.
        image_shape: (H, W, C) of the pseudo-inputs (the encoder's input).
        latent_dim: D.
        seed: seed of the pseudo-inputs' initial uniform noise.
    """

    kind = "vamp"

    def __init__(self, num_components, image_shape, latent_dim, seed=None, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.num_components = checks.check_integer("prior_components", num_components, 1)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.seed = seed
        self._encode = None
        self.build()

    def build(self, input_shape=None):
        if self.built:
            return
        self.pseudo_inputs = self.add_weight(
            shape=(self.num_components,) + self.image_shape, name="pseudo_inputs",
            initializer=keras.initializers.RandomUniform(0.0, 1.0, seed=self.seed))
        self.built = True

    def bind(self, model):
        if model.conditional:
            raise ConfigError("A VampPrior encodes its pseudo-inputs without a label; it needs an unconditional VAE. "
                              f"Received a VAE with num_classes={model.num_classes}")
        if tuple(model.image_shape) != self.image_shape:
            raise ConfigError(f"The VampPrior's pseudo-inputs have shape {self.image_shape}, the encoder takes "
                              f"{tuple(model.image_shape)}. Build the prior with the model's image_shape.")
        self._encode = model.encode

    def initialize_from_images(self, images, seed=0):
        """Sets the pseudo-inputs to K images drawn at random (seeded; without replacement when there are K
        or more) from ``images`` [N, H, W, C], floats in [0, 1] (`vae_keras.data.to_float` converts uint8)."""
        import numpy as np

        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1:] != self.image_shape or not len(images):
            raise ConfigError(f"initialize_from_images needs images [N, {', '.join(map(str, self.image_shape))}]. "
                              f"Received shape {images.shape}")
        rng = np.random.default_rng(seed)
        chosen = images[np.sort(rng.choice(len(images), self.num_components, replace=len(images) < self.num_components))]
        if chosen.dtype.kind != "f" or not (np.all(np.isfinite(chosen)) and chosen.min() >= 0 and chosen.max() <= 1):
            raise ConfigError(f"initialize_from_images needs float images in [0, 1]. Received dtype {chosen.dtype}, "
                              f"range [{chosen.min()}, {chosen.max()}]: convert them with vae_keras.data.to_float.")
        self.pseudo_inputs.assign(chosen.astype("float32"))

    def components(self):
        """(means [K, D], log_vars [K, D], log_weights [K]) of the mixture 1/K sum_k q(z|u_k)."""
        if self._encode is None:
            raise ConfigError("This VampPrior is not bound to an encoder: use it through its VAE (VAE(..., prior=...)).")
        means, log_vars = self._encode(ops.clip(self.pseudo_inputs, 0.0, 1.0))
        log_weights = ops.full((self.num_components,), -math.log(self.num_components), "float32")
        return means, log_vars, log_weights

    def get_config(self):
        config = super().get_config()
        config.update({"num_components": self.num_components, "image_shape": list(self.image_shape),
                       "seed": self.seed})
        return config


def check_name(prior):
    """``prior`` if it names a prior in `PRIORS`; else ConfigError (for ``"auto"``: where that name belongs)."""
    if prior == "auto":
        raise ConfigError("prior='auto' is a training run's default (TrainConfig, vae-keras train), which "
                          "vae_keras.options.resolve_prior turns into a prior by name; a VAE takes one of "
                          f"{list(PRIORS)}. Received: 'auto'")
    return checks.check_choice("prior", prior, PRIORS)


def get(prior, latent_dim, image_shape, components=None, seed=None):
    """A `Prior` from a name in `PRIORS` (``components``: K, default `DEFAULT_COMPONENTS`) or a `Prior` as is."""
    if isinstance(prior, Prior):
        if components is not None:
            raise ConfigError(f"prior_components={components!r} only applies to a prior given by name; the "
                              f"{type(prior).__name__} given has its own. Drop prior_components.")
        if prior.latent_dim != latent_dim:
            raise ConfigError(f"The prior is over {prior.latent_dim} latent dims, the encoder has {latent_dim}.")
        return prior
    check_name(prior)
    if prior == "standard":
        return StandardNormalPrior(latent_dim, name="prior")
    k = DEFAULT_COMPONENTS[prior] if components is None else components
    if prior == "mog":
        return MixtureOfGaussiansPrior(k, latent_dim, seed=seed, name="prior")
    return VampPrior(k, image_shape, latent_dim, seed=seed, name="prior")
