"""The option contract (vae_keras.options): every pair of options either trains with the documented loss or is
refused with one line naming both.

For every pair of non-default options, a tiny VAE is built with both and trained for one step by `fit`. The
reparameterization noise is set to zero (z = z_mean), so the loss `fit` logs is a deterministic function of the
networks' outputs, recomputed here in numpy from the documented formula (README "Option contract"): an
independent implementation of each likelihood, the KL, free bits, the capacity target, the IWAE bound and
sample weights. A refused pair must raise a `ConfigError` whose one line names both options; the README's
table must say the same.
"""

import itertools
import math
import os
import re

import keras
import numpy as np
import pytest

from vae_keras import build_vae
from vae_keras.errors import ConfigError
from vae_keras.training import TrainConfig

from conftest import REPO_ROOT

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
    "decoder=pixelcnn": {"decoder": "pixelcnn"},
}
# The contract, written out independently of vae_keras.options: the refused pairs (in either order).
REFUSED = {
    frozenset({"objective", "free_bits"}), frozenset({"objective", "capacity"}),
    frozenset({"capacity", "free_bits"}), frozenset({"capacity", "kl_warmup"}), frozenset({"capacity", "beta"}),
    frozenset({"binarize", "likelihood=gaussian"}), frozenset({"binarize", "likelihood=logistic"}),
    frozenset({"decoder=pixelcnn", "likelihood=gaussian"}), frozenset({"decoder=pixelcnn", "likelihood=logistic"}),
}
# iw_samples > 1 needs objective="iwae": refused with everything else.
ALWAYS_REFUSED = {"iw_samples"}
# Two values of one option are not a pair.
SAME_OPTION = {frozenset({"likelihood=gaussian", "likelihood=logistic"}),
               frozenset({"dtype_policy=mixed_bfloat16", "dtype_policy=mixed_float16"})}
# The keyword each option's message names (a refusal must name both options of the pair).
KEYWORD = {"objective": "objective", "beta": "beta", "kl_warmup": "kl_warmup_steps", "free_bits": "free_bits",
           "capacity": "capacity_max", "iw_samples": "iw_samples", "binarize": "binarize",
           "likelihood=gaussian": "likelihood", "likelihood=logistic": "likelihood", "decoder=pixelcnn": "decoder"}

PAIRS = [p for p in itertools.combinations(OPTIONS, 2) if frozenset(p) not in SAME_OPTION]


def _refused(pair):
    names = set(pair)
    if "iw_samples" in names and "objective" not in names:
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


def _np_loss(kwargs, x, params, z_mean, z_log_var, weights):
    """The documented training loss at optimizer step 0, with eps = 0 (z = z_mean)."""
    z_mean, z_log_var = z_mean.astype(np.float64), z_log_var.astype(np.float64)
    mean = lambda v: np.sum(weights.reshape((-1,) + (1,) * (v.ndim - 1)) * v, axis=0) / len(x)  # noqa: E731
    log_px = _np_log_px(kwargs.get("likelihood", "bernoulli"), x, params)
    kl_per_dim = 0.5 * (np.exp(z_log_var) + z_mean ** 2 - 1 - z_log_var)
    beta = kwargs.get("beta", 1.0)
    warmup = kwargs.get("kl_warmup_steps", 0)
    w = beta * min(1.0, 1.0 / warmup) if warmup else beta
    if kwargs.get("objective") == "iwae":
        log_pz = np.sum(-0.5 * (z_mean ** 2 + math.log(2 * math.pi)), axis=1)
        log_qz = np.sum(-0.5 * (math.log(2 * math.pi) + z_log_var), axis=1)  # eps = 0
        log_w = log_px + w * (log_pz - log_qz)  # all K samples equal: logsumexp - log K = log_w
        return mean(-log_w)
    reconstruction = mean(-log_px)
    if kwargs.get("capacity_max"):
        target = kwargs["capacity_max"] * min(1.0, 1.0 / kwargs["capacity_steps"])
        return reconstruction + kwargs["capacity_gamma"] * abs(mean(kl_per_dim.sum(axis=1)) - target)
    if kwargs.get("free_bits"):
        return reconstruction + w * np.maximum(mean(kl_per_dim), kwargs["free_bits"]).sum()
    return reconstruction + w * mean(kl_per_dim.sum(axis=1))


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
    vae.compile(optimizer=keras.optimizers.SGD(0.01), run_eagerly=True)
    x = _data(kwargs, rng)
    labels = rng.integers(0, 3, BATCH).astype("int32") if "num_classes" in kwargs else None
    weights = np.linspace(0.2, 1.8, BATCH).astype("float32") if "sample_weight" in names else np.ones(BATCH, "float32")
    # The reference: the networks' outputs before the step, through the documented formula.
    z_mean, z_log_var = (keras.ops.convert_to_numpy(t) for t in vae.encode(x, labels))
    # x: a PixelCNN decoder's parameters of pixel i given z and x's earlier pixels (teacher forcing); others ignore it.
    params = keras.ops.convert_to_numpy(vae.decode(z_mean, labels, x=x))
    expected = _np_loss(kwargs, x, params, z_mean, z_log_var, weights)
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
        named = ("iw_samples", "objective") if "iw_samples" in pair else [KEYWORD[name] for name in pair]
        assert all(keyword in message for keyword in named), (pair, message)
        return
    got, expected, kwargs = _one_step(pair)
    assert np.isfinite(got)
    mixed = any(name.startswith("dtype_policy=") for name in pair)
    assert got == pytest.approx(expected, rel=2e-3 if mixed else 1e-4), (pair, kwargs)


@pytest.mark.parametrize("name", list(OPTIONS))
def test_each_option_alone(name):
    if name in ALWAYS_REFUSED:
        with pytest.raises(ConfigError, match="iw_samples=3 cannot be combined with objective='elbo'|"
                                              "objective='elbo' cannot be combined with iw_samples=3"):
            _one_step([name])
        return
    got, expected, _ = _one_step([name])
    assert got == pytest.approx(expected, rel=2e-3 if name.startswith("dtype_policy=") else 1e-4)


@pytest.mark.parametrize("kwargs, names", [
    ({"capacity_gamma": 10.0}, ("capacity_gamma", "capacity_max")),
    ({"capacity_steps": 50}, ("capacity_steps", "capacity_max")),
])
def test_a_capacity_setting_without_capacity_is_refused(kwargs, names):
    with pytest.raises(ConfigError) as info:
        build_vae(SHAPE, latent_dim=LATENT, hidden=(8,), **kwargs)
    assert all(n in str(info.value) for n in names)


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
                 frozenset({"lr_schedule", "distribute"})}
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
