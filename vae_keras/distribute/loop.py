"""The custom multi-worker training loop (`MultiWorkerMirroredStrategy`, where ``model.fit`` fails in
Keras 3; it works under any strategy) and the collectives the workers agree through."""

import keras
import tensorflow as tf

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
