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

- **One step.** Every strategy runs the model's own ``VAE.train_step`` (``model.fit`` on one
  device and under ``MirroredStrategy``; :func:`distributed_fit` inside ``strategy.run``), so loss
  scaling (mixed_float16), sample weights, the KL warm-up and every objective act the same way.
- **Global-batch losses.** The step's batch means are all-reduced over the replicas
  (`vae_keras.replica.batch_means`), so every replica computes the loss of the global batch, and
  non-linear terms (free bits' max, controlled capacity's abs) act on global-batch statistics as
  on one device. Each replica differentiates ``loss / num_replicas`` and Keras's optimizer sums the
  replicas' gradients: the sum is the gradient of the global-batch loss. A replica with an empty
  share (a last batch smaller than the number of replicas) adds zeros.
- **Metrics.** The model's metric trackers are updated on every replica with the global-batch
  values, weighted by the replica's share of the batch, so ``loss``, ``reconstruction``, ``kl`` and
  their ``val_`` versions are means over every image of the epoch, whatever the split.
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

import keras
import tensorflow as tf

from vae_keras.callbacks import EpochCheckpoint
from vae_keras.errors import ConfigError

STRATEGIES = ("none", "mirrored", "multi-worker")
TF_CONFIG = "TF_CONFIG"
_TF_CONFIG_EXAMPLE = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                      '"task": {"type": "worker", "index": 0}}\'')
_ROLES = ("chief", "worker")
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


def _first(value):
    """A value that is the same on every replica (the model's logs): the first replica's copy."""
    return value.values[0] if hasattr(value, "values") else value


def make_step_functions(model, strategy):
    """Returns ``(train_step, test_step)`` tf.functions over iterators of distributed batches.

    Both run the model's own ``train_step`` / ``test_step`` on every replica (the one step that
    ``model.fit`` runs too). ``train_step(iterator, stop)`` takes the next global batch, runs one
    synchronous step and returns ``(logs, stop_sum)``: the model's logs (metric means since the last
    ``reset_metrics``, and the schedules) and the sum over every replica of ``stop``, this worker's
    0/1 wish to stop, so that all workers stop after the same step. ``test_step(iterator)``
    returns the logs of the model's ``test_step``. Both raise ``OutOfRangeError`` (on every worker
    at the same step) when the data is exhausted.
    """
    sum_op = tf.distribute.ReduceOp.SUM

    def replica_train(data, stop):
        return model.train_step(data), tf.identity(stop)  # a new tensor per replica, so it can be reduced

    def cross_replica_logs(logs):
        # Metric means read here, in cross-replica context, aggregate every replica's sums (read on one
        # replica they would weight the steps by that replica's share); the schedules are the same everywhere.
        logs = tf.nest.map_structure(_first, logs)
        logs.update({m.name: m.result() for m in model.metrics})
        return logs

    @tf.function
    def train_step(iterator, stop):
        logs, stops = strategy.run(replica_train, args=(next(iterator), stop))
        return cross_replica_logs(logs), strategy.reduce(sum_op, stops, axis=None)

    @tf.function
    def test_step(iterator):
        return cross_replica_logs(strategy.run(model.test_step, args=(next(iterator),)))

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

    Each step runs the model's ``train_step`` on every replica's slice of the global batch (the
    step ``fit`` runs; its losses are global-batch values, see `vae_keras.replica`); the Keras
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
        model.reset_metrics()
        logs = {}
        iterator, step = iter(train_dist), 0
        while True:
            callbacks.on_train_batch_begin(step)
            try:
                step_logs, stops = train_fn(iterator, tf.constant(float(bool(model.stop_training))))
            except (StopIteration, tf.errors.OutOfRangeError):
                break
            logs = {k: float(v) for k, v in step_logs.items()}
            # A stop asked for by a callback on any worker reaches all of them with the next step, and
            # all stop after that step: breaking on the local flag alone would desert the others.
            stop_everywhere = float(stops) > 0
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
            model.reset_metrics()
            val_logs = {}
            for step_logs in _steps(test_fn, iter(val_dist)):
                val_logs = {k: float(v) for k, v in step_logs.items()}
            callbacks.on_test_end(val_logs)
            epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
        callbacks.on_epoch_end(epoch, epoch_logs)
        model.stop_training = _any_worker(strategy, model.stop_training)
        if model.stop_training:
            break
    callbacks.on_train_end(logs=epoch_logs)
    return model.history

