"""Gaussian densities in nats, for the latent space: the prior N(0, I), the posterior q(z|x), their KL,
and the diagonal Gaussian mixtures of the learned priors (`vae_keras.priors`).

The model's loss and the evaluation's importance weights both use these; the decoder likelihoods
(`vae_keras.likelihoods`) share ``LOG_2PI``.
"""

import math

from keras import ops

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_kl(z_mean, z_log_var):
    """KL(N(mean, exp(log_var)) || N(0, 1)) per latent dim: a tensor shaped like z_mean."""
    return 0.5 * (ops.exp(z_log_var) + ops.square(z_mean) - 1.0 - z_log_var)


def standard_normal_log_prob(z):
    """log N(z; 0, I) summed over the last axis."""
    return ops.sum(-0.5 * (ops.square(z) + LOG_2PI), axis=-1)


def diag_normal_log_prob_of_noise(eps, log_var):
    """log N(z; mean, diag exp(log_var)) for z = mean + exp(log_var / 2) * eps, summed over the last axis.

    Computed from the standard-normal noise eps rather than from z - mean, which loses every digit
    of eps once exp(log_var / 2) is far below the rounding error of mean.
    """
    return ops.sum(-0.5 * (LOG_2PI + log_var + ops.square(eps)), axis=-1)


def diag_normal_mixture_log_prob(z, means, log_vars, log_weights):
    """log sum_k exp(log_weights[k]) N(z; means[k], diag exp(log_vars[k])) for z [..., D].

    means, log_vars: [K, D]; log_weights: [K], normalised (logsumexp = 0). Returns [...].
    """
    z = ops.expand_dims(z, -2)  # [..., 1, D] against [K, D]
    per_component = ops.sum(-0.5 * (LOG_2PI + log_vars + ops.square(z - means) * ops.exp(-log_vars)), axis=-1)
    return ops.logsumexp(per_component + log_weights, axis=-1)
