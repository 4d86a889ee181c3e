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
  et al.'s bound). ``iwae_gradient="dreg"`` keeps this loss value and changes only the encoder's
  gradient estimator (Tucker et al. 2019's doubly reparameterized gradient; see `VAE`).
- ``prior="vamp"`` or ``"mog"`` (a learned p(z), `vae_keras.priors`; a training run's default ``"auto"`` is
  `AUTO_PRIOR` wherever `REFUSED` allows a learned prior with the other options, see `resolve_prior`): log p(z) above is the learned
  one, and the ELBO's KL_i (no closed form) is the Monte-Carlo term log q(z_i|x_i) - log p(z_i) at the
  z_i of the reconstruction; KL_term = M[KL_i] (capacity: |M[KL_i] - C_t|).
- ``objective="tcvae"`` (beta-TCVAE, Chen et al. 2018, with alpha = gamma = 1 and beta on the total
  correlation): loss = M[rec] + r_t * M[MI_i + beta * TC_i + DWKL_i] = M[rec] + r_t * M[log q(z_i|x_i) -
  log p(z_i)] + r_t * (beta - 1) * M[TC_i], r_t = min(1, (t + 1) / kl_warmup_steps) (1 without warm-up),
  TC_i = log q(z_i) - sum_d log q(z_id) the minibatch-stratified-sampling estimate over the batch with
  the ``dataset_size`` N training images (`vae_keras.regularizers`; the mixture over the batch is
  unweighted, sample weights weight the outer mean M).
- ``objective="factorvae"`` (Kim & Mnih 2018): loss = the ELBO objective's loss (beta, warm-up, free
  bits or capacity as above) + gamma * M[D_0(z_i) - D_1(z_i)], the discriminator's logit difference
  estimating TC. In the same `train_step` the discriminator (its own optimizer) minimises
  -0.5 * (mean_i log softmax(D(z_i))_0 + mean_i log softmax(D(perm(z))_i)_1), z held fixed, perm
  shuffling every latent dim independently across the batch (unweighted).
- ``objective="dipvae1"`` / ``"dipvae2"`` (Kumar et al. 2018): loss = the ELBO objective's loss +
  lambda_od * sum_{i != j} C_ij^2 + lambda_d * sum_i (C_ii - 1)^2, C = Cov[mu(x)] (I) or
  E[diag sigma^2(x)] + Cov[mu(x)] (II) over the global batch (weighted moments sum_i s_i v_i / sum_i s_i);
  lambda_d defaults to 10 * lambda_od (I) or lambda_od (II), as in disentanglement_lib.

Validation (``test_step``) uses the same formulas at the full weight (w = beta, r = 1; free bits and the
capacity target do not apply: a capacity run validates the ELBO, reconstruction + KL; the regularisers
of tcvae, factorvae and the DIP-VAEs do, the discriminator is not trained).

``sampler`` (prior or gmm:K) only changes where random samples' z come from, never the loss, so it
combines with everything; a conditional model gets one mixture per class.

``latent_layers`` L > 1 (`vae_keras.models.hierarchical`, Burda et al. 2016's bottom-up model with
q(z_1|x) q(z_2|z_1)... and p(z_L) p(z_{L-1}|z_L)... p(x|z_1)) keeps every formula above with
z = (z_1..z_L) sampled bottom-up: rec_i = -log p(x_i|z_1), log p(z) = log p(z_L) + sum_l log
p(z_l|z_{l+1}), log q(z|x) = log q(z_1|x) + sum_l log q(z_{l+1}|z_l), and the KL term per latent dim
j of layer l < L the one-sample term log q(z_lj|.) - log p(z_lj|z_{l+1}), of the top layer the
analytic KL(q(z_Lj|z_{L-1}) || N(0, 1)); free bits floor each of these dims, warm-up weights all.
"""

import dataclasses
import re

from vae_keras.errors import ConfigError

# Model options' defaults, as `VAE.__init__` takes them.
DEFAULT_CAPACITY_STEPS = 10000
DEFAULT_CAPACITY_GAMMA = 1000.0
DEFAULT_GAMMA = 10.0  # FactorVAE's TC weight
DEFAULT_LAMBDA_OD = 10.0  # DIP-VAE's off-diagonal weight
DIP_LAMBDA_D_FACTOR = {"dipvae1": 10.0, "dipvae2": 1.0}  # lambda_d = factor * lambda_od unless given
DIP_OBJECTIVES = ("dipvae1", "dipvae2")
# Objectives whose loss needs statistics across the whole batch that are not all-reduced across replicas.
NOT_DISTRIBUTED_OBJECTIVES = ("tcvae", "factorvae")


PRIOR = "prior"
DEFAULT_GMM_COMPONENTS = 10
_SAMPLER = re.compile(r"^gmm(?::(\d+))?$")


def parse_sampler(spec):
    """The sampler option: ``"prior"`` -> None; ``"gmm"`` / ``"gmm:K"`` -> K (``gmm`` alone: 10 components).

    Raises:
        ConfigError: for anything else, naming the accepted forms.
    """
    match = _SAMPLER.match(spec) if isinstance(spec, str) else None
    if spec == PRIOR:
        return None
    if match is None or (match.group(1) is not None and int(match.group(1)) < 1):
        raise ConfigError(f"sampler must be 'prior', 'gmm' or 'gmm:K' with K >= 1 components (e.g. gmm:10). "
                          f"Received: {spec!r}")
    return int(match.group(1)) if match.group(1) else DEFAULT_GMM_COMPONENTS


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
    Refusal("objective", "iw_samples", lambda o: o["objective"] != "iwae" and o["iw_samples"] > 1,
            "only objective iwae draws several samples per image; iw_samples is its K"),
    Refusal("objective", "free_bits", lambda o: o["objective"] == "tcvae" and o["free_bits"] > 0,
            "beta-TCVAE replaces the analytic KL by its decomposition (MI + beta * TC + dimension-wise KL), which "
            "has no per-dimension KL to floor"),
    Refusal("objective", "capacity_max", lambda o: o["objective"] == "tcvae" and o["capacity_max"] > 0,
            "beta-TCVAE replaces the analytic KL that controlled capacity steers by its decomposition"),
    Refusal("objective", "dataset_size", lambda o: o["objective"] == "tcvae" and o["dataset_size"] is None,
            "beta-TCVAE's estimate of the aggregate posterior q(z) needs the number of training images N",
            fix="Pass dataset_size=N (train() and the CLI pass the training split's size)."),
    Refusal("dataset_size", "objective", lambda o: o["objective"] != "tcvae" and o["dataset_size"] is not None,
            "dataset_size is the N of objective tcvae's total-correlation estimate"),
    Refusal("gamma", "objective", lambda o: o["objective"] != "factorvae" and o["gamma"] != DEFAULT_GAMMA,
            "gamma weights FactorVAE's discriminator TC term (objective factorvae); beta-TCVAE's TC weight is beta",
            fix="Pass --objective factorvae, or drop --gamma."),
    Refusal("discriminator_hidden", "objective",
            lambda o: o["objective"] != "factorvae" and o["discriminator_hidden_set"],
            "only objective factorvae has a discriminator"),
    Refusal("lambda_od", "objective", lambda o: o["objective"] not in DIP_OBJECTIVES and o["lambda_od"] != DEFAULT_LAMBDA_OD,
            "lambda_od weights the DIP-VAE covariance penalty (objective dipvae1 or dipvae2)"),
    Refusal("lambda_d", "objective", lambda o: o["objective"] not in DIP_OBJECTIVES and o["lambda_d"] is not None,
            "lambda_d weights the DIP-VAE covariance penalty (objective dipvae1 or dipvae2)"),
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
    Refusal("prior", "free_bits", lambda o: o["prior"] != "standard" and o["free_bits"] > 0,
            "free bits floor each latent dim's KL, and a learned prior's KL does not split into dims"),
    Refusal("prior", "num_classes", lambda o: o["prior"] != "standard" and o["num_classes"] is not None,
            "the learned priors are unconditional p(z), and a conditional model's prior would have to depend "
            "on the label", fix="Drop one of them (a conditional model keeps the standard prior)."),
    Refusal("prior", "objective",
            lambda o: o["prior"] != "standard" and o["objective"] in ("tcvae", "factorvae") + DIP_OBJECTIVES,
            "the disentangling objectives pull the aggregate posterior towards a factorised N(0, I) (beta-TCVAE's "
            "dimension-wise KL, FactorVAE's and the DIP-VAEs' penalties), the target a learned prior replaces",
            fix="Use the standard prior with a disentangling objective."),
    Refusal("prior_components", "prior", lambda o: o["prior"] == "standard" and o["prior_components"] is not None,
            "the number of components only applies to a learned prior (vamp or mog)"),
    Refusal("iwae_gradient", "objective", lambda o: o["iwae_gradient"] != "plain" and o["objective"] != "iwae",
            "the DReG estimator is a gradient of the importance-weighted bound"),
    Refusal("latent_dim", "latent_layers", lambda o: o["latent_sizes"] not in (1, o["latent_layers"]),
            "latent_dim gives one size for every stochastic layer or one size per layer, bottom first",
            fix="Give as many sizes as layers (e.g. latent_dim=(100, 50) with latent_layers=2), or one size."),
    Refusal("prior", "latent_layers", lambda o: o["prior"] != "standard" and o["latent_layers"] > 1,
            "the hierarchical model's prior is N(0, I) on its top layer and the generative p(z_l|z_l+1) below it",
            fix="Use one of them: a learned prior with one latent layer, or latent_layers > 1 with the standard prior."),
    Refusal("iwae_gradient", "latent_layers", lambda o: o["iwae_gradient"] != "plain" and o["latent_layers"] > 1,
            "DReG is implemented for one stochastic layer (the hierarchical model's log q would need its stop-gradient "
            "in every layer)"),
    Refusal("objective", "latent_layers",
            lambda o: o["objective"] in ("tcvae", "factorvae") + DIP_OBJECTIVES and o["latent_layers"] > 1,
            "the disentangling objectives act on the posterior of one latent layer"),
    Refusal("decoder", "likelihood", lambda o: o["decoder"] == "pixelcnn" and o["likelihood"] != "bernoulli",
            "the PixelCNN decoder gives one Bernoulli logit per pixel channel given the earlier pixels (binary "
            "images); it has no other likelihood", fix="Use likelihood bernoulli (binarized images) or the factorized decoder."),
    Refusal("decoder", "latent_layers", lambda o: o["decoder"] == "pixelcnn" and o["latent_layers"] > 1,
            "the PixelCNN decoder is written for one latent layer's decoder (the hierarchy decodes through the means "
            "of its upper layers)", fix="Use one of them."),
)

# Training-run pairs (TrainConfig fields / CLI flags).
REFUSED_TRAINING = (
    Refusal("objective", "distribute",
            lambda o: o["objective"] in NOT_DISTRIBUTED_OBJECTIVES and o["distribute"] != "none",
            "its total-correlation term compares every sample with every other image of the global batch (the "
            "tcvae estimate, factorvae's permutation), which is not gathered across replicas",
            fix="Train it on one device (--distribute none), or use --objective dipvae1/dipvae2."),
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
    "num_classes": "--conditional",
    "kl_warmup": "--kl-warmup-epochs",
    "capacity_steps": "--capacity-epochs",
    "binarize": "--binarize",
}
# FactorVAE's discriminator (Kim & Mnih 2018): 6 hidden layers of 1000 units (`vae_keras.networks.build_discriminator`).
DEFAULT_DISCRIMINATOR_HIDDEN = (1000,) * 6


def _describe(name, options, cli):
    value = options.get(name + "_given", options.get(name))
    if cli:
        flag = FLAGS.get(name, "--" + name.replace("_", "-"))
        return flag if name == "num_classes" else f"{flag} {value}"
    return f"{KEYWORDS.get(name, name)}={value!r}"


def _raise(rule, options, cli):
    a, b = _describe(rule.first, options, cli), _describe(rule.second, options, cli)
    raise ConfigError(f"{a} cannot be combined with {b}: {rule.why}. {rule.fix}")


# ``prior="auto"`` (the training run's default, `TrainConfig.prior`): the VampPrior wherever the contract
# allows it, the standard prior where it refuses a learned prior (issue 14's defaults study: at 240 s on
# Fashion-MNIST the VampPrior won on both test NLL and random samples' FD; benchmarks/RESULTS.md).
AUTO_PRIOR = "vamp"
PRIORS = ("auto", "standard", "vamp", "mog")


def _auto_prior_refusals(options):
    """``options`` (keywords as for `check_model_options`) with `AUTO_PRIOR` as the prior, and the `REFUSED`
    prior rules that fire for them: none when ``prior="auto"`` resolves to `AUTO_PRIOR`."""
    values = _model_options(**{**options, "prior": AUTO_PRIOR})
    return [rule for rule in REFUSED if "prior" in (rule.first, rule.second) and rule.when(values)], values


def resolve_prior(prior="auto", **options):
    """``prior`` itself, or for ``"auto"``: `AUTO_PRIOR` unless the contract refuses it with the other ``options``
    (keywords as for `check_model_options`; then ``"standard"``, the prior every option combines with)."""
    if prior != "auto":
        return prior
    return "standard" if _auto_prior_refusals(options)[0] else AUTO_PRIOR


def auto_prior_reason(cli=False, **options):
    """Why ``prior="auto"`` chose the standard prior with ``options``, in words (None when it chose `AUTO_PRIOR`)."""
    blockers, values = _auto_prior_refusals(options)
    if not blockers:
        return None
    names = ", ".join(_describe(rule.second if rule.first == "prior" else rule.first, values, cli) for rule in blockers)
    return f"the standard N(0, I) prior, since a learned prior cannot be combined with {names}"


def _model_options(objective="elbo", beta=1.0, kl_warmup=0, free_bits=0.0, capacity_max=0.0,
                   capacity_steps_set=False, capacity_gamma=DEFAULT_CAPACITY_GAMMA, iw_samples=1, binarize=False,
                   likelihood="bernoulli", sampler="prior", prior="standard", prior_components=None,
                   iwae_gradient="plain", num_classes=None, gamma=DEFAULT_GAMMA, lambda_od=DEFAULT_LAMBDA_OD,
                   lambda_d=None, dataset_size=None, discriminator_hidden_set=False, latent_layers=1,
                   latent_sizes=1, decoder="factorized", given=None):
    """The options as the `REFUSED` rules read them (``NAME_given``: the value as the user gave it, for messages)."""
    options = {"objective": objective, "beta": float(beta), "kl_warmup": kl_warmup, "free_bits": float(free_bits),
               "capacity_max": float(capacity_max), "capacity_steps_set": capacity_steps_set,
               "capacity_gamma": float(capacity_gamma), "iw_samples": iw_samples, "binarize": binarize,
               "likelihood": likelihood, "sampler": sampler, "prior": prior, "prior_components": prior_components,
               "iwae_gradient": iwae_gradient, "num_classes": num_classes, "gamma": float(gamma),
               "lambda_od": float(lambda_od), "lambda_d": None if lambda_d is None else float(lambda_d),
               "dataset_size": dataset_size, "discriminator_hidden_set": discriminator_hidden_set,
               "latent_layers": latent_layers, "latent_sizes": latent_sizes, "decoder": decoder}
    for name, value in (given or {}).items():
        options[name + "_given"] = value
    return options


def check_model_options(objective="elbo", beta=1.0, kl_warmup=0, free_bits=0.0, capacity_max=0.0,
                        capacity_steps_set=False, capacity_gamma=DEFAULT_CAPACITY_GAMMA, iw_samples=1, binarize=False,
                        likelihood="bernoulli", sampler="prior", prior="standard", prior_components=None,
                        iwae_gradient="plain", num_classes=None, gamma=DEFAULT_GAMMA, lambda_od=DEFAULT_LAMBDA_OD,
                        lambda_d=None, dataset_size=None, discriminator_hidden_set=False, latent_layers=1,
                        latent_sizes=1, decoder="factorized", cli=False, given=None):
    """Refuses a pair of model options listed in `REFUSED` with one line naming both.

    Args:
        objective, beta, free_bits, capacity_max, capacity_gamma, iw_samples, likelihood: as for `VAE`.
        decoder: "factorized" or "pixelcnn" (`build_vae`'s keyword; `VAE` reads it off its decoder network).
        kl_warmup: the warm-up length (steps, or epochs on the command line); > 0 means on.
        capacity_steps_set: whether a capacity schedule length other than the default was given.
        binarize: whether dynamic binarization is on.
        sampler: "prior" or "gmm:K" (`vae_keras.latent_density`).
        prior, prior_components, iwae_gradient, num_classes: as for `VAE` (``prior`` by its kind's name; on
            the command line ``num_classes`` is set by ``--conditional``).
        gamma, lambda_od, lambda_d, dataset_size: as for `VAE` (``dataset_size`` may be a description such as
            "the training split" where the number is not known yet).
        discriminator_hidden_set: whether a discriminator size other than the default was given.
        latent_layers: the number of stochastic layers.
        latent_sizes: how many sizes ``latent_dim`` gives (1, or one per layer).
        cli: name the options as command-line flags (``--free-bits 0.5``) instead of keywords.
        given: optional dict option -> the value as the user gave it, for the message.

    Raises:
        ConfigError: for the first refused pair found.
    """
    options = _model_options(objective, beta, kl_warmup, free_bits, capacity_max, capacity_steps_set, capacity_gamma,
                             iw_samples, binarize, likelihood, sampler, prior, prior_components, iwae_gradient,
                             num_classes, gamma, lambda_od, lambda_d, dataset_size, discriminator_hidden_set,
                             latent_layers, latent_sizes, decoder, given)
    for rule in REFUSED:
        if rule.when(options):
            _raise(rule, options, cli)


def check_training_options(options, cli=True):
    """Refuses a pair of training-run options listed in `REFUSED_TRAINING` (``options``: a dict of
    `TrainConfig` fields)."""
    for rule in REFUSED_TRAINING:
        if rule.when(options):
            _raise(rule, options, cli)

