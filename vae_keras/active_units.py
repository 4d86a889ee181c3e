"""Active latent units: the one rule, shared by evaluation (the model card, ``vae-keras evaluate``) and the
dashboard.

Burda, Grosse and Salakhutdinov (2016, "Importance Weighted Autoencoders", section 5.2): latent dim j is
*active* if its activity A_j = Cov_x(E_q[z_j | x]), the variance over the data of the posterior mean, is
above 0.01. A dim the encoder ignores has the same posterior for every image, so its mean does not vary.

Light on purpose (numpy only): the dashboard uses it before TensorFlow is imported.

Example:
>>> import numpy as np
>>> z_mean = np.array([[0.0, 0.0], [1.0, 0.05], [2.0, -0.05]])
>>> [round(a, 4) for a in activity_per_dim(z_mean)], active_units(z_mean)
([0.6667, 0.0017], 1)
"""

import numpy as np

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. 2016: Cov_x(E_q[z_j|x]) > 0.01
ACTIVE_UNIT_RULE = (f"a latent dim is active if the variance over the test images of its posterior mean, "
                    f"Cov_x(E_q[z_j|x]), exceeds {ACTIVE_UNIT_THRESHOLD:g} (Burda et al. 2016)")


def activity_per_dim(z_mean):
    """A_j = Var_x(E_q[z_j|x]) of posterior means ``z_mean [N, D]`` (population variance), as a float64 ``[D]``.

    None for fewer than two images: a variance over one image is no measure of activity."""
    z_mean = np.asarray(z_mean, np.float64)
    if z_mean.ndim != 2:
        raise ValueError(f"activity_per_dim needs posterior means [N, D]. Received shape {z_mean.shape}")
    if len(z_mean) < 2:
        return None
    return np.var(z_mean, axis=0)


def is_active(activity, threshold=ACTIVE_UNIT_THRESHOLD):
    """Booleans ``[D]``: which dims of an activity vector (:func:`activity_per_dim`) are active."""
    return np.asarray(activity, np.float64) > threshold


def active_units(z_mean, threshold=ACTIVE_UNIT_THRESHOLD):
    """Number of active latent dims of posterior means ``z_mean [N, D]`` (None for fewer than two images)."""
    activity = activity_per_dim(z_mean)
    return None if activity is None else int(np.sum(is_active(activity, threshold)))
