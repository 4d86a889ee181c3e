"""A training run's configuration: `TrainConfig` (the CLI's flags as fields), config files, the config as resolved.

`TrainConfig.validate` checks every field (with `vae_keras.checks`) and the option contract
(`vae_keras.options`) before any data is loaded.
"""

import dataclasses
import json
import os

from vae_keras import checks
from vae_keras import options as options_lib
from vae_keras.callbacks import UNTIL_TIME_LIMIT
from vae_keras.distribute import STRATEGIES
from vae_keras.errors import ConfigError
from vae_keras.models.vae import DTYPE_POLICIES, OBJECTIVES, latent_sizes
from vae_keras.networks import NETWORKS

BINARIZE_CHOICES = ("auto", "dynamic", "none")
LR_SCHEDULES = ("constant", "cosine")
DEFAULT_EPOCHS = 30
DEFAULT_KL_WARMUP_EPOCHS = 2.0
# Training steps per compiled call on one device: the same updates with less per-step Python overhead
# (1.3-1.6x the images/s of one step per call for the default MLP on a 2-core CPU; benchmarks/RESULTS.md).
DEFAULT_STEPS_PER_EXECUTION = 32


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run needs; the keys mirror the CLI flags (``--latent-dim`` -> latent_dim).

    Saved as ``assets.extra/config.json`` with every export, so a run can be repeated with
    ``vae-keras train --config config.json``.
    """

    dataset: str = "mnist-10k"
    model: str = "mlp"
    hidden: tuple | None = None
    latent_dim: int | tuple = 32  # one size, or one per stochastic layer (bottom first) with latent_layers > 1
    latent_layers: int = 1
    likelihood: str = "bernoulli"
    decoder: str = "factorized"  # factorized (pixels independent given z) or pixelcnn (autoregressive head)
    binarize: str = "auto"
    epochs: int | None = None  # None: DEFAULT_EPOCHS, or until --time-limit when one is given
    time_limit: float | None = None
    batch_size: int = 128
    learning_rate: float = 2e-3
    lr_schedule: str = "constant"
    beta: float = 1.0
    kl_warmup_epochs: float | None = None  # None: DEFAULT_KL_WARMUP_EPOCHS, or 0 under controlled capacity
    free_bits: float = 0.0
    capacity_max: float = 0.0
    capacity_epochs: float = 10.0
    capacity_gamma: float = 1000.0
    conditional: bool = False
    objective: str = "elbo"
    iw_samples: int = 1
    iwae_gradient: str = "plain"  # "dreg": Tucker et al.'s doubly reparameterized encoder gradient (--objective iwae)
    prior: str = "auto"  # p(z): auto (vamp where the option contract allows it, else standard), standard, vamp or mog
    prior_components: int | None = None  # K of a learned prior (None: vae_keras.priors.DEFAULT_COMPONENTS)
    gamma: float = options_lib.DEFAULT_GAMMA  # FactorVAE's TC weight (--objective factorvae)
    lambda_od: float = options_lib.DEFAULT_LAMBDA_OD  # DIP-VAE's weights (--objective dipvae1/dipvae2)
    lambda_d: float | None = None  # None: 10 * lambda_od (dipvae1) or lambda_od (dipvae2)
    output_bias_init: bool = True
    early_stopping_patience: int = 0
    validation_split: float = 0.0  # > 0: hold out this share of the training images for val_* and early stopping
    clip_norm: float | None = None
    dtype_policy: str = "float32"  # Keras dtype policy of the networks: float32, mixed_bfloat16 or mixed_float16
    steps_per_execution: int | None = None  # None: DEFAULT_STEPS_PER_EXECUTION on one device, 1 under --distribute
    checkpoint_dir: str | None = None
    eval_iw_samples: int = 100
    seed: int = 0
    out: str = "saved_models"
    name: str | None = None
    tensorboard: str | None = None
    verbose: str | int = "auto"
    distribute: str = "none"
    sampler: str = "prior"  # or "gmm:K": a mixture fitted to the posterior means after training (latent_density)
    sample_quality: int = 0  # > 0: score this many random samples at export (FD, precision, recall; sample_quality)

    @classmethod
    def from_dict(cls, values):
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ConfigError(f"Unknown config keys {unknown}. Known keys: {sorted(fields)}")
        config = cls(**values)
        config.validate()
        return config

    @property
    def max_epochs(self):
        """--epochs if given; else train until --time-limit, or DEFAULT_EPOCHS without one."""
        if self.epochs is not None:
            return self.epochs
        return UNTIL_TIME_LIMIT if self.time_limit else DEFAULT_EPOCHS

    @property
    def resolved_steps_per_execution(self):
        """--steps-per-execution if given; else DEFAULT_STEPS_PER_EXECUTION on one device and 1 under a
        strategy (Keras 3 cannot run several steps per call under MirroredStrategy, keras-team/keras#19246,
        and the multi-worker loop runs one step per call)."""
        if self.steps_per_execution is not None:
            return self.steps_per_execution
        return DEFAULT_STEPS_PER_EXECUTION if self.distribute == "none" else 1

    @property
    def resolved_kl_warmup_epochs(self):
        """--kl-warmup-epochs if given; else DEFAULT_KL_WARMUP_EPOCHS, or 0 under controlled capacity (which
        has its own schedule and refuses a warm-up)."""
        if self.kl_warmup_epochs is not None:
            return self.kl_warmup_epochs
        return 0.0 if self.capacity_max > 0 else DEFAULT_KL_WARMUP_EPOCHS

    def _model_option_values(self, prior):
        """The keywords of `options.check_model_options` for this run, with ``prior``."""
        return dict(
            objective=self.objective, beta=self.beta, kl_warmup=self.kl_warmup_epochs or 0, free_bits=self.free_bits,
            capacity_max=self.capacity_max, capacity_steps_set=self.capacity_epochs != TrainConfig.capacity_epochs,
            capacity_gamma=self.capacity_gamma, iw_samples=self.iw_samples, binarize=self.binarize == "dynamic",
            likelihood=self.likelihood, sampler=self.sampler, prior=prior, prior_components=self.prior_components,
            iwae_gradient=self.iwae_gradient, num_classes=True if self.conditional else None,
            gamma=self.gamma, lambda_od=self.lambda_od, lambda_d=self.lambda_d,
            # train() passes the training split's size as beta-TCVAE's N.
            dataset_size="the training split's size" if self.objective == "tcvae" else None,
            latent_layers=self.latent_layers, decoder=self.decoder)

    @property
    def resolved_prior(self):
        """--prior if given; for auto (the default) the VampPrior (`options.AUTO_PRIOR`), or the standard prior when
        the option contract refuses a learned prior with the other options (--conditional, --free-bits,
        --latent-layers > 1, a disentangling --objective)."""
        return options_lib.resolve_prior(**self._model_option_values(self.prior))

    def to_dict(self):
        """The config as a dict, with the warm-up and the prior resolved (config.json and checkpoints hold the
        values used)."""
        d = dataclasses.asdict(self)
        d["kl_warmup_epochs"] = self.resolved_kl_warmup_epochs
        d["prior"] = self.resolved_prior
        if d["hidden"] is not None:
            d["hidden"] = list(d["hidden"])
        if isinstance(d["latent_dim"], tuple):
            d["latent_dim"] = list(d["latent_dim"])
        return d

    def validate(self):
        # Options are named as flags (--latent-dim -> latent-dim) in the messages.
        def positive_int(name):
            checks.check_integer(name.replace("_", "-"), getattr(self, name), 1,
                                 message="{name} must be a positive integer. Received: {value!r}")

        def non_negative(name, allow_none=False):
            v = getattr(self, name)
            if not (v is None and allow_none):
                checks.check_number(name.replace("_", "-"), v, message="{name} must be a finite number >= 0. Received: {value!r}")

        def choice(name, choices):
            checks.check_choice(name.replace("_", "-"), getattr(self, name), list(choices),
                                message="{name} must be one of {choices}. Received: {value!r}")

        if isinstance(self.latent_dim, str):  # a config file's "100,50", as --latent-dim takes it
            try:
                self.latent_dim = tuple(int(d) for d in self.latent_dim.split(",") if d.strip())
            except ValueError:
                raise ConfigError(f"latent-dim must be a positive integer or comma-separated ones such as 100,50. "
                                  f"Received: {self.latent_dim!r}") from None
        if isinstance(self.latent_dim, (list, tuple)):
            self.latent_dim = self.latent_dim[0] if len(self.latent_dim) == 1 else tuple(self.latent_dim)
        if isinstance(self.latent_dim, tuple):
            if not all(checks.is_integer(d) and d >= 1 for d in self.latent_dim):
                raise ConfigError(f"latent-dim must be positive integers such as 100,50. Received: {self.latent_dim!r}")
        else:
            positive_int("latent_dim")
        for name in ("latent_layers", "batch_size", "iw_samples"):
            positive_int(name)
        if self.steps_per_execution is not None:
            positive_int("steps_per_execution")
        if self.prior_components is not None:
            positive_int("prior_components")
        if self.epochs is not None:
            positive_int("epochs")
        for name in ("beta", "free_bits", "learning_rate", "capacity_max", "capacity_epochs", "capacity_gamma", "gamma",
                     "lambda_od"):
            non_negative(name)
        non_negative("lambda_d", allow_none=True)
        non_negative("kl_warmup_epochs", allow_none=True)
        for name in ("time_limit", "clip_norm"):  # optional, and when given a finite number > 0 (0 is refused too)
            if getattr(self, name) is not None:
                checks.check_number(name.replace("_", "-"), getattr(self, name), 0, strict=True,
                                    message="{name} must be a finite number > 0. Received: {value!r}")
        checks.check_integer("early-stopping-patience", self.early_stopping_patience, 0,
                             message="{name} must be an integer >= 0 (0 disables it). Received: {value!r}")
        checks.check_number("validation-split", self.validation_split, 0, below=1,
                            message="{name} must be a number >= 0 and < 1 (the share of the training images held out "
                                    "for validation; 0 validates on the test split). Received: {value!r}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning-rate must be > 0. Received: {self.learning_rate!r}")
        checks.check_integer("eval-iw-samples", self.eval_iw_samples, 0,
                             message="{name} must be an integer >= 0 (0 skips the test evaluation). Received: {value!r}")
        checks.check_integer("seed", self.seed, message="{name} must be an integer. Received: {value!r}")
        from vae_keras.sample_quality import check_num_samples  # numpy only: no TensorFlow before the data loads

        check_num_samples("sample-quality", self.sample_quality)
        choice("model", NETWORKS)
        choice("likelihood", ("bernoulli", "gaussian", "logistic"))
        choice("decoder", ("factorized", "pixelcnn"))
        choice("conditional", (True, False))
        choice("binarize", BINARIZE_CHOICES)
        choice("lr_schedule", LR_SCHEDULES)
        choice("objective", OBJECTIVES)
        choice("iwae_gradient", ("plain", "dreg"))
        choice("prior", options_lib.PRIORS)
        choice("distribute", STRATEGIES)
        choice("dtype_policy", DTYPE_POLICIES)
        if self.hidden is not None:
            if isinstance(self.hidden, str):
                try:
                    self.hidden = tuple(int(h) for h in self.hidden.split(",") if h.strip())
                except ValueError:
                    raise ConfigError(f"hidden must be comma-separated positive integers such as 512,256. Received: {self.hidden!r}") from None
            self.hidden = tuple(self.hidden)
            if not self.hidden or not all(checks.is_integer(h) and h >= 1 for h in self.hidden):
                raise ConfigError(f"hidden must be positive integers such as 512,256. Received: {self.hidden!r}")
        options_lib.parse_sampler(self.sampler)
        # The option contract (vae_keras.options): refused pairs, named as flags, before any data is loaded.
        latent_sizes(self.latent_dim, self.latent_layers, cli=True)  # the (latent_dim, latent_layers) pair, as flags
        prior = self.resolved_prior
        if self.prior == "auto" and prior == "standard" and self.prior_components is not None:
            reason = options_lib.auto_prior_reason(**self._model_option_values(self.prior), cli=True)
            raise ConfigError(f"--prior-components {self.prior_components} needs a learned prior, and --prior auto (the "
                              f"default) chose {reason}. Drop --prior-components.")
        options_lib.check_model_options(
            **self._model_option_values(prior), cli=True,
            given={"capacity_steps": self.capacity_epochs, "kl_warmup": self.kl_warmup_epochs, "binarize": self.binarize})
        options_lib.check_training_options(dataclasses.asdict(self))
        if self.name is not None:
            from vae_keras.export import check_model_name

            check_model_name(self.name)


def load_config_file(path):
    """Reads a JSON or YAML config file into a dict (keys may use '-' or '_')."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"Cannot read config file {path!r}: {e.strerror or e}. Pass an existing JSON or YAML file.") from None
    import yaml

    try:
        values = yaml.safe_load(text) if path.lower().endswith((".yaml", ".yml")) else json.loads(text)
    except (ValueError, yaml.YAMLError) as e:  # json.JSONDecodeError is a ValueError
        raise ConfigError(f"Config file {path!r} is not valid {'YAML' if path.lower().endswith(('.yaml', '.yml')) else 'JSON'}: {str(e).splitlines()[0]}") from None
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"Config file {path!r} must hold a mapping of option names to values. Received a {type(values).__name__}.")
    values = {str(k).replace("-", "_"): v for k, v in values.items()}
    if "no_output_bias_init" in values:  # the key mirrors the flag --no-output-bias-init; output_bias_init is read too
        flag = values.pop("no_output_bias_init")
        if not isinstance(flag, bool):
            raise ConfigError(f"no-output-bias-init in {path!r} must be true or false. Received: {flag!r}")
        if values.get("output_bias_init", not flag) == flag:
            raise ConfigError(f"Config file {path!r} sets both no-output-bias-init: {str(flag).lower()} and "
                              f"output-bias-init: {str(flag).lower()}, which contradict each other. Keep no-output-bias-init.")
        values["output_bias_init"] = not flag
    return values


def default_name(dataset):
    """A model name from a dataset spec: 'mnist-10k' -> 'mnist-10k', '/data/faces/' -> 'faces'."""
    base = os.path.basename(os.path.normpath(dataset)) or "model"
    base = os.path.splitext(base)[0] if os.path.isfile(dataset) else base
    cleaned = "".join(c if c.isalnum() or c in "_.-" else "_" for c in base).lstrip("._-")
    return cleaned or "model"


def resolve_binarize(config, image_shape):
    """'auto' -> dynamic binarization for one-channel images with a Bernoulli likelihood."""
    if config.binarize == "auto":
        return config.likelihood == "bernoulli" and image_shape[-1] == 1
    return config.binarize == "dynamic"


def resolved_config(config, image_shape, name):
    """``config.to_dict()`` with every default the run resolved written out (``assets.extra/config.json``):
    the hidden sizes of the network, the model name, the steps per execution, the epochs (null only when
    --time-limit alone ends training). Fed back with ``--config`` it reproduces the run. ``--no-output-bias-init``
    is written as ``no_output_bias_init``, mirroring the flag (`load_config_file` reads both spellings)."""
    from vae_keras.networks import default_hidden

    d = config.to_dict()
    d["hidden"] = list(config.hidden or default_hidden(config.model, image_shape))
    d["name"] = name
    d["steps_per_execution"] = config.resolved_steps_per_execution
    if config.epochs is None and not config.time_limit:
        d["epochs"] = DEFAULT_EPOCHS
    d["no_output_bias_init"] = not d.pop("output_bias_init")
    return d
