"""A validation split held out from the training data: `--validation-split` and early stopping.

Expectations are computed independently of the code under test: the documented hold-out rule
written out with numpy, and each epoch's val_loss recomputed by evaluating the model (its weights
and random-generator states as they were when fit validated that epoch) on the held-out images.
"""

import json
import math
import os

import keras
import numpy as np
import pytest

from vae_keras import build_vae, data, exported, training
from vae_keras.callbacks import EpochCheckpoint
from vae_keras.errors import ConfigError

from conftest import REPO_ROOT
from training_helpers import InterruptAtEpoch


@pytest.fixture(scope="module")
def mnist_npz():
    return np.load(os.path.join(REPO_ROOT, "vae_keras", "data_files", "mnist10k.npz"))


def expected_split(n, fraction, seed):
    """The documented rule: round(fraction * n) (halves up) first images of a seeded permutation."""
    k = math.floor(fraction * n + 0.5)
    perm = np.random.default_rng(seed).permutation(n)
    return sorted(perm[k:].tolist()), sorted(perm[:k].tolist())


# ------------------------------------------------------------------------------------------------
# The split
# ------------------------------------------------------------------------------------------------


def test_held_out_indices_are_disjoint_deterministic_and_follow_the_rule():
    train_idx, val_idx = data.validation_indices(103, 0.25, seed=7)
    assert len(val_idx) == 26 and len(train_idx) == 77  # 25.75 rounds to 26
    assert (train_idx.tolist(), val_idx.tolist()) == expected_split(103, 0.25, 7)
    assert not set(train_idx.tolist()) & set(val_idx.tolist())
    assert sorted(train_idx.tolist() + val_idx.tolist()) == list(range(103))
    again = data.validation_indices(103, 0.25, seed=7)
    assert np.array_equal(again[0], train_idx) and np.array_equal(again[1], val_idx)
    assert not np.array_equal(data.validation_indices(103, 0.25, seed=8)[1], val_idx)


def test_hold_out_validation_keeps_labels_with_their_images():
    n = 50
    x = np.arange(n, dtype=np.uint8)[:, None, None] * np.ones((1, 3, 3), np.uint8)  # image i is filled with i
    d = data.ImageData.from_arrays(x, np.arange(n) % 7, np.zeros((4, 3, 3), np.uint8), np.zeros(4, np.int64))
    held = d.hold_out_validation(0.2, seed=1)
    want_train, want_val = expected_split(n, 0.2, 1)
    assert held.x_train[:, 0, 0, 0].tolist() == want_train
    assert held.x_test[:, 0, 0, 0].tolist() == want_val
    assert held.y_train.tolist() == [i % 7 for i in want_train]
    assert held.y_test.tolist() == [i % 7 for i in want_val]
    assert len(d.x_train) == n and (d.x_test == 0).all()  # the original is unchanged


@pytest.mark.parametrize("n, fraction, counts", [
    (300, 0.001, "holds out 0 and keeps 300"),
    (1, 0.5, "holds out 1 and keeps 0"),
    (3, 0.9, "holds out 3 and keeps 0"),
])
def test_a_split_that_leaves_a_part_empty_names_the_counts(n, fraction, counts):
    with pytest.raises(ConfigError, match=f"validation-split {fraction:g} of {n} training image.s. {counts}"):
        data.validation_indices(n, fraction, seed=0)


@pytest.mark.parametrize("fraction", [0, 0.0, 1, 1.0, -0.1, True, "0.1"])
def test_the_fraction_must_be_inside_zero_and_one(fraction):
    with pytest.raises(ConfigError, match="validation-split must be a number > 0 and < 1"):
        data.validation_indices(10, fraction, seed=0)


# ------------------------------------------------------------------------------------------------
# The config
# ------------------------------------------------------------------------------------------------


def test_early_stopping_without_a_validation_split_is_refused():
    with pytest.raises(ConfigError) as info:
        training.TrainConfig(early_stopping_patience=3).validate()
    message = str(info.value)
    assert "\n" not in message
    assert "--early-stopping-patience 3 cannot be combined with --validation-split 0.0" in message
    assert "select the weights on test data" in message and "--validation-split 0.1" in message
    training.TrainConfig(early_stopping_patience=3, validation_split=0.1).validate()
    training.TrainConfig(validation_split=0.1).validate()  # held-out monitoring without early stopping


@pytest.mark.parametrize("value", [1, 1.0, -0.1, float("nan"), float("inf"), True, "0.1", None])
def test_config_validation_split_range(value):
    with pytest.raises(ConfigError, match="validation-split must be a number >= 0 and < 1"):
        training.TrainConfig(validation_split=value).validate()


def test_a_split_too_small_for_the_dataset_fails_before_training(mnist_npz, tmp_path):
    path = tmp_path / "few.npz"
    np.savez(path, x_train=mnist_npz["x_train"][:20], x_test=mnist_npz["x_test"][:10])
    with pytest.raises(ConfigError, match="holds out 0 and keeps 20"):
        training.train(training.TrainConfig(dataset=str(path), validation_split=0.01, out=str(tmp_path / "m"), verbose=0))
    assert not (tmp_path / "m").exists()


# ------------------------------------------------------------------------------------------------
# Training on the rest, validating and early stopping on the held-out part
# ------------------------------------------------------------------------------------------------


class _Recorder(keras.callbacks.Callback):
    """Every variable (weights and random-generator states) as fit starts each epoch's validation."""

    def __init__(self):
        super().__init__()
        self.at_validation = []
        self.steps = None

    def on_train_begin(self, logs=None):
        self.steps = self.params.get("steps")

    def on_test_begin(self, logs=None):
        self.at_validation.append([np.array(v.numpy()) for v in self.model.variables])


def _val_loss(model, variables, x_val):
    for v, value in zip(model.variables, variables):
        v.assign(value)
    return model.evaluate(x_val, batch_size=256, verbose=0, return_dict=True)["loss"]


def test_early_stopping_on_the_held_out_part_restores_the_best_weights(mnist_npz, tmp_path):
    x_train, x_test = mnist_npz["x_train"][:80], mnist_npz["x_test"][:200]
    path = tmp_path / "few.npz"
    np.savez(path, x_train=x_train, x_test=x_test)
    recorder = _Recorder()
    result = training.train(training.TrainConfig(
        dataset=str(path), hidden=(256,), latent_dim=8, learning_rate=1e-2, epochs=60, batch_size=16, seed=3,
        validation_split=0.2, early_stopping_patience=2, eval_iw_samples=2, out=str(tmp_path / "m"), verbose=0),
        callbacks=[recorder])
    model, history, metrics = result["model"], result["history"], result["metrics"]
    assert metrics["stopped_early"] and len(history) < 60 and len(recorder.at_validation) == len(history)

    # The held-out images, by the documented rule; binarized once with the test split's seed.
    train_idx, val_idx = expected_split(80, 0.2, 3)
    x_val = data.binarize(x_train[val_idx][..., None], training.TEST_BINARIZE_SEED)  # [N, 28, 28, 1]
    assert recorder.steps == math.ceil(len(train_idx) / 16)  # fit trained on the other 64 images only

    # Every epoch's val_loss is the loss on the held-out images (not on the test split).
    best = min(range(len(history)), key=lambda i: history[i]["val_loss"])
    restored = [np.array(w) for w in model.get_weights()]
    recomputed = [_val_loss(model, variables, x_val) for variables in recorder.at_validation]
    np.testing.assert_allclose(recomputed, [r["val_loss"] for r in history], rtol=1e-5)

    # The restored model is the best epoch's: same weights, and its held-out val_loss is the minimum.
    model.set_weights(restored)
    for v, value in zip(model.variables, recorder.at_validation[best]):
        if "seed_generator" in v.path:
            v.assign(value)  # the random draws with which fit validated the best epoch
    restored_val_loss = model.evaluate(x_val, batch_size=256, verbose=0, return_dict=True)["loss"]
    assert restored_val_loss == pytest.approx(min(r["val_loss"] for r in history), rel=1e-5)
    best_weights = [value for v, value in zip(model.variables, recorder.at_validation[best]) if "seed_generator" not in v.path]
    for got, want in zip(restored, best_weights):
        np.testing.assert_array_equal(got, want)
    assert metrics["best_epoch"] == best + 1

    # The test metrics are still those of the test split; the card says where val_* come from.
    assert metrics["test_num_images"] == 200
    card = exported.read_card(result["export_path"])
    assert card["metrics"]["validation_data"] == (
        "20% of the training split held out (seed 3): 16 images; trained on the other 64")


def test_without_a_split_validation_is_the_test_split(mnist_npz, tmp_path):
    path = tmp_path / "few.npz"
    np.savez(path, x_train=mnist_npz["x_train"][:40], x_test=mnist_npz["x_test"][:30])
    recorder = _Recorder()
    result = training.train(training.TrainConfig(
        dataset=str(path), hidden=(16,), latent_dim=2, epochs=2, batch_size=16, eval_iw_samples=0,
        out=str(tmp_path / "m"), verbose=0), callbacks=[recorder])
    assert recorder.steps == 3  # all 40 training images
    x_val = data.binarize(mnist_npz["x_test"][:30, ..., None], training.TEST_BINARIZE_SEED)
    model = result["model"]
    recomputed = [_val_loss(model, variables, x_val) for variables in recorder.at_validation]
    np.testing.assert_allclose(recomputed, [r["val_loss"] for r in result["history"]], rtol=1e-5)
    card = exported.read_card(result["export_path"])
    assert card["metrics"]["validation_data"] == "test split (30 images)"


def test_resuming_with_another_validation_split_is_refused(mnist_npz, tmp_path):
    path = tmp_path / "few.npz"
    np.savez(path, x_train=mnist_npz["x_train"][:100], x_test=mnist_npz["x_test"][:20])
    base = {"dataset": str(path), "epochs": 2, "hidden": (16,), "latent_dim": 4, "batch_size": 64, "eval_iw_samples": 0,
            "validation_split": 0.2, "out": str(tmp_path / "m"), "checkpoint_dir": str(tmp_path / "ckpt"), "verbose": 0}
    ckpt = EpochCheckpoint(str(tmp_path / "ckpt"), training.TrainConfig(**base).to_dict())
    model = build_vae((28, 28, 1), latent_dim=4, hidden=(16,))
    model.compile(optimizer="adam")
    ckpt.set_model(model)
    ckpt.on_epoch_end(0, {"loss": 1.0})
    for other in (0.1, 0.0):
        with pytest.raises(ConfigError, match=r"other settings \(validation_split\)"):
            training.train(training.TrainConfig(**(base | {"validation_split": other})))
    assert not (tmp_path / "m").exists()


class _WorseValidation(keras.callbacks.Callback):
    """Adds noise to the decoder's weights before each validation, so later epochs validate worse."""

    def on_test_begin(self, logs=None):
        for w in self.model.decoder.trainable_weights:
            w.assign(w + np.random.default_rng(0).normal(0, 0.3, w.shape).astype("float32"))


def test_early_stopping_resumed_from_a_checkpoint_keeps_the_best_epoch_from_before_the_interruption(mnist_npz, tmp_path):
    path = tmp_path / "few.npz"
    np.savez(path, x_train=mnist_npz["x_train"][:200], x_test=mnist_npz["x_test"][:20])
    config = training.TrainConfig(dataset=str(path), epochs=4, hidden=(16,), latent_dim=4, batch_size=32, eval_iw_samples=0,
                                  validation_split=0.2, early_stopping_patience=10, out=str(tmp_path / "m"),
                                  checkpoint_dir=str(tmp_path / "ckpt"), verbose=0)
    with pytest.raises(training.TrainingInterrupted):
        training.train(config, callbacks=[InterruptAtEpoch(2)])
    state = json.loads((tmp_path / "ckpt" / "state.json").read_text())
    best_row = min(state["history"], key=lambda r: r["val_loss"])
    assert state["epoch"] == 2 and state["best_weights"] == f"epoch-{best_row['epoch']}.weights.h5"
    assert (tmp_path / "ckpt" / state["best_weights"]).exists()
    reference = build_vae((28, 28, 1), latent_dim=4, hidden=(16,))
    reference.load_weights(tmp_path / "ckpt" / state["best_weights"])

    result = training.train(config, callbacks=[_WorseValidation()])  # resumes; epochs 3-4 validate worse
    history = result["history"]
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    assert min(history, key=lambda r: r["val_loss"])["epoch"] == best_row["epoch"]
    assert result["metrics"]["best_epoch"] == best_row["epoch"]
    for got, want in zip(result["model"].get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(got, want)  # the best epoch's weights, not the last ones
