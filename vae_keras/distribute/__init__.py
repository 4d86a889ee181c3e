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

Layout: :mod:`~vae_keras.distribute.cluster` (``TF_CONFIG``, strategies),
:mod:`~vae_keras.distribute.run` (`setup`, `DistributedRun`, `WorkerCheckpoint`) and
:mod:`~vae_keras.distribute.loop` (`distributed_fit`, the multi-worker loop).

Example:
>>> run = setup("none")
>>> run.is_chief, run.num_replicas
(True, 1)
"""

from vae_keras.distribute.cluster import STRATEGIES, TF_CONFIG, create_strategy, is_chief_task, read_tf_config
from vae_keras.distribute.loop import distributed_fit, make_step_functions, shard_by_data
from vae_keras.distribute.run import DistributedRun, WorkerCheckpoint, setup

__all__ = [
    "STRATEGIES",
    "TF_CONFIG",
    "DistributedRun",
    "WorkerCheckpoint",
    "create_strategy",
    "distributed_fit",
    "is_chief_task",
    "make_step_functions",
    "read_tf_config",
    "setup",
    "shard_by_data",
]
