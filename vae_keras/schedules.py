"""The optimizer of a training run and its learning-rate schedules (`--lr-schedule`, `--clip-norm`)."""

import math

import keras

from vae_keras.errors import ConfigError

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
