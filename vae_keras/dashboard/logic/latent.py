"""The dashboard's latent-space computations: a 2-D view (PCA), manifold grids, traversals, interpolations.

Example:
>>> import numpy as np
>>> z = latent_traversal(np.zeros(4), dims=[1, 3], values=[-1.0, 0.0, 1.0])
>>> z.shape, z[2].tolist()
((6, 4), [0.0, 1.0, 0.0, 0.0])
"""

from __future__ import annotations

import math
import statistics

import numpy as np


def pca_2d(z):
    """Projects ``z [N, D]`` on its first two principal components (numpy SVD).

    Returns:
        ``(points [N, 2], explained [2])`` where ``explained`` is each component's fraction of the
        total variance. Signs are fixed (largest loading positive) so the picture is stable.
        With D = 1 the second coordinate is zero.
    """
    z = np.asarray(z, np.float64)
    if z.ndim != 2 or len(z) == 0:
        raise ValueError(f"pca_2d needs a non-empty [N, D] array. Received shape {z.shape}")
    centred = z - z.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(2, vt.shape[0])
    comps = vt[:k]
    signs = np.sign(comps[np.arange(k), np.argmax(np.abs(comps), axis=1)])
    comps = comps * np.where(signs == 0, 1.0, signs)[:, None]
    points = centred @ comps.T
    var = s**2
    total = var.sum()
    explained = var[:k] / total if total > 0 else np.zeros(k)
    if k < 2:
        points = np.concatenate([points, np.zeros((len(z), 2 - k))], axis=1)
        explained = np.concatenate([explained, np.zeros(2 - k)])
    return points, explained


def latent_frame(z_mean, labels=None):
    """The latent scatter as a DataFrame (``x``, ``y``, ``label``, ``image``) and the axis titles.

    2-D latents are shown as they are; larger ones through :func:`pca_2d`; 1-D against zero.

    Returns:
        ``(frame, (x_title, y_title), note)``.
    """
    import pandas as pd

    z_mean = np.asarray(z_mean, np.float64)
    d = z_mean.shape[1]
    if d == 2:
        points, titles, note = z_mean, ("z₁", "z₂"), "The 2-D latent space as it is: each point is a test image's posterior mean."
    elif d == 1:
        points = np.concatenate([z_mean, np.zeros_like(z_mean)], axis=1)
        titles, note = ("z₁", ""), "A 1-D latent space: each point is a test image's posterior mean."
    else:
        points, explained = pca_2d(z_mean)
        titles = (f"PC 1 ({explained[0]:.0%} of variance)", f"PC 2 ({explained[1]:.0%} of variance)")
        note = (f"The {d}-D posterior means projected on their two principal components, which keep "
                f"{explained.sum():.0%} of the variance.")
    frame = pd.DataFrame({"x": points[:, 0], "y": points[:, 1], "image": np.arange(len(points))})
    frame["label"] = [str(v) for v in labels] if labels is not None else "unlabelled"
    return frame, titles, note


def normal_quantiles(n, mass=0.9):
    """``n`` evenly spaced quantiles of N(0, 1) covering the central ``mass`` of probability.

    Example:
    >>> [round(v, 3) for v in normal_quantiles(3, mass=0.9)]
    [-1.645, 0.0, 1.645]
    """
    n = int(n)
    if n < 1 or not 0.0 < mass < 1.0:
        raise ValueError(f"normal_quantiles needs n >= 1 and 0 < mass < 1. Received: n={n}, mass={mass}")
    if n == 1:
        return [0.0]
    lo = (1.0 - mass) / 2.0
    dist = statistics.NormalDist()
    return [dist.inv_cdf(lo + i * mass / (n - 1)) for i in range(n)]


def manifold_z(n, mass=0.9):
    """Latent codes of an ``n x n`` manifold grid of a 2-D latent, row-major as make_grid tiles them.

    Columns go along z₁ (left to right, increasing) and rows along z₂ (top to bottom, decreasing),
    so the picture has the orientation of the scatter plot. Values are normal quantiles, so each cell
    holds the same prior probability mass.

    Returns:
        float32 ``[n * n, 2]``.
    """
    q = normal_quantiles(n, mass)
    return np.asarray([[z1, z2] for z2 in reversed(q) for z1 in q], np.float32)


def latent_traversal(base, dims, values):
    """Codes that move one latent dimension at a time away from ``base``.

    Args:
        base: ``[D]`` starting code (e.g. zeros, or a test image's z_mean).
        dims: dimensions to traverse; each gives one row.
        values: the values that dimension takes along the row.

    Returns:
        float32 ``[len(dims) * len(values), D]``, row by row.
    """
    base = np.asarray(base, np.float32).reshape(-1)
    dims = [int(d) for d in dims]
    for d in dims:
        if not 0 <= d < len(base):
            raise ValueError(f"latent dim {d} is out of range for a {len(base)}-D latent space")
    z = np.repeat(base[None, :], len(dims) * len(values), axis=0)
    for r, d in enumerate(dims):
        z[r * len(values):(r + 1) * len(values), d] = np.asarray(values, np.float32)
    return z


def interpolate(z0, z1, steps, spherical=False):
    """``steps`` codes from ``z0`` to ``z1`` inclusive: straight line, or great circle (``spherical``).

    Spherical interpolation keeps the norm typical of N(0, I) samples in high dimensions; it falls
    back to a straight line when the two codes are (anti)parallel or zero.
    """
    z0 = np.asarray(z0, np.float64).reshape(-1)
    z1 = np.asarray(z1, np.float64).reshape(-1)
    steps = int(steps)
    if steps < 2:
        raise ValueError(f"interpolate needs steps >= 2. Received: steps={steps}")
    t = np.linspace(0.0, 1.0, steps)[:, None]
    if spherical:
        n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
        if n0 > 0 and n1 > 0:
            cos = np.clip(np.dot(z0, z1) / (n0 * n1), -1.0, 1.0)
            omega = math.acos(cos)
            if 1e-6 < omega < math.pi - 1e-6:
                so = math.sin(omega)
                return ((np.sin((1.0 - t) * omega) / so) * z0 + (np.sin(t * omega) / so) * z1).astype(np.float32)
    return ((1.0 - t) * z0 + t * z1).astype(np.float32)
