"""A training run under a strategy: `setup` -> `DistributedRun` (roles, scope, fit, worker paths) and
`WorkerCheckpoint`, the per-epoch checkpoint every worker resumes from."""

import atexit
import contextlib
import os
import shutil
import tempfile

from vae_keras.callbacks import EpochCheckpoint
from vae_keras.distribute.cluster import create_strategy, is_chief_task, read_tf_config
from vae_keras.distribute.loop import _all_gather, _num_batches, distributed_fit
from vae_keras.errors import ConfigError


class WorkerCheckpoint(EpochCheckpoint):
    """`EpochCheckpoint` for a run under a strategy.

    Every worker resumes from ``directory`` (the chief's, on storage all workers share) inside the
    strategy scope, and all must agree on the epoch they resume after. The chief saves there; the
    other workers save to their own temporary folder, removed by :meth:`clear`.
    """

    def __init__(self, directory, config, run, monitor=None, defaults=None):
        self.shared_directory = os.fspath(directory)
        self.run = run
        super().__init__(self.shared_directory if run.is_chief else run.temp_dir("checkpoint"), config, monitor=monitor,
                         defaults=defaults)
        self.write_directory = self.directory

    def restore(self, model):
        self.directory = self.shared_directory
        try:
            with self.run.scope():
                epoch = super().restore(model)
        finally:
            self.directory = self.write_directory
        low, high = self.run.min_max(epoch)
        if low != high:
            raise ConfigError(
                f"The workers found different checkpoints in --checkpoint-dir {self.shared_directory!r} (epochs {low} to "
                f"{high}): it must be one folder that every worker sees (shared storage). Received: epoch {epoch} here.")
        return epoch

    def clear(self):
        if self.run.is_chief:
            super().clear()
        else:
            shutil.rmtree(self.write_directory, ignore_errors=True)


class DistributedRun:
    """One training run's strategy and the chief/worker roles (see :func:`setup`).

    Attributes:
        name: ``"none"``, ``"mirrored"`` or ``"multi-worker"``.
        strategy: the `tf.distribute.Strategy`.
        is_chief: whether this process writes checkpoints and exports.
        task: ``(task_type, task_index)`` of this worker (``("worker", 0)`` on one machine).
    """

    def __init__(self, name, strategy, is_chief=True, task=("worker", 0), num_workers=1):
        self.name = name
        self.strategy = strategy
        self.is_chief = is_chief
        self.task = task
        self.num_workers = num_workers
        self._temp_dirs = []

    @property
    def num_replicas(self):
        return self.strategy.num_replicas_in_sync

    def scope(self):
        """The strategy's scope: create the model and its optimizer inside it."""
        return contextlib.nullcontext() if self.name == "none" else self.strategy.scope()

    def temp_dir(self, what):
        """A new temporary folder for this worker's throw-away files, removed by :meth:`cleanup`."""
        path = tempfile.mkdtemp(prefix=f"vae-keras-{self.task[0]}{self.task[1]}-{what}-")
        if not self._temp_dirs:
            atexit.register(self.cleanup)
        self._temp_dirs.append(path)
        return path

    def worker_path(self, path):
        """``path`` on the chief; a temporary folder on the other workers (``None`` stays ``None``)."""
        if path is None or self.is_chief:
            return path
        return self.temp_dir(os.path.basename(os.path.normpath(path)) or "out")

    def checkpoint(self, directory, config, monitor=None, defaults=None):
        """The per-epoch checkpoint callback for ``directory`` under this strategy (``monitor``: keep
        the best epoch's weights by this metric too, for early stopping)."""
        if self.name == "none":
            return EpochCheckpoint(directory, config, monitor=monitor, defaults=defaults)
        return WorkerCheckpoint(directory, config, self, monitor=monitor, defaults=defaults)

    def min_max(self, value):
        """(min, max) of an integer over all workers (a collective: every worker must call it)."""
        if self.num_workers == 1:
            return value, value
        values = _all_gather(self.strategy, [float(value)])
        return int(values.min()), int(values.max())

    def fit(self, model, x, validation_data=None, epochs=1, initial_epoch=0, callbacks=(), verbose="auto"):
        """``model.fit`` for ``"none"`` and ``"mirrored"``; :func:`distributed_fit` for ``"multi-worker"``.

        ``x`` is a finite `tf.data.Dataset` of one epoch's global batches, iterated anew (one iterator)
        per epoch under every strategy, so that epoch e always sees the dataset's pass e (a resumed
        run's pipeline skips the passes of the epochs already done). Returns a `keras.callbacks.History`.
        """
        if self.name != "multi-worker":
            # steps_per_epoch: Keras then makes exactly one iterator per epoch (without it, it makes a spare
            # one at the end of each epoch, which would shift a shuffled pipeline's sequence of passes).
            return model.fit(x, validation_data=validation_data, epochs=epochs, initial_epoch=initial_epoch,
                             callbacks=list(callbacks), verbose=verbose, steps_per_epoch=_num_batches(x), shuffle=False)
        return distributed_fit(model, self.strategy, x, validation_data=validation_data, epochs=epochs,
                               initial_epoch=initial_epoch, callbacks=callbacks, verbose=verbose)

    def barrier(self):
        """Multi-worker: returns once every worker got here (a worker that exits while others still
        run makes them log "unhealthy task" errors). Elsewhere a no-op."""
        if self.name == "multi-worker" and self.num_workers > 1:
            _all_gather(self.strategy, [0.0])

    def finish_worker(self, model, history, checkpoint=None):
        """Ends a non-chief worker's run: removes its temporary files and waits for the chief's
        export (:meth:`barrier`).

        Returns the same dict as `vae_keras.training.train`, with ``export_path`` None.
        """
        if checkpoint is not None:
            checkpoint.clear()
        self.cleanup()
        self.barrier()
        metrics = {f"final_{k}": v for k, v in history[-1].items() if k != "epoch"} if history else {}
        metrics["epochs_trained"] = len(history)
        return {"model": model, "export_path": None, "history": history, "metrics": metrics}

    def cleanup(self):
        """Removes this worker's temporary folders."""
        while self._temp_dirs:
            shutil.rmtree(self._temp_dirs.pop(), ignore_errors=True)


def setup(name):
    """Creates the strategy named by ``--distribute`` and works out this process's role.

    Call it before any other TensorFlow work in the process (``train()`` does, first thing).

    Args:
        name: ``"none"``, ``"mirrored"`` or ``"multi-worker"`` (cluster from ``TF_CONFIG``).

    Returns:
        A `DistributedRun`.

    Raises:
        ConfigError: for an unknown name, or a missing or invalid ``TF_CONFIG`` (multi-worker).
    """
    strategy = create_strategy(name)
    if name != "multi-worker":
        return DistributedRun(name, strategy)
    cluster, task_type, task_index = read_tf_config()
    return DistributedRun(name, strategy, is_chief=is_chief_task(cluster, task_type, task_index),
                          task=(task_type, task_index), num_workers=sum(len(v) for v in cluster.values()))
