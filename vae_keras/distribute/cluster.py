"""The cluster and the strategy: ``TF_CONFIG`` parsing, the chief rule, one `tf.distribute.Strategy` per process."""

import json
import os

import tensorflow as tf

from vae_keras import checks
from vae_keras.errors import ConfigError

STRATEGIES = ("none", "mirrored", "multi-worker")
TF_CONFIG = "TF_CONFIG"
_TF_CONFIG_EXAMPLE = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                      '"task": {"type": "worker", "index": 0}}\'')
_ROLES = ("chief", "worker")
_cache = {}


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
    if not checks.is_integer(task_index) or not 0 <= task_index < len(cluster[task_type]):
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
    checks.check_choice("distribute", name, list(STRATEGIES))
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
