"""Training under tf.distribute: MirroredStrategy and two real MultiWorkerMirroredStrategy workers.

Both strategies must give the numbers of single-device training with the same global batch:

- **exact check** (a VAE whose posterior variance is pinned to e^-24, so the sampling noise is
  ~1e-5 and irrelevant, with plain SGD so that a wrongly scaled gradient changes the result; 193
  images in batches of 64, so the last global batch has a single image and one replica gets an
  empty batch), for every option that changes the loss (EXACT_VARIANTS: beta with warm-up, free
  bits and controlled capacity at their kinks, the IWAE objective with warm-up, sample weights,
  mixed_float16, DIP-VAE-I's global-batch covariance with sample weights): weights agree with single-device training to ATOL_WEIGHTS and the per-epoch
  metrics to RTOL_METRICS.
- **end-to-end** (``train()`` / the CLI settings: Adam, dynamic binarization, random sampling,
  validation and early stopping on a held-out ``--validation-split``, interrupted after one epoch
  and resumed from ``--checkpoint-dir``): the random draws differ
  between one device and several replicas, so final train/validation losses agree within
  RTOL_END_TO_END (observed: 0.25-0.45%). Adam is nearly blind to a constant gradient factor, so
  this check alone could not catch a loss-scaling bug; the exact check does.
- **exact resume** under MirroredStrategy: the interrupted and resumed ``train()`` ends with the
  weights of the uninterrupted one.

Everything TensorFlow-distributed runs in subprocesses: logical CPU devices must be configured and
MultiWorkerMirroredStrategy created before TensorFlow initialises, which the test process did long ago.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from vae_keras import distribute, exported
from vae_keras.cli import main
from vae_keras.errors import ConfigError

from cluster_helpers import free_loopback_ports
from conftest import REPO_ROOT

ATOL_WEIGHTS = 1e-5
RTOL_METRICS = 1e-5
RTOL_END_TO_END = 0.01
TIMEOUT = 600  # seconds per subprocess (a hung collective must not hang the suite; 2 shared cores can be slow)

# Shared by the subprocess scripts: data, the deterministic VAE and the runs.
COMMON = r'''
import contextlib, json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
spec = json.loads(sys.argv[1])
if spec.get("logical_cpus"):
    import tensorflow as tf
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * spec["logical_cpus"])
import keras
import numpy as np
import tensorflow as tf
from vae_keras import build_vae, distribute, training
from vae_keras import data as data_lib
from vae_keras.models.vae import gaussian_kl
from training_helpers import InterruptAtEpoch

images = data_lib.load_images("mnist-10k")
small = images.subset(n_train=spec["n_train"], n_test=spec["n_test"])
results = {}


def end_to_end(distribute_name, out, checkpoint_dir, interrupt=True):
    """train() interrupted after epoch 1 and resumed from its checkpoint (or not interrupted); returns history etc."""
    config = dict(spec["config"], distribute=distribute_name, out=out, checkpoint_dir=checkpoint_dir)
    if interrupt:
        try:
            training.train(training.TrainConfig(**config), data=small, callbacks=[InterruptAtEpoch(1)])
            raise AssertionError("the interrupt did not stop training")
        except training.TrainingInterrupted:
            pass
    result = training.train(training.TrainConfig(**config), data=small)
    model = result["model"]
    probe = data_lib.to_float(small.x_test[:8])
    z_mean, _ = model.encode(probe)
    return {"history": result["history"], "export_path": result["export_path"],
            "weights": [np.asarray(w).tolist() for w in model.get_weights()],
            "probe": probe.tolist(), "probe_z_mean": np.asarray(z_mean).tolist()}


def exact_vae(variant):
    """A VAE with q(z|x) variance pinned to e^-24 (non-trainable), so sampling noise is negligible."""
    keras.utils.set_random_seed(1)
    vae = build_vae((28, 28, 1), latent_dim=4, hidden=(32,), binarize=False, seed=1,
                    dtype_policy=variant.get("dtype_policy"), **variant.get("model", {}))
    pinned = [vae.encoder.get_layer("z_log_var_raw")]
    pinned += [net.get_layer("log_var_raw") for net in getattr(vae, "latent_encoders", [])]  # q(z2|z1) of a hierarchy
    for layer in pinned:
        layer.kernel.assign(np.zeros(layer.kernel.shape, "float32"))
        layer.bias.assign(np.full(layer.bias.shape, -24.0, "float32"))
        layer.trainable = False
    # Free bits and capacity at the kinks: a floor / target equal to the first global batch's own KL, so
    # the replicas' halves of a batch fall on both sides of it (per-replica max/abs would differ).
    first = tf.constant(data_lib.to_float(images.x_train[:64]))
    kl = np.asarray(gaussian_kl(*vae.encode(first))).mean(axis=0)
    if variant.get("free_bits") == "median":
        vae.free_bits = float(np.median(kl))
    if variant.get("capacity") == "first_kl":
        vae.capacity_max, vae.capacity_steps = float(kl.sum()), 1
    vae.compile(optimizer=keras.optimizers.SGD(learning_rate=spec["sgd_lr"]))
    return vae


def exact_data(n, variant):
    """193 (train) or 70 (validation) images in batches of 64, with sample weights if the variant has them."""
    source = images.x_train[:n] if n == 193 else images.x_test[:n]
    x = data_lib.to_float(source)
    if variant.get("sample_weight"):
        weights = np.linspace(0.25, 1.75, n).astype("float32")
        return tf.data.Dataset.from_tensor_slices((x, np.zeros(n, "int32"), weights)).batch(64)
    return tf.data.Dataset.from_tensor_slices(x).batch(64)


def exact(mode, strategy=None, variant=None):
    """2 epochs of SGD on 193 images in batches of 64: mode 'fit' (model.fit) or 'loop' (distributed_fit)."""
    variant = variant or {}
    train_ds, val_ds = exact_data(193, variant), exact_data(70, variant)
    with (strategy.scope() if strategy is not None else contextlib.nullcontext()):
        vae = exact_vae(variant)
    if mode == "fit":
        history = vae.fit(train_ds, validation_data=val_ds, epochs=2, verbose=0).history
    else:
        history = distribute.distributed_fit(vae, strategy, train_ds, validation_data=val_ds, epochs=2, verbose=0).history
    return {"history": {k: [float(v) for v in vals] for k, vals in history.items()},
            "weights": [np.asarray(w).tolist() for w in vae.get_weights()]}


def exact_all(mode, strategy=None, only=None):
    """`exact` for every option variant of spec["variants"] (or those named in ``only``)."""
    return {name: exact(mode, strategy, variant) for name, variant in spec["variants"].items() if not only or name in only}


def save():
    with open(spec["result"], "w") as f:
        json.dump(results, f)
'''

MIRRORED_SCRIPT = COMMON + r'''
strategy = distribute.create_strategy("mirrored")
results["num_replicas"] = strategy.num_replicas_in_sync
results["exact_single"] = exact_all("fit")
results["exact_mirrored_fit"] = exact_all("fit", strategy)
results["exact_mirrored_loop"] = exact_all("loop", strategy, only=["plain"])  # every variant: the 2-worker test
t = time.time()
results["e2e_mirrored"] = end_to_end("mirrored", spec["out"], spec["checkpoint_dir"])
results["e2e_mirrored_whole"] = end_to_end("mirrored", spec["out"], spec["checkpoint_dir"] + "-whole", interrupt=False)
results["e2e_none"] = end_to_end("none", spec["out"] + "-single", spec["checkpoint_dir"] + "-single")
save()
'''

WORKER_SCRIPT = COMMON + r'''
name = spec["distribute"]
results["e2e"] = end_to_end(name, spec["out"], spec["checkpoint_dir"])
strategy = distribute.create_strategy(name)  # the run's strategy (created once per process)
if name == "none":
    results["exact"] = exact_all("fit")
else:
    results["exact"] = exact_all("loop", strategy)
    # Only worker 1 asks to stop (as TimeLimit does, by its own clock) after its 2nd step:
    # both workers must stop after the same step (one later) and skip the next epochs.
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]

    class StopOnWorker1(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if index == 1 and batch == 1:
                self.model.stop_training = True

    with strategy.scope():
        vae = exact_vae({})
    ds = tf.data.Dataset.from_tensor_slices(data_lib.to_float(images.x_train[:193])).batch(64)
    history = distribute.distributed_fit(vae, strategy, ds, epochs=3, verbose=0, callbacks=[StopOnWorker1()])
    results["stop"] = {"iterations": int(vae.optimizer.iterations.numpy()), "epochs": len(history.history["loss"]),
                       "weights": [np.asarray(w).tolist() for w in vae.get_weights()]}
save()
'''

# The exact check runs every option that changes the loss (vae_keras.options): each must give single-device
# SGD's weights under 2 replicas and 2 workers. Free bits and capacity sit at their kinks (see exact_vae).
EXACT_VARIANTS = {
    "plain": {},
    "beta_warmup": {"model": {"beta": 2.0, "kl_warmup_steps": 3}},
    "free_bits": {"free_bits": "median", "model": {"free_bits": 1.0}},
    "capacity": {"capacity": "first_kl", "model": {"capacity_max": 1.0, "capacity_gamma": 3.0}},
    "iwae": {"model": {"objective": "iwae", "iw_samples": 3, "beta": 1.5, "kl_warmup_steps": 3}},
    "sample_weight": {"sample_weight": True},
    "mixed_float16": {"dtype_policy": "mixed_float16"},
    # DIP-VAE's covariance of the posterior means needs the global batch's weighted moments (per-replica ones differ).
    "dipvae1_weighted": {"sample_weight": True, "model": {"objective": "dipvae1", "lambda_od": 2.0, "lambda_d": 1.0}},
    "latent_layers": {"model": {"latent_layers": 2}},
}
# float16 networks round differently when a batch is split: looser, still 1e4 times tighter than an unscaled update.
# Capacity's gamma * |KL - C| multiplies the KL gradient's rounding differences (observed 1.6e-5 with 2 workers).
EXACT_TOLERANCES = {"mixed_float16": (2e-3, 2e-3), "capacity": (1e-4, RTOL_METRICS)}

# Validation on 20% of the training images held out (early stopping restores the best weights at the end).
SMALL_CONFIG = {"latent_dim": 4, "hidden": [32], "batch_size": 64, "epochs": 2, "eval_iw_samples": 5,
                "validation_split": 0.2, "early_stopping_patience": 1, "verbose": 2, "name": "dist"}
HELD_OUT = "20% of the training split held out (seed 0): 60 images; trained on the other 240"


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    pythonpath = os.pathsep.join([REPO_ROOT, os.path.join(REPO_ROOT, "tests"), env.get("PYTHONPATH", "")])
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=pythonpath)
    env.update(extra)
    return env


def _spawn(script_path, spec, env, log_path):
    log = open(log_path, "w")  # noqa: SIM115 (outlives this call; _kill_all closes it)
    return subprocess.Popen([sys.executable, script_path, json.dumps(spec)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, cwd=REPO_ROOT), log


def _wait_all(procs, timeout):
    deadline = time.monotonic() + timeout
    for proc, _ in procs:
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))


def _kill_all(procs):
    for proc, log in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def _read(path):
    with open(path) as f:
        return f.read()


def _max_weight_diff(a, b):
    assert len(a) == len(b)
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(a, b))


def _assert_exact(results, references, what):
    assert set(results) <= set(references) == set(EXACT_VARIANTS)
    for name, result in results.items():
        reference = references[name]
        atol, rtol = EXACT_TOLERANCES.get(name, (ATOL_WEIGHTS, RTOL_METRICS))
        diff = _max_weight_diff(result["weights"], reference["weights"])
        assert diff < atol, f"{what}, {name}: weights differ from single-device SGD by {diff}"
        assert set(result["history"]) == set(reference["history"])
        for key, values in reference["history"].items():
            if name == "iwae" and key.endswith("loss"):
                continue  # log q(z|x) holds each draw's eps^2: the bound's value is noise (its gradient is not)
            if name == "latent_layers" and key.endswith(("loss", "kl")):
                continue  # the lower layer's one-sample KL holds log q(z1|x), so each draw's eps^2: the same
            np.testing.assert_allclose(result["history"][key], values, rtol=rtol, err_msg=f"{what}, {name}: {key}")


def _assert_end_to_end(rows, reference_rows):
    assert [r["epoch"] for r in rows] == [1, 2] == [r["epoch"] for r in reference_rows]
    for key in ("loss", "reconstruction", "val_loss", "val_reconstruction"):
        got, want = rows[-1][key], reference_rows[-1][key]
        assert np.isfinite(got) and abs(got - want) <= RTOL_END_TO_END * abs(want), (key, got, want)


# ------------------------------------------------------------------------------------------------
# TF_CONFIG and the CLI
# ------------------------------------------------------------------------------------------------


class TestTfConfig:
    def test_valid_cluster_and_chief(self):
        env = {"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}})}
        cluster, task_type, index = distribute.read_tf_config(env)
        assert cluster == {"worker": ["a:1", "b:2"]} and (task_type, index) == ("worker", 1)
        assert not distribute.is_chief_task(cluster, task_type, index)
        assert distribute.is_chief_task(cluster, "worker", 0)
        with_chief = {"chief": ["c:3"], "worker": ["a:1"]}
        assert distribute.is_chief_task(with_chief, "chief", 0) and not distribute.is_chief_task(with_chief, "worker", 0)

    @pytest.mark.parametrize("value, fragment", [
        (None, "TF_CONFIG unset"),
        ("  ", "TF_CONFIG empty"),
        ("{not json", "not valid JSON"),
        ('["worker"]', "JSON object"),
        ('{"task": {"type": "worker", "index": 0}}', "no 'cluster'"),
        ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}}', "['ps']"),
        ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}', "host:port"),
        ('{"cluster": {"worker": ["a:1"]}}', "no 'task'"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "task type 'chief'"),
        ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "indices 0..1"),
    ])
    def test_bad_tf_config_names_what_was_received(self, value, fragment):
        env = {} if value is None else {"TF_CONFIG": value}
        with pytest.raises(ConfigError) as info:
            distribute.read_tf_config(env)
        message = str(info.value)
        assert fragment in message and "\n" not in message
        if value is not None and value.strip():
            assert value[:20] in message  # echoes what was received

    def test_unknown_strategy(self):
        with pytest.raises(ConfigError, match="Received: distribute='tpu'"):
            distribute.setup("tpu")

    def test_config_validates_distribute(self):
        from vae_keras.training import TrainConfig

        assert TrainConfig().distribute == "none"
        with pytest.raises(ConfigError, match="distribute must be one of"):
            TrainConfig(distribute="mirrorred").validate()


def test_cli_multi_worker_without_tf_config_is_one_line_error(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    code = main(["train", "--distribute", "multi-worker", "--epochs", "1", "--out", str(tmp_path)])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("vae-keras: error:") and "TF_CONFIG unset" in lines[0], captured.err
    assert "Traceback" not in captured.err
    assert os.listdir(tmp_path) == []  # nothing written


def test_cli_rejects_unknown_distribute(capsys):
    assert main(["train", "--distribute", "gpus"]) == 2
    assert "--distribute" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# MirroredStrategy over two logical CPU devices
# ------------------------------------------------------------------------------------------------


def test_mirrored_two_logical_cpus_matches_single_device(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT)
    spec = {"logical_cpus": 2, "n_train": 300, "n_test": 100, "sgd_lr": 2e-3, "config": SMALL_CONFIG,
            "variants": EXACT_VARIANTS,
            "out": str(tmp_path / "models"), "checkpoint_dir": str(tmp_path / "ckpt"), "result": str(tmp_path / "result.json")}
    procs = [_spawn(str(script), spec, _env(), tmp_path / "log.txt")]
    try:
        _wait_all(procs, TIMEOUT)
    finally:
        _kill_all(procs)
    log = _read(tmp_path / "log.txt")
    assert procs[0][0].returncode == 0, log[-3000:]
    result = json.loads(_read(tmp_path / "result.json"))
    assert result["num_replicas"] == 2

    # Exact: model.fit (VAE.train_step) and the custom loop, both over 2 replicas, vs one device.
    _assert_exact(result["exact_mirrored_fit"], result["exact_single"], "MirroredStrategy + model.fit")
    assert set(result["exact_mirrored_fit"]) == set(EXACT_VARIANTS)
    _assert_exact(result["exact_mirrored_loop"], result["exact_single"], "MirroredStrategy + distributed_fit")

    # End-to-end train(): interrupted, resumed from the checkpoint, exported; close to one device.
    e2e, single = result["e2e_mirrored"], result["e2e_none"]
    assert "Resuming from" in log and "Epoch 2/2" in log
    _assert_end_to_end(e2e["history"], single["history"])
    vae = exported.ExportedVAE(e2e["export_path"])
    z_mean = vae.encode(np.asarray(e2e["probe"], "float32"))["z_mean"]
    np.testing.assert_allclose(z_mean, e2e["probe_z_mean"], atol=1e-5)
    assert vae.card["metrics"]["validation_data"] == HELD_OUT
    assert os.listdir(tmp_path / "ckpt") == []  # the checkpoint is cleared after the export

    # Exact resume under MirroredStrategy: the interrupted and resumed run ends with the uninterrupted run's weights.
    diff = _max_weight_diff(e2e["weights"], result["e2e_mirrored_whole"]["weights"])
    assert diff <= ATOL_WEIGHTS, f"resumed mirrored run differs from the uninterrupted one by {diff}"


# ------------------------------------------------------------------------------------------------
# Two MultiWorkerMirroredStrategy workers on 127.0.0.1
# ------------------------------------------------------------------------------------------------


def test_two_workers_match_single_process(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT)
    base = {"n_train": 300, "n_test": 100, "sgd_lr": 2e-3, "config": SMALL_CONFIG, "variants": EXACT_VARIANTS}
    ports = free_loopback_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    try:
        for i in range(2):
            tmp = tmp_path / f"tmp{i}"
            tmp.mkdir()
            spec = dict(base, distribute="multi-worker", out=str(tmp_path / "models"),
                        checkpoint_dir=str(tmp_path / "ckpt"), result=str(tmp_path / f"worker{i}.json"))
            tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
            procs.append(_spawn(str(script), spec, _env(TF_CONFIG=tf_config, TMPDIR=str(tmp)), tmp_path / f"log{i}.txt"))
        # The single-process reference with the same global batch (no TF_CONFIG), alongside.
        tmp = tmp_path / "tmp_single"
        tmp.mkdir()
        spec = dict(base, distribute="none", out=str(tmp_path / "models-single"),
                    checkpoint_dir=str(tmp_path / "ckpt-single"), result=str(tmp_path / "single.json"))
        procs.append(_spawn(str(script), spec, _env(TMPDIR=str(tmp)), tmp_path / "log_single.txt"))
        _wait_all(procs, TIMEOUT)
    finally:
        _kill_all(procs)
    logs = [_read(tmp_path / name) for name in ("log0.txt", "log1.txt", "log_single.txt")]
    for (proc, _), log in zip(procs, logs):
        assert proc.returncode == 0, log[-3000:]
    logs = logs[:2]

    chief, other = (json.loads(_read(tmp_path / f"worker{i}.json")) for i in range(2))
    single = json.loads(_read(tmp_path / "single.json"))

    # Both finished in lock-step with identical weights, and Keras-style progress on both.
    for log in logs:
        assert "Epoch 2/2" in log and "Resuming from" in log
    assert _max_weight_diff(chief["e2e"]["weights"], other["e2e"]["weights"]) == 0.0
    for name in EXACT_VARIANTS:
        assert _max_weight_diff(chief["exact"][name]["weights"], other["exact"][name]["weights"]) == 0.0, name

    # A stop asked for by one worker only stops both after the same step.
    assert chief["stop"]["iterations"] == other["stop"]["iterations"] == 3
    assert chief["stop"]["epochs"] == other["stop"]["epochs"] == 1
    assert _max_weight_diff(chief["stop"]["weights"], other["stop"]["weights"]) == 0.0

    # Only the chief exported; the other worker left nothing behind.
    assert other["e2e"]["export_path"] is None
    assert os.listdir(tmp_path / "models" / "dist") == ["1"]
    assert os.listdir(tmp_path / "ckpt") == []
    leftovers = [e for e in os.listdir(tmp_path / "tmp1") if e.startswith("vae-keras-")]
    assert leftovers == [], leftovers

    # The chief's export loads through the signature contract and is the trained model.
    vae = exported.ExportedVAE(chief["e2e"]["export_path"])
    x = np.asarray(chief["e2e"]["probe"], "float32")
    np.testing.assert_allclose(vae.encode(x)["z_mean"], chief["e2e"]["probe_z_mean"], atol=1e-5)
    assert vae.sample(3, seed=0)["x_mean"].shape == (3, 28, 28, 1)
    assert vae.card["metrics"]["validation_data"] == HELD_OUT
    assert len(exported.read_history(chief["e2e"]["export_path"])) == 2

    # Numbers agree with the single process: exactly (SGD, no noise) and end to end (within 1%).
    assert set(chief["exact"]) == set(EXACT_VARIANTS)
    _assert_exact(chief["exact"], single["exact"], "MultiWorkerMirroredStrategy loop")
    _assert_end_to_end(chief["e2e"]["history"], single["e2e"]["history"])
