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
        num_components: K.
        latent_dim: D.
        covariance: "full" or "diag": how it was fitted (the weights hold a Cholesky factor either way).
    """

    def __init__(self, num_components, latent_dim, covariance="full", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        checks.check_integer("num_components", num_components, 1)
        checks.check_integer("latent_dim", latent_dim, 1)
        checks.check_choice("covariance", covariance, COVARIANCES)
        self.num_components, self.latent_dim, self.covariance = int(num_components), int(latent_dim), covariance
        k, d = self.num_components, self.latent_dim
        self.logits = self.add_weight(shape=(k,), initializer="zeros", trainable=False, name="logits")
        self.means = self.add_weight(shape=(k, d), initializer="zeros", trainable=False, name="means")
        eye = np.broadcast_to(np.eye(d, dtype=np.float32), (k, d, d)).copy()
        self.cholesky = self.add_weight(shape=(k, d, d), initializer=keras.initializers.Constant(eye),
                                        trainable=False, name="cholesky")
        self.built = True

    def set_mixture(self, weights, means, cholesky):
        """Sets the mixture: weights [K] (sum 1), means [K, D], lower Cholesky factors [K, D, D]."""
        weights = np.asarray(weights, np.float64)
        self.logits.assign(np.log(np.maximum(weights, 1e-30)).astype(np.float32))
        self.means.assign(np.asarray(means, np.float32))
        self.cholesky.assign(np.tril(np.asarray(cholesky, np.float32)))

    def sample(self, num_samples, seed):
        """z [num_samples, D] from the mixture; the same int seed always gives the same z (stateless)."""
        import tensorflow as tf  # the stateless ops are TensorFlow's (the export is TensorFlow's)

        seed = tf.cast(seed, tf.int32)
        component = tf.random.stateless_categorical(self.logits[None], num_samples, seed=tf.stack([seed, 1]),
                                                    dtype=tf.int32)[0]
        eps = tf.random.stateless_normal(tf.stack([num_samples, self.latent_dim]), seed=tf.stack([seed, 2]))
        mean = tf.gather(self.means, component)
        chol = tf.gather(self.cholesky, component)
        return mean + tf.einsum("nij,nj->ni", chol, eps)

    def log_prob(self, z):
        """log density of the mixture at z [N, D] (for tests and diagnostics; never used by the loss)."""
        import tensorflow as tf

        z = tf.convert_to_tensor(z, tf.float32)
        diff = z[:, None, :] - self.means[None]  # [N, K, D]
        chol = tf.broadcast_to(self.cholesky[None], tf.concat([tf.shape(diff)[:2], tf.shape(self.cholesky)[1:]], 0))
        solved = tf.linalg.triangular_solve(chol, diff[..., None], lower=True)[..., 0]  # L^-1 (z - mu)
        log_det = tf.reduce_sum(tf.math.log(tf.abs(tf.linalg.diag_part(self.cholesky))), axis=-1)  # [K]
        log_norm = -0.5 * self.latent_dim * np.log(2 * np.pi) - log_det
        log_components = log_norm[None] - 0.5 * tf.reduce_sum(solved**2, axis=-1)
        return tf.reduce_logsumexp(tf.nn.log_softmax(self.logits)[None] + log_components, axis=-1)

    def call(self, inputs):
        return inputs

    def describe(self):
        return f"gmm:{self.num_components} ({self.covariance} covariance, fitted to the posterior means)"

    def get_config(self):
        config = super().get_config()
        config.update({"num_components": self.num_components, "latent_dim": self.latent_dim,
                       "covariance": self.covariance})
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


def fit_gmm_sampler(model, x, covariance="full", seed=0):
    """Fits ``model.sampler`` (a model built with ``sampler="gmm:K"``) to the posterior means of ``x``.

    Args:
        model: a trained `vae_keras.VAE` built with ``sampler="gmm:K"``.
        x: training images [N, H, W, C] in [0, 1] (the images the encoder saw in training: binarized ones
            for a binarizing model); the mixture is fitted to E_q[z|x] of each.
        covariance: "full" (default) or "diag".
        seed: seed of scikit-learn's initialisation (k-means).

    Returns:
        The fitted `GaussianMixtureSampler` (the model's own, changed in place).
    """
    from vae_keras import evaluation

    sampler = getattr(model, "sampler", None)
    if sampler is None:
        raise ConfigError("This model samples from the prior (sampler='prior'). Build it with sampler='gmm:K' "
                          "(--sampler gmm:K) to fit a mixture after training.")
    z_mean, _ = evaluation.latent_statistics(model, x)
    weights, means, chol = fit_mixture(z_mean, sampler.num_components, covariance, seed)
    sampler.set_mixture(weights, means, chol)
    sampler.covariance = covariance
    return sampler
