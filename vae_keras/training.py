"""Training runs: a config, the callbacks, and `train()` (load data -> build -> fit -> evaluate -> export).

The CLI's ``vae-keras train`` is a thin front over :func:`train`; Python users can call it too or
use `VAE` with `model.fit` directly.
"""

import dataclasses
import json
import math
import os
import sys

import keras
import numpy as np

from vae_keras import callbacks as callbacks_lib
from vae_keras import checks, fileio
from vae_keras import distribute as distribute_lib
from vae_keras import options as options_lib
from vae_keras.errors import ConfigError, VaeKerasError
from vae_keras.models.vae import DTYPE_POLICIES

BINARIZE_CHOICES = ("auto", "dynamic", "none")
LR_SCHEDULES = ("constant", "cosine")
DEFAULT_EPOCHS = 30
DEFAULT_KL_WARMUP_EPOCHS = 2.0
# Training steps per compiled call on one device: the same updates with less per-step Python overhead
# (1.3-1.6x the images/s of one step per call for the default MLP on a 2-core CPU; benchmarks/RESULTS.md).
DEFAULT_STEPS_PER_EXECUTION = 32
UNTIL_TIME_LIMIT = 1_000_000  # "epochs" when only --time-limit ends training
TEST_BINARIZE_SEED = 0  # the test split is binarized once with this seed, for every model alike
# With --time-limit S the final test evaluation gets at most this share of S (at least one batch of images):
# --time-limit bounds the whole run, and K=100 on 10,000 Fashion-MNIST images takes ~170 s with the conv net.
EVAL_TIME_SHARE = 0.25
EVAL_BATCH_SIZE = 100


class TrainingInterrupted(VaeKerasError):
    """Training was interrupted (Ctrl-C); the message says what was kept."""


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run needs; the keys mirror the CLI flags (``--latent-dim`` -> latent_dim).

    Saved as ``assets.extra/config.json`` with every export, so a run can be repeated with
    ``vae-keras train --config config.json``.
    """

    dataset: str = "mnist-10k"
    model: str = "mlp"
    hidden: tuple | None = None
    latent_dim: int = 32
    likelihood: str = "bernoulli"
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

    def to_dict(self):
        """The config as a dict, with the warm-up resolved (config.json and checkpoints hold the value used)."""
        d = dataclasses.asdict(self)
        d["kl_warmup_epochs"] = self.resolved_kl_warmup_epochs
        if d["hidden"] is not None:
            d["hidden"] = list(d["hidden"])
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

        for name in ("latent_dim", "batch_size", "iw_samples"):
            positive_int(name)
        if self.steps_per_execution is not None:
            positive_int("steps_per_execution")
        if self.epochs is not None:
            positive_int("epochs")
        for name in ("beta", "free_bits", "learning_rate", "capacity_max", "capacity_epochs", "capacity_gamma"):
            non_negative(name)
        non_negative("kl_warmup_epochs", allow_none=True)
        non_negative("time_limit", allow_none=True)
        non_negative("clip_norm", allow_none=True)
        if self.clip_norm is not None and self.clip_norm <= 0:
            raise ConfigError(f"clip-norm must be > 0. Received: {self.clip_norm!r}")
        checks.check_integer("early-stopping-patience", self.early_stopping_patience, 0,
                             message="{name} must be an integer >= 0 (0 disables it). Received: {value!r}")
        checks.check_number("validation-split", self.validation_split, 0, below=1,
                            message="{name} must be a number >= 0 and < 1 (the share of the training images held out "
                                    "for validation; 0 validates on the test split). Received: {value!r}")
        if self.time_limit is not None and self.time_limit <= 0:
            raise ConfigError(f"time-limit must be > 0 seconds. Received: {self.time_limit!r}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning-rate must be > 0. Received: {self.learning_rate!r}")
        checks.check_integer("eval-iw-samples", self.eval_iw_samples, 0,
                             message="{name} must be an integer >= 0 (0 skips the test evaluation). Received: {value!r}")
        checks.check_integer("seed", self.seed, message="{name} must be an integer. Received: {value!r}")
        choice("model", ("mlp", "conv"))
        choice("likelihood", ("bernoulli", "gaussian", "logistic"))
        choice("conditional", (True, False))
        choice("binarize", BINARIZE_CHOICES)
        choice("lr_schedule", LR_SCHEDULES)
        choice("objective", ("elbo", "iwae"))
        choice("distribute", distribute_lib.STRATEGIES)
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
        # The option contract (vae_keras.options): refused pairs, named as flags, before any data is loaded.
        options_lib.check_model_options(
            objective=self.objective, beta=self.beta, kl_warmup=self.kl_warmup_epochs or 0, free_bits=self.free_bits,
            capacity_max=self.capacity_max, capacity_steps_set=self.capacity_epochs != TrainConfig.capacity_epochs,
            capacity_gamma=self.capacity_gamma, iw_samples=self.iw_samples, binarize=self.binarize == "dynamic",
            likelihood=self.likelihood, cli=True,
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


COSINE_FLOOR = 0.05  # --lr-schedule cosine ends at this fraction of --learning-rate


@keras.saving.register_keras_serializable(package="vae_keras")
class BudgetCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Cosine decay over a training budget of steps, of seconds, or whichever runs out first.

        lr = initial_learning_rate * (alpha + (1 - alpha) * (1 + cos(pi * p)) / 2),
        p = min(1, max(step / decay_steps, time_progress))

    ``time_progress`` is a variable holding elapsed training time / time limit: the `TimeLimit`
    callback that stops training sets it before every call of the train function (every
    ``steps_per_execution`` steps), so the rate reaches its floor ``alpha * initial_learning_rate``
    when the time limit stops training, whatever the step rate. Without ``decay_steps`` only time
    counts; without ``time_limit`` it is Keras's ``CosineDecay``.

    Args:
        initial_learning_rate: the rate at the start.
        decay_steps: steps of the budget, or None (no step budget).
        time_limit: seconds of the budget, or None (no time budget).
        alpha: the floor as a fraction of ``initial_learning_rate``.

    Example:
    >>> s = BudgetCosineDecay(1.0, decay_steps=None, time_limit=60.0, alpha=0.05)
    >>> _ = s.time_progress.assign(0.5)  # half the time: half-way down to the floor
    >>> round(float(s(0)), 4)
    0.525
    """

    def __init__(self, initial_learning_rate, decay_steps=None, time_limit=None, alpha=0.0, name="BudgetCosineDecay"):
        super().__init__()
        if decay_steps is None and time_limit is None:
            raise ConfigError("BudgetCosineDecay needs decay_steps or time_limit (a budget to decay over). Received neither.")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = None if decay_steps is None else int(decay_steps)
        self.time_limit = None if time_limit is None else float(time_limit)
        self.alpha = float(alpha)
        self.name = name
        self.time_progress = keras.Variable(0.0, dtype="float32", trainable=False, name="time_progress")

    def __call__(self, step):
        from keras import ops

        progress = ops.convert_to_tensor(self.time_progress) if self.time_limit is not None else ops.zeros(())
        if self.decay_steps is not None:
            progress = ops.maximum(progress, ops.cast(step, "float32") / float(max(1, self.decay_steps)))
        progress = ops.clip(progress, 0.0, 1.0)
        cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
        return self.initial_learning_rate * (self.alpha + (1.0 - self.alpha) * cosine)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "time_limit": self.time_limit, "alpha": self.alpha, "name": self.name}


def make_optimizer(config, steps_per_epoch):
    """Adam with --learning-rate, --clip-norm and --lr-schedule.

    ``cosine`` decays to COSINE_FLOOR * learning_rate over the run's real budget: the steps of
    --epochs (DEFAULT_EPOCHS without --epochs or --time-limit), the seconds of --time-limit, or with
    both whichever runs out first (`BudgetCosineDecay`; `TimeLimit` advances its clock).
    """
    lr = config.learning_rate
    if config.lr_schedule == "cosine":
        decay_steps = max(1, config.max_epochs * steps_per_epoch) if config.epochs or not config.time_limit else None
        if config.time_limit:
            lr = BudgetCosineDecay(lr, decay_steps=decay_steps, time_limit=config.time_limit, alpha=COSINE_FLOOR)
        else:
            lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=decay_steps, alpha=COSINE_FLOOR)
    return keras.optimizers.Adam(learning_rate=lr, global_clipnorm=config.clip_norm)


def time_progress_of(optimizer):
    """The `BudgetCosineDecay` time-progress variable of ``optimizer``'s schedule, or None."""
    schedule = getattr(optimizer, "_learning_rate", None)  # Keras keeps a schedule there
    return getattr(schedule, "time_progress", None) if isinstance(schedule, BudgetCosineDecay) else None


def test_images(data, binarized, seed=TEST_BINARIZE_SEED):
    """Float32 test images; binarized once with a fixed seed when the model sees binary data."""
    from vae_keras import data as data_lib

    return data_lib.binarize(data.x_test, seed) if binarized else data_lib.to_float(data.x_test)


def split_for_validation(config, data):
    """The data ``fit`` sees and a description of its validation part, for the model card.

    With ``config.validation_split`` F > 0 a seeded (``config.seed``) random share F of the training
    images is held out (`vae_keras.data.ImageData.hold_out_validation`): the returned data's train
    split is the rest, its test split the held-out images. With F = 0 it is ``data`` itself, so
    validation runs on the test split (monitoring only).

    Returns:
        ``(fit_data, description)``: an `ImageData` whose ``pipeline("train")`` and
        ``pipeline("test")`` are fit's training and validation data, and a one-line description
        of the validation data.

    Raises:
        ConfigError: the split leaves no validation image or no training image.
    """
    if not config.validation_split:
        return data, f"test split ({_images(len(data.x_test))})"
    fit_data = data.hold_out_validation(config.validation_split, seed=config.seed)
    return fit_data, (f"{config.validation_split * 100:g}% of the training split held out (seed {config.seed}): "
                      f"{_images(len(fit_data.x_test))}; trained on the other {len(fit_data.x_train):,}")


def _images(n):
    return f"{n:,} image{'' if n == 1 else 's'}"


def resolve_verbose(config):
    """Keras verbosity: an explicit --verbose as given; "auto" is the progress bar (1) on a terminal and one
    line per epoch (2) otherwise, so that a redirected log gets no carriage returns, colours or backspaces."""
    if config.verbose != "auto":
        return config.verbose
    return 1 if sys.stdout.isatty() else 2


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


def weights_row(history, early_stopping):
    """The history row of the weights the run ends with: the best epoch's when early stopping restored
    its weights, else the last epoch's (None without history)."""
    if early_stopping is not None:
        best = callbacks_lib.best_row(history, early_stopping.monitor)
        if best is not None:
            return best
    return history[-1] if history else None


def test_evaluation(model, data, binarized, config):
    """The final test evaluation of a run: K = --eval-iw-samples on the test split.

    With --time-limit S the importance-weighted pass gets ``EVAL_TIME_SHARE * S`` seconds: the test
    images are taken in a seeded random order (``config.seed``, so that no class is left out) and as many
    batches as fit are evaluated, at least one. The metrics say how many images were used
    (``test_num_images`` of ``test_images_available``) and ``test_evaluation`` says so in words.
    """
    from vae_keras import evaluation

    x = test_images(data, binarized)
    labels = data.y_test if config.conditional else None
    budget = EVAL_TIME_SHARE * config.time_limit if config.time_limit else None
    if budget is not None:
        order = np.random.default_rng(config.seed).permutation(len(x))
        x, labels = x[order], None if labels is None else np.asarray(labels)[order]
    result = evaluation.evaluate(model, x, iw_samples=config.eval_iw_samples, batch_size=EVAL_BATCH_SIZE, seed=config.seed,
                                 labels=labels, max_seconds=budget)
    metrics = {f"test_{k}": v for k, v in result.items()}
    metrics["test_images_available"] = len(x)
    if budget is None:
        metrics["test_evaluation"] = f"all {_images(len(x))} of the test split, K={config.eval_iw_samples}"
    else:
        metrics["test_evaluation"] = (
            f"{result['num_images']:,} of {_images(len(x))} of the test split (a random subset, seed {config.seed}), "
            f"K={config.eval_iw_samples}: the evaluation had {budget:g} s, {EVAL_TIME_SHARE:g} of --time-limit "
            f"{config.time_limit:g}")
    return metrics


def _interrupted_after_training(config, checkpoint, stage):
    where = (f"The checkpoint in {config.checkpoint_dir!r} keeps every trained epoch: run the same command again to "
             "resume from it.") if checkpoint else "The trained weights are lost (use --checkpoint-dir to keep them)."
    return TrainingInterrupted(f"Interrupted during the {stage}; nothing was exported. {where}")


def check_output_paths(config):
    """Every folder the run will write to (--out and the model's folder in it, --checkpoint-dir,
    --tensorboard) must be a writable folder or creatable, checked before any data is loaded or epoch
    trained: a bad path fails at once instead of losing the finished training (issue 13)."""
    name = config.name or default_name(config.dataset)
    fileio.check_output_folder(config.out, "--out")
    fileio.check_output_folder(os.path.join(config.out, name), "The model folder",
                               hint="Choose another --name or --out (the versions go in OUT/NAME/).")
    if config.checkpoint_dir:
        fileio.check_output_folder(config.checkpoint_dir, "--checkpoint-dir")
    if config.tensorboard:
        fileio.check_output_folder(config.tensorboard, "--tensorboard")


def _capacity_options(config, steps_per_epoch):
    """The model's controlled-capacity arguments (none when it is off: the contract refuses a schedule without it)."""
    if config.capacity_max <= 0:
        return {}
    return {"capacity_max": config.capacity_max, "capacity_gamma": config.capacity_gamma,
            "capacity_steps": max(1, int(round(config.capacity_epochs * steps_per_epoch)))}


def _class_names(data, num_classes):
    if data.class_names:
        return list(data.class_names)
    return [str(i) for i in range(num_classes)] if num_classes else None


def train(config, data=None, callbacks=()):
    """Runs one training: loads data, builds the VAE, fits, evaluates on the test split, exports.

    ``fit`` validates (``val_*`` metrics, early stopping) on the share of the training images held out
    by ``config.validation_split``, or on the test split when it is 0; the final test metrics are
    always computed on the test split.

    Args:
        config: a `TrainConfig` (or a dict of its fields).
        data: optional `vae_keras.data.ImageData` to use instead of loading ``config.dataset``.
        callbacks: extra Keras callbacks.

    Returns:
        A dict with ``model``, ``export_path``, ``history`` (per-epoch rows) and ``metrics``.
    """
    from vae_keras import data as data_lib
    from vae_keras import export
    from vae_keras.models import build_vae

    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    config.validate()
    check_output_paths(config)
    run = distribute_lib.setup(config.distribute)  # first: multi-worker must precede other TensorFlow work
    if data is None:
        data = data_lib.load_images(config.dataset)
    name = config.name or default_name(config.dataset)
    export.check_model_name(name)
    binarized = resolve_binarize(config, data.image_shape)
    num_classes = None
    if config.conditional:
        if not data.has_labels:
            raise ConfigError(
                f"--conditional needs labels, and dataset {config.dataset!r} has none. Use class subfolders, "
                "IDX label files or y_train/y_test in the .npz, or drop --conditional.")
        num_classes = max(2, int(data.num_classes))

    fit_data, validation_data = split_for_validation(config, data)
    keras.utils.set_random_seed(config.seed)
    steps_per_epoch = math.ceil(len(fit_data.x_train) / config.batch_size)
    with run.scope():  # model and optimizer variables mirrored under --distribute
        model = build_vae(
            data.image_shape, latent_dim=config.latent_dim, network=config.model, hidden=config.hidden,
            likelihood=config.likelihood, beta=config.beta, binarize=binarized,
            kl_warmup_steps=int(round(config.resolved_kl_warmup_epochs * steps_per_epoch)), free_bits=config.free_bits,
            **_capacity_options(config, steps_per_epoch), objective=config.objective, iw_samples=config.iw_samples,
            num_classes=num_classes, seed=config.seed, dtype_policy=config.dtype_policy,
        )
        if config.output_bias_init:
            model.initialize_output_bias(data_lib.to_float(fit_data.x_train).mean(axis=0))
        model.compile(optimizer=make_optimizer(config, steps_per_epoch), steps_per_execution=config.resolved_steps_per_execution)

    verbose = resolve_verbose(config)
    early_stopping = None
    if config.early_stopping_patience:
        early_stopping = callbacks_lib.ResumableEarlyStopping(monitor="val_loss", patience=config.early_stopping_patience,
                                                              report=verbose != 0)
    checkpoint = None
    initial_epoch, time_offset = 0, 0.0
    if config.checkpoint_dir:
        checkpoint = run.checkpoint(config.checkpoint_dir, config.to_dict(), monitor="val_loss" if early_stopping else None,
                                    defaults=TrainConfig().to_dict())
        initial_epoch = checkpoint.restore(model)
        if initial_epoch:
            time_offset = checkpoint.history[-1].get("time", 0.0)
            if early_stopping is not None:  # continue with the best epoch from before the interruption
                with run.scope():
                    early_stopping.resume(checkpoint.history, checkpoint.read_best_weights(model))
            print(f"Resuming from {config.checkpoint_dir} after epoch {initial_epoch}.", flush=True)
    # The data order of a resumed run continues the uninterrupted run's sequence of epochs. Validation: the
    # held-out part of the training split (--validation-split) or the test split, binarized once like the test
    # split so that val_loss is comparable between epochs.
    train_ds = fit_data.pipeline("train", batch_size=config.batch_size, seed=config.seed, with_labels=config.conditional,
                                 skip_epochs=initial_epoch)
    val_ds = fit_data.pipeline("test", batch_size=max(config.batch_size, 256), with_labels=config.conditional,
                               binarize_seed=TEST_BINARIZE_SEED if binarized else None)
    time_limit = (callbacks_lib.TimeLimit(config.time_limit, progress=time_progress_of(model.optimizer), offset=time_offset)
                  if config.time_limit else None)
    all_callbacks = [callbacks_lib.NaNGuard(), callbacks_lib.EpochTimer(time_offset), callbacks_lib.ProgbarLogger()]
    all_callbacks += [cb for cb in (time_limit, early_stopping) if cb is not None]
    if config.tensorboard:
        all_callbacks.append(keras.callbacks.TensorBoard(log_dir=run.worker_path(config.tensorboard)))
    all_callbacks.extend(callbacks)
    if checkpoint is not None:
        all_callbacks.append(checkpoint)  # last, so it saves the epoch's complete logs

    if initial_epoch >= config.max_epochs:
        history = checkpoint.history
        if early_stopping is not None and early_stopping.best_weights_on_resume is not None:
            model.set_weights(early_stopping.best_weights_on_resume)
    else:
        try:
            fit = run.fit(model, train_ds, validation_data=val_ds, epochs=config.max_epochs, initial_epoch=initial_epoch,
                          callbacks=all_callbacks, verbose=verbose)  # the pipeline shuffles
        except KeyboardInterrupt:
            where = (f"The checkpoint in {config.checkpoint_dir!r} keeps every finished epoch; run the same "
                     "command again to resume.") if checkpoint else "Nothing was exported (use --checkpoint-dir to make runs resumable)."
            raise TrainingInterrupted(f"Training interrupted. {where}") from None
        history = checkpoint.history if checkpoint else export.history_rows_from_keras(fit.history)
    if not run.is_chief:  # multi-worker: only the chief evaluates and exports
        return run.finish_worker(model, history, checkpoint)

    row = weights_row(history, early_stopping)  # the metrics of the weights that are exported
    metrics = {f"final_{k}": v for k, v in row.items() if k != "epoch"} if row else {}
    metrics["weights_epoch"] = int(row["epoch"]) if row else None
    metrics["epochs_trained"] = len(history)
    metrics["stopped_by_time_limit"] = bool(time_limit and time_limit.stopped_early)
    metrics["validation_data"] = validation_data  # where the val_* numbers come from
    if early_stopping is not None:
        metrics["stopped_early"] = bool(early_stopping.stopped_epoch)
        best = callbacks_lib.best_row(history, "val_loss")
        metrics["best_epoch"] = int(best["epoch"]) if best else None
    resolved = resolved_config(config, data.image_shape, name)
    stage = "final test evaluation"
    try:
        if config.eval_iw_samples:
            metrics.update(test_evaluation(model, data, binarized, config))
        stage = "export"
        path = export.export_model(
            model, config.out, name, history=history, dataset=config.dataset, metrics=metrics,
            config=resolved,
            card_extra={
                "network": config.model,
                "hidden": resolved["hidden"],
                "class_names": _class_names(data, num_classes),
                "dataset_num_classes": data.num_classes,
                "test_binarized": binarized,
            },
        )
    except KeyboardInterrupt:
        raise _interrupted_after_training(config, checkpoint, stage) from None
    if checkpoint is not None:
        checkpoint.clear()
    run.barrier()  # multi-worker: the other workers wait for the export, then all exit together
    return {"model": model, "export_path": path, "history": history, "metrics": metrics}
