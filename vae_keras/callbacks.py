"""Keras callbacks for training runs: time limit, epoch timing, NaN guard, Ctrl-C guard and resumable checkpoints."""

import glob
import json
import math
import os
import signal
import threading
import time
import weakref

import keras
import numpy as np

from vae_keras import fileio
from vae_keras.errors import ConfigError, VaeKerasError

CHECKPOINT_STATE = "state.json"
# Options that may change between an interrupted run and its resumption.
RESUMABLE_CHANGES = frozenset({"epochs", "time_limit", "verbose", "tensorboard", "out", "name", "checkpoint_dir", "eval_iw_samples",
                               "distribute", "steps_per_execution"})
# What a key missing from an older checkpoint's config means where it is not the option's default of today: the
# behaviour before the option existed. (Checkpoints from before --prior trained with N(0, I); the default is auto.)
BEFORE_THE_OPTION = {"prior": "standard"}


def best_row(history, monitor):
    """The row of ``history`` (per-epoch dicts) with the lowest ``monitor``, the first of equal values as
    Keras's EarlyStopping keeps it; None if no row has ``monitor``."""
    scored = [r for r in history if monitor in r]
    return min(scored, key=lambda r: r[monitor]) if scored else None


class TrainingDivergedError(VaeKerasError):
    """The loss became NaN or infinite."""


# The time budget of each model's running fit, set by TimeLimit: a --time-limit run without --epochs has
# a placeholder of 1,000,000 epochs, which the progress line replaces by the budget.
_TIME_BUDGETS = weakref.WeakKeyDictionary()


UNTIL_TIME_LIMIT = 1_000_000  # the "epochs" given to fit when only a TimeLimit ends training


class TimeLimit(keras.callbacks.Callback):
    """Stops training cleanly once ``seconds`` of training time have passed (checked every batch).

    The epoch in progress ends early, its metrics and validation are still logged, and `fit`
    returns normally, so the run still evaluates and exports.

    Args:
        seconds: the time budget.
        progress: optional variable set to elapsed / ``seconds`` (at most 1) before every call of the
            train function, by this clock: the time axis of `vae_keras.training.BudgetCosineDecay`.
        offset: seconds of the budget already used (a run resumed from a checkpoint continues its
            budget, it does not start a new one).
    """

    def __init__(self, seconds, progress=None, offset=0.0):
        super().__init__()
        self.seconds = float(seconds)
        self.progress = progress
        self.offset = float(offset)
        self.start = None
        self.stopped_early = False

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()
        self._set_progress()
        _TIME_BUDGETS[self.model] = self.seconds  # the progress line names the budget (ProgbarLogger)

    def on_train_end(self, logs=None):
        _TIME_BUDGETS.pop(self.model, None)

    def on_train_batch_begin(self, batch, logs=None):
        self._set_progress()

    def on_train_batch_end(self, batch, logs=None):
        if self._set_progress() >= 1.0:
            self.model.stop_training = True
            self.stopped_early = True

    def _set_progress(self):
        fraction = (self.offset + time.monotonic() - self.start) / self.seconds
        if self.progress is not None:
            self.progress.assign(min(1.0, fraction))
        return fraction


class EpochTimer(keras.callbacks.Callback):
    """Adds the cumulative training time in seconds to each epoch's logs as ``time``.

    Args:
        offset: seconds already trained (a resumed run continues the count).
    """

    def __init__(self, offset=0.0):
        super().__init__()
        self.offset = float(offset)

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["time"] = self.offset + time.monotonic() - self.start


def last_batch_run(batch, steps):
    """The index of the last batch Keras really ran, from the ``batch`` it passes to
    ``on_train_batch_end`` and the epoch's ``steps`` (None: unknown): with steps_per_execution N > 1
    it reports the epoch's last, shorter group of steps as if it had run N (keras-team/keras#20861)."""
    return min(batch, steps - 1) if steps else batch


class ProgbarLogger(keras.callbacks.ProgbarLogger):
    """Keras's progress bar, counting the steps that ran: 469/469 rather than 480/469 at the end of an
    epoch of 469 steps run 32 per call (keras-team/keras#20861). `fit` uses it instead of its own
    when it is in the callbacks."""

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(last_batch_run(batch, self.target), logs)  # target: the epoch's steps

    def on_epoch_begin(self, epoch, logs=None):
        """``Epoch 36 (time limit 240 s)`` under a `TimeLimit` (``Epoch 3/30 (time limit 240 s)`` with both
        budgets), not ``Epoch 36/1000000``; Keras's ``Epoch N/M`` otherwise."""
        budget = _TIME_BUDGETS.get(self.model) if self.model is not None else None
        if budget is None:
            super().on_epoch_begin(epoch, logs)
            return
        self._reset_progbar()
        self._maybe_init_progbar()
        if self.verbose:
            count = f"{epoch + 1}" if self.epochs >= UNTIL_TIME_LIMIT else f"{epoch + 1}/{self.epochs}"
            print(f"Epoch {count} (time limit {budget:g} s)", flush=True)


class NaNGuard(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite, naming the epoch and batch.

    It raises `TrainingDivergedError` from inside `fit`, so no later callback (a checkpoint, an
    export) ever sees the broken weights.
    """

    def __init__(self, hint="Try a lower --learning-rate or set --clip-norm."):
        super().__init__()
        self.hint = hint
        self.epoch = 0
        self.first_batch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.first_batch = batch

    def on_train_batch_end(self, batch, logs=None):
        batch = last_batch_run(batch, (self.params or {}).get("steps"))
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            # With steps_per_execution > 1 Keras reports once per group of steps: name the group.
            where = (f"batch {batch + 1}" if batch == self.first_batch else
                     f"one of batches {self.first_batch + 1}-{batch + 1} (they ran in one call; "
                     "--steps-per-execution 1 names the exact batch)")
            raise TrainingDivergedError(
                f"The training loss became {float(loss)} at epoch {self.epoch + 1}, {where}; "
                f"training stopped and nothing was exported. {self.hint}"
            )


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`keras.callbacks.EarlyStopping` (minimising ``monitor``, best weights restored) that can
    continue a run resumed from an `EpochCheckpoint`.

    Keras's callback starts afresh in every ``fit``, so after a resume it would forget the best epoch
    before the interruption and restore weights from after it. `resume` gives it the best value,
    its epoch, the epochs waited since, and that epoch's weights.

    With ``report`` it prints one line at the end of training when it stopped early or restored the
    weights of an epoch before the last (Keras's own messages are off: they say less).
    """

    def __init__(self, monitor="val_loss", patience=0, report=False, **kwargs):
        super().__init__(monitor=monitor, patience=patience, mode="min", restore_best_weights=True, **kwargs)
        self._resumed = None
        self.report = report
        self.last_epoch = None

    def resume(self, history, best_weights):
        """``history``: the checkpoint's per-epoch rows (1-based ``epoch``); ``best_weights``: the
        weights of its best row's epoch (`EpochCheckpoint.read_best_weights`)."""
        best = best_row(history, self.monitor)
        if best is None or best_weights is None:
            return
        wait = sum(1 for r in history if self.monitor in r and r["epoch"] > best["epoch"])
        self._resumed = (best[self.monitor], best["epoch"] - 1, wait, best_weights)

    @property
    def best_weights_on_resume(self):
        """The best epoch's weights given to `resume` (None without one)."""
        return self._resumed[3] if self._resumed is not None else None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._resumed is not None:
            self.best, self.best_epoch, self.wait, self.best_weights = self._resumed

    def on_epoch_end(self, epoch, logs=None):
        self.last_epoch = epoch
        super().on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None):
        super().on_train_end(logs)  # restores the best weights
        if not self.report or self.best_weights is None:
            return
        restored = f"restored the weights of epoch {self.best_epoch + 1} (lowest {self.monitor} {self.best:.4f})"
        if self.stopped_epoch:
            print(f"Early stopping after epoch {self.stopped_epoch + 1}: {self.monitor} did not improve for "
                  f"{self.patience} epoch{'s' if self.patience != 1 else ''}; {restored}.", flush=True)
        elif self.last_epoch is not None and self.best_epoch != self.last_epoch:
            print(f"Training ended after epoch {self.last_epoch + 1}; {restored}.", flush=True)


class InterruptGuard(keras.callbacks.Callback):
    """Makes sure a Ctrl-C during ``fit`` stops it.

    Python raises KeyboardInterrupt in whatever Python code runs when SIGINT arrives. When that code is a
    finalizer (a ``__del__`` of TensorFlow's resource deleters or of a tf.data iterator, run by garbage
    collection at any time), Python prints "Exception ignored in ..." and goes on, and training would carry
    on as if nothing happened. Used as a context manager around ``fit`` (it installs the SIGINT handler and
    restores the previous one, also when ``fit`` raises) and as one of its callbacks, it records every SIGINT
    and raises KeyboardInterrupt again at the next batch or epoch boundary if the first one was lost.

    It only replaces Python's default handler, in the main thread: a process started with SIGINT ignored
    (``nohup``, a background job) or a program with its own handler keeps it.
    """

    def __init__(self):
        super().__init__()
        self.interrupted = False
        self._previous = None

    def __enter__(self):
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc_info):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        return False

    def _on_sigint(self, signum, frame):
        self.interrupted = True
        raise KeyboardInterrupt

    def _raise_if_interrupted(self, *args, **kwargs):
        if self.interrupted:
            raise KeyboardInterrupt

    on_epoch_begin = on_train_batch_begin = on_train_batch_end = _raise_if_interrupted
    on_test_begin = on_test_batch_end = _raise_if_interrupted


def random_state_variables(model):
    """The model's random-number state: its seed generators' state variables (the sampling and
    binarization noise), which ``save_weights`` does not save. In a fixed order for a given model."""
    weight_ids = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weight_ids]


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves weights, optimizer state, the random state and the history after every epoch,
    atomically, so that a resumed run continues exactly where the uninterrupted one would be.

    ``DIR/state.json`` names the newest ``epoch-N.weights.h5`` and holds the per-epoch history and
    the run's config; it is replaced atomically after the weights file is complete, so a kill at
    any moment (even SIGKILL) leaves the last finished epoch loadable. Older weight files are
    removed only after the new state is in place.

    Args:
        directory: the checkpoint folder.
        config: the run's config dict; resuming with different settings is refused.
        monitor: keep the best epoch's weights by this metric too (for `ResumableEarlyStopping`).
        defaults: the config's default values, for keys a checkpoint from an older version lacks.
    """

    def __init__(self, directory, config, monitor=None, defaults=None):
        super().__init__()
        self.directory = os.fspath(directory)
        self.config = dict(config)
        self.monitor = monitor
        # A checkpoint written before an option existed ran with the behaviour of before: the option's default
        # (new options default to the old behaviour), or where the default changed since, `BEFORE_THE_OPTION`.
        self.defaults = {**dict(defaults or {}), **BEFORE_THE_OPTION}
        self.best_weights_path = None
        self.history = []

    @property
    def state_path(self):
        return os.path.join(self.directory, CHECKPOINT_STATE)

    def read_state(self):
        """The saved state dict, or None if the folder holds no checkpoint yet."""
        try:
            with open(self.state_path, encoding="utf-8") as f:
                state = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise ConfigError(f"Checkpoint state {self.state_path!r} cannot be read ({e}). Delete the folder to start over.") from None
        return state

    def restore(self, model):
        """Loads the newest checkpoint into ``model`` (built, compiled); returns the epochs done."""
        state = self.read_state()
        if state is None:
            return 0
        saved = {k: v for k, v in {**self.defaults, **state.get("config", {})}.items() if k not in RESUMABLE_CHANGES}
        wanted = {k: v for k, v in self.config.items() if k not in RESUMABLE_CHANGES}
        if saved != wanted:
            changed = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
            values = ", ".join(f"{k}: {saved.get(k)!r} there, {wanted.get(k)!r} now" for k in changed)
            raise ConfigError(
                f"Checkpoint folder {self.directory!r} holds a run with other settings ({', '.join(changed)}): "
                f"{values}. Resume it with the same options, or pass another --checkpoint-dir."
            )
        weights = os.path.join(self.directory, state["weights"])
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(weights)
        self._restore_random_state(model, state.get("random_state"))
        self.history = list(state["history"])
        best = state.get("best_weights")
        self.best_weights_path = os.path.join(self.directory, best) if best else None
        return int(state["epoch"])

    def _restore_random_state(self, model, saved):
        if saved is None:  # a checkpoint from before the random state was saved: the noise restarts
            return
        variables = random_state_variables(model)
        if len(saved) != len(variables):
            raise ConfigError(
                f"Checkpoint {self.state_path!r} holds {len(saved)} random-state variables; this model has "
                f"{len(variables)}. Resume it with the same options, or pass another --checkpoint-dir.")
        for variable, value in zip(variables, saved):
            variable.assign(np.asarray(value, dtype=variable.dtype))

    def read_best_weights(self, model):
        """The weights of the best epoch by ``monitor`` (kept beside the newest), as ``get_weights()``
        gives them; ``model`` keeps its own weights. Call after `restore`."""
        if not self.best_weights_path:
            return None
        latest = model.get_weights()
        # The file holds the optimizer state too: keep the newest epoch's, which the resumed run continues from.
        optimizer_state = [v.numpy() for v in model.optimizer.variables] if model.optimizer is not None else []
        model.load_weights(self.best_weights_path)
        best = model.get_weights()
        model.set_weights(latest)
        for variable, value in zip(model.optimizer.variables if model.optimizer is not None else [], optimizer_state):
            variable.assign(value)
        return best

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        self.history = [r for r in self.history if r["epoch"] < epoch + 1] + [row]
        os.makedirs(self.directory, exist_ok=True)
        name = f"epoch-{epoch + 1}.weights.h5"
        tmp = os.path.join(self.directory, f".tmp-{name}")
        self.model.save_weights(tmp, overwrite=True)
        os.replace(tmp, os.path.join(self.directory, name))
        state = {"epoch": epoch + 1, "weights": name, "history": self.history, "config": self.config,
                 "random_state": [np.asarray(v.numpy()).tolist() for v in random_state_variables(self.model)]}
        keep = {name}
        best = best_row(self.history, self.monitor) if self.monitor else None
        if best is not None:  # early stopping resumes with the best epoch's weights: keep that file too
            state["best_weights"] = f"epoch-{best['epoch']}.weights.h5"
            keep.add(state["best_weights"])
        fileio.atomic_write_json(self.state_path, state, overwrite=True)
        for old in glob.glob(os.path.join(self.directory, "epoch-*.weights.h5")):
            if os.path.basename(old) not in keep:
                os.remove(old)

    def clear(self):
        """Removes the checkpoint after the run was exported (a rerun then starts afresh)."""
        for path in glob.glob(os.path.join(self.directory, "epoch-*.weights.h5")) + [self.state_path]:
            if os.path.exists(path):
                os.remove(path)
