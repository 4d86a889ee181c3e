"""Nothing lost: resume after SIGKILL, clean Ctrl-C, NaN stops, early stopping, failing writes."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from vae_keras import build_vae, exported, fileio, images, training
from vae_keras.callbacks import EpochCheckpoint, InterruptGuard, TrainingDivergedError
from vae_keras.errors import ConfigError, OutputExistsError

from conftest import REPO_ROOT


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory):
    d = np.load(os.path.join(REPO_ROOT, "vae_keras", "data_files", "mnist10k.npz"))
    path = tmp_path_factory.mktemp("rel") / "digits.npz"
    np.savez(path, x_train=d["x_train"][:2000], x_test=d["x_test"][:200])
    return str(path)


def _train_cmd(dataset, out, ckpt, epochs=8):
    return [sys.executable, "-m", "vae_keras", "train", "--dataset", dataset, "--epochs", str(epochs),
            "--hidden", "64", "--latent-dim", "4", "--batch-size", "16", "--eval-iw-samples", "0",
            "--out", str(out), "--name", "run", "--checkpoint-dir", str(ckpt), "--verbose", "2"]


def _wait_for_epoch(ckpt, proc, minimum=1, timeout=240):
    state = os.path.join(ckpt, "state.json")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(state):
            with open(state) as f:
                epoch = json.load(f)["epoch"]
            if epoch >= minimum:
                return epoch
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def _sigint_as_in_a_terminal():
    """preexec_fn of a Ctrl-C test's child: SIGINT at its default, as in a user's terminal. A child inherits an
    ignored SIGINT (and Python then keeps ignoring it), so without this the test depended on the pytest worker's
    own disposition: a worker that had SIGINT ignored made the child ignore the Ctrl-C and finish its 50 epochs."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def default_sigint():
    """Python's default SIGINT handler for the test, as `vae-keras train` has it in a terminal; the worker's own
    handler is put back afterwards."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_sigkill_then_the_same_command_resumes_and_history_has_each_epoch_once(digits_npz, tmp_path):
    out, ckpt = tmp_path / "models", tmp_path / "ckpt"
    cmd = _train_cmd(digits_npz, out, ckpt)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    killed_after = _wait_for_epoch(str(ckpt), proc, minimum=2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed_after < 8 and not (out / "run").exists()

    resumed = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    first_resumed_epoch = int(resumed.stdout.split("Resuming from", 1)[1].split("after epoch", 1)[1].split(".")[0])
    assert 2 <= first_resumed_epoch < 8
    assert f"Epoch {first_resumed_epoch + 1}/8" in resumed.stdout and "Epoch 1/8" not in resumed.stdout
    history = exported.read_history(str(out / "run" / "1"))
    assert history["epoch"].tolist() == list(range(1, 9))
    assert history["time"].is_monotonic_increasing
    assert not os.path.exists(ckpt / "state.json")  # cleared once the run was exported


def test_ctrl_c_keeps_the_checkpoint_and_says_how_to_resume(digits_npz, tmp_path):
    out, ckpt = tmp_path / "models", tmp_path / "ckpt"
    proc = subprocess.Popen(_train_cmd(digits_npz, out, ckpt, epochs=50), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, preexec_fn=_sigint_as_in_a_terminal)
    _wait_for_epoch(str(ckpt), proc, minimum=1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "Traceback" not in stderr
    assert "run the same command again to resume" in stderr.strip().splitlines()[-1]
    assert os.path.exists(ckpt / "state.json") and not (out / "run").exists()


class _SwallowedInterrupt(keras.callbacks.Callback):
    """After batch ``at`` of the first epoch, SIGINT arrives while a finalizer runs: Python raises KeyboardInterrupt
    inside ``__del__`` and swallows it ("Exception ignored in ..."), as when a Ctrl-C lands in one of TensorFlow's
    resource deleters during garbage collection."""

    def __init__(self, at):
        super().__init__()
        self.at, self.batches = at, []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(batch)
        if len(self.batches) == self.at:
            class Finalizer:
                def __del__(self):
                    signal.raise_signal(signal.SIGINT)  # the handler runs here, inside __del__

            Finalizer()


def test_a_ctrl_c_swallowed_by_a_finalizer_still_stops_training(digits_npz, tmp_path, monkeypatch, default_sigint):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # what a user's `vae-keras train` has
    unraisable = []  # what Python prints as "Exception ignored in ..."
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(u.exc_type))
    swallow = _SwallowedInterrupt(at=3)
    config = training.TrainConfig(dataset=digits_npz, epochs=3, hidden=(16,), latent_dim=2, batch_size=64,
                                  steps_per_execution=1, eval_iw_samples=0, out=str(tmp_path / "models"),
                                  checkpoint_dir=str(tmp_path / "ckpt"), verbose=0)
    with pytest.raises(training.TrainingInterrupted, match="run the same command again to resume"):
        training.train(config, callbacks=[swallow])
    assert unraisable == [KeyboardInterrupt]  # the first KeyboardInterrupt was indeed lost in the finalizer
    assert swallow.batches == [0, 1, 2]  # the guard raised it again before the next batch ran
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # and gave the handler back
    assert not (tmp_path / "models").exists()


def test_the_ctrl_c_guard_keeps_an_ignored_sigint_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as under nohup or in a background job
    try:
        with InterruptGuard():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


class _Poison(keras.callbacks.Callback):
    """Turns the decoder's output bias into NaN before the first call of epoch 2 that starts at batch >= ``at``."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch == 1 and batch >= self.at:
            bias = self.model.decoder.get_layer("x_params").bias
            bias.assign(np.full(bias.shape, np.nan, np.float32))


@pytest.mark.parametrize("steps_per_execution, at, where", [
    (1, 2, "batch 3"),  # one step per call: the exact batch
    (2, 2, "one of batches 3-4 (they ran in one call; --steps-per-execution 1 names the exact batch)"),
    # 32 steps per epoch, 5 per call: the last call runs batches 31-32, which Keras reports as 31-35
    (5, 30, "one of batches 31-32 (they ran in one call; --steps-per-execution 1 names the exact batch)"),
])
def test_a_nan_loss_stops_naming_epoch_and_batch_and_keeps_the_last_good_checkpoint(digits_npz, tmp_path, steps_per_execution, at, where):
    config = training.TrainConfig(dataset=digits_npz, epochs=4, hidden=(32,), latent_dim=4, batch_size=64,
                                  steps_per_execution=steps_per_execution, eval_iw_samples=0,
                                  out=str(tmp_path / "models"), checkpoint_dir=str(tmp_path / "ckpt"), verbose=0)
    with pytest.raises(TrainingDivergedError, match=rf"became nan at epoch 2, {re.escape(where)}; training stopped and nothing was exported"):
        training.train(config, callbacks=[_Poison(at=at)])
    assert not (tmp_path / "models").exists()
    state = json.loads((tmp_path / "ckpt" / "state.json").read_text())
    assert state["epoch"] == 1
    import h5py

    with h5py.File(tmp_path / "ckpt" / state["weights"]) as f:
        arrays = []
        f.visititems(lambda name, obj: arrays.append(obj[()]) if isinstance(obj, h5py.Dataset) else None)
    assert arrays and all(np.all(np.isfinite(a)) for a in arrays if np.issubdtype(np.asarray(a).dtype, np.floating))


def test_resuming_with_other_settings_is_refused(digits_npz, tmp_path):
    base = dict(dataset=digits_npz, epochs=1, hidden=(16,), latent_dim=4, batch_size=256, eval_iw_samples=0,
                out=str(tmp_path / "m"), checkpoint_dir=str(tmp_path / "ckpt"), verbose=0)
    ckpt = EpochCheckpoint(str(tmp_path / "ckpt"), training.TrainConfig(**base).to_dict())
    model = build_vae((28, 28, 1), latent_dim=4, hidden=(16,))
    model.compile(optimizer="adam")
    ckpt.set_model(model)
    ckpt.on_epoch_end(0, {"loss": 1.0})
    with pytest.raises(ConfigError, match=r"other settings \(latent_dim\)"):
        training.train(training.TrainConfig(**(base | {"latent_dim": 5})))


def _run_settings(digits_npz, tmp_path, **overrides):
    """The TrainConfig fields of the two old-checkpoint tests: 2 epochs of a small model, checkpointed."""
    return dict(dataset=digits_npz, epochs=2, hidden=(16,), latent_dim=4, batch_size=256, eval_iw_samples=0,
                out=str(tmp_path / "m"), checkpoint_dir=str(tmp_path / "ckpt"), verbose=0, **overrides)


def _write_old_checkpoint(settings, missing):
    """Epoch 1's checkpoint of a run with ``settings``, its config without the key ``missing``, as a version
    without that option wrote it; the weights are build_vae's (the standard prior), the logged loss 1.0."""
    old_config = training.TrainConfig(**settings).to_dict()
    del old_config[missing]
    ckpt = EpochCheckpoint(settings["checkpoint_dir"], old_config)
    model = build_vae((28, 28, 1), latent_dim=settings["latent_dim"], hidden=settings["hidden"])
    model.compile(optimizer="adam")
    ckpt.set_model(model)
    ckpt.on_epoch_end(0, {"loss": 1.0})


def test_a_checkpoint_from_before_an_option_existed_resumes_when_the_option_keeps_its_default(digits_npz, tmp_path):
    base = _run_settings(digits_npz, tmp_path, prior="standard")  # build_vae's prior, which the checkpoint has
    _write_old_checkpoint(base, missing="validation_split")
    with pytest.raises(ConfigError, match=r"other settings \(validation_split\)"):  # not the default: refused
        training.train(training.TrainConfig(**(base | {"validation_split": 0.2})))
    result = training.train(training.TrainConfig(**base))  # the default: resumes after epoch 1
    assert [r["epoch"] for r in result["history"]] == [1, 2] and result["history"][0]["loss"] == 1.0


def test_a_checkpoint_from_before_prior_auto_is_not_resumed_with_another_prior(digits_npz, tmp_path):
    """A checkpoint written before --prior existed trained with N(0, I): today's default (auto, the VampPrior) must
    not load its weights into another model; the refusal names the prior both ways, and --prior standard resumes."""
    base = _run_settings(digits_npz, tmp_path)
    _write_old_checkpoint(base, missing="prior")
    with pytest.raises(ConfigError, match=r"other settings \(prior\): prior: 'standard' there, 'vamp' now\."):
        training.train(training.TrainConfig(**base))
    result = training.train(training.TrainConfig(**(base | {"prior": "standard"})))
    assert [r["epoch"] for r in result["history"]] == [1, 2] and result["history"][0]["loss"] == 1.0


def test_early_stopping_restores_the_best_epochs_weights(tmp_path):
    d = np.load(os.path.join(REPO_ROOT, "vae_keras", "data_files", "mnist10k.npz"))
    path = tmp_path / "few.npz"
    np.savez(path, x_train=d["x_train"][:80], x_test=d["x_test"][:200])
    snapshots = {}
    grab = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.__setitem__(epoch + 1, [w.copy() for w in grab.model.get_weights()]))
    result = training.train(training.TrainConfig(
        dataset=str(path), hidden=(256,), latent_dim=8, learning_rate=1e-2, epochs=80, batch_size=16,
        validation_split=0.2, early_stopping_patience=2, eval_iw_samples=0, out=str(tmp_path / "m"), verbose=0),
        callbacks=[grab])
    history, metrics = result["history"], result["metrics"]
    best = min(history, key=lambda r: r["val_loss"])["epoch"]
    assert metrics["stopped_early"] and metrics["epochs_trained"] < 80 and metrics["best_epoch"] == best
    for got, want in zip(result["model"].get_weights(), snapshots[best]):
        np.testing.assert_array_equal(got, want)


def test_clip_norm_reaches_the_optimizer(digits_npz, tmp_path):
    result = training.train(training.TrainConfig(dataset=digits_npz, epochs=1, hidden=(16,), latent_dim=2, batch_size=500,
                                                 clip_norm=0.5, eval_iw_samples=0, out=str(tmp_path), verbose=0))
    assert result["model"].optimizer.global_clipnorm == 0.5
    assert json.loads(open(os.path.join(result["export_path"], "assets.extra", "config.json")).read())["clip_norm"] == 0.5


class TestAtomicWrites:
    def test_a_failing_write_leaves_the_previous_file_intact(self, tmp_path, monkeypatch):
        target = tmp_path / "grid.png"
        images.save_png(target, np.zeros((4, 4, 1)))
        before = target.read_bytes()

        def full_disk(fd):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "fsync", full_disk)
        with pytest.raises(OSError, match="No space left"):
            images.save_png(target, np.ones((4, 4, 1)), overwrite=True)
        assert target.read_bytes() == before
        assert os.listdir(tmp_path) == ["grid.png"]  # no temporary file left behind

    def test_nothing_is_overwritten_unless_asked(self, tmp_path):
        target = tmp_path / "a.json"
        fileio.atomic_write_json(target, {"v": 1})
        with pytest.raises(OutputExistsError, match="Refusing to overwrite"):
            fileio.atomic_write_json(target, {"v": 2})
        assert json.loads(target.read_text()) == {"v": 1}
        fileio.atomic_write_json(target, {"v": 3}, overwrite=True)
        assert json.loads(target.read_text()) == {"v": 3}

    def test_a_checkpoint_write_that_fails_keeps_the_previous_epoch(self, tmp_path, monkeypatch):
        model = build_vae((28, 28, 1), latent_dim=2, hidden=(8,))
        model.compile(optimizer="adam")
        ckpt = EpochCheckpoint(str(tmp_path), {"a": 1})
        ckpt.set_model(model)
        ckpt.on_epoch_end(0, {"loss": 5.0})
        monkeypatch.setattr(type(model), "save_weights", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device")))
        with pytest.raises(OSError):
            ckpt.on_epoch_end(1, {"loss": 4.0})
        state = json.loads((tmp_path / "state.json").read_text())
        assert state["epoch"] == 1 and os.path.exists(tmp_path / state["weights"])
