"""Global-batch statistics inside a training or test step, whatever the `tf.distribute` strategy.

Under a strategy with several replicas every replica sees its own slice of the global batch. The
VAE's loss is defined on the *global* batch (its batch means, and free bits' and controlled
capacity's non-linear functions of them), so `batch_means` all-reduces the per-replica sums and
counts: every replica then holds the global-batch value, exactly the number one device computes on
the whole batch. `tf.distribute`'s all-reduce has a gradient (the all-reduce of the upstream
gradients), so a replica's loss ``L / num_replicas`` gives each replica's weights the gradient
share whose sum over replicas (Keras's optimizer sums them) is dL/dweights on the global batch.

On one device (or outside a step) nothing is all-reduced: these are plain batch means.
"""

import tensorflow as tf


def num_replicas():
    """Replicas in sync in the current replica context (1 on one device or outside a strategy)."""
    context = tf.distribute.get_replica_context()
    return 1 if context is None else int(context.num_replicas_in_sync)


def batch_means(values, sample_weight=None):
    """Means over the global batch of a dict of per-example tensors, in one all-reduce.

    Args:
        values: dict name -> float tensor [B, ...] (B = this replica's batch, maybe 0).
        sample_weight: optional [B] weights; each example's values are multiplied by its weight and
            the sum divided by the global batch size (Keras's ``sum_over_batch_size`` reduction, so
            all-ones weights change nothing).

    Returns:
        A dict name -> tensor [...]: sum over the global batch of (weight * value) / global batch size.
    """
    any_value = next(iter(values.values()))
    count = tf.cast(tf.shape(any_value)[0], tf.float32)
    sums = {}
    for name, value in values.items():
        value = tf.cast(value, tf.float32)
        if sample_weight is not None:
            w = tf.reshape(tf.cast(sample_weight, tf.float32), [-1] + [1] * (value.shape.rank - 1))
            value = value * w
        sums[name] = tf.reduce_sum(value, axis=0)
    if num_replicas() > 1:
        sums, count = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, (sums, count))
    return {name: total / count for name, total in sums.items()}
