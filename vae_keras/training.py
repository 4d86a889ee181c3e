"""Training runs: `train()`, a short sequence of stages, each a function you can call alone.

    config = prepare_config(config)                  # TrainConfig (train_config.py), validated
    run = distribute.setup(config.distribute)        # the collaborator that runs fit (one device or a cluster)
    run_data = load_data(config)                      # RunData: the images, fit's split, name, binarization
    model = build_model(config, run_data, run)        # the compiled VAE
    resume = restore_checkpoint(config, model, run)   # Resume: checkpoint, early stopping, epoch to start at
    history, time_limit = fit_model(config, model, run_data, resume, run)
    metrics = evaluate_model(config, model, run_data, history, resume, time_limit)
    path = export_run(config, model, run_data, history, metrics)

The CLI's ``vae-keras train`` is a thin front over :func:`train`; Python users can call it too or
use `VAE` with `model.fit` directly.
"""

import dataclasses
import math
import os
import sys

import keras
import numpy as np

from vae_keras import callbacks as callbacks_lib
from vae_keras import distribute as distribute_lib
from vae_keras import fileio
from vae_keras.errors import ConfigError, VaeKerasError

# Re-exported: the run's configuration and optimizer live in their own modules.
from vae_keras.schedules import COSINE_FLOOR, BudgetCosineDecay, make_optimizer, time_progress_of  # noqa: F401
from vae_keras.train_config import (  # noqa: F401
    BINARIZE_CHOICES,
    DEFAULT_EPOCHS,
    DEFAULT_KL_WARMUP_EPOCHS,
    DEFAULT_STEPS_PER_EXECUTION,
    LR_SCHEDULES,
    UNTIL_TIME_LIMIT,
    TrainConfig,
    default_name,
    load_config_file,
    resolve_binarize,
    resolved_config,
)

TEST_BINARIZE_SEED = 0  # the test split is binarized once with this seed, for every model alike
# With --time-limit S the final test evaluation gets at most this share of S (at least one batch of images):
# --time-limit bounds the whole run, and K=100 on 10,000 Fashion-MNIST images takes ~170 s with the conv net.
EVAL_TIME_SHARE = 0.25
EVAL_BATCH_SIZE = 100


class TrainingInterrupted(VaeKerasError):
    """Training was interrupted (Ctrl-C); the message says what was kept."""


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


def _objective_options(config, run_data):
    """The disentangling objectives' arguments (only the objective's own: the contract refuses the others):
    beta-TCVAE's N is the number of images ``fit`` trains on."""
    if config.objective == "tcvae":
        return {"dataset_size": len(run_data.fit_data.x_train)}
    if config.objective == "factorvae":
        return {"gamma": config.gamma}
    if config.objective in ("dipvae1", "dipvae2"):
        return {"lambda_od": config.lambda_od, "lambda_d": config.lambda_d}
    return {}


def _class_names(data, num_classes):
    if data.class_names:
        return list(data.class_names)
    return [str(i) for i in range(num_classes)] if num_classes else None


# ------------------------------------------------------------------------------------------------
# The stages of train(), in order
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class RunData:
    """What `load_data` hands the later stages.

    Attributes:
        data: the `vae_keras.data.ImageData` (its test split gives the final test metrics).
        fit_data: what ``fit`` trains on (its train split) and validates on (its test split); see
            `split_for_validation`.
        validation_data: where the ``val_*`` numbers come from, in words (for the model card).
        name: the model's name (``--name``, or one made from the dataset spec).
        binarized: whether the model sees binary images (dynamic binarization).
        num_classes: a conditional model's number of classes, else None.
    """

    data: object
    fit_data: object
    validation_data: str
    name: str
    binarized: bool
    num_classes: int | None = None


@dataclasses.dataclass
class Resume:
    """What `restore_checkpoint` found: the checkpoint callback (None without --checkpoint-dir), the early
    stopping callback (None without --early-stopping-patience), the epoch to start at and the training
    time already spent (a resumed --time-limit run continues its budget)."""

    checkpoint: object = None
    early_stopping: object = None
    initial_epoch: int = 0
    time_offset: float = 0.0


def prepare_config(config):
    """Stage 0: ``config`` (a `TrainConfig` or a dict of its fields) validated, its output folders checked."""
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    config.validate()
    check_output_paths(config)
    return config


def steps_per_epoch(config, run_data):
    """Optimizer steps per epoch (the last batch may be smaller)."""
    return math.ceil(len(run_data.fit_data.x_train) / config.batch_size)


def load_data(config, data=None):
    """Stage 1: the images (``data``, or ``config.dataset`` loaded), the split ``fit`` sees, the model's name.

    Raises:
        ConfigError: a bad model name, --conditional on data without labels, or a validation split that
            leaves no image on one side.
    """
    from vae_keras import data as data_lib
    from vae_keras import export

    if data is None:
        data = data_lib.load_images(config.dataset)
    name = config.name or default_name(config.dataset)
    export.check_model_name(name)
    num_classes = None
    if config.conditional:
        if not data.has_labels:
            raise ConfigError(
                f"--conditional needs labels, and dataset {config.dataset!r} has none. Use class subfolders, "
                "IDX label files or y_train/y_test in the .npz, or drop --conditional.")
        num_classes = max(2, int(data.num_classes))
    fit_data, validation_data = split_for_validation(config, data)
    return RunData(data=data, fit_data=fit_data, validation_data=validation_data, name=name,
                   binarized=resolve_binarize(config, data.image_shape), num_classes=num_classes)


def build_model(config, run_data, run=None):
    """Stage 2: the compiled VAE, its variables created in ``run``'s strategy scope (seeded by ``config.seed``)."""
    from vae_keras import data as data_lib
    from vae_keras.models import build_vae

    run = run or distribute_lib.setup("none")
    keras.utils.set_random_seed(config.seed)
    steps = steps_per_epoch(config, run_data)
    prior = config.resolved_prior
    with run.scope():  # model and optimizer variables mirrored under --distribute
        model = build_vae(
            run_data.data.image_shape, latent_dim=config.latent_dim, latent_layers=config.latent_layers,
            network=config.model, hidden=config.hidden, decoder=config.decoder,
            likelihood=config.likelihood, beta=config.beta, binarize=run_data.binarized,
            kl_warmup_steps=int(round(config.resolved_kl_warmup_epochs * steps)), free_bits=config.free_bits,
            **_capacity_options(config, steps), objective=config.objective, iw_samples=config.iw_samples,
            num_classes=run_data.num_classes, seed=config.seed, dtype_policy=config.dtype_policy,
            sampler=config.sampler,
            prior=prior, prior_components=config.prior_components, iwae_gradient=config.iwae_gradient,
            **_objective_options(config, run_data),
        )
        if prior == "vamp" or config.output_bias_init:
            x_train = data_lib.to_float(run_data.fit_data.x_train)
        if prior == "vamp":  # pseudo-inputs start as random training images (seeded)
            model.prior.initialize_from_images(x_train, seed=config.seed)
        if config.output_bias_init:
            model.initialize_output_bias(x_train.mean(axis=0))
        model.compile(optimizer=make_optimizer(config, steps), steps_per_execution=config.resolved_steps_per_execution)
    return model


def restore_checkpoint(config, model, run=None):
    """Stage 3: the run's checkpoint and early stopping callbacks; with --checkpoint-dir, the weights, optimizer
    and epoch of the last finished epoch restored into ``model`` (and the best epoch's weights for early stopping).
    """
    run = run or distribute_lib.setup("none")
    early_stopping = None
    if config.early_stopping_patience:
        early_stopping = callbacks_lib.ResumableEarlyStopping(monitor="val_loss", patience=config.early_stopping_patience,
                                                              report=resolve_verbose(config) != 0)
    resume = Resume(early_stopping=early_stopping)
    if config.checkpoint_dir:
        resume.checkpoint = checkpoint = run.checkpoint(
            config.checkpoint_dir, config.to_dict(), monitor="val_loss" if early_stopping else None,
            defaults=TrainConfig().to_dict())
        resume.initial_epoch = checkpoint.restore(model)
        if resume.initial_epoch:
            resume.time_offset = checkpoint.history[-1].get("time", 0.0)
            if early_stopping is not None:  # continue with the best epoch from before the interruption
                with run.scope():
                    early_stopping.resume(checkpoint.history, checkpoint.read_best_weights(model))
            print(f"Resuming from {config.checkpoint_dir} after epoch {resume.initial_epoch}.", flush=True)
    return resume


def fit_model(config, model, run_data, resume=None, run=None, callbacks=()):
    """Stage 4: trains ``model`` from ``resume.initial_epoch`` to ``config.max_epochs`` (or the time limit, or early
    stopping) with ``run.fit``; returns ``(history rows, the TimeLimit callback or None)``.

    Raises:
        TrainingInterrupted: Ctrl-C during training.
    """
    resume = resume or Resume()
    run = run or distribute_lib.setup("none")
    checkpoint, early_stopping = resume.checkpoint, resume.early_stopping
    # The data order of a resumed run continues the uninterrupted run's sequence of epochs. Validation: the
    # held-out part of the training split (--validation-split) or the test split, binarized once like the test
    # split so that val_loss is comparable between epochs.
    train_ds = run_data.fit_data.pipeline("train", batch_size=config.batch_size, seed=config.seed,
                                          with_labels=config.conditional, skip_epochs=resume.initial_epoch)
    val_ds = run_data.fit_data.pipeline("test", batch_size=max(config.batch_size, 256), with_labels=config.conditional,
                                        binarize_seed=TEST_BINARIZE_SEED if run_data.binarized else None)
    time_limit = (callbacks_lib.TimeLimit(config.time_limit, progress=time_progress_of(model.optimizer),
                                          offset=resume.time_offset) if config.time_limit else None)
    interrupt_guard = callbacks_lib.InterruptGuard()
    all_callbacks = [interrupt_guard, callbacks_lib.NaNGuard(), callbacks_lib.EpochTimer(resume.time_offset), callbacks_lib.ProgbarLogger()]
    all_callbacks += [cb for cb in (time_limit, early_stopping) if cb is not None]
    if config.tensorboard:
        all_callbacks.append(keras.callbacks.TensorBoard(log_dir=run.worker_path(config.tensorboard)))
    all_callbacks.extend(callbacks)
    if checkpoint is not None:
        all_callbacks.append(checkpoint)  # last, so it saves the epoch's complete logs

    if resume.initial_epoch >= config.max_epochs:
        if early_stopping is not None and early_stopping.best_weights_on_resume is not None:
            model.set_weights(early_stopping.best_weights_on_resume)
        return checkpoint.history, time_limit
    try:
        with interrupt_guard:  # a Ctrl-C swallowed by a finalizer still stops training at the next batch
            fit = run.fit(model, train_ds, validation_data=val_ds, epochs=config.max_epochs,
                          initial_epoch=resume.initial_epoch, callbacks=all_callbacks,
                          verbose=resolve_verbose(config))  # the pipeline shuffles
    except KeyboardInterrupt:
        where = (f"The checkpoint in {config.checkpoint_dir!r} keeps every finished epoch; run the same "
                 "command again to resume.") if checkpoint else "Nothing was exported (use --checkpoint-dir to make runs resumable)."
        raise TrainingInterrupted(f"Training interrupted. {where}") from None
    from vae_keras import export

    return (checkpoint.history if checkpoint else export.history_rows_from_keras(fit.history)), time_limit


def fit_sampler(config, model, run_data):
    """Stage 4b: with ``--sampler gmm:K``, fits the mixture to the posterior means of the training images
    (binarized once with ``config.seed`` when the model binarizes: the images it trained on; a conditional
    model: one mixture per class, on that class's images); else nothing."""
    if model.sampler is None:
        return
    from vae_keras import data as data_lib
    from vae_keras import latent_density

    x = run_data.fit_data.x_train
    x = data_lib.binarize(x, config.seed) if run_data.binarized else data_lib.to_float(x)
    labels = run_data.fit_data.y_train if config.conditional else None  # a conditional model: one mixture per class
    latent_density.fit_gmm_sampler(model, x, seed=config.seed, labels=labels)


def evaluate_model(config, model, run_data, history, resume=None, time_limit=None):
    """Stage 5: the run's metrics: those of the epoch whose weights are exported (``final_*``), how training
    ended, and the final test evaluation (``test_*``, K = --eval-iw-samples; skipped when it is 0)."""
    early_stopping = (resume or Resume()).early_stopping
    row = weights_row(history, early_stopping)  # the metrics of the weights that are exported
    metrics = {f"final_{k}": v for k, v in row.items() if k != "epoch"} if row else {}
    metrics["weights_epoch"] = int(row["epoch"]) if row else None
    metrics["epochs_trained"] = len(history)
    metrics["stopped_by_time_limit"] = bool(time_limit and time_limit.stopped_early)
    metrics["validation_data"] = run_data.validation_data  # where the val_* numbers come from
    if early_stopping is not None:
        metrics["stopped_early"] = bool(early_stopping.stopped_epoch)
        best = callbacks_lib.best_row(history, "val_loss")
        metrics["best_epoch"] = int(best["epoch"]) if best else None
    if config.eval_iw_samples:
        metrics.update(test_evaluation(model, run_data.data, run_data.binarized, config))
    if config.sample_quality:
        metrics.update(sample_quality_metrics(model, run_data.data, config))
    return metrics


def sample_quality_metrics(model, data, config):
    """``--sample-quality N``: the model card's ``test_sample_*`` metrics (`vae_keras.sample_quality`): FD,
    precision and recall of N random samples (seed ``config.seed``, from the model's sampler) against every test
    image, and the class accuracy of a conditional model's samples."""
    from vae_keras import sample_quality

    q = sample_quality.evaluate_samples(model, data, config.sample_quality, seed=config.seed)
    metrics = {f"test_sample_{k}": q[k] for k in ("fd", "precision", "recall", "class_accuracy") if k in q}
    metrics["test_sample_quality"] = (
        f"{q['num_samples']:,} random samples ({q['sampler']}, seed {config.seed}) against {q['num_reference']:,} test "
        f"images in the features of the {data.name} classifier (test accuracy {q['classifier_test_accuracy']:.4f}); "
        f"precision/recall with k={q['k']}")
    return metrics


def export_run(config, model, run_data, history, metrics):
    """Stage 6: exports ``model`` with its history, metrics and resolved config to ``config.out``; returns the path."""
    from vae_keras import export

    resolved = resolved_config(config, run_data.data.image_shape, run_data.name)
    return export.export_model(
        model, config.out, run_data.name, history=history, dataset=config.dataset, metrics=metrics,
        config=resolved,
        card_extra={
            "network": config.model,
            "hidden": resolved["hidden"],
            "class_names": _class_names(run_data.data, run_data.num_classes),
            "dataset_num_classes": run_data.data.num_classes,
            "test_binarized": run_data.binarized,
        },
    )


def train(config, data=None, callbacks=(), run=None):
    """Runs one training: loads data, builds the VAE, fits, evaluates on the test split, exports.

    ``fit`` validates (``val_*`` metrics, early stopping) on the share of the training images held out
    by ``config.validation_split``, or on the test split when it is 0; the final test metrics are
    always computed on the test split.

    Args:
        config: a `TrainConfig` (or a dict of its fields).
        data: optional `vae_keras.data.ImageData` to use instead of loading ``config.dataset``.
        callbacks: extra Keras callbacks.
        run: the `vae_keras.distribute.DistributedRun` that fits (default: ``distribute.setup(config.distribute)``).

    Returns:
        A dict with ``model``, ``export_path``, ``history`` (per-epoch rows) and ``metrics``.
    """
    config = prepare_config(config)
    run = run or distribute_lib.setup(config.distribute)  # first: multi-worker must precede other TensorFlow work
    run_data = load_data(config, data)
    model = build_model(config, run_data, run)
    resume = restore_checkpoint(config, model, run)
    history, time_limit = fit_model(config, model, run_data, resume, run, callbacks)
    if not run.is_chief:  # multi-worker: only the chief evaluates and exports
        return run.finish_worker(model, history, resume.checkpoint)
    stage = "fit of the sampler"
    try:
        fit_sampler(config, model, run_data)
        stage = "final test evaluation"
        metrics = evaluate_model(config, model, run_data, history, resume, time_limit)
        stage = "export"
        path = export_run(config, model, run_data, history, metrics)
    except KeyboardInterrupt:
        raise _interrupted_after_training(config, resume.checkpoint, stage) from None
    if resume.checkpoint is not None:
        resume.checkpoint.clear()
    run.barrier()  # multi-worker: the other workers wait for the export, then all exit together
    return {"model": model, "export_path": path, "history": history, "metrics": metrics}
