"""Evaluation: ELBO, importance-weighted log-likelihood, bits per dimension, KL per dim, active units.

The importance-weighted estimate (Burda et al. 2016) of log p(x) is
    log p(x) ~= logsumexp_k log w_k - log K,   log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x),
with z_k ~ q(z|x). It is a lower bound in expectation that tightens as K grows, and for K = 1 its
mean is the ELBO. Samples are processed in chunks and merged with a running logsumexp, so memory is
bounded by ``batch_size * chunk`` decoder evaluations whatever K is.
"""

import math
import time

import keras
import numpy as np
import tensorflow as tf

from vae_keras import checks
from vae_keras import labels as labels_lib
from vae_keras.active_units import (  # noqa: F401 - re-exported: the one rule for active units
    ACTIVE_UNIT_RULE,
    ACTIVE_UNIT_THRESHOLD,
    active_units,
    activity_per_dim,
    is_active,
)
from vae_keras.errors import ConfigError, DataError
from vae_keras.gaussian import diag_normal_log_prob_of_noise, gaussian_kl
from vae_keras.nll_kinds import (  # noqa: F401 - re-exported: evaluation.DISCRETE, evaluation.nll_kind, ...
    DENSITY,
    DISCRETE,
    NLL_MEANINGS,
    NLL_SHORT_LABELS,
    NOT_A_LIKELIHOOD,
    bits_per_dim,
    card_nll_kind,
    nll_kind,
)

# Sample quality (Fréchet distance, precision/recall, class accuracy of samples) lives in its own module:
# vae_keras.sample_quality.evaluate_samples, score, class_accuracy, get_classifier.


def iw_log_likelihood(model, x, num_samples=1000, batch_size=100, max_decodes=20000, seed=0, progress=False,
                      labels=None, max_seconds=None):
    """Importance-weighted estimates of log p(x) per image, in nats.

    Args:
        model: a `vae_keras.VAE` (anything with `encode` and `log_importance_weights`).
        x: float32 images [N, H, W, C] (binarize them first for a Bernoulli model).
        num_samples: K, the number of importance samples per image.
        batch_size: images per step.
        max_decodes: bound on batch_size * chunk decoder evaluations held in memory at once.
        seed: seed of the importance samples; the same seed gives the same estimate.
        progress: show a Keras progress bar.
        labels: integer labels [N] for a conditional model (its log p(x|y)).
        max_seconds: a time budget: after each batch, stop if the next one (estimated from the
            time of the last) would end after it. The first batch always runs, and the second if
            time is left (the first one's time includes tracing). None: all images.

    Returns:
        A dict of numpy arrays [n]: ``log_px`` (the IW estimate with K samples) and ``elbo``
        (the mean of the K log-weights, an unbiased ELBO estimate), for the first n images: all N,
        or as many as ``max_seconds`` allowed.
    """
    for name, value in (("num_samples", num_samples), ("batch_size", batch_size)):
        checks.check_integer(name, value, 1, numpy=True, message="{name} must be a positive integer. Received: {name}={value!r}")
    x = np.asarray(x, np.float32)
    chunk = int(max(1, min(num_samples, max_decodes // batch_size)))
    generator = keras.random.SeedGenerator(seed)

    labels = _check_labels(model, labels, len(x))

    @tf.function(reduce_retracing=True)
    def chunk_stats(xb, yb, k):
        log_w = model.log_importance_weights(xb, k, seed=generator, **({} if yb is None else {"label": yb}))  # [k, B]
        return tf.reduce_logsumexp(log_w, axis=0), tf.reduce_sum(log_w, axis=0)

    log_px, elbo = [], []
    bar = keras.utils.Progbar(len(x), unit_name="image") if progress else None
    began = time.monotonic()
    last_batch_seconds = 0.0
    for start in range(0, len(x), batch_size):
        # The first batch's time includes tracing: the second batch runs if time is left, later ones if the
        # last batch's time still fits.
        estimate = last_batch_seconds if len(log_px) > 1 else 0.0
        if max_seconds is not None and log_px and time.monotonic() - began + estimate > max_seconds:
            break
        batch_began = time.monotonic()
        xb = tf.constant(x[start:start + batch_size])
        yb = None if labels is None else tf.constant(labels[start:start + batch_size])
        lse = tf.fill([xb.shape[0]], -np.inf)
        total = tf.zeros([xb.shape[0]])
        done = 0
        while done < num_samples:
            k = min(chunk, num_samples - done)
            chunk_lse, chunk_sum = chunk_stats(xb, yb, tf.constant(k))
            lse = tf.experimental.numpy.logaddexp(lse, chunk_lse)
            total += chunk_sum
            done += k
        log_px.append((lse - math.log(num_samples)).numpy())
        elbo.append((total / num_samples).numpy())
        last_batch_seconds = time.monotonic() - batch_began
        if bar is not None:
            bar.add(int(xb.shape[0]))
    return {"log_px": np.concatenate(log_px), "elbo": np.concatenate(elbo)}


def _check_labels(model, labels, n):
    conditional = getattr(model, "conditional", False)
    if not conditional:
        return None
    if labels is None:
        raise ConfigError("A conditional model is evaluated on (images, labels): pass labels=[N] integers. Received: labels=None")
    return labels_lib.check_labels(
        labels, n, model.num_classes,
        shape_message="labels must be {n} integers. Received an array of shape {shape}, dtype {dtype}",
        range_message="labels must lie in 0..{top}. Received values {low}..{high}")


def latent_statistics(model, x, batch_size=500, labels=None):
    """z_mean [N, D] and the mean KL per latent dim [D] over the images ``x``."""
    x = np.asarray(x, np.float32)
    labels = _check_labels(model, labels, len(x))
    means, kls = [], []
    for start in range(0, len(x), batch_size):
        xb = tf.constant(x[start:start + batch_size])
        extra = {} if labels is None else {"label": tf.constant(labels[start:start + batch_size])}
        z_mean, z_log_var = model.encode(xb, **extra)
        means.append(keras.ops.convert_to_numpy(z_mean))
        kls.append(keras.ops.convert_to_numpy(gaussian_kl(z_mean, z_log_var)))
    return np.concatenate(means), np.concatenate(kls).mean(axis=0)


def learned_prior_kl(model, x, num_samples=16, seed=0, batch_size=500):
    """KL(q(z|x) || p(z)) per image [N] for a model with a learned prior (no closed form): the mean over
    ``num_samples`` draws z_s ~ q(z|x) (seeded) of log q(z_s|x) - log p(z_s)."""
    generator = keras.random.SeedGenerator(seed)
    out = []
    for start in range(0, len(x), batch_size):
        z_mean, z_log_var = model.encode(tf.constant(x[start:start + batch_size]))
        eps = keras.random.normal((num_samples,) + tuple(z_mean.shape), seed=generator)
        z = z_mean[None] + keras.ops.exp(0.5 * z_log_var)[None] * eps
        kl = diag_normal_log_prob_of_noise(eps, z_log_var[None]) - model.prior.log_prob(z)
        out.append(keras.ops.convert_to_numpy(keras.ops.mean(kl, axis=0)))
    return np.concatenate(out)


def evaluate(model, x, iw_samples=1000, batch_size=100, seed=0, progress=False, labels=None, max_seconds=None):
    """Evaluates a VAE on test images.

    Args:
        model: a `vae_keras.VAE`.
        x: float32 images [N, H, W, C] in [0, 1]; for a Bernoulli model, already binarized (see
            `vae_keras.data.binarize`) so the likelihood is a proper probability (on intensities
            the result says it is not one: ``nll_kind``).
        iw_samples: K for the importance-weighted log-likelihood.
        batch_size: images per step.
        seed: seed of the importance samples.
        progress: show a Keras progress bar.
        labels: integer labels [N], required for a conditional model.
        max_seconds: a time budget for the importance-weighted pass (see `iw_log_likelihood`):
            only the first ``num_images`` images that fit are evaluated. None: all of them.

    Returns:
        A dict: ``elbo`` (nats, mean over images), ``nll`` (importance-weighted negative
        log-likelihood, nats), ``nll_kind`` (`nll_kind`: DISCRETE, DENSITY or NOT_A_LIKELIHOOD),
        ``nll_meaning`` (its words for reports), ``bits_per_dim`` (None unless ``nll_kind`` is
        DISCRETE), ``kl`` (mean KL, nats), ``kl_per_dim`` (list; None with a learned prior, whose KL does
        not split into dims and is then the Monte-Carlo `learned_prior_kl`), ``activity_per_dim`` (list: each
        dim's Var_x(E_q[z_j|x]), the quantity of the active-units rule, `ACTIVE_UNIT_RULE`; None with fewer
        than two images), ``active_units`` (None with fewer than
        two images: the variance over images is undefined), ``latent_dim``, ``iw_samples``, ``num_images``
        (the images evaluated).
    """
    x = np.asarray(x, np.float32)
    if x.ndim != 4 or len(x) == 0:
        raise ConfigError(f"evaluate needs a non-empty batch of images [N, H, W, C]. Received shape {x.shape}")
    if tuple(x.shape[1:]) != tuple(model.image_shape):
        raise ConfigError(f"Images of shape {tuple(x.shape[1:])} do not fit a model of image shape {tuple(model.image_shape)}")
    iw = iw_log_likelihood(model, x, num_samples=iw_samples, batch_size=batch_size, seed=seed, progress=progress,
                           labels=labels, max_seconds=max_seconds)
    n = len(iw["log_px"])  # fewer than len(x) when max_seconds cut the pass short
    x, labels = x[:n], None if labels is None else np.asarray(labels)[:n]
    z_mean, kl_per_dim = latent_statistics(model, x, labels=labels)
    nll = -float(np.mean(iw["log_px"]))
    activity = activity_per_dim(z_mean)
    kind = nll_kind(model.likelihood, x)
    learned_prior = getattr(getattr(model, "prior", None), "learned", False)
    kl = float(np.mean(learned_prior_kl(model, x, seed=seed))) if learned_prior else float(np.sum(kl_per_dim))
    return {
        "elbo": float(np.mean(iw["elbo"])),
        "nll": nll,
        "nll_kind": kind,
        "nll_meaning": NLL_MEANINGS[kind],
        "bits_per_dim": bits_per_dim(nll, int(np.prod(x.shape[1:]))) if kind == DISCRETE else None,
        "kl": kl,
        "kl_per_dim": None if learned_prior else [float(v) for v in kl_per_dim],
        "activity_per_dim": None if activity is None else [float(v) for v in activity],
        "active_units": None if activity is None else int(np.sum(is_active(activity))),
        "latent_dim": int(model.latent_dim),
        "iw_samples": int(iw_samples),
        "num_images": int(len(x)),
    }


def disentanglement(model, data, spec, num_train=None, seed=0, batch_size=100, dci_predictor=None, **kwargs):
    """The disentanglement metrics (`vae_keras.disentanglement.evaluate_disentanglement`) of a VAE's z_mean on
    images rendered from the factors of ``data`` (a loaded dataset named ``spec``).

    Raises DataError, in one line naming ``spec``, if ``data`` has no factors of variation
    (``factor_names``, ``factor_sizes``, ``render``, ``sample_factors``); ConfigError for a conditional model.
    ``num_train``: None for disentanglement_lib's 10,000 (the test sets are half of it). ``dci_predictor``: None for
    the package's default (`vae_keras.disentanglement.DCI_PREDICTOR`, the random forest). ``kwargs``: further
    arguments of `evaluate_disentanglement` (``pool_size``, ``metrics``).
    """
    from vae_keras import disentanglement as dis

    check_disentanglement(model, data, spec, seed)
    represent = dis.representation_from_model(model, batch_size=batch_size)
    return dis.evaluate_disentanglement(represent, data, num_train=num_train or dis.NUM_TRAIN, seed=seed,
                                        dci_predictor=dci_predictor or dis.DCI_PREDICTOR, **kwargs)


def check_disentanglement(model, data, spec, seed=0):
    """Refuses (one line) what `disentanglement` cannot evaluate: a dataset without factors, a conditional model,
    a seed numpy's RandomState does not take."""
    from vae_keras import disentanglement as dis

    missing = dis.missing_ground_truth_attributes(data)
    if missing:
        raise DataError(f"--disentanglement needs a dataset with factors of variation (such as dsprites); dataset {spec!r} "
                        f"has none (it lacks {', '.join(missing)}). Evaluate a model of such a dataset, or pass --dataset.")
    dis.check_unconditional(model)
    dis.check_seed(seed)
