"""Independent numpy re-implementations of loss terms, shared by tests/test_options.py and
tests/test_disentangling_models.py."""

import math

import numpy as np


def np_mss_total_correlation(z, z_mean, z_log_var, n):
    """TC_i = log q(z_i) - sum_d log q(z_id), q estimated by minibatch stratified sampling (Chen et al.'s weights)."""
    b, m = len(z), len(z) - 1
    log_w = np.full((b, b), -math.log(m))
    for i in range(b):
        log_w[i, (i + 1) % b] = math.log((n - m) / (n * m))
        log_w[i, i] = -math.log(n)
    log_q = -0.5 * (math.log(2 * math.pi) + z_log_var[None] + (z[:, None] - z_mean[None]) ** 2 / np.exp(z_log_var[None]))
    lse = lambda v, axis: np.log(np.sum(np.exp(v - v.max(axis, keepdims=True)), axis)) + v.max(axis)  # noqa: E731
    return lse(log_q.sum(2) + log_w, 1) - lse(log_q + log_w[:, :, None], 1).sum(1)
