"""The option contract (vae_keras.options): every pair of options either trains with the documented loss or is
refused with one line naming both.

For every pair of non-default options, a tiny VAE is built with both and trained for one step by `fit`. The
reparameterization noise is set to zero (z = z_mean), so the loss `fit` logs is a deterministic function of the
networks' outputs, recomputed here in numpy from the documented formula (README "Option contract"): an
independent implementation of each likelihood, the KL, free bits, the capacity target, the IWAE bound and
sample weights, and the two-layer hierarchy's sampled path (latent_layers=2). A refused pair must raise a `ConfigError` whose one line names both options; the README's
table must say the same.
"""

import itertools
import math
import os
import re

import keras
import numpy as np
import pytest

from vae_keras import VAE, build_vae
from vae_keras.errors import ConfigError
from vae_keras.training import TrainConfig

from conftest import REPO_ROOT
from reference_losses import np_mss_total_correlation

SHAPE = (6, 6, 1)
BATCH = 8
LATENT = 3

# Each option at a non-default setting: model keyword arguments, plus "fit" extras (sample weights, labels).
OPTIONS = {
    "objective": {"objective": "iwae", "iw_samples": 3},
    "beta": {"beta": 2.5},
    "kl_warmup": {"kl_warmup_steps": 4},
    "free_bits": {"free_bits": 2.0},
    "capacity": {"capacity_max": 5.0, "capacity_steps": 7, "capacity_gamma": 10.0},
    "iw_samples": {"iw_samples": 3},
    "binarize": {"binarize": True},
    "likelihood=gaussian": {"likelihood": "gaussian"},
    "likelihood=logistic": {"likelihood": "logistic"},
    "conditional": {"num_classes": 3},
    "sample_weight": {},
    "dtype_policy=mixed_bfloat16": {"dtype_policy": "mixed_bfloat16"},
    "dtype_policy=mixed_float16": {"dtype_policy": "mixed_float16"},
    "sampler=gmm": {"sampler": "gmm:2"},  # changes sampling only: the loss is the documented one
    "prior=vamp": {"prior": "vamp", "prior_components": 3},
    "prior=mog": {"prior": "mog", "prior_components": 4},
    "iwae_gradient=dreg": {"iwae_gradient": "dreg"},
    # The disentangling objectives (values of `objective`, so never paired with each other or with iwae).
    "objective=tcvae": {"objective": "tcvae", "dataset_size": 40, "beta": 3.0},  # beta != 1: the TC enters the loss
    "objective=factorvae": {"objective": "factorvae", "gamma": 3.0, "discriminator_hidden": (16, 16)},
    "objective=dipvae1": {"objective": "dipvae1", "lambda_od": 2.0},
    "objective=dipvae2": {"objective": "dipvae2", "lambda_od": 2.0, "lambda_d": 0.5},
    "latent_layers": {"latent_layers": 2},
    "decoder=pixelcnn": {"decoder": "pixelcnn"},
}
OBJECTIVE_VALUES = ("objective", "objective=tcvae", "objective=factorvae", "objective=dipvae1", "objective=dipvae2")
# The contract, written out independently of vae_keras.options: the refused pairs (in either order).
REFUSED = {
    frozenset({"objective", "free_bits"}), frozenset({"objective", "capacity"}),
    frozenset({"capacity", "free_bits"}), frozenset({"capacity", "kl_warmup"}), frozenset({"capacity", "beta"}),
    frozenset({"binarize", "likelihood=gaussian"}), frozenset({"binarize", "likelihood=logistic"}),
    frozenset({"prior=vamp", "free_bits"}), frozenset({"prior=mog", "free_bits"}),
    frozenset({"prior=vamp", "conditional"}), frozenset({"prior=mog", "conditional"}),
    # beta-TCVAE's decomposition has no analytic KL for free bits or capacity to act on.
    frozenset({"objective=tcvae", "free_bits"}), frozenset({"objective=tcvae", "capacity"}),
    # The disentangling objectives pull q(z) towards a factorised N(0, I), the target a learned prior replaces.
    *(frozenset({prior, objective}) for prior in ("prior=vamp", "prior=mog")
      for objective in ("objective=tcvae", "objective=factorvae", "objective=dipvae1", "objective=dipvae2")),
    # A hierarchy keeps N(0, I) on its top layer; the disentangling objectives act on one latent layer.
    frozenset({"latent_layers", "prior=vamp"}), frozenset({"latent_layers", "prior=mog"}),
    *(frozenset({"latent_layers", objective})
      for objective in ("objective=tcvae", "objective=factorvae", "objective=dipvae1", "objective=dipvae2")),
    frozenset({"decoder=pixelcnn", "likelihood=gaussian"}), frozenset({"decoder=pixelcnn", "likelihood=logistic"}),
    frozenset({"decoder=pixelcnn", "latent_layers"}),
}
# iw_samples > 1 and iwae_gradient="dreg" need objective="iwae": refused with everything else.
ALWAYS_REFUSED = {"iw_samples", "iwae_gradient=dreg"}
# Two values of one option are not a pair.
SAME_OPTION = {frozenset({"likelihood=gaussian", "likelihood=logistic"}),
               frozenset({"dtype_policy=mixed_bfloat16", "dtype_policy=mixed_float16"}),
               frozenset({"prior=vamp", "prior=mog"})}
SAME_OPTION |= {frozenset(p) for p in itertools.combinations(OBJECTIVE_VALUES, 2)}
# The keyword each option's message names (a refusal must name both options of the pair).
KEYWORD = {"objective": "objective", "beta": "beta", "kl_warmup": "kl_warmup_steps", "free_bits": "free_bits",
           "capacity": "capacity_max", "iw_samples": "iw_samples", "binarize": "binarize",
           "likelihood=gaussian": "likelihood", "likelihood=logistic": "likelihood", "sampler=gmm": "sampler",
           "prior=vamp": "prior", "prior=mog": "prior", "conditional": "num_classes", "iwae_gradient=dreg": "iwae_gradient",
           "latent_layers": "latent_layers", "decoder=pixelcnn": "decoder", **{name: "objective" for name in OBJECTIVE_VALUES}}

PAIRS = [p for p in itertools.combinations(OPTIONS, 2) if frozenset(p) not in SAME_OPTION]


def _refused(pair):
    names = set(pair)
    if names & ALWAYS_REFUSED and "objective" not in names:  # iw_samples and DReG need objective iwae
        return True
    return frozenset(names) in REFUSED


# ------------------------------------------------------------------------------------------------
# An independent numpy implementation of the documented loss
# ------------------------------------------------------------------------------------------------


def _softplus(v):
    return np.logaddexp(0.0, v)


def _log_sigmoid(v):
    return -_softplus(-v)


def _np_log_px(likelihood, x, params):
    """log p(x|z) summed over pixels, per image."""
    x = x.astype(np.float64)
    params = params.astype(np.float64)
    if likelihood == "bernoulli":
        per_pixel = x * params - _softplus(params)
    elif likelihood == "gaussian":
        loc, log_scale = params[..., :1], np.maximum(params[..., 1:], -7.0)
        per_pixel = -0.5 * math.log(2 * math.pi) - log_scale - 0.5 * ((x - loc) / np.exp(log_scale)) ** 2
    else:  # 256-level discretized logistic: bin mass, tails at the edge bins
        loc, log_scale = params[..., :1], np.maximum(params[..., 1:], -7.0)
        half = 0.5 / 255.0
        upper, lower = (x - loc + half) / np.exp(log_scale), (x - loc - half) / np.exp(log_scale)
        mass = 1 / (1 + np.exp(-upper)) - 1 / (1 + np.exp(-lower))
        per_pixel = np.where(x < half, _log_sigmoid(upper),
                             np.where(x > 1 - half, _log_sigmoid(-lower), np.log(np.maximum(mass, 1e-300))))
    return per_pixel.reshape(len(x), -1).sum(axis=1)


def _np_mixture_log_prob(z, means, log_vars, log_weights):
    """log sum_k pi_k N(z; mu_k, diag exp(log_var_k)), z [B, D]."""
    z, means, log_vars = z[:, None].astype(np.float64), means.astype(np.float64), log_vars.astype(np.float64)
    per_component = np.sum(-0.5 * (math.log(2 * math.pi) + log_vars + (z - means) ** 2 / np.exp(log_vars)), axis=-1)
    top = np.max(per_component + log_weights, axis=1, keepdims=True)
    return (top + np.log(np.sum(np.exp(per_component + log_weights - top), axis=1, keepdims=True)))[:, 0]


def _np_discriminator(weights, z):
    """The discriminator MLP: dense layers (kernel, bias pairs), leaky ReLU 0.2 between them."""
    h = z.astype(np.float64)
    pairs = list(zip(weights[0::2], weights[1::2]))
    for i, (kernel, bias) in enumerate(pairs):
        h = h @ kernel + bias
        if i < len(pairs) - 1:
            h = np.where(h > 0, h, 0.2 * h)
    return h


def _np_dip_penalty(kwargs, z_mean, z_log_var, weights):
    w = weights.astype(np.float64)[:, None] / weights.sum()
    mu = (w * z_mean).sum(0)
    cov = (w * z_mean).T @ z_mean - np.outer(mu, mu)
    if kwargs["objective"] == "dipvae2":
        cov += np.diag((w * np.exp(z_log_var)).sum(0))
    lambda_od = kwargs["lambda_od"]
    lambda_d = kwargs.get("lambda_d") or (10 if kwargs["objective"] == "dipvae1" else 1) * lambda_od
    off = cov - np.diag(np.diag(cov))
    return lambda_od * (off ** 2).sum() + lambda_d * ((np.diag(cov) - 1) ** 2).sum()


def _np_log_normal(z, mean, log_var):
    """Per-dim log N(z; mean, exp(log_var))."""
    return -0.5 * (math.log(2 * math.pi) + log_var + (z - mean) ** 2 * np.exp(-log_var))


def _np_latent_terms(layers):
    """(KL term per latent dim [B, D], log p(z) - log q(z|x) [B]) at eps = 0, from the networks' outputs ``layers``:
    one layer: (z_mean, z_log_var) of q(z|x); two layers: q(z1|x), q(z2|z1) at z1 = its mean, and p(z1|z2) at z2 = its
    mean, each (mean, log_var)."""
    layers = [tuple(t.astype(np.float64) for t in pair) for pair in layers]
    kl = lambda m, lv: 0.5 * (np.exp(lv) + m ** 2 - 1 - lv)  # noqa: E731 - analytic KL(N(m, e^lv) || N(0, 1))
    m1, lv1 = layers[0]
    log_q1 = _np_log_normal(m1, m1, lv1)  # eps = 0: z1 at its mean
    if len(layers) == 1:
        return kl(m1, lv1), np.sum(_np_log_normal(m1, 0.0, 0.0) - log_q1, axis=1)
    (m2, lv2), (pm1, plv1) = layers[1], layers[2]
    log_q2 = _np_log_normal(m2, m2, lv2)  # z2 at its mean
    log_p1 = _np_log_normal(m1, pm1, plv1)  # p(z1 | z2 = m2) at z1 = m1
    kl_per_dim = np.concatenate([log_q1 - log_p1, kl(m2, lv2)], axis=1)  # one-sample below the top, analytic at it
    log_pz = np.sum(_np_log_normal(m2, 0.0, 0.0), axis=1) + np.sum(log_p1, axis=1)
    return kl_per_dim, log_pz - np.sum(log_q1, axis=1) - np.sum(log_q2, axis=1)


def _np_loss(kwargs, x, params, layers, weights, prior=None, discriminator_weights=None):
    """The documented training loss at optimizer step 0, with eps = 0 (every z at its mean).

    ``layers``: the networks' outputs, as `_np_latent_terms` takes them; ``prior``: (means, log_vars,
    log_weights) of a learned prior's mixture, None for N(0, I); ``discriminator_weights``: FactorVAE's
    discriminator (kernel, bias pairs)."""
    z_mean, z_log_var = (t.astype(np.float64) for t in layers[0])
    mean = lambda v: np.sum(weights.reshape((-1,) + (1,) * (v.ndim - 1)) * v, axis=0) / len(x)  # noqa: E731
    log_px = _np_log_px(kwargs.get("likelihood", "bernoulli"), x, params)
    log_qz = np.sum(-0.5 * (math.log(2 * math.pi) + z_log_var), axis=1)  # eps = 0
    if prior is not None:  # the Monte-Carlo KL log q(z|x) - log p(z) at z = z_mean, summed dims only as a whole
        kl_per_dim = None
        log_pz = _np_mixture_log_prob(z_mean, *prior)
        kl, log_pz_minus_qz = log_qz - log_pz, log_pz - log_qz
    else:  # N(0, I), or a hierarchy's terms
        kl_per_dim, log_pz_minus_qz = _np_latent_terms(layers)
        kl = kl_per_dim.sum(axis=1)
    beta = kwargs.get("beta", 1.0)
    warmup = kwargs.get("kl_warmup_steps", 0)
    w = beta * min(1.0, 1.0 / warmup) if warmup else beta
    if kwargs.get("objective") == "iwae":
        log_w = log_px + w * log_pz_minus_qz  # all K samples equal: logsumexp - log K = log_w
        return mean(-log_w)
    reconstruction = mean(-log_px)
    objective = kwargs.get("objective", "elbo")
    if objective == "tcvae":  # rec + r_t * M[log q(z|x) - log p(z)] + r_t * (beta - 1) * M[TC]
        ramp = min(1.0, 1.0 / warmup) if warmup else 1.0
        log_pz = np.sum(-0.5 * (z_mean ** 2 + math.log(2 * math.pi)), axis=1)
        log_qz = np.sum(-0.5 * (math.log(2 * math.pi) + z_log_var), axis=1)  # eps = 0
        tc = np_mss_total_correlation(z_mean, z_mean, z_log_var, kwargs["dataset_size"])
        return reconstruction + ramp * mean(log_qz - log_pz) + ramp * (beta - 1) * mean(tc)
    if kwargs.get("capacity_max"):
        target = kwargs["capacity_max"] * min(1.0, 1.0 / kwargs["capacity_steps"])
        loss = reconstruction + kwargs["capacity_gamma"] * abs(mean(kl) - target)
    elif kwargs.get("free_bits"):
        loss = reconstruction + w * np.maximum(mean(kl_per_dim), kwargs["free_bits"]).sum()
    else:
        loss = reconstruction + w * mean(kl)
    if objective == "factorvae":
        logits = _np_discriminator(discriminator_weights, z_mean)
        loss += kwargs["gamma"] * mean(logits[:, 0] - logits[:, 1])
    elif objective in ("dipvae1", "dipvae2"):
        loss += _np_dip_penalty(kwargs, z_mean, z_log_var, weights)
    return loss


def _np_prior(vae, kwargs):
    """A learned prior's mixture (means, log_vars, log_weights) read from its weights before the step."""
    prior, k = kwargs.get("prior"), kwargs.get("prior_components")
    if prior == "mog":
        logits = keras.ops.convert_to_numpy(vae.prior.logits).astype(np.float64)
        return (keras.ops.convert_to_numpy(vae.prior.means), keras.ops.convert_to_numpy(vae.prior.log_vars),
                logits - np.log(np.sum(np.exp(logits))))
    if prior == "vamp":  # the pseudo-inputs, clipped to [0, 1], through the encoder; uniform weights
        pseudo = np.clip(keras.ops.convert_to_numpy(vae.prior.pseudo_inputs), 0.0, 1.0)
        means, log_vars = (keras.ops.convert_to_numpy(t) for t in vae.encode(pseudo))
        return means, log_vars, np.full(k, -math.log(k))
    return None


def _data(kwargs, rng):
    x = np.round(rng.random((BATCH,) + SHAPE) * 255) / 255  # on the 8-bit grid (the logistic's support)
    if kwargs.get("binarize"):
        x = (x > 0.5).astype(np.float64)  # binary data: dynamic binarization leaves it as it is
    return x.astype("float32")


def _one_step(names):
    kwargs = {}
    for name in names:
        kwargs.update(OPTIONS[name])
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    vae = build_vae(SHAPE, latent_dim=LATENT, hidden=(8,), seed=0, **kwargs)
    vae._latent_noise = lambda shape: keras.ops.zeros(shape)  # z = z_mean: a deterministic loss
    if kwargs.get("latent_layers", 1) > 1:  # 3-unit relu layers start with every unit off here (z2 = 0, p(z1|z2)
        shift = np.random.default_rng(1)  # = N(0, 1)), which hides the upper layers' terms: shift their weights
        for net in vae.latent_encoders + vae.latent_decoders:
            net.set_weights([w + 0.5 * shift.normal(size=w.shape).astype(w.dtype) for w in net.get_weights()])
    vae.compile(optimizer=keras.optimizers.SGD(0.01), run_eagerly=True)
    x = _data(kwargs, rng)
    labels = rng.integers(0, 3, BATCH).astype("int32") if "num_classes" in kwargs else None
    weights = np.linspace(0.2, 1.8, BATCH).astype("float32") if "sample_weight" in names else np.ones(BATCH, "float32")
    # The reference: the networks' outputs before the step, through the documented formula.
    numpy = lambda ts: [keras.ops.convert_to_numpy(keras.ops.cast(t, "float32")) for t in ts]  # noqa: E731
    with_label = lambda t: t if labels is None else [t, labels]  # noqa: E731
    layers = [numpy(vae.encoder(with_label(x)))]  # q(z|x), or q(z1|x) of a hierarchy
    if kwargs.get("latent_layers", 1) > 1:
        layers.append(numpy(vae.latent_encoders[0](layers[0][0])))  # q(z2|z1) at z1 = its mean
        layers.append(numpy(vae.latent_decoders[0](layers[1][0])))  # p(z1|z2) at z2 = its mean
    # p(x|z1) at z1 = its mean (VAE.decode: the decoder network itself); x: a PixelCNN decoder's parameters of pixel i
    # given z and x's earlier pixels (teacher forcing), which the other decoders ignore.
    params = numpy([VAE.decode(vae, layers[0][0], labels, x=x)])[0]
    discriminator = vae.discriminator.get_weights() if vae.discriminator is not None else None
    expected = _np_loss(kwargs, x, params, layers, weights, prior=_np_prior(vae, kwargs),
                        discriminator_weights=discriminator)
    history = vae.fit(x, labels, sample_weight=weights if "sample_weight" in names else None,
                      batch_size=BATCH, epochs=1, shuffle=False, verbose=0).history
    return history["loss"][0], expected, kwargs


@pytest.mark.parametrize("pair", PAIRS, ids=["+".join(p) for p in PAIRS])
def test_every_pair_trains_with_its_documented_loss_or_is_refused(pair):
    if _refused(pair):
        with pytest.raises(ConfigError) as info:
            _one_step(pair)
        message = str(info.value)
        assert "\n" not in message
        # The refusal names the refused pair: iw_samples with the ELBO, or the two options themselves.
        always = set(pair) & ALWAYS_REFUSED
        if always and "objective" not in pair:  # iw_samples or iwae_gradient without objective="iwae"
            assert "objective" in message and any(KEYWORD[n] in message for n in always), (pair, message)
        else:
            assert all(KEYWORD[name] in message for name in pair), (pair, message)
        return
    got, expected, kwargs = _one_step(pair)
    assert np.isfinite(got)
    mixed = any(name.startswith("dtype_policy=") for name in pair)
    assert got == pytest.approx(expected, rel=2e-3 if mixed else 1e-4), (pair, kwargs)


@pytest.mark.parametrize("name", list(OPTIONS))
def test_each_option_alone(name):
    if name in ALWAYS_REFUSED:
        with pytest.raises(ConfigError, match="(iw_samples=3|iwae_gradient='dreg') cannot be combined with objective='elbo'|objective='elbo' cannot be combined with (iw_samples=3|iwae_gradient='dreg')"):
            _one_step([name])
        return
    got, expected, _ = _one_step([name])
    assert got == pytest.approx(expected, rel=2e-3 if name.startswith("dtype_policy=") else 1e-4)


@pytest.mark.parametrize("kwargs, names", [
    ({"gamma": 3.0}, ("gamma", "objective")),
    ({"lambda_od": 3.0}, ("lambda_od", "objective")),
    ({"lambda_d": 3.0, "objective": "iwae"}, ("lambda_d", "objective")),
    ({"dataset_size": 100}, ("dataset_size", "objective")),
    ({"discriminator_hidden": (8,), "objective": "dipvae1"}, ("discriminator_hidden", "objective")),
    ({"objective": "tcvae"}, ("objective", "dataset_size")),
    ({"gamma": 3.0, "objective": "tcvae", "dataset_size": 100}, ("gamma", "objective")),
])
def test_an_objectives_weight_without_its_objective_is_refused(kwargs, names):
    with pytest.raises(ConfigError) as info:
        build_vae(SHAPE, latent_dim=LATENT, hidden=(8,), **kwargs)
    assert all(n in str(info.value) for n in names) and "\n" not in str(info.value)


@pytest.mark.parametrize("kwargs, names", [
    ({"capacity_gamma": 10.0}, ("capacity_gamma", "capacity_max")),
    ({"capacity_steps": 50}, ("capacity_steps", "capacity_max")),
    ({"prior_components": 5}, ("prior_components", "prior")),
])
def test_a_capacity_setting_without_capacity_is_refused(kwargs, names):
    with pytest.raises(ConfigError) as info:
        build_vae(SHAPE, latent_dim=LATENT, hidden=(8,), **kwargs)
    assert all(n in str(info.value) for n in names)


def test_latent_sizes_must_match_the_number_of_layers():
    with pytest.raises(ConfigError) as info:
        build_vae(SHAPE, latent_dim=(3, 2), hidden=(8,))  # two sizes, one layer
    message = str(info.value)
    assert "\n" not in message and "latent_dim=(3, 2)" in message and "latent_layers=1" in message
    assert build_vae(SHAPE, latent_dim=(3, 2), latent_layers=2, hidden=(8,)).latent_dims == (3, 2)
    assert build_vae(SHAPE, latent_dim=3, latent_layers=3, hidden=(8,)).latent_dims == (3, 3, 3)  # one size for all


# ------------------------------------------------------------------------------------------------
# The same contract for a training run (TrainConfig, so train() and the CLI), named as flags
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("values, flags", [
    ({"objective": "iwae", "iw_samples": 4, "free_bits": 0.5}, ("--objective iwae", "--free-bits 0.5")),
    ({"objective": "iwae", "iw_samples": 4, "capacity_max": 20.0}, ("--objective iwae", "--capacity-max 20.0")),
    ({"iw_samples": 4}, ("--objective elbo", "--iw-samples 4")),
    ({"capacity_max": 20.0, "free_bits": 0.5}, ("--capacity-max 20.0", "--free-bits 0.5")),
    ({"capacity_max": 20.0, "kl_warmup_epochs": 1.0}, ("--capacity-max 20.0", "--kl-warmup-epochs 1.0")),
    ({"capacity_max": 20.0, "beta": 4.0}, ("--capacity-max 20.0", "--beta 4.0")),
    ({"capacity_gamma": 5.0}, ("--capacity-gamma 5.0", "--capacity-max 0.0")),
    ({"capacity_epochs": 3.0}, ("--capacity-epochs 3.0", "--capacity-max 0.0")),
    ({"likelihood": "gaussian", "binarize": "dynamic"}, ("--binarize dynamic", "--likelihood gaussian")),
    ({"likelihood": "logistic", "decoder": "pixelcnn"}, ("--decoder pixelcnn", "--likelihood logistic")),
    ({"distribute": "mirrored", "steps_per_execution": 4}, ("--steps-per-execution 4", "--distribute mirrored")),
    ({"distribute": "mirrored", "clip_norm": 1.0}, ("--clip-norm 1.0", "--distribute mirrored")),
    ({"early_stopping_patience": 3}, ("--early-stopping-patience 3", "--validation-split 0.0")),
    ({"lr_schedule": "cosine", "time_limit": 5.0, "distribute": "multi-worker"},
     ("--lr-schedule cosine", "--distribute multi-worker", "--time-limit")),
    ({"prior": "vamp", "free_bits": 0.5}, ("--prior vamp", "--free-bits 0.5")),
    ({"prior": "mog", "conditional": True}, ("--prior mog", "--conditional")),
    ({"prior": "standard", "prior_components": 5}, ("--prior-components 5", "--prior standard")),
    # prior auto keeps the standard prior with --conditional, so the components have nothing to act on
    ({"prior_components": 5, "conditional": True}, ("--prior-components 5", "--prior auto", "--conditional")),
    ({"iwae_gradient": "dreg"}, ("--iwae-gradient dreg", "--objective elbo")),
    ({"objective": "tcvae", "distribute": "mirrored"}, ("--objective tcvae", "--distribute mirrored")),
    ({"objective": "factorvae", "distribute": "multi-worker"}, ("--objective factorvae", "--distribute multi-worker")),
    ({"objective": "tcvae", "free_bits": 0.5}, ("--objective tcvae", "--free-bits 0.5")),
    ({"objective": "tcvae", "capacity_max": 20.0}, ("--objective tcvae", "--capacity-max 20.0")),
    ({"gamma": 35.0}, ("--gamma 35.0", "--objective elbo")),
    ({"objective": "tcvae", "lambda_od": 2.0}, ("--lambda-od 2.0", "--objective tcvae")),
    ({"objective": "factorvae", "lambda_d": 2.0}, ("--lambda-d 2.0", "--objective factorvae")),
    ({"prior": "vamp", "objective": "tcvae"}, ("--prior vamp", "--objective tcvae")),
    ({"latent_dim": "100,50"}, ("--latent-dim 100,50", "--latent-layers 1")),
    ({"latent_dim": (8, 4, 2), "latent_layers": 2}, ("--latent-dim 8,4,2", "--latent-layers 2")),
    ({"latent_layers": 2, "prior": "vamp"}, ("--prior vamp", "--latent-layers 2")),
    ({"latent_layers": 2, "objective": "dipvae2"}, ("--objective dipvae2", "--latent-layers 2")),
])
def test_train_config_refuses_the_same_pairs_naming_both_flags(values, flags):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**values).validate()
    message = str(info.value)
    assert "\n" not in message and all(flag in message for flag in flags), message


def test_train_config_resolves_the_kl_warmup_default():
    plain, capacity = TrainConfig(), TrainConfig(capacity_max=20.0)
    plain.validate()
    capacity.validate()
    assert plain.resolved_kl_warmup_epochs == 2.0  # the default warm-up
    assert capacity.resolved_kl_warmup_epochs == 0.0  # controlled capacity has its own schedule
    assert plain.to_dict()["kl_warmup_epochs"] == 2.0  # config.json and checkpoints hold the value used
    assert TrainConfig(kl_warmup_epochs=0.5).to_dict()["kl_warmup_epochs"] == 0.5


# Every option a learned prior is refused with, as TrainConfig fields; prior auto must fall back on them.
LEARNED_PRIOR_REFUSED = [{"conditional": True}, {"free_bits": 0.5}, {"latent_layers": 2},
                         {"objective": "tcvae"}, {"objective": "factorvae"}, {"objective": "dipvae1"},
                         {"objective": "dipvae2"}]
# Options a learned prior combines with: prior auto must choose the VampPrior with them.
LEARNED_PRIOR_ALLOWED = [{}, {"objective": "iwae", "iw_samples": 5}, {"objective": "iwae", "iwae_gradient": "dreg"},
                         {"capacity_max": 20.0}, {"beta": 4.0}, {"likelihood": "gaussian", "binarize": "none"},
                         {"decoder": "pixelcnn"}, {"model": "conv"}, {"sampler": "gmm:5"}, {"distribute": "mirrored"},
                         {"prior_components": 7}]


@pytest.mark.parametrize("values", LEARNED_PRIOR_REFUSED)
def test_prior_auto_keeps_the_standard_prior_where_a_learned_prior_is_refused(values):
    with pytest.raises(ConfigError, match="--prior vamp cannot be combined"):
        TrainConfig(prior="vamp", **values).validate()  # the contract refuses the VampPrior here...
    config = TrainConfig(**values)
    config.validate()  # ...so the default must not choose it
    assert config.resolved_prior == "standard" and config.to_dict()["prior"] == "standard"


@pytest.mark.parametrize("values", LEARNED_PRIOR_ALLOWED)
def test_prior_auto_is_the_vampprior_wherever_it_is_allowed(values):
    TrainConfig(prior="vamp", **values).validate()
    config = TrainConfig(**values)
    config.validate()
    assert config.prior == "auto" and config.resolved_prior == "vamp"
    assert config.to_dict()["prior"] == "vamp"  # config.json and checkpoints hold the prior used


@pytest.mark.parametrize("prior", ["standard", "vamp", "mog"])
def test_an_explicit_prior_is_kept(prior):
    config = TrainConfig(prior=prior)
    config.validate()
    assert config.resolved_prior == prior and config.to_dict()["prior"] == prior


def test_a_config_file_from_before_prior_auto_reproduces_its_run():
    """config.json of an earlier run holds the resolved prior ('standard'), which stays what it says."""
    old = TrainConfig.from_dict({**TrainConfig().to_dict(), "prior": "standard"})
    assert old.resolved_prior == "standard"
    assert TrainConfig.from_dict(TrainConfig().to_dict()).resolved_prior == "vamp"


def test_cli_refuses_a_pair_before_loading_data(capsys, tmp_path):
    from vae_keras.cli import main

    code = main(["train", "--dataset", str(tmp_path / "missing"), "--objective", "iwae", "--free-bits", "1",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "--objective iwae" in err and "--free-bits 1.0" in err
    assert not os.path.exists(tmp_path / "out")


# ------------------------------------------------------------------------------------------------
# The README's table says what the code does
# ------------------------------------------------------------------------------------------------


def _readme_contract_rows():
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("## Option contract", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`"):
            rows[cells[0]] = cells[1:]
    return rows


def test_readme_option_table_lists_every_refused_pair():
    rows = _readme_contract_rows()
    refused_in_readme = {frozenset(re.findall(r"`([a-z_=]+)`", pair)) for pair, (verdict, *_) in rows.items()
                         if verdict.lower().startswith("refused")}
    expected = {frozenset(KEYWORD[n] for n in pair) for pair in REFUSED}
    expected |= {frozenset({"objective", "iw_samples"}), frozenset({"capacity_gamma", "capacity_max"}),
                 frozenset({"capacity_steps", "capacity_max"}), frozenset({"steps_per_execution", "distribute"}),
                 frozenset({"clip_norm", "distribute"}), frozenset({"early_stopping_patience", "validation_split"}),
                 frozenset({"lr_schedule", "distribute"}), frozenset({"prior_components", "prior"}),
                 frozenset({"iwae_gradient", "objective"}), frozenset({"objective", "dataset_size"}),
                 frozenset({"gamma", "objective"}), frozenset({"discriminator_hidden", "objective"}),
                 frozenset({"lambda_od", "objective"}), frozenset({"lambda_d", "objective"}),
                 frozenset({"objective", "distribute"}), frozenset({"prior", "objective"}),
                 frozenset({"latent_dim", "latent_layers"}), frozenset({"iwae_gradient", "latent_layers"})}
    assert refused_in_readme == expected


@pytest.mark.parametrize("name, value", [("time_limit", -5.0), ("time_limit", 0.0), ("clip_norm", 0.0),
                                         ("clip_norm", -1.0), ("time_limit", float("inf"))])
def test_a_config_files_budget_and_clip_must_be_positive_and_say_so(name, value):
    """A config file goes through TrainConfig.validate (not argparse): a negative time limit said ">= 0"
    although 0 is refused too."""
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{name: value}).validate()
    message = str(info.value)
    assert f"{name.replace('_', '-')} must be a finite number > 0" in message and ">= 0" not in message


@pytest.mark.parametrize("name", [None, "conditional", "prior=vamp", "prior=mog", "objective=factorvae", "latent_layers",
                                  "decoder=pixelcnn", "dtype_policy=mixed_float16"])
def test_fit_traces_the_train_step_once_and_creates_no_variable_inside_it(name):
    # Keras leaves the optimizer's slots to the first trace when no strategy is set; creating variables inside
    # tf.function makes TensorFlow trace the whole step twice. VAE.fit builds the optimizer first, for every family
    # whose weights hold the slots (the learned priors, the hierarchy's nets, the PixelCNN, FactorVAE's two optimizers).
    import tensorflow as tf

    kwargs = dict(OPTIONS[name]) if name else {}
    vae = build_vae(SHAPE, latent_dim=LATENT, hidden=(8,), seed=0, **kwargs)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    traces, created = [], []
    step = vae.train_step
    vae.train_step = lambda data: (traces.append(1), step(data))[1]

    def creator(next_creator, **kw):
        if tf.inside_function():
            created.append(kw.get("name"))
        return next_creator(**kw)

    rng = np.random.default_rng(0)
    x = _data(kwargs, rng)
    labels = rng.integers(0, 3, BATCH).astype("int32") if "num_classes" in kwargs else None
    with tf.variable_creator_scope(creator):
        vae.fit(x, labels, batch_size=4, epochs=2, verbose=0)
    assert created == [] and len(traces) == 1, (name, created, len(traces))
    assert vae.optimizer.built and all(np.isfinite(v.numpy()).all() for v in vae.optimizer.variables)
