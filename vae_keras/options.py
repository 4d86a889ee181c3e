"""The option contract: which options combine, and how; which pairs are refused.

Every option of the model (`vae_keras.VAE`, `build_vae`) and of a training run (`TrainConfig`, the
CLI) either does exactly what it says in combination with every other option, or the pair is
refused here with one line naming both options. `REFUSED` is the one list of refused pairs;
`check` enforces it and is called by `VAE.__init__` (so by `build_vae` and `load_model` too) and by
`TrainConfig.validate` (so by `train()` and the CLI, before any data is loaded).

Every other pair combines. The training loss of a batch of B images x_i with sample weights s_i
(1 without ``sample_weight``), where batch means are M[v] = sum_i s_i v_i / B over the *global*
batch (all replicas) and w_t = beta * min(1, (t + 1) / kl_warmup_steps) is the KL weight at
optimizer step t (beta without warm-up):

- ``objective="elbo"``: loss = M[rec] + w_t * KL_term, rec_i = -log p(x_i|z_i), z_i ~ q(z|x_i);
  KL_term = M[KL_i] with KL_i = sum_j KL(q(z_j|x_i) || N(0, 1)), or with ``free_bits`` L > 0,
  KL_term = sum_j max(M[KL_ij], L).
- ``capacity_max`` C > 0 (ELBO only): loss = M[rec] + gamma * |M[KL_i] - C_t|, C_t = C * min(1,
  (t + 1) / capacity_steps).
- ``objective="iwae"``: loss = M[-(logsumexp_k log w_ik - log K)], log w_ik = log p(x_i|z_ik) +
  w_t * (log p(z_ik) - log q(z_ik|x_i)), z_ik ~ q(z|x_i), k = 1..K (beta-IWAE; w_t = 1 is Burda
  et al.'s bound).

Validation (``test_step``) uses the same formulas at the full weight (w = beta; free bits and the
capacity target do not apply: a capacity run validates the ELBO, reconstruction + KL).
"""

import dataclasses

from vae_keras.errors import ConfigError

# Model options' defaults, as `VAE.__init__` takes them.
DEFAULT_CAPACITY_STEPS = 10000
DEFAULT_CAPACITY_GAMMA = 1000.0


@dataclasses.dataclass(frozen=True)
class Refusal:
    """A refused pair: ``first`` and ``second`` are option names (the model's keyword arguments,
    or `TrainConfig` fields), ``when`` says when the pair is active, ``why`` is the reason."""

    first: str
    second: str
    when: object  # callable(options dict) -> bool
    why: str
    fix: str = "Drop one of them."


REFUSED = (
    Refusal("objective", "free_bits", lambda o: o["objective"] == "iwae" and o["free_bits"] > 0,
            "free bits floor each latent dim's batch-mean KL, a term the importance-weighted bound does not have"),
    Refusal("objective", "capacity_max", lambda o: o["objective"] == "iwae" and o["capacity_max"] > 0,
            "controlled capacity steers the ELBO's KL term, which the importance-weighted bound does not have"),
    Refusal("objective", "iw_samples", lambda o: o["objective"] == "elbo" and o["iw_samples"] > 1,
            "the ELBO objective draws one sample per image; iw_samples is the K of objective iwae"),
    Refusal("capacity_max", "free_bits", lambda o: o["capacity_max"] > 0 and o["free_bits"] > 0,
            "controlled capacity already sets the KL target; free bits would change it per dimension"),
    Refusal("capacity_max", "kl_warmup", lambda o: o["capacity_max"] > 0 and o["kl_warmup"] > 0,
            "controlled capacity replaces the KL weight by gamma * |KL - C_t|, with its own schedule for C_t"),
    Refusal("capacity_max", "beta", lambda o: o["capacity_max"] > 0 and o["beta"] != 1.0,
            "controlled capacity weights |KL - C_t| by capacity_gamma instead of beta"),
    Refusal("capacity_gamma", "capacity_max", lambda o: o["capacity_max"] <= 0 and o["capacity_gamma"] != DEFAULT_CAPACITY_GAMMA,
            "capacity_gamma only acts with controlled capacity (capacity_max > 0)"),
    Refusal("capacity_steps", "capacity_max", lambda o: o["capacity_max"] <= 0 and o["capacity_steps_set"],
            "the capacity schedule only acts with controlled capacity (capacity_max > 0)"),
    Refusal("binarize", "likelihood", lambda o: o["binarize"] and o["likelihood"] != "bernoulli",
            "dynamic binarization makes binary pixels, which only the bernoulli likelihood models"),
    Refusal("decoder", "likelihood", lambda o: o["decoder"] == "pixelcnn" and o["likelihood"] != "bernoulli",
            "the PixelCNN decoder gives one Bernoulli logit per pixel channel given the earlier pixels (binary "
            "images); it has no other likelihood", fix="Use likelihood bernoulli (binarized images) or the factorized decoder."),
)

# Training-run pairs (TrainConfig fields / CLI flags).
REFUSED_TRAINING = (
    Refusal("steps_per_execution", "distribute",
            lambda o: (o["steps_per_execution"] or 1) > 1 and o["distribute"] != "none",
            "Keras 3 fails to run several steps per call under MirroredStrategy (keras-team/keras#19246) and the "
            "multi-worker loop runs one step per call"),
    Refusal("clip_norm", "distribute", lambda o: o["clip_norm"] is not None and o["distribute"] != "none",
            "Keras clips each replica's share of the gradient before the replicas' gradients are summed, so the "
            "norm would not be the global gradient's"),
    Refusal("lr_schedule", "distribute",
            lambda o: o["lr_schedule"] == "cosine" and o["time_limit"] and o["distribute"] == "multi-worker",
            "with --time-limit the cosine decay follows the training clock, and every worker has its own, so the "
            "workers would apply different learning rates",
            fix="Drop --time-limit (cosine then decays over --epochs) or use --lr-schedule constant."),
    Refusal("early_stopping_patience", "validation_split",
            lambda o: o["early_stopping_patience"] > 0 and not o["validation_split"],
            "without a validation split val_loss is measured on the test split, and early stopping would select the "
            "weights on test data", fix="Pass e.g. --validation-split 0.1, or drop --early-stopping-patience."),
)

# Names in messages where the contract's name differs: the keyword of `VAE`, and the command-line flag.
KEYWORDS = {"kl_warmup": "kl_warmup_steps"}
FLAGS = {
    "kl_warmup": "--kl-warmup-epochs",
    "capacity_steps": "--capacity-epochs",
    "binarize": "--binarize",
}


def _describe(name, options, cli):
    value = options.get(name + "_given", options.get(name))
    if cli:
        flag = FLAGS.get(name, "--" + name.replace("_", "-"))
        return f"{flag} {value}"
    return f"{KEYWORDS.get(name, name)}={value!r}"


def _raise(rule, options, cli):
    a, b = _describe(rule.first, options, cli), _describe(rule.second, options, cli)
    raise ConfigError(f"{a} cannot be combined with {b}: {rule.why}. {rule.fix}")


def check_model_options(objective="elbo", beta=1.0, kl_warmup=0, free_bits=0.0, capacity_max=0.0,
                        capacity_steps_set=False, capacity_gamma=DEFAULT_CAPACITY_GAMMA, iw_samples=1, binarize=False,
                        likelihood="bernoulli", decoder="factorized", cli=False, given=None):
    """Refuses a pair of model options listed in `REFUSED` with one line naming both.

    Args:
        objective, beta, free_bits, capacity_max, capacity_gamma, iw_samples, likelihood: as for `VAE`.
        decoder: "factorized" or "pixelcnn" (`build_vae`'s keyword; `VAE` reads it off its decoder network).
        kl_warmup: the warm-up length (steps, or epochs on the command line); > 0 means on.
        capacity_steps_set: whether a capacity schedule length other than the default was given.
        binarize: whether dynamic binarization is on.
        cli: name the options as command-line flags (``--free-bits 0.5``) instead of keywords.
        given: optional dict option -> the value as the user gave it, for the message.

    Raises:
        ConfigError: for the first refused pair found.
    """
    options = {"objective": objective, "beta": float(beta), "kl_warmup": kl_warmup, "free_bits": float(free_bits),
               "capacity_max": float(capacity_max), "capacity_steps_set": capacity_steps_set,
               "capacity_gamma": float(capacity_gamma), "iw_samples": iw_samples, "binarize": binarize,
               "likelihood": likelihood, "decoder": decoder}
    for name, value in (given or {}).items():
        options[name + "_given"] = value
    for rule in REFUSED:
        if rule.when(options):
            _raise(rule, options, cli)


def check_training_options(options, cli=True):
    """Refuses a pair of training-run options listed in `REFUSED_TRAINING` (``options``: a dict of
    `TrainConfig` fields)."""
    for rule in REFUSED_TRAINING:
        if rule.when(options):
            _raise(rule, options, cli)

