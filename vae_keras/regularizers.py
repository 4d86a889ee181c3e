"""The latent regularisers of the disentangling objectives: beta-TCVAE's total correlation estimate and
DIP-VAE's covariance penalty (`vae_keras.options` says how they enter the loss).

Total correlation (Chen et al. 2018). For a batch of B images with posteriors q(z|x_j) = N(mu_j,
diag sigma_j^2) and one sample z_i ~ q(z|x_i) each, the aggregate posterior q(z) = 1/N sum_n q(z|x_n)
over the N training images is estimated by *minibatch stratified sampling* (MSS, Chen et al.'s
appendix C.2) rather than minibatch weighted sampling (MWS):

    log q(z_i)    ~= logsumexp_j [ log q(z_i|x_j)       + log W_ij ]
    log q(z_id)   ~= logsumexp_j [ log q(z_id|x_jd)     + log W_ij ]   (each latent dim d)
    W_ii = 1/N,  W_i,(i+1 mod B) = (N - M) / (N M),  W_ij = 1/M otherwise,  M = B - 1

(each row of W sums to 1; a batch of one image has W = [[1]]). TC_i = log q(z_i) - sum_d log q(z_id).
Why MSS: MWS (log q(z_i) ~= logsumexp_j log q(z_i|x_j) - log(N B)) under-estimates log q(z) and every
log q(z_d) by about log N when the posteriors overlap, so its TC is off by about (D - 1) log N, a
constant that leaves the gradient as it is but makes the reported TC meaningless; MSS weights the
image's own posterior by 1/N (its share of q(z)) and the others by about 1/M, and tends to the TC of
the aggregate posterior as the batch grows (tests/test_disentangling_models.py checks both against a
Gaussian aggregate's closed form). N must be at least the batch size.

DIP-VAE (Kumar et al. 2018): penalty(C) = lambda_od * sum_{i != j} C_ij^2 + lambda_d * sum_i (C_ii - 1)^2
for C = Cov[mu(x)] (DIP-VAE-I) or C = Cov_q[z] = E[diag sigma^2(x)] + Cov[mu(x)] (DIP-VAE-II), moments
over the global batch (`vae_keras.replica.batch_means`), weighted by the sample weights (normalised:
E_s[v] = sum_i s_i v_i / sum_i s_i, so that C is a covariance).
"""

import tensorflow as tf

from vae_keras import replica
from vae_keras.gaussian import LOG_2PI


def mss_log_weights(batch_size, dataset_size):
    """log W [B, B] of minibatch stratified sampling (see the module docstring); ``batch_size`` may be a tensor."""
    b = tf.cast(batch_size, tf.float32)
    n = tf.cast(dataset_size, tf.float32)
    m = tf.maximum(b - 1.0, 1.0)
    eye = tf.eye(batch_size, dtype=tf.bool)
    strat = tf.cast(tf.roll(tf.eye(batch_size), shift=1, axis=1), tf.bool)  # (i, i + 1 mod B)
    own = tf.where(b > 1.0, -tf.math.log(n), 0.0)
    log_w = tf.where(eye, own, tf.where(strat, tf.math.log((n - m) / (n * m)), -tf.math.log(m)))
    return log_w


def total_correlation(z, z_mean, z_log_var, dataset_size):
    """The MSS estimate of each sample's total correlation, TC_i = log q(z_i) - sum_d log q(z_id) [B].

    Args:
        z: one sample per image [B, D], z_i ~ q(z|x_i).
        z_mean, z_log_var: the posteriors' parameters [B, D].
        dataset_size: N, the number of training images (>= B).

    Returns:
        A float32 tensor [B].
    """
    z, z_mean, z_log_var = (tf.cast(t, tf.float32) for t in (z, z_mean, z_log_var))
    batch = tf.shape(z)[0]
    tf.debugging.assert_less_equal(
        tf.cast(batch, tf.float32), tf.cast(dataset_size, tf.float32),
        message="total_correlation: dataset_size (N, the number of training images) must be at least the batch size")
    # log q(z_id | x_j) for every pair (i, j): [B, B, D]
    diff = z[:, None, :] - z_mean[None, :, :]
    log_q = -0.5 * (LOG_2PI + z_log_var[None] + tf.square(diff) * tf.exp(-z_log_var[None]))
    log_w = mss_log_weights(batch, dataset_size)
    log_qz = tf.reduce_logsumexp(tf.reduce_sum(log_q, axis=2) + log_w, axis=1)
    log_qz_marginals = tf.reduce_sum(tf.reduce_logsumexp(log_q + log_w[:, :, None], axis=1), axis=1)
    return log_qz - log_qz_marginals


def gaussian_total_correlation(covariance):
    """The closed-form total correlation of a Gaussian with this covariance, -0.5 log det(correlation) (numpy)."""
    import numpy as np

    covariance = np.asarray(covariance, np.float64)
    std = np.sqrt(np.diag(covariance))
    _, logdet = np.linalg.slogdet(covariance / np.outer(std, std))
    return -0.5 * logdet


def dip_covariance(z_mean, z_log_var, kind, sample_weight=None):
    """DIP-VAE's covariance [D, D] over the global batch: Cov[mu] (``kind`` "dipvae1") or
    E[diag sigma^2] + Cov[mu] ("dipvae2"), with normalised sample weights."""
    z_mean, z_log_var = tf.cast(z_mean, tf.float32), tf.cast(z_log_var, tf.float32)
    values = {"one": tf.ones_like(z_mean[:, 0]), "mu": z_mean, "mu_mu": z_mean[:, :, None] * z_mean[:, None, :],
              "var": tf.exp(z_log_var)}
    means = replica.batch_means(values, sample_weight)
    total = means["one"]  # sum of the weights / B: the normalisation of E_s
    mu = means["mu"] / total
    covariance = means["mu_mu"] / total - mu[:, None] * mu[None, :]
    if kind == "dipvae2":
        covariance = covariance + tf.linalg.diag(means["var"] / total)
    return covariance


def dip_penalty(covariance, lambda_od, lambda_d):
    """lambda_od * sum_{i != j} C_ij^2 + lambda_d * sum_i (C_ii - 1)^2."""
    diagonal = tf.linalg.diag_part(covariance)
    off_diagonal = covariance - tf.linalg.diag(diagonal)
    return lambda_od * tf.reduce_sum(tf.square(off_diagonal)) + lambda_d * tf.reduce_sum(tf.square(diagonal - 1.0))


__all__ = ["dip_covariance", "dip_penalty", "gaussian_total_correlation", "mss_log_weights", "total_correlation"]
