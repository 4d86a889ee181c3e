"""Exact resume: a run interrupted after epoch k and resumed with the same command ends where the
uninterrupted run ends (same seed): the optimizer state, the data order, the sampling and binarization
noise and the early-stopping state all come back. (The same under MirroredStrategy over 2 replicas is
checked in tests/test_distribute.py.)
"""

import numpy as np
import pytest

from vae_keras import data as data_lib
from vae_keras import training

from training_helpers import InterruptAtEpoch

ATOL = 1e-5

# Everything that draws random numbers or keeps state between epochs is on: dynamic binarization and the
# sampling noise, Adam, the KL warm-up (from the optimizer's step count), 32 steps per call with a short last
# group, a shuffled pipeline, a held-out validation split and early stopping with its best weights.
CONFIG = {"latent_dim": 4, "hidden": [32], "batch_size": 48, "epochs": 4, "kl_warmup_epochs": 2.5,
          "validation_split": 0.2, "early_stopping_patience": 3, "eval_iw_samples": 0, "verbose": 0, "name": "resume"}


@pytest.fixture(scope="module")
def small():
    return data_lib.load_images("mnist-10k").subset(n_train=400, n_test=100)


def _train(small, tmp_path, tag, interrupt_at=None):
    config = training.TrainConfig(**CONFIG, out=str(tmp_path / f"models-{tag}"), checkpoint_dir=str(tmp_path / f"ckpt-{tag}"))
    if interrupt_at is not None:
        with pytest.raises(training.TrainingInterrupted):
            training.train(config, data=small, callbacks=[InterruptAtEpoch(interrupt_at)])
    return training.train(config, data=small)


def _max_diff(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


@pytest.mark.parametrize("interrupt_at", [1, 3])
def test_an_interrupted_run_resumes_to_the_uninterrupted_runs_weights(small, tmp_path, interrupt_at):
    reference = _train(small, tmp_path, "whole")
    resumed = _train(small, tmp_path, "resumed", interrupt_at=interrupt_at)
    assert len(resumed["history"]) == len(reference["history"]) == CONFIG["epochs"]
    diff = _max_diff(resumed["model"].get_weights(), reference["model"].get_weights())
    assert diff <= ATOL, f"resumed after epoch {interrupt_at}: weights differ from the uninterrupted run by {diff}"
    for got, want in zip(resumed["history"], reference["history"]):
        for key in ("loss", "reconstruction", "kl", "val_loss", "kl_weight"):
            assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), (got["epoch"], key)
    optimizer = resumed["model"].optimizer
    assert int(optimizer.iterations.numpy()) == int(reference["model"].optimizer.iterations.numpy())


def test_the_pipeline_resumes_the_sequence_of_epoch_orders(small):
    full = small.pipeline("train", batch_size=64, seed=3)
    orders = [np.concatenate([b.numpy().reshape(len(b), -1).sum(axis=1) for b in full]) for _ in range(4)]
    resumed = small.pipeline("train", batch_size=64, seed=3, skip_epochs=2)
    again = [np.concatenate([b.numpy().reshape(len(b), -1).sum(axis=1) for b in resumed]) for _ in range(2)]
    np.testing.assert_array_equal(again[0], orders[2])
    np.testing.assert_array_equal(again[1], orders[3])
    assert not np.array_equal(orders[1], orders[2])
