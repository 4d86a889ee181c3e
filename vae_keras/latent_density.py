"""Ex-post density estimation for sampling (Ghosh et al. 2020): a Gaussian mixture fitted to the
encoder's posterior means of the training images, used instead of the prior N(0, I) to draw z.

The prior puts mass where the encoder never goes, and decoding such z gives the images that belong
to no class. After training, `fit_gmm_sampler` fits a K-component mixture (scikit-learn's
``GaussianMixture``, seeded; ``covariance="full"`` by default, ``"diag"`` for a diagonal one) to
E_q[z|x] of the training images and stores its parameters in a `GaussianMixtureSampler` layer of the
model (non-trainable weights: component logits [K], means [K, D] and lower-triangular Cholesky
factors [K, D, D] of the covariances, a diagonal one for ``"diag"``), so ``model.keras`` and the
exported ``sample`` signature carry it. Sampling is stateless and seeded: the component from
``stateless_categorical`` with seed ``[seed, 1]``, the noise from ``stateless_normal`` with seed
``[seed, 2]``, z = mean_k + L_k eps.

A conditional model gets one mixture per class (``num_classes`` C: weights [C, K], means [C, K, D],
factors [C, K, D, D]), each fitted to the posterior means of that class's training images, and draws the
z of a sample labelled y from class y's mixture (the component from ``stateless_categorical`` over class
y's logits). The encoder of a conditional model still puts class information into z (the KL charges
only about log C nats for it, and it is learned before the decoder learns to read the label), so z from
the class-free prior N(0, I) often decodes to another class than the label asks for; z from the class's
own mixture agrees with the label.

The sampler only changes SAMPLING: the loss, the ELBO and the importance-weighted estimate still use
the model's prior.
"""

import keras
import numpy as np

from vae_keras import checks
from vae_keras import options as options_lib
from vae_keras.errors import ConfigError

COVARIANCES = ("full", "diag")
# The sampler's name ("prior", "gmm", "gmm:K") is parsed by the option contract, without Keras.
PRIOR, DEFAULT_COMPONENTS, parse_sampler = options_lib.PRIOR, options_lib.DEFAULT_GMM_COMPONENTS, options_lib.parse_sampler


@keras.saving.register_keras_serializable(package="vae_keras")
class GaussianMixtureSampler(keras.layers.Layer):
    """A Gaussian mixture over z with non-trainable parameters; `sample(n, seed)` draws from it.

    Args:
        num_components: K (per class for a conditional sampler).
        latent_dim: D.
        covariance: "full" or "diag": how it was fitted (the weights hold a Cholesky factor either way).
        num_classes: None for one mixture; C for one mixture per class (a conditional model's sampler:
            `sample` and `log_prob` then take a label per row).
    """

    def __init__(self, num_components, latent_dim, covariance="full", num_classes=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        checks.check_integer("num_components", num_components, 1)
        checks.check_integer("latent_dim", latent_dim, 1)
        checks.check_choice("covariance", covariance, COVARIANCES)
        if num_classes is not None:
            checks.check_integer("num_classes", num_classes, 1)
        self.num_components, self.latent_dim, self.covariance = int(num_components), int(latent_dim), covariance
        self.num_classes = None if num_classes is None else int(num_classes)
        d = self.latent_dim
        lead = self.mixture_shape
        self.logits = self.add_weight(shape=lead, initializer="zeros", trainable=False, name="logits")
        self.means = self.add_weight(shape=(*lead, d), initializer="zeros", trainable=False, name="means")
        eye = np.broadcast_to(np.eye(d, dtype=np.float32), (*lead, d, d)).copy()
        self.cholesky = self.add_weight(shape=(*lead, d, d), initializer=keras.initializers.Constant(eye),
                                        trainable=False, name="cholesky")
        self.built = True

    @property
    def mixture_shape(self):
        """(K,), or (C, K) for one mixture per class."""
        return (self.num_components,) if self.num_classes is None else (self.num_classes, self.num_components)

    def set_mixture(self, weights, means, cholesky):
        """Sets the mixture: weights [K] (sum 1), means [K, D], lower Cholesky factors [K, D, D]; with classes,
        each with a leading class axis C."""
        lead, d = self.mixture_shape, self.latent_dim
        weights, means, cholesky = (np.asarray(weights, np.float64), np.asarray(means, np.float32),
                                    np.asarray(cholesky, np.float32))
        if weights.shape != lead or means.shape != (*lead, d) or cholesky.shape != (*lead, d, d):
            raise ConfigError(f"This sampler holds weights {lead}, means {(*lead, d)} and Cholesky factors {(*lead, d, d)}. "
                              f"Received {weights.shape}, {means.shape} and {cholesky.shape}")
        self.logits.assign(np.log(np.maximum(weights, 1e-30)).astype(np.float32))
        self.means.assign(means)
        self.cholesky.assign(np.tril(cholesky))

    def _per_row(self, label):
        """(logits [N or 1, K], means [N or 1, K, D], cholesky [N or 1, K, D, D]) for the rows' labels."""
        import tensorflow as tf

        if self.num_classes is None:
            if label is not None:
                raise ConfigError("This sampler is one mixture for every image; it takes no label.")
            return self.logits[None], self.means[None], self.cholesky[None]
        if label is None:
            raise ConfigError(f"This sampler holds one mixture per class ({self.num_classes} classes): pass the label of "
                              f"every sample.")
        label = tf.cast(tf.reshape(label, [-1]), tf.int32)
        return tf.gather(self.logits, label), tf.gather(self.means, label), tf.gather(self.cholesky, label)

    def sample(self, num_samples, seed, label=None):
        """z [num_samples, D] from the mixture (of each sample's class: ``label`` [num_samples] for a sampler with
        classes); the same int seed always gives the same z (stateless)."""
        import tensorflow as tf  # the stateless ops are TensorFlow's (the export is TensorFlow's)

        seed = tf.cast(seed, tf.int32)
        eps = tf.random.stateless_normal(tf.stack([num_samples, self.latent_dim]), seed=tf.stack([seed, 2]))
        if self.num_classes is None:
            self._per_row(label)  # refuses a label
            component = tf.random.stateless_categorical(self.logits[None], num_samples, seed=tf.stack([seed, 1]),
                                                        dtype=tf.int32)[0]
            mean, chol = tf.gather(self.means, component), tf.gather(self.cholesky, component)
        else:
            logits, means, cholesky = self._per_row(label)
            tf.debugging.assert_equal(tf.shape(logits)[0], num_samples, message="the sampler needs one label per sample")
            component = tf.random.stateless_categorical(logits, 1, seed=tf.stack([seed, 1]), dtype=tf.int32)[:, 0]
            mean = tf.gather(means, component, batch_dims=1)
            chol = tf.gather(cholesky, component, batch_dims=1)
        return mean + tf.einsum("nij,nj->ni", chol, eps)

    def log_prob(self, z, label=None):
        """log density of the mixture (of each row's class, for a sampler with classes) at z [N, D] (for tests and
        diagnostics; never used by the loss)."""
        import tensorflow as tf

        z = tf.convert_to_tensor(z, tf.float32)
        logits, means, cholesky = self._per_row(label)
        diff = z[:, None, :] - means  # [N, K, D]
        chol = tf.broadcast_to(cholesky, tf.concat([tf.shape(diff)[:2], tf.shape(cholesky)[2:]], 0))
        solved = tf.linalg.triangular_solve(chol, diff[..., None], lower=True)[..., 0]  # L^-1 (z - mu)
        log_det = tf.reduce_sum(tf.math.log(tf.abs(tf.linalg.diag_part(chol))), axis=-1)  # [N, K]
        log_components = -0.5 * self.latent_dim * np.log(2 * np.pi) - log_det - 0.5 * tf.reduce_sum(solved**2, axis=-1)
        return tf.reduce_logsumexp(tf.nn.log_softmax(logits, axis=-1) + log_components, axis=-1)

    def call(self, inputs):
        return inputs

    def describe(self):
        per_class = "" if self.num_classes is None else " of its class"
        return f"gmm:{self.num_components} ({self.covariance} covariance, fitted to the posterior means{per_class})"

    def get_config(self):
        config = super().get_config()
        config.update({"num_components": self.num_components, "latent_dim": self.latent_dim,
                       "covariance": self.covariance, "num_classes": self.num_classes})
        return config


def fit_mixture(z, num_components, covariance="full", seed=0):
    """Fits scikit-learn's GaussianMixture to codes z [N, D]; returns (weights, means, cholesky factors)."""
    from sklearn.mixture import GaussianMixture

    checks.check_choice("covariance", covariance, COVARIANCES)
    z = np.asarray(z, np.float64)
    if len(z) < num_components:
        raise ConfigError(f"A mixture of {num_components} components needs at least {num_components} training images. "
                          f"Received {len(z)}")
    gmm = GaussianMixture(num_components, covariance_type=covariance, random_state=seed, reg_covar=1e-5).fit(z)
    if covariance == "diag":
        chol = np.stack([np.diag(np.sqrt(v)) for v in gmm.covariances_])
    else:
        chol = np.linalg.cholesky(gmm.covariances_)
    return gmm.weights_, gmm.means_, chol


def fit_gmm_sampler(model, x, covariance="full", seed=0, labels=None):
    """Fits ``model.sampler`` (a model built with ``sampler="gmm:K"``) to the posterior means of ``x``.

    Args:
        model: a trained `vae_keras.VAE` built with ``sampler="gmm:K"``.
        x: training images [N, H, W, C] in [0, 1] (the images the encoder saw in training: binarized ones
            for a binarizing model); the mixture is fitted to E_q[z|x] of each.
        covariance: "full" (default) or "diag".
        seed: seed of scikit-learn's initialisation (k-means).
        labels: a conditional model's labels of ``x`` [N]: one mixture is fitted per class, to E_q[z|x, y]
            of that class's images (every class needs at least K images). None for an unconditional model.

    Returns:
        The fitted `GaussianMixtureSampler` (the model's own, changed in place).
    """
    from vae_keras import evaluation

    sampler = getattr(model, "sampler", None)
    if sampler is None:
        raise ConfigError("This model samples from the prior (sampler='prior'). Build it with sampler='gmm:K' "
                          "(--sampler gmm:K) to fit a mixture after training.")
    if (labels is None) != (sampler.num_classes is None):
        raise ConfigError("A conditional model's mixture sampler is fitted per class: pass the training labels."
                          if labels is None else "This model's sampler is one mixture for all images; it takes no labels.")
    z_mean, _ = evaluation.latent_statistics(model, x, labels=labels)
    if labels is None:
        weights, means, chol = fit_mixture(z_mean, sampler.num_components, covariance, seed)
    else:
        labels = np.asarray(labels)
        parts = []
        for c in range(sampler.num_classes):
            codes = z_mean[labels == c]
            if len(codes) < sampler.num_components:
                raise ConfigError(f"Class {c} has {len(codes)} training images; its mixture of {sampler.num_components} "
                                  f"components needs at least {sampler.num_components}. Use fewer components (gmm:K).")
            parts.append(fit_mixture(codes, sampler.num_components, covariance, seed))
        weights, means, chol = (np.stack(p) for p in zip(*parts))
    sampler.set_mixture(weights, means, chol)
    sampler.covariance = covariance
    return sampler
