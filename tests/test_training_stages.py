"""`train()` is a sequence of stages; each can be called alone, and the distributed run is passed in."""

import os

from vae_keras import distribute, training


def small_config(tmp_path, **overrides):
    values = dict(dataset="mnist-10k", epochs=1, latent_dim=2, hidden=(16,), batch_size=128, eval_iw_samples=2,
                  out=str(tmp_path / "models"), name="staged", verbose=0, seed=0)
    values.update(overrides)
    return training.prepare_config(values)


def test_each_stage_runs_alone_in_train_order(tmp_path, mnist_small):
    config = small_config(tmp_path)
    run_data = training.load_data(config, mnist_small)
    assert (run_data.name, run_data.binarized, run_data.num_classes) == ("staged", True, None)
    assert run_data.fit_data is mnist_small and run_data.validation_data.startswith("test split")
    model = training.build_model(config, run_data)
    assert model.latent_dim == 2 and model.optimizer is not None
    resume = training.restore_checkpoint(config, model)
    assert (resume.checkpoint, resume.early_stopping, resume.initial_epoch) == (None, None, 0)
    history, time_limit = training.fit_model(config, model, run_data, resume)
    assert [row["epoch"] for row in history] == [1] and time_limit is None
    metrics = training.evaluate_model(config, model, run_data, history, resume, time_limit)
    assert metrics["epochs_trained"] == 1 and metrics["weights_epoch"] == 1
    assert metrics["test_images_available"] == len(mnist_small.x_test)
    path = training.export_run(config, model, run_data, history, metrics)
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))


def test_train_fits_through_the_run_it_is_given(tmp_path, mnist_small):
    class RecordingRun(distribute.DistributedRun):
        def fit(self, model, x, **kwargs):
            calls.append(kwargs["epochs"])
            return super().fit(model, x, **kwargs)

    calls = []
    local = distribute.setup("none")
    result = training.train(small_config(tmp_path, eval_iw_samples=0), data=mnist_small,
                            run=RecordingRun(local.name, local.strategy))
    assert calls == [1] and result["export_path"] is not None and len(result["history"]) == 1
