"""What a test negative log-likelihood in nats is (a code length, a density or a cross-entropy), and how
reports name it: the one rule for bits/dim and labels, shared by evaluation, the CLI and the dashboard.

Light on purpose (numpy only): the dashboard labels the models list from the model cards with it before
TensorFlow is imported.
"""

import math

import numpy as np

# What a negative log-likelihood in nats means (`nll_kind`), and how reports name it.
DISCRETE = "discrete"  # a normalised probability of discrete data: a code length; bits/dim are comparable
DENSITY = "density"  # a continuous density: can be negative, not comparable with discrete models
NOT_A_LIKELIHOOD = "not_a_likelihood"  # Bernoulli cross-entropy of non-binary intensities
NLL_MEANINGS = {
    DISCRETE: "nats (-log probability of the discrete images; bits/dim comparable)",
    DENSITY: "nats of density (not comparable with discrete models)",
    NOT_A_LIKELIHOOD: "nats of Bernoulli cross-entropy on non-binary intensities (not a likelihood of the images)",
    None: "nats (what they measure was not recorded: re-run `vae-keras evaluate`)",
}
NLL_SHORT_LABELS = {  # for tables and lists
    DISCRETE: "NLL",
    DENSITY: "NLL (density, not comparable with discrete models)",
    NOT_A_LIKELIHOOD: "NLL (not a likelihood of the images)",
    None: "NLL (kind not recorded)",
}


def nll_kind(likelihood, x=None, binarized=False):
    """What -log p(x) of ``likelihood`` on the images ``x`` is: the one rule for bits/dim and labels.

    Only a normalised discrete likelihood of data that really is discrete is a probability of the
    images (a code length, comparable across models and convertible to bits/dim): Bernoulli on
    binary images, the discretized logistic on images on its k/(levels-1) grid. A Gaussian is a
    density; Bernoulli on intensities strictly between 0 and 1 is a cross-entropy, not a likelihood;
    the logistic on off-grid floats is read as a density too.

    Args:
        likelihood: a `vae_keras.likelihoods.Likelihood` or its name (as in a model card).
        x: the images scored (float, [0, 1]), or None if unknown.
        binarized: True if ``x`` are binarized images (binary without looking).

    Returns:
        DISCRETE, DENSITY or NOT_A_LIKELIHOOD; None when it depends on images that are not given
        (or the likelihood is None).

    Example:
    >>> import numpy as np
    >>> nll_kind("gaussian"), nll_kind("bernoulli", np.array([0.0, 1.0])), nll_kind("bernoulli", np.array([0.5]))
    ('density', 'discrete', 'not_a_likelihood')
    """
    name = likelihood if isinstance(likelihood, str) or likelihood is None else getattr(likelihood, "name", None)
    if name is None:  # e.g. a model card without a likelihood
        return None
    if name == "bernoulli":
        if binarized:
            return DISCRETE
        if x is None:
            return None
        x = np.asarray(x)
        return DISCRETE if np.all((x == 0) | (x == 1)) else NOT_A_LIKELIHOOD
    if name == "logistic":
        if x is None:
            return None
        top = float(getattr(likelihood, "num_levels", 256) - 1)
        scaled = np.asarray(x, np.float64) * top
        on_grid = np.all((scaled >= -1e-3) & (scaled <= top + 1e-3) & (np.abs(scaled - np.round(scaled)) <= 1e-3))
        return DISCRETE if on_grid else DENSITY
    return DENSITY  # gaussian, and any other (custom) likelihood: not known to be a discrete probability


def card_nll_kind(card):
    """`nll_kind` of a model card's test NLL: as recorded by training, else what the card implies."""
    metrics = (card or {}).get("metrics") or {}
    if "test_nll_kind" in metrics:
        return metrics["test_nll_kind"]
    return nll_kind((card or {}).get("likelihood"), None, binarized=bool((card or {}).get("test_binarized")))


def bits_per_dim(nll_nats, num_dims):
    """Converts a negative log-likelihood in nats per image to bits per dimension."""
    return float(nll_nats) / (num_dims * math.log(2.0))
