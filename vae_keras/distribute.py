"""Training under `tf.distribute`: one device, all local devices, or a cluster of workers.

``--distribute`` (``TrainConfig.distribute``) picks the strategy:

- ``"none"``: TensorFlow's default strategy, plain ``model.fit`` (nothing changes).
- ``"mirrored"``: `tf.distribute.MirroredStrategy` over every local GPU (or every logical CPU
  device when there is no GPU), through ``model.fit`` and the VAE's own ``train_step``.
- ``"multi-worker"``: `tf.distribute.MultiWorkerMirroredStrategy` over the cluster described by
  the standard ``TF_CONFIG`` environment variable, one process per worker, all running the same
  command. ``model.fit`` does not work under this strategy in Keras 3 (keras-team/keras#20585,
  tensorflow/tensorflow#72388), so :func:`distributed_fit` runs the epochs itself:
  ``strategy.experimental_distribute_dataset`` + ``strategy.run`` + ``strategy.reduce``, with
  Keras's own callbacks, progress bar and ``History``.

How the numbers stay those of single-device training with the same (global) batch size:

- **Loss scaling.** Keras's optimizer *sums* the replicas' gradients. Each replica's loss is its
  batch mean (``VAE.compute_vae_losses``, the one loss definition), so it is weighted by the
  replica's share of the global batch (:func:`scale_loss_for_replica`: ``n_local / n_global``,
  ``n_global`` all-reduced, so an uneven last batch is exact too). The sum of the gradients is
  then the gradient of the global-batch mean. A replica with an empty share (a last batch smaller
  than the number of replicas) contributes exactly zero instead of NaN.
- **Metrics.** The loop reduces per-replica *sums* (``loss * n``, ``n``) with
  ``strategy.reduce(SUM)``, so ``loss``, ``reconstruction``, ``kl`` and their ``val_`` versions
  are means over every image of the epoch, whatever the split.
- **Data.** Every worker builds the same seeded pipeline of global batches;
  ``experimental_distribute_dataset`` with auto-shard policy ``DATA`` hands each replica its
  slice of every global batch, so a step sees exactly the images of the single-process step.

Only the chief (task ``chief``, or ``worker`` 0 when there is none) writes checkpoints, the
export and its history; the other workers write their checkpoints and TensorBoard logs to a
temporary folder that is deleted when they finish. ``--checkpoint-dir`` must be storage that all
workers see (they all resume from the chief's checkpoint).

Example:
>>> run = setup("none")
>>> run.is_chief, run.num_replicas
(True, 1)
"""

import atexit
import contextlib
import json
import os
import shutil
import tempfile
import warnings

import keras
import numpy as np
import tensorflow as tf

from vae_keras.callbacks import EpochCheckpoint
from vae_keras.errors import ConfigError

STRATEGIES = ("none", "mirrored", "multi-worker")
TF_CONFIG = "TF_CONFIG"
_TF_CONFIG_EXAMPLE = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                      '"task": {"type": "worker", "index": 0}}\'')
_ROLES = ("chief", "worker")
_METRICS = ("loss", "reconstruction", "kl")
_cache = {}


# ------------------------------------------------------------------------------------------------
# TF_CONFIG and strategies
# ------------------------------------------------------------------------------------------------


def _shorten(text, limit=300):
    return text if len(text) <= limit else text[:limit] + "..."


def read_tf_config(environ=None):
    """Parses and checks ``TF_CONFIG``; returns ``(cluster, task_type, task_index)``.

    Args:
        environ: the environment mapping (default ``os.environ``).

    Raises:
        ConfigError: when TF_CONFIG is missing, not JSON, or does not describe this worker in a
            cluster of ``chief``/``worker`` tasks; the message echoes what was received.

    Example:
    >>> read_tf_config({"TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}'})
    ({'worker': ['a:1', 'b:2']}, 'worker', 1)
    """
    environ = os.environ if environ is None else environ
    raw = environ.get(TF_CONFIG)
    if raw is None or not raw.strip():
        raise ConfigError(
            "--distribute multi-worker reads the cluster from the TF_CONFIG environment variable, set on every "
            f"worker, e.g. {_TF_CONFIG_EXAMPLE}. Received: TF_CONFIG {'unset' if raw is None else 'empty'}")

    def bad(problem):
        return ConfigError(f"TF_CONFIG {problem}. Expected e.g. {_TF_CONFIG_EXAMPLE}. Received: TF_CONFIG={_shorten(raw)!r}")

    try:
        value = json.loads(raw)
    except ValueError as e:
        raise bad(f"is not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise bad("must be a JSON object with 'cluster' and 'task'")
    cluster, task = value.get("cluster"), value.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise bad("has no 'cluster' object mapping 'worker' (and optionally 'chief') to lists of host:port")
    unknown = sorted(set(cluster) - set(_ROLES))
    if unknown:
        raise bad(f"has cluster roles {unknown}; multi-worker training uses only {list(_ROLES)}")
    for role, addresses in cluster.items():
        if (not isinstance(addresses, list) or not addresses
                or not all(isinstance(a, str) and a.rpartition(":")[2].isdigit() and a.rpartition(":")[0] for a in addresses)):
            raise bad(f"cluster role {role!r} must be a non-empty list of 'host:port' strings")
    if len(cluster.get("chief", [])) > 1:
        raise bad("has more than one chief")
    if not isinstance(task, dict):
        raise bad("has no 'task' object naming this worker's 'type' and 'index'")
    task_type, task_index = task.get("type"), task.get("index", 0)
    if task_type not in cluster:
        raise bad(f"has task type {task_type!r}, which is not a role of the cluster {sorted(cluster)}")
    if isinstance(task_index, bool) or not isinstance(task_index, int) or not 0 <= task_index < len(cluster[task_type]):
        raise bad(f"has task index {task_index!r}; {task_type!r} has indices 0..{len(cluster[task_type]) - 1}")
    return {k: list(v) for k, v in cluster.items()}, task_type, task_index


def is_chief_task(cluster, task_type, task_index):
    """The chief is task ``chief`` if the cluster has one, else ``worker`` 0."""
    if "chief" in cluster:
        return task_type == "chief"
    return task_type == "worker" and task_index == 0


def create_strategy(name):
    """Returns the `tf.distribute.Strategy` for ``name`` (one per process, created once).

    Args:
        name: ``"none"``, ``"mirrored"`` or ``"multi-worker"`` (cluster from ``TF_CONFIG``).

    ``"multi-worker"`` must be created before TensorFlow runs anything else in the process.
    """
    if name not in STRATEGIES:
        raise ConfigError(f"distribute must be one of {list(STRATEGIES)}. Received: distribute={name!r}")
    if name == "none":
        return tf.distribute.get_strategy()
    key = name
    if name == "multi-worker":
        read_tf_config()  # clear errors before TensorFlow's own
        key = (name, os.environ.get(TF_CONFIG))
    if key in _cache:
        return _cache[key]
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy() if gpus or len(cpus) < 2 else tf.distribute.MirroredStrategy(cpus)
    else:
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as e:
            raise ConfigError(
                "MultiWorkerMirroredStrategy must be created before TensorFlow runs anything else in the process "
                f"(call train() / `vae-keras train` first thing). Received: {str(e).splitlines()[0]}") from None
    _cache[key] = strategy
    return strategy


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

    def fit(self, model, x, validation_data=None, epochs=1, initial_epoch=0, callbacks=(), verbose="auto", **kwargs):
        """``model.fit`` for ``"none"`` and ``"mirrored"``; :func:`distributed_fit` for ``"multi-worker"``.

        Returns a `keras.callbacks.History` in every case.
        """
        clip = getattr(model.optimizer, "global_clipnorm", None) or getattr(model.optimizer, "clipnorm", None)
        if clip and self.num_replicas > 1:
            warnings.warn("Under tf.distribute Keras clips each replica's share of the gradient before the replicas' "
                          "gradients are summed, so --clip-norm acts per replica (looser than on one device).",
                          stacklevel=2)
        if self.name != "multi-worker":
            return model.fit(x, validation_data=validation_data, epochs=epochs, initial_epoch=initial_epoch,
                             callbacks=list(callbacks), verbose=verbose, **kwargs)
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


# ------------------------------------------------------------------------------------------------
# Loss scaling (used by VAE.train_step and the distributed loop)
# ------------------------------------------------------------------------------------------------


def free_loopback_ports(n):
    """``n`` distinct free TCP ports on 127.0.0.1, for a local test cluster's TF_CONFIG."""
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def scale_loss_for_replica(loss, local_batch_size):
    """Weights a replica's batch-mean ``loss`` by its share of the global batch.

    Keras's optimizer sums the replicas' gradients, so the weighted losses' gradients add up to the
    gradient of the mean over the global batch. Outside a multi-replica strategy this returns
    ``loss`` unchanged. A replica with an empty batch (its mean is NaN) contributes exactly 0.

    Args:
        loss: scalar tensor, the mean loss over this replica's ``local_batch_size`` examples.
        local_batch_size: this replica's batch size (a scalar tensor or int).
    """
    strategy = tf.distribute.get_strategy()
    context = tf.distribute.get_replica_context()
    if strategy.num_replicas_in_sync == 1 or context is None:
        return loss
    local = tf.cast(local_batch_size, loss.dtype)
    total = context.all_reduce(tf.distribute.ReduceOp.SUM, local)
    return tf.math.multiply_no_nan(loss, local / total)


# ------------------------------------------------------------------------------------------------
# The distributed training loop (MultiWorkerMirroredStrategy; works under any strategy)
# ------------------------------------------------------------------------------------------------


_gather_functions = {}


def _all_gather(strategy, values):
    """A small float vector from every replica of every worker: an array [replicas, len(values)].

    A collective: every worker must call it at the same point.
    """
    fn = _gather_functions.get(id(strategy))
    if fn is None:
        @tf.function
        def fn(v):
            return strategy.gather(strategy.run(lambda t: tf.expand_dims(tf.identity(t), 0), args=(v,)), axis=0)

        _gather_functions[id(strategy)] = fn
    return fn(tf.constant(values, tf.float32)).numpy()


def _any_worker(strategy, flag):
    """True on every worker if ``flag`` is true on any worker."""
    return bool(_all_gather(strategy, [float(bool(flag))]).max() > 0)


def shard_by_data(dataset):
    """The dataset with auto-shard policy DATA: every worker runs the same (seeded) in-memory
    pipeline and keeps its replicas' slices of each global batch."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _weighted_sums(losses, batch_size, stop):
    """[loss*n, reconstruction*n, kl*n, n, stop] for one replica (an empty batch gives zeros)."""
    n = tf.cast(batch_size, tf.float32)
    sums = [tf.math.multiply_no_nan(tf.cast(losses[k], tf.float32), n) for k in _METRICS]
    return tf.stack(sums + [n, tf.cast(stop, tf.float32)])


def _logs_from_sums(sums):
    count = max(float(sums[3]), 1.0)
    return {k: float(sums[i]) / count for i, k in enumerate(_METRICS)}


def make_step_functions(model, strategy):
    """Returns ``(train_step, test_step)`` tf.functions over iterators of distributed batches.

    ``train_step(iterator, stop)`` takes the next global batch and runs one synchronous step on
    every replica; it returns the globally reduced ``[loss*n, reconstruction*n, kl*n, n, stop]``
    sums and the schedules (a dict, maybe empty). ``stop`` (0/1) is this worker's wish to stop,
    summed over workers so that all stop after the same step. ``test_step(iterator)`` returns the
    same sums for the validation losses. Both raise ``OutOfRangeError`` (on every worker at the
    same step) when the data is exhausted.
    """
    schedule_keys = [k for k, on in (("kl_weight", model.kl_warmup_steps and model.capacity_max <= 0),
                                      ("capacity", model.capacity_max > 0)) if on]

    def replica_train(data, stop):
        x, label = model._unpack(data)
        n = tf.shape(x)[0]
        with tf.GradientTape() as tape:
            losses = model.compute_vae_losses(x, label, training=True)
            loss = scale_loss_for_replica(losses["loss"], n)
        grads = tape.gradient(loss, model.trainable_weights)
        model.optimizer.apply_gradients(zip(grads, model.trainable_weights))
        return _weighted_sums(losses, n, stop), {k: tf.cast(losses[k], tf.float32) for k in schedule_keys}

    def replica_test(data):
        x, label = model._unpack(data)
        losses = model.compute_vae_losses(x, label, training=False)
        return _weighted_sums(losses, tf.shape(x)[0], 0.0)

    sum_op, mean_op = tf.distribute.ReduceOp.SUM, tf.distribute.ReduceOp.MEAN

    @tf.function
    def train_step(iterator, stop):
        sums, schedules = strategy.run(replica_train, args=(next(iterator), stop))
        return (strategy.reduce(sum_op, sums, axis=None),
                {k: strategy.reduce(mean_op, v, axis=None) for k, v in schedules.items()})

    @tf.function
    def test_step(iterator):
        return strategy.reduce(sum_op, strategy.run(replica_test, args=(next(iterator),)), axis=None)

    return train_step, test_step


def _steps(step_fn, iterator, *args):
    """Yields ``step_fn(iterator, *args)`` until the iterator is exhausted."""
    while True:
        try:
            yield step_fn(iterator, *args)
        except (StopIteration, tf.errors.OutOfRangeError):
            return


def _num_batches(dataset):
    n = int(dataset.cardinality())
    return n if n >= 0 else None


def distributed_fit(model, strategy, dataset, validation_data=None, epochs=1, initial_epoch=0, callbacks=(),
                    verbose="auto"):
    """Trains ``model`` (built and compiled in ``strategy.scope()``) like ``model.fit``, with a
    custom loop that works under `MultiWorkerMirroredStrategy`.

    Each step runs `VAE.compute_vae_losses` on every replica's slice of the global batch (see
    :func:`scale_loss_for_replica`) and reduces the metric sums over all replicas; the Keras
    callbacks (progress bar, History, checkpoints, early stopping, time limit...) see the same
    logs as under ``fit``. Every worker must call it with the same arguments.

    Args:
        model: a `vae_keras.VAE` created and compiled inside ``strategy.scope()``.
        strategy: a `tf.distribute.Strategy`.
        dataset: a `tf.data.Dataset` of global batches (the same on every worker).
        validation_data: an optional `tf.data.Dataset` of global batches.
        epochs, initial_epoch, callbacks, verbose: as for ``model.fit``.

    Returns:
        The `keras.callbacks.History`.
    """
    verbose = 1 if verbose == "auto" else verbose
    steps = _num_batches(dataset)
    with strategy.scope():
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    train_dist = strategy.experimental_distribute_dataset(shard_by_data(dataset))
    val_dist = None
    if validation_data is not None:
        val_dist = strategy.experimental_distribute_dataset(shard_by_data(validation_data))
    train_fn, test_fn = make_step_functions(model, strategy)
    if not isinstance(callbacks, keras.callbacks.CallbackList):
        callbacks = keras.callbacks.CallbackList(list(callbacks), add_history=True, add_progbar=verbose != 0,
                                                 verbose=verbose, epochs=epochs, steps=steps, model=model)
    model.stop_training = False
    callbacks.on_train_begin()
    epoch_logs = None
    for epoch in range(initial_epoch, epochs):
        callbacks.on_epoch_begin(epoch)
        totals = np.zeros(5)
        logs = {}
        iterator, step = iter(train_dist), 0
        while True:
            callbacks.on_train_batch_begin(step)
            try:
                sums, schedules = train_fn(iterator, tf.constant(float(bool(model.stop_training))))
            except (StopIteration, tf.errors.OutOfRangeError):
                break
            sums = sums.numpy()
            totals[:4] += sums[:4]
            logs = _logs_from_sums(totals)
            logs.update({k: float(v) for k, v in schedules.items()})
            # A stop asked for by a callback on any worker reaches all of them with the next step, and
            # all stop after that step: breaking on the local flag alone would desert the others.
            stop_everywhere = sums[4] > 0
            if stop_everywhere:
                model.stop_training = True
            callbacks.on_train_batch_end(step, logs)
            step += 1
            if stop_everywhere:
                break
        # A stop asked for at the epoch's last batch must reach every worker before the next epoch.
        model.stop_training = _any_worker(strategy, model.stop_training)
        epoch_logs = dict(logs)
        if val_dist is not None:
            callbacks.on_test_begin()
            val_totals = np.zeros(5)
            for sums in _steps(test_fn, iter(val_dist)):
                val_totals += sums.numpy()
            val_logs = _logs_from_sums(val_totals)
            callbacks.on_test_end(val_logs)
            epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
        callbacks.on_epoch_end(epoch, epoch_logs)
        model.stop_training = _any_worker(strategy, model.stop_training)
        if model.stop_training:
            break
    callbacks.on_train_end(logs=epoch_logs)
    return model.history

