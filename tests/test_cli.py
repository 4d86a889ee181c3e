"""The vae-keras command line: train / evaluate / sample / list, and its handling of bad input."""

import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vae_keras import exported
from vae_keras.cli import main

from conftest import REPO_ROOT

TINY = ["--hidden", "32", "--latent-dim", "4", "--batch-size", "64", "--eval-iw-samples", "5", "--verbose", "2"]


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    d = np.load(os.path.join(REPO_ROOT, "vae_keras", "data_files", "mnist10k.npz"))
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x_train=d["x_train"][:300], y_train=d["y_train"][:300], x_test=d["x_test"][:100], y_test=d["y_test"][:100])
    return str(path)


@pytest.fixture(scope="module")
def trained(tiny_npz, tmp_path_factory):
    """One CLI training run shared by the evaluate/sample tests: (models_dir, version_dir)."""
    out = tmp_path_factory.mktemp("cli_models")
    assert main(["train", "--dataset", tiny_npz, "--epochs", "2", "--out", str(out), "--name", "digits", *TINY]) == 0
    return str(out), os.path.join(str(out), "digits", "1")


def _one_line_error(capsys, code, *fragments):
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("vae-keras")]
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


class TestTrain:
    def test_train_prints_epochs_and_exports_everything(self, trained, capsys):
        _, path = trained
        card = exported.read_card(path)
        assert card["dataset"].endswith("digits.npz") and card["latent_dim"] == 4
        assert card["metrics"]["epochs_trained"] == 2 and card["metrics"]["test_iw_samples"] == 5
        assert card["metrics"]["validation_data"] == "test split (100 images)"
        assert card["metrics"]["test_num_images"] == 100
        assert card["dtype_policy"] == "float32"
        with open(os.path.join(path, "assets.extra", "config.json")) as f:
            config = json.load(f)
        assert config["hidden"] == [32] and config["epochs"] == 2 and config["binarize"] == "auto"
        assert len(exported.read_history(path)) == 2

    def test_progress_is_keras_epoch_lines(self, tiny_npz, tmp_path, capsys):
        assert main(["train", "--dataset", tiny_npz, "--epochs", "2", "--out", str(tmp_path), *TINY]) == 0
        out = capsys.readouterr().out
        assert "Epoch 1/2" in out and "Epoch 2/2" in out and "val_loss" in out
        assert f"Exported {tmp_path}/digits/1" in out  # name defaults to the dataset file's stem

    def test_the_progress_bar_counts_the_steps_that_ran(self):
        """5 steps per epoch run 4 per call: Keras reports the second call as batch index 7 and its own
        bar shows 8/5 (keras-team/keras#20861); ours shows 5/5."""
        import keras

        from vae_keras.callbacks import ProgbarLogger

        seen = []
        for bar in (keras.callbacks.ProgbarLogger(), ProgbarLogger()):
            bar.set_params({"verbose": 0, "epochs": 1, "steps": 5})
            bar.on_train_begin()
            bar.on_epoch_begin(0)
            bar.on_train_batch_end(3, {"loss": 1.0})
            bar.on_train_batch_end(7, {"loss": 1.0})
            seen.append(bar.seen)
        assert seen == [8, 5]  # when Keras counts right, the first becomes 5 and ours can go

    def test_config_file_fills_flags_and_flags_win(self, tiny_npz, tmp_path):
        cfg = tmp_path / "run.yaml"
        cfg.write_text(f"dataset: {tiny_npz}\nlatent-dim: 3\nepochs: 1\nhidden: [16]\nbeta: 2.0\nname: fromyaml\n")
        assert main(["train", "--config", str(cfg), "--latent-dim", "5", "--out", str(tmp_path), "--eval-iw-samples", "0", "--verbose", "0"]) == 0
        path = tmp_path / "fromyaml" / "1"
        card = exported.read_card(str(path))
        assert card["latent_dim"] == 5 and card["beta"] == 2.0
        saved = json.loads((path / "assets.extra" / "config.json").read_text())
        assert saved["latent_dim"] == 5 and saved["hidden"] == [16] and saved["epochs"] == 1
        # The saved config reproduces the run when fed back.
        assert main(["train", "--config", str(path / "assets.extra" / "config.json"), "--verbose", "0"]) == 0
        assert exported.read_card(str(tmp_path / "fromyaml" / "2"))["latent_dim"] == 5

    def test_validation_split_from_flags_and_config_files(self, tiny_npz, tmp_path):
        assert main(["train", "--dataset", tiny_npz, "--epochs", "1", "--validation-split", "0.2", "--out", str(tmp_path),
                     "--name", "flag", *TINY]) == 0
        card = exported.read_card(str(tmp_path / "flag" / "1"))
        assert card["metrics"]["validation_data"] == "20% of the training split held out (seed 0): 60 images; trained on the other 240"
        assert card["metrics"]["test_num_images"] == 100  # the test NLL stays on the test split
        assert "val_loss" in exported.read_history(str(tmp_path / "flag" / "1")).columns
        cfg = tmp_path / "run.yaml"
        cfg.write_text(f"dataset: {tiny_npz}\nvalidation-split: 0.1\nearly-stopping-patience: 3\nseed: 4\nepochs: 1\nhidden: [8]\n")
        assert main(["train", "--config", str(cfg), "--name", "yaml", "--out", str(tmp_path), "--eval-iw-samples", "0", "--verbose", "0"]) == 0
        path = tmp_path / "yaml" / "1"
        saved = json.loads((path / "assets.extra" / "config.json").read_text())
        assert saved["validation_split"] == 0.1 and saved["early_stopping_patience"] == 3
        assert exported.read_card(str(path))["metrics"]["validation_data"].startswith("10% of the training split held out (seed 4): 30 images")

    def test_time_limit_stops_cleanly_and_still_exports(self, tiny_npz, tmp_path):
        assert main(["train", "--dataset", tiny_npz, "--epochs", "1000", "--time-limit", "3", "--out", str(tmp_path), *TINY]) == 0
        card = exported.read_card(str(tmp_path / "digits" / "1"))
        assert card["metrics"]["stopped_by_time_limit"] is True
        assert 1 <= card["metrics"]["epochs_trained"] < 1000

    def test_dtype_policy_trains_in_bfloat16_and_serves_float32(self, tiny_npz, tmp_path):
        import keras

        assert main(["train", "--dataset", tiny_npz, "--epochs", "1", "--out", str(tmp_path), "--name", "bf",
                     "--dtype-policy", "mixed_bfloat16", *TINY]) == 0
        path = os.path.join(str(tmp_path), "bf", "1")
        with open(os.path.join(path, "assets.extra", "config.json")) as f:
            assert json.load(f)["dtype_policy"] == "mixed_bfloat16"
        assert keras.config.dtype_policy().name == "float32"  # training left the global policy alone
        model = keras.saving.load_model(os.path.join(path, "assets.extra", "model.keras"), safe_mode=True)
        assert model.decoder.layers[-1].compute_dtype == "bfloat16"
        x = np.random.default_rng(0).random((4, 28, 28, 1)).astype(np.float32)
        out = exported.ExportedVAE(path).reconstruct(x)
        assert {v.dtype for v in out.values()} == {np.dtype("float32")}
        np.testing.assert_allclose(out["x_mean"], model.predict(x, verbose=0), atol=1e-6)
        card = exported.read_card(path)
        assert card["dtype_policy"] == "mixed_bfloat16" and np.isfinite(card["metrics"]["test_nll"])

    def test_tensorboard_logs(self, tiny_npz, tmp_path):
        logdir = tmp_path / "tb"
        assert main(["train", "--dataset", tiny_npz, "--epochs", "1", "--out", str(tmp_path), "--tensorboard", str(logdir), *TINY]) == 0
        assert any(f.startswith("events.out.tfevents") for _, _, files in os.walk(logdir) for f in files)


class TestEvaluateAndSample:
    def test_evaluate_json(self, trained, capsys):
        capsys.readouterr()
        assert main(["evaluate", trained[1], "--iw-samples", "5", "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["num_images"] == 100 and result["iw_samples"] == 5 and result["test_binarized"] is True
        assert result["scored_images"] == "binarized once with seed 0, as the model card records (test_binarized)"
        # The same model, images, K and seed as training's own test evaluation: the same numbers as its card.
        card = exported.read_card(trained[1])["metrics"]
        assert result["nll"] == pytest.approx(card["test_nll"], abs=1e-3)
        assert result["elbo"] == pytest.approx(card["test_elbo"], abs=1e-3)
        assert result["nll_kind"] == card["test_nll_kind"] == "discrete"
        assert result["bits_per_dim"] == pytest.approx(result["nll"] / (28 * 28 * np.log(2)))
        # The training default's VampPrior: its KL is one Monte-Carlo term, with no per-dim split.
        assert exported.read_card(trained[1])["prior"] == "vamp" and result["kl_per_dim"] is None
        assert 0 <= result["active_units"] <= 4 and len(result["activity_per_dim"]) == 4

    def test_evaluate_scores_the_images_training_scored(self, tiny_npz, tmp_path, capsys):
        """--binarize none: training scores the raw intensities and its card says test_binarized false;
        evaluate must score the same images (it binarized every Bernoulli model's images before)."""
        assert main(["train", "--dataset", tiny_npz, "--epochs", "1", "--binarize", "none", "--out", str(tmp_path),
                     "--name", "soft", *TINY]) == 0
        path = str(tmp_path / "soft" / "1")
        card = exported.read_card(path)
        assert card["test_binarized"] is False
        metrics = card["metrics"]
        assert metrics["test_nll_kind"] == "not_a_likelihood" and metrics["test_bits_per_dim"] is None
        capsys.readouterr()
        assert main(["evaluate", path, "--iw-samples", "5", "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["nll"] == pytest.approx(metrics["test_nll"], abs=1e-3)
        assert result["test_binarized"] is False and result["scored_images"].startswith("the raw intensities")
        assert result["nll_kind"] == "not_a_likelihood" and result["bits_per_dim"] is None
        assert main(["evaluate", path, "--iw-samples", "5"]) == 0
        out = capsys.readouterr().out
        assert "not a likelihood of the images" in out and "no bits/dim" in out and "raw intensities" in out
        assert main(["list", str(tmp_path)]) == 0
        assert f"test NLL (not a likelihood of the images) {metrics['test_nll']:.2f}" in capsys.readouterr().out

    def test_evaluate_says_which_rule_it_used_for_a_card_without_test_binarized(self, trained, tmp_path, capsys):
        import shutil

        old = tmp_path / "old" / "1"
        shutil.copytree(trained[1], old)
        card_path = old / "assets.extra" / "model_card.json"
        card = json.loads(card_path.read_text())
        del card["test_binarized"]
        card_path.write_text(json.dumps(card))
        capsys.readouterr()
        assert main(["evaluate", str(old), "--iw-samples", "2", "--num-images", "10"]) == 0
        out = capsys.readouterr().out
        assert "does not record test_binarized: binarized because the likelihood is Bernoulli" in out

    def test_evaluate_text_on_a_name_folder_uses_its_newest_version(self, trained, capsys):
        capsys.readouterr()
        assert main(["evaluate", os.path.join(trained[0], "digits"), "--iw-samples", "2", "--num-images", "10"]) == 0
        out = capsys.readouterr().out
        assert "NLL (IW, K=2)" in out and "active units" in out and "10 test images" in out

    def test_sample_writes_a_grid_and_never_overwrites(self, trained, tmp_path, capsys):
        out = tmp_path / "grid.png"
        assert main(["sample", trained[1], "--num", "9", "--output", str(out), "--seed", "1"]) == 0
        assert Image.open(out).size == (3 * 30 + 2, 3 * 30 + 2)
        before = out.read_bytes()
        _one_line_error(capsys, main(["sample", trained[1], "--output", str(out), "--seed", "2"]), "exists", "--overwrite")
        assert out.read_bytes() == before
        assert main(["sample", trained[1], "--num", "9", "--output", str(out), "--seed", "2", "--overwrite"]) == 0
        assert out.read_bytes() != before

    def test_list(self, trained, capsys):
        capsys.readouterr()
        assert main(["list", trained[0]]) == 0
        nll = exported.read_card(trained[1])["metrics"]["test_nll"]
        assert "digits/1" in (out := capsys.readouterr().out) and f"test NLL {nll:.2f}" in out  # binarized: a plain NLL


class TestBadInput:
    @pytest.mark.parametrize("argv, fragments", [
        (["train", "--dataset", "/no/such/folder"], ["/no/such/folder"]),
        (["train", "--latent-dim", "0"], ["--latent-dim", "'0'"]),
        (["train", "--epochs", "abc"], ["--epochs", "'abc'"]),
        (["train", "--model", "resnet"], ["--model", "resnet"]),
        (["train", "--dtype-policy", "bfloat16"], ["--dtype-policy", "'bfloat16'", "mixed_bfloat16"]),
        (["train", "--hidden", "512,x"], ["--hidden", "512,x"]),
        (["train", "--beta", "nan"], ["--beta", "nan"]),
        (["train", "--beta", "-1"], ["beta", "-1"]),
        (["train", "--time-limit", "0"], ["time-limit", "0"]),
        (["train", "--name", "../up"], ["Received: name='../up'"]),
        (["train", "--likelihood", "gaussian", "--binarize", "dynamic"], ["bernoulli"]),
        (["train", "--early-stopping-patience", "3"], ["--early-stopping-patience 3 cannot be combined with --validation-split 0.0", "test split",
                                                        "--validation-split 0.1"]),
        (["train", "--validation-split", "1"], ["--validation-split", "expected a number >= 0 and < 1", "'1'"]),
        (["train", "--validation-split", "-0.1"], ["--validation-split", "'-0.1'"]),
        (["train", "--validation-split", "nan"], ["--validation-split", "'nan'"]),
        (["frobnicate"], ["frobnicate"]),
        (["evaluate", "/no/such/model"], ["/no/such/model", "does not exist"]),
        (["sample", "/no/such/model", "--output", "x.png"], ["does not exist"]),
        (["sample", "/tmp", "--output", "x.jpg"], [".png"]),
    ])
    def test_one_line_errors(self, argv, fragments, capsys, tmp_path):
        _one_line_error(capsys, main(argv + (["--out", str(tmp_path)] if argv[0] == "train" else [])), *fragments)
        if argv[0] == "train":
            assert not os.listdir(tmp_path)  # nothing written

    def test_bad_dataset_files(self, tmp_path, capsys):
        empty = tmp_path / "empty"
        empty.mkdir()
        _one_line_error(capsys, main(["train", "--dataset", str(empty), "--out", str(tmp_path / "o")]), str(empty))
        corrupt = tmp_path / "corrupt.npz"
        corrupt.write_bytes(b"PK\x03\x04 this is not a zip")
        _one_line_error(capsys, main(["train", "--dataset", str(corrupt), "--out", str(tmp_path / "o")]), "corrupt.npz")
        nan = tmp_path / "nan.npz"
        x = np.full((20, 8, 8), 0.5, np.float32)
        x[3, 2, 2] = np.nan
        np.savez(nan, x_train=x)
        _one_line_error(capsys, main(["train", "--dataset", str(nan), "--out", str(tmp_path / "o")]), "NaN")
        shapes = tmp_path / "shapes.npz"
        np.savez(shapes, x_train=np.zeros((20, 8, 8), np.uint8), x_test=np.zeros((5, 9, 9), np.uint8))
        _one_line_error(capsys, main(["train", "--dataset", str(shapes), "--out", str(tmp_path / "o")]), "shape")
        assert not (tmp_path / "o").exists()

    def test_a_validation_split_too_small_names_the_counts(self, tiny_npz, tmp_path, capsys):
        code = main(["train", "--dataset", tiny_npz, "--validation-split", "0.001", "--out", str(tmp_path / "o")])
        _one_line_error(capsys, code, "validation-split 0.001 of 300 training image(s) holds out 0 and keeps 300")
        assert not (tmp_path / "o").exists()

    def test_bad_config_files(self, tmp_path, capsys):
        unknown = tmp_path / "c.json"
        unknown.write_text('{"latent_dim": 4, "colour": "blue"}')
        _one_line_error(capsys, main(["train", "--config", str(unknown)]), "colour")
        broken = tmp_path / "c.yaml"
        broken.write_text("latent_dim: [4\n")
        _one_line_error(capsys, main(["train", "--config", str(broken)]), "not valid YAML")
        _one_line_error(capsys, main(["train", "--config", str(tmp_path / "missing.json")]), "missing.json")
        wrong_type = tmp_path / "t.json"
        wrong_type.write_text('{"latent_dim": "four"}')
        _one_line_error(capsys, main(["train", "--config", str(wrong_type)]), "latent-dim", "four")
        patience_only = tmp_path / "p.json"
        patience_only.write_text('{"early_stopping_patience": 5}')
        _one_line_error(capsys, main(["train", "--config", str(patience_only)]), "--validation-split")
        bad_split = tmp_path / "s.yaml"
        bad_split.write_text("validation-split: 1.5\n")
        _one_line_error(capsys, main(["train", "--config", str(bad_split)]), "validation-split must be a number >= 0 and < 1", "1.5")

    def test_evaluate_on_a_folder_that_is_not_a_savedmodel(self, tmp_path, capsys):
        (tmp_path / "m" / "1").mkdir(parents=True)
        (tmp_path / "m" / "1" / "saved_model.pb").write_bytes(b"junk")
        _one_line_error(capsys, main(["evaluate", str(tmp_path / "m")]), "model_card.json")
        _one_line_error(capsys, main(["sample", str(tmp_path / "m"), "--output", str(tmp_path / "g.png")]), "model_card.json")
        assert not (tmp_path / "g.png").exists()

    def test_evaluate_with_a_dataset_of_another_shape(self, trained, tmp_path, capsys):
        other = tmp_path / "small.npz"
        np.savez(other, x_train=np.zeros((20, 8, 8), np.uint8))
        _one_line_error(capsys, main(["evaluate", trained[1], "--dataset", str(other)]), "(8, 8, 1)", "(28, 28, 1)")


def _run(*args, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=300, **kwargs)


def test_console_script_and_module_entry_points(tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), "vae-keras")
    proc = _run(script, "--help")
    assert proc.returncode == 0 and "train" in proc.stdout and "evaluate" in proc.stdout and "sample" in proc.stdout
    proc = _run(sys.executable, "-m", "vae_keras", "train", "--dataset", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("vae-keras: error:")
    assert not (tmp_path / "o").exists()


def test_mnist_10k_five_epochs_reaches_the_nll_target(tmp_path, capsys):
    """Issue 2's bar: `vae-keras train --dataset mnist-10k --epochs 5` -> IW test NLL (K >= 100) < 135 nats."""
    assert main(["train", "--dataset", "mnist-10k", "--epochs", "5", "--out", str(tmp_path), "--verbose", "0"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "mnist-10k"), "--iw-samples", "100", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["num_images"] == 2000 and result["test_binarized"] is True
    assert result["nll"] < 135, result


def test_a_time_limit_without_epochs_trains_until_the_limit_and_the_cosine_schedule_decays_over_it(tmp_path, monkeypatch):
    """--time-limit 8 without --epochs: several epochs, stopped by the limit, and --lr-schedule cosine reaches its
    floor at the end (before, it decayed over 30 epochs whatever the time limit).

    The training clock is a fake one that advances 0.25 s each time it is read (a few reads per epoch), so the
    number of epochs does not depend on the machine's load: on a real clock a loaded machine spent the whole
    budget tracing and trained one epoch (seen under three pytest workers on two cores)."""
    import types

    import keras

    from vae_keras import callbacks as callbacks_lib
    from vae_keras import data as data_lib
    from vae_keras import training

    clock = itertools.count()
    monkeypatch.setattr(callbacks_lib, "time", types.SimpleNamespace(monotonic=lambda: 0.25 * next(clock)))

    x = (np.random.default_rng(0).random((1000, 8, 8)) * 255).astype(np.uint8)
    images = data_lib.ImageData.from_arrays(x[:800], None, x[800:], None, name="noise")
    rates = []

    class RecordRate(keras.callbacks.Callback):  # runs after TimeLimit has set the clock for this call
        def on_train_batch_begin(self, batch, logs=None):
            rates.append(float(self.model.optimizer.learning_rate))

    config = training.TrainConfig(dataset="noise", hidden=(8,), latent_dim=2, batch_size=16, time_limit=8.0,
                                  lr_schedule="cosine", eval_iw_samples=0, out=str(tmp_path), name="t", verbose=0)
    assert config.epochs is None
    metrics = training.train(config, data=images, callbacks=[RecordRate()])["metrics"]
    assert metrics["stopped_by_time_limit"] is True and metrics["epochs_trained"] >= 2, metrics["epochs_trained"]
    lr, floor = config.learning_rate, config.learning_rate * training.COSINE_FLOOR
    assert rates[0] > 0.95 * lr  # the clock starts with training (the first call comes a moment later)
    assert rates[-1] - floor < 0.05 * (lr - floor), (rates[-1], metrics["epochs_trained"])
    assert all(a >= b for a, b in zip(rates, rates[1:]))  # decreasing all the way


def test_the_budget_cosine_schedule_takes_whichever_budget_ends_first_and_serializes():
    import keras

    from vae_keras.training import BudgetCosineDecay, TrainConfig, make_optimizer

    both = BudgetCosineDecay(1.0, decay_steps=100, time_limit=60.0, alpha=0.05)
    assert float(both(0)) == pytest.approx(1.0) and float(both(100)) == pytest.approx(0.05)
    both.time_progress.assign(0.5)
    assert float(both(10)) == pytest.approx(0.525)  # time ran out faster than steps: time decides
    assert float(both(90)) == pytest.approx(0.05 + 0.95 * 0.5 * (1 + np.cos(0.9 * np.pi)))  # steps decide
    copy = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(both))
    assert isinstance(copy, BudgetCosineDecay) and copy.get_config() == both.get_config()
    # --epochs alone keeps a step budget; --time-limit alone is a time budget; both: the first to end.
    assert isinstance(make_optimizer(TrainConfig(lr_schedule="cosine", epochs=3), 10)._learning_rate,
                      keras.optimizers.schedules.CosineDecay)
    assert make_optimizer(TrainConfig(lr_schedule="cosine", time_limit=5.0), 10)._learning_rate.decay_steps is None
    assert make_optimizer(TrainConfig(lr_schedule="cosine", time_limit=5.0, epochs=3), 10)._learning_rate.decay_steps == 30
    # Each worker has its own clock: a time-based decay would differ between workers.
    from vae_keras.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^--lr-schedule cosine cannot be combined with --distribute multi-worker: with --time-limit"):
        TrainConfig(lr_schedule="cosine", time_limit=5.0, distribute="multi-worker").validate()
    TrainConfig(lr_schedule="cosine", epochs=5, distribute="multi-worker").validate()  # decays over the epochs: fine


def test_steps_per_execution_defaults_to_several_on_one_device_and_is_refused_under_a_strategy(tmp_path, capsys):
    from vae_keras.errors import ConfigError
    from vae_keras.training import DEFAULT_STEPS_PER_EXECUTION, TrainConfig

    assert TrainConfig().resolved_steps_per_execution == DEFAULT_STEPS_PER_EXECUTION > 1
    assert TrainConfig(distribute="mirrored").resolved_steps_per_execution == 1
    assert TrainConfig(steps_per_execution=4).resolved_steps_per_execution == 4
    TrainConfig(distribute="mirrored", steps_per_execution=1).validate()
    with pytest.raises(ConfigError, match=r"steps-per-execution 8 cannot be combined with --distribute mirrored.*keras-team/keras#19246"):
        TrainConfig(distribute="mirrored", steps_per_execution=8).validate()
    assert main(["train", "--dataset", "mnist-10k", "--steps-per-execution", "0", "--out", str(tmp_path)]) == 2
    assert "steps-per-execution" in capsys.readouterr().err and not any(tmp_path.iterdir())


class TestNewcomerPath:
    """Issue 13: what a new user meets first (fast answers, one kind of message, broken versions named)."""

    def test_help_and_typos_answer_before_tensorflow_is_imported(self):
        code = ("import sys\nfrom vae_keras.cli import main\n"
                "codes = [main(['train', '--epochs', 'abc']), main(['frobnicate']), main(['train', '--time-limit', '-5'])]\n"
                "try:\n    main(['train', '--help'])\nexcept SystemExit as e:\n    codes.append(e.code)\n"
                "print(codes, sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
        proc = _run(sys.executable, "-c", code)
        assert proc.stdout.strip().splitlines()[-1] == "[2, 2, 2, 0] []", proc.stdout + proc.stderr
        proc = _run(sys.executable, "-X", "importtime", "-m", "vae_keras", "--help")
        assert proc.returncode == 0 and "train" in proc.stdout
        imported = [line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
        assert "vae_keras.cli" in imported
        assert not [m for m in imported if m.split(".")[0] in ("tensorflow", "keras")]

    def test_importing_keras_first_still_registers_the_vae_for_load_model(self):
        code = ("import sys, keras, vae_keras\n"
                "print(keras.saving.get_registered_object('vae_keras>VAE') is not None, 'vae_keras.models' in sys.modules)")
        assert _run(sys.executable, "-c", code).stdout.strip().splitlines()[-1] == "True True"

    def test_importing_keras_after_vae_keras_registers_the_vae_for_load_model(self):
        code = ("import sys, vae_keras\n"
                "light = 'keras' not in sys.modules\n"
                "import keras\n"
                "print(light, keras.saving.get_registered_object('vae_keras>VAE') is not None)")
        proc = _run(sys.executable, "-c", code)
        assert proc.stdout.strip().splitlines()[-1] == "True True", proc.stdout + proc.stderr

    @pytest.mark.parametrize("where", ["before", "after"])
    def test_debug_before_or_after_the_subcommand_shows_the_traceback(self, where, tmp_path):
        from vae_keras.errors import VaeKerasError

        argv = ["train", "--dataset", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]
        argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
        with pytest.raises(VaeKerasError, match="nope"):
            main(argv)

    @pytest.mark.parametrize("argv", [
        ["train", "--latent-dim", "0"],                          # argparse, in a subcommand
        ["frobnicate"],                                          # argparse, top level
        ["sample", "/tmp", "--output", "x.jpg"],                 # the CLI's own check
        ["evaluate", "/no/such/model"],                          # a VaeKerasError
        ["list", "/no/such/models"],
    ])
    def test_every_error_has_the_same_prefix(self, argv, capsys):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("vae-keras: error: "), err

    def test_time_limit_must_be_positive_and_says_so(self, capsys):
        line = _one_line_error(capsys, main(["train", "--time-limit", "-5"]), "--time-limit", "'-5'")
        assert "> 0" in line and ">= 0" not in line

    def test_every_option_and_argument_has_help(self):
        from vae_keras.cli import build_parser

        parser = build_parser()
        subparsers = next(a for a in parser._actions if a.dest == "command").choices
        missing = [f"{name} {'/'.join(a.option_strings) or a.dest}" for name, p in subparsers.items()
                   for a in p._actions if not a.help]
        assert not missing, missing

    def test_list_of_a_missing_or_file_path_is_an_error(self, tmp_path, capsys):
        _one_line_error(capsys, main(["list", str(tmp_path / "nope")]), "nope", "does not exist")
        (tmp_path / "afile").write_text("x")
        _one_line_error(capsys, main(["list", str(tmp_path / "afile")]), "afile", "not a folder")
        assert main(["list", str(tmp_path)]) == 0  # an existing, empty folder is fine
        assert "No models" in capsys.readouterr().out

    def test_a_version_whose_savedmodel_does_not_load_is_broken_everywhere(self, trained, tmp_path, capsys):
        import shutil

        models = tmp_path / "models"
        shutil.copytree(trained[1], models / "truncated" / "1")
        pb = models / "truncated" / "1" / "saved_model.pb"
        pb.write_bytes(pb.read_bytes()[: pb.stat().st_size // 2])
        shutil.copytree(trained[1], models / "novars" / "1")
        shutil.rmtree(models / "novars" / "1" / "variables")
        shutil.copytree(trained[1], models / "healthy" / "1")
        capsys.readouterr()
        for name in ("truncated", "novars"):
            _one_line_error(capsys, main(["evaluate", str(models / name), "--iw-samples", "2"]), "not a loadable SavedModel", name)
            _one_line_error(capsys, main(["sample", str(models / name), "--output", str(tmp_path / "g.png")]), "not a loadable SavedModel")
        assert main(["list", str(models)]) == 0
        lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
        assert "BROKEN" in lines["truncated/1"] and "BROKEN" in lines["novars/1"], lines
        assert "BROKEN" not in lines["healthy/1"]


@pytest.mark.parametrize("flag, where, expected", [
    ("--out", "afile", "is a file, not a folder"),
    ("--out", "afile/sub", "cannot be created"),
    ("--tensorboard", "afile", "is a file, not a folder"),
    ("--tensorboard", "afile/sub", "cannot be created"),
    ("--checkpoint-dir", "afile", "is a file, not a folder"),
    ("--checkpoint-dir", "afile/sub", "cannot be created"),
    ("--name", "afile", "Choose another --name or --out"),  # OUT/NAME is a file
])
def test_an_output_path_that_cannot_be_a_folder_fails_before_training(flag, where, expected, tiny_npz, tmp_path, capsys):
    """Issue 13 item 1: the run used to train every epoch and then die with an internal error, exit 1."""
    (tmp_path / "afile").write_text("keep me")
    bad = str(tmp_path / where)
    argv = ["--out", str(tmp_path)] if flag == "--name" else [flag, bad] + (["--out", str(tmp_path / "m")] if flag != "--out" else [])
    if flag == "--name":
        argv += ["--name", where]
    code = main(["train", "--dataset", tiny_npz, "--epochs", "1", *TINY, *argv])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "", captured  # refused before training: not one epoch printed
    lines = [line for line in captured.err.splitlines() if line.startswith("vae-keras")]
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith("vae-keras: error: ") and where in lines[0] and expected in lines[0], lines[0]
    if flag != "--name":
        assert flag in lines[0]
    assert (tmp_path / "afile").read_text() == "keep me"


def _npz(path, n_train=300, n_test=100):
    d = np.load(os.path.join(REPO_ROOT, "vae_keras", "data_files", "mnist10k.npz"))
    np.savez(path, x_train=d["x_train"][:n_train], y_train=d["y_train"][:n_train], x_test=d["x_test"][:n_test],
             y_test=d["y_test"][:n_test])
    return str(path)


class TestRunReport:
    """Issue 13 items 7, 9, 12, 13: what a run prints and records about itself."""

    def test_the_card_says_which_test_images_and_k_were_used(self, trained):
        m = exported.read_card(trained[1])["metrics"]
        assert (m["test_num_images"], m["test_images_available"], m["test_iw_samples"]) == (100, 100, 5)
        assert m["test_evaluation"] == "all 100 images of the test split, K=5"

    def test_a_time_limited_run_evaluates_the_test_images_that_fit_its_share(self, tmp_path, monkeypatch, capsys):
        from vae_keras import training

        monkeypatch.setattr(training, "EVAL_TIME_SHARE", 1e-9, raising=False)  # a budget that one batch exhausts
        npz = _npz(tmp_path / "d.npz", n_test=250)
        assert main(["train", "--dataset", npz, "--epochs", "1", "--time-limit", "600", "--out", str(tmp_path), *TINY]) == 0
        m = exported.read_card(str(tmp_path / "d" / "1"))["metrics"]
        assert (m["test_num_images"], m["test_images_available"], m["test_iw_samples"]) == (100, 250, 5)
        assert m["test_evaluation"].startswith("100 of 250 images of the test split (a random subset, seed 0), K=5")
        assert "(100 of 250 test images: --time-limit" in capsys.readouterr().out

    def test_a_redirected_log_gets_one_plain_line_per_epoch(self, tiny_npz, tmp_path, capsys):
        argv = ["train", "--dataset", tiny_npz, "--epochs", "2", "--hidden", "8", "--latent-dim", "2", "--eval-iw-samples", "0",
                "--out", str(tmp_path)]
        assert main(argv) == 0  # --verbose auto, and capsys's stdout is not a terminal
        out = capsys.readouterr().out
        assert not {"\r", "\x1b", "\x08"} & set(out), repr(out[:300])
        assert [line.split(" - ")[0] for line in out.splitlines() if "val_loss" in line] == ["3/3", "3/3"]
        assert main([*argv, "--verbose", "1"]) == 0  # an explicit --verbose is honoured
        assert {"\r", "\x08"} & set(capsys.readouterr().out)

    def test_early_stopping_says_so_and_the_card_has_the_restored_epochs_metrics(self, tiny_npz, tmp_path, monkeypatch, capsys):
        from vae_keras import callbacks, training

        scripted = [300.0, 200.0, 250.0, 260.0, 270.0]  # best at epoch 2; patience 2 stops after epoch 4

        class ScriptedValLoss(callbacks.EpochTimer):  # runs before early stopping; History records the same logs
            def on_epoch_end(self, epoch, logs=None):
                super().on_epoch_end(epoch, logs)
                logs["val_loss"] = scripted[epoch]

        monkeypatch.setattr(training.callbacks_lib, "EpochTimer", ScriptedValLoss)
        assert main(["train", "--dataset", tiny_npz, "--epochs", "5", "--validation-split", "0.2",
                     "--early-stopping-patience", "2", "--out", str(tmp_path), *TINY]) == 0
        out = capsys.readouterr().out
        assert "Early stopping after epoch 4: val_loss did not improve for 2 epochs; restored the weights of epoch 2 " \
               "(lowest val_loss 200.0000)." in out
        m = exported.read_card(str(tmp_path / "digits" / "1"))["metrics"]
        assert m["epochs_trained"] == 4 and m["stopped_early"] is True and m["best_epoch"] == 2
        assert m["weights_epoch"] == 2 and m["final_val_loss"] == 200.0
        assert m["final_loss"] == exported.read_history(str(tmp_path / "digits" / "1"))["loss"][1]

    def test_config_json_holds_the_resolved_values_and_reproduces_the_run(self, tiny_npz, tmp_path):
        argv = ["--epochs", "1", "--eval-iw-samples", "0", "--verbose", "0", "--out", str(tmp_path)]
        assert main(["train", "--dataset", tiny_npz, "--no-output-bias-init", *argv]) == 0
        first = json.loads((tmp_path / "digits" / "1" / "assets.extra" / "config.json").read_text())
        assert first["hidden"] == [512, 256] and first["name"] == "digits" and first["steps_per_execution"] == 32
        assert first["no_output_bias_init"] is True and "output_bias_init" not in first
        assert exported.read_card(str(tmp_path / "digits" / "1"))["hidden"] == [512, 256]
        assert main(["train", "--config", str(tmp_path / "digits" / "1" / "assets.extra" / "config.json")]) == 0
        second = json.loads((tmp_path / "digits" / "2" / "assets.extra" / "config.json").read_text())
        assert second == first

    def test_resolved_epochs_and_the_no_output_bias_init_key(self, tmp_path):
        from vae_keras.errors import ConfigError
        from vae_keras.training import DEFAULT_EPOCHS, TrainConfig, load_config_file, resolved_config

        assert resolved_config(TrainConfig(), (28, 28, 1), "m")["epochs"] == DEFAULT_EPOCHS
        assert resolved_config(TrainConfig(time_limit=60), (28, 28, 1), "m")["epochs"] is None  # until the limit
        assert resolved_config(TrainConfig(model="conv"), (28, 28, 1), "m")["hidden"] == [32, 64]
        cfg = tmp_path / "c.yaml"
        cfg.write_text("no-output-bias-init: true\n")
        assert load_config_file(str(cfg)) == {"output_bias_init": False}
        cfg.write_text("output_bias_init: false\n")  # configs written before the key mirrored the flag
        assert load_config_file(str(cfg)) == {"output_bias_init": False}
        cfg.write_text("no_output_bias_init: true\noutput_bias_init: false\n")
        assert load_config_file(str(cfg)) == {"output_bias_init": False}  # consistent: both say "no bias init"
        cfg.write_text("no_output_bias_init: true\noutput_bias_init: true\n")
        with pytest.raises(ConfigError, match="contradict"):
            load_config_file(str(cfg))
        cfg.write_text("no_output_bias_init: 'yes'\n")
        with pytest.raises(ConfigError, match="must be true or false. Received: 'yes'"):
            load_config_file(str(cfg))

    @pytest.mark.parametrize("checkpoint", [True, False])
    def test_ctrl_c_during_the_final_evaluation_says_what_was_kept(self, checkpoint, tiny_npz, tmp_path, monkeypatch, capsys):
        from vae_keras import evaluation

        def interrupted(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(evaluation, "evaluate", interrupted)
        ckpt = ["--checkpoint-dir", str(tmp_path / "ckpt")] if checkpoint else []
        code = main(["train", "--dataset", tiny_npz, "--epochs", "1", "--out", str(tmp_path / "m"), *TINY, *ckpt])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 130 and len(err) == 1 and err[0].startswith("vae-keras: Interrupted during the final test evaluation; "
                                                                   "nothing was exported."), err
        if checkpoint:
            assert "keeps every trained epoch" in err[0] and (tmp_path / "ckpt" / "state.json").exists()
        else:
            assert "--checkpoint-dir" in err[0]
        assert not (tmp_path / "m" / "digits" / "1").exists()

    def test_ctrl_c_in_evaluate_does_not_talk_of_exporting(self, trained, monkeypatch, capsys):
        from vae_keras import evaluation

        def interrupted(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(evaluation, "evaluate", interrupted)
        assert main(["evaluate", trained[1], "--iw-samples", "2"]) == 130
        err = capsys.readouterr().err.strip()
        assert err.startswith("vae-keras: interrupted;") and "export" not in err, err

    def test_one_test_image_is_counted_in_the_singular_and_has_no_active_units(self, tmp_path, capsys):
        npz = _npz(tmp_path / "one.npz", n_test=1)
        assert main(["train", "--dataset", npz, "--epochs", "1", "--out", str(tmp_path), *TINY]) == 0
        assert "active units undefined (needs two or more test images)" in capsys.readouterr().out
        m = exported.read_card(str(tmp_path / "one" / "1"))["metrics"]
        assert m["validation_data"] == "test split (1 image)" and m["test_active_units"] is None


def test_a_corrupt_png_is_named_without_pythons_buffer(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(folder / f"{i}.png")
    (folder / "bad.png").write_bytes(b"this is not a png")
    line = _one_line_error(capsys, main(["train", "--dataset", str(folder), "--out", str(tmp_path / "m")]), "bad.png")
    assert "BytesIO" not in line and " at 0x" not in line, line


def test_the_command_skips_the_interpreters_teardown_after_writing_everything(trained):
    """The teardown took ~17 s after 'Exported' when --time-limit had stopped an epoch midway (Keras's
    unfinished epoch iterator, destroyed by the final garbage collection): a successful command run as
    the command line ends the process at once, its output complete."""
    code = ("import atexit, sys\natexit.register(lambda: print('teardown ran', flush=True))\n"
            f"sys.argv = ['vae-keras', 'list', {trained[0]!r}]\nfrom vae_keras.cli import main\nmain()\n")
    proc = _run(sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[-1].startswith("digits/1") and "teardown ran" not in proc.stdout


@pytest.mark.parametrize("argv, flag", [(["train", "--epoch", "3"], "--epoch"), (["train", "--late", "4"], "--late"),
                                        (["sample", "m", "--out", "x.png"], "--output")])
def test_abbreviated_flags_are_refused_not_guessed(argv, flag, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert flag in err and len(err.strip().splitlines()) == 1


class TestRoughEdges:
    """Issue 15: what a new user met in the command line (TensorFlow's start-up lines, the epoch count of a
    --time-limit run, small sample tiles, the dashboard only from a checkout)."""

    def test_tensorflows_start_up_lines_are_silenced_unless_debug(self, trained):
        env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a new user runs it
        proc = subprocess.run([sys.executable, "-m", "vae_keras", "list", trained[0]], capture_output=True, text=True,
                              env=env, timeout=300)
        assert proc.returncode == 0 and proc.stdout.splitlines()[-1].startswith("digits/1"), proc.stderr[-2000:]
        noise = [line for line in proc.stderr.splitlines()
                 if any(w in line for w in ("oneDNN", "cuda", "absl::InitializeLog", "cpu_feature_guard"))]
        assert not noise, proc.stderr[-2000:]

    def test_a_time_limited_run_shows_the_epoch_and_the_budget_not_a_million_epochs(self, tiny_npz, tmp_path, capsys):
        argv = ["train", "--dataset", tiny_npz, "--time-limit", "2", "--hidden", "8", "--latent-dim", "2",
                "--eval-iw-samples", "0", "--verbose", "2", "--out", str(tmp_path)]
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "Epoch 1 (time limit 2 s)" in out and "/1000000" not in out, out[:1000]
        argv = [*argv[:3], "--epochs", "3", *argv[3:-1], str(tmp_path / "both")]  # both budgets: both shown
        assert main(argv) == 0
        assert "Epoch 1/3 (time limit 2 s)" in capsys.readouterr().out

    def test_sample_scale_enlarges_the_tiles_nearest_neighbour(self, trained, tmp_path, capsys):
        _, path = trained
        small, big = tmp_path / "small.png", tmp_path / "big.png"
        assert main(["sample", path, "--num", "4", "--ncol", "2", "--output", str(small)]) == 0
        assert main(["sample", path, "--num", "4", "--ncol", "2", "--scale", "3", "--output", str(big)]) == 0
        a, b = np.asarray(Image.open(small)), np.asarray(Image.open(big))
        assert a.shape == (62, 62) and b.shape == (186, 186)  # 2 tiles of 28 + 3 borders of 2, times 3
        np.testing.assert_array_equal(b, np.repeat(np.repeat(a, 3, axis=0), 3, axis=1))
        _one_line_error(capsys, main(["sample", path, "--scale", "0", "--output", str(tmp_path / "z.png")]), "--scale")

    def test_dashboard_runs_the_packaged_app_with_streamlit(self, tmp_path, monkeypatch, capsys):
        import vae_keras.cli as cli
        from vae_keras.dashboard import APP_PATH

        calls = []
        monkeypatch.setattr(cli.subprocess, "call", lambda cmd, env: calls.append((cmd, env)) or 0)
        assert main(["dashboard", "--models-dir", str(tmp_path), "--port", "8765"]) == 0
        (cmd, env), = calls
        assert cmd[:5] == [sys.executable, "-m", "streamlit", "run", str(APP_PATH)] and APP_PATH.is_file()
        assert cmd[cmd.index("--server.port") + 1] == "8765" and cmd[-3:] == ["--", "--models-dir", str(tmp_path)]
        assert os.path.dirname(APP_PATH) == os.path.join(os.path.dirname(cli.__file__), "dashboard")  # in the package
        assert "http://localhost:8765/" in capsys.readouterr().out

    def test_dashboard_without_streamlit_names_the_extra(self, monkeypatch, capsys):
        import importlib.util

        find_spec = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "streamlit" else find_spec(name, *a))
        _one_line_error(capsys, main(["dashboard"]), "needs streamlit", "pip install vae_keras[dashboard]")

    def test_dashboard_options_are_checked_before_tensorflow(self):
        code = ("import sys\nfrom vae_keras.cli import main\n"
                "print(main(['dashboard', '--port', '70000']), sorted(m for m in ('tensorflow', 'keras', 'streamlit') "
                "if m in sys.modules))")
        proc = _run(sys.executable, "-c", code)
        assert proc.stdout.strip().splitlines()[-1] == "2 []", proc.stdout + proc.stderr
        assert "port number 1-65535" in proc.stderr
