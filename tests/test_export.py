"""The SavedModel export: TF Serving layout, signatures, assets.extra, versions and atomicity."""

import csv
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from vae_keras import export, exported
from vae_keras.errors import ConfigError, ModelDirError

from conftest import REPO_ROOT


def _tree(path):
    out = {}
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, path)] = fh.read()
    return out


class TestLayout:
    def test_version_folder_has_the_savedmodel_and_assets_extra(self, tiny_export):
        models_dir, path = tiny_export
        assert path == os.path.join(models_dir, "tiny", "1")
        for rel in ("saved_model.pb", "variables/variables.index", "assets.extra/model_card.json",
                    "assets.extra/history.csv", "assets.extra/model.keras", "assets.extra/config.json",
                    "assets.extra/tf_serving_warmup_requests"):
            assert os.path.isfile(os.path.join(path, rel)), rel
        assert not [d for d in os.listdir(os.path.dirname(path)) if d.startswith(".tmp")]
        assert os.stat(path).st_mode & 0o055 == 0o055  # readable by a server running as another user

    def test_model_card_has_the_contract_fields(self, tiny_export, tiny_trained_vae):
        card = exported.read_card(tiny_export[1])
        assert card["image_shape"] == [28, 28, 1] and card["latent_dim"] == 4
        assert card["likelihood"] == "bernoulli" and card["conditional"] is False and card["num_classes"] is None
        assert card["dataset"] == "mnist-10k" and card["metrics"]["test_nll"] == 240.0
        assert card["version"] == 1 and card["name"] == "tiny"
        assert card["parameters"] == tiny_trained_vae.count_params()

    def test_history_csv_has_one_row_per_epoch_in_contract_order(self, tiny_export):
        with open(os.path.join(tiny_export[1], "assets.extra", "history.csv")) as f:
            rows = list(csv.reader(f))
        assert rows[0][:7] == ["epoch", "loss", "reconstruction", "kl", "val_loss", "val_reconstruction", "val_kl"]
        assert [r[0] for r in rows[1:]] == ["1", "2"]

    def test_config_json_holds_the_training_config(self, tiny_export):
        with open(os.path.join(tiny_export[1], "assets.extra", "config.json")) as f:
            assert json.load(f) == {"latent_dim": 4}

    def test_keras_file_loads_in_safe_mode_with_identical_outputs(self, tiny_export, tiny_trained_vae):
        loaded = keras.saving.load_model(os.path.join(tiny_export[1], "assets.extra", "model.keras"), safe_mode=True)
        x = np.random.default_rng(0).random((5, 28, 28, 1)).astype(np.float32)
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), tiny_trained_vae.predict(x, verbose=0))
        assert getattr(loaded, "optimizer", None) is None  # the export carries no optimizer state

    def test_warmup_file_holds_one_predict_request_per_signature(self, tiny_export):
        from tensorflow_serving.apis import prediction_log_pb2

        logs = []
        for record in tf.data.TFRecordDataset(os.path.join(tiny_export[1], "assets.extra", "tf_serving_warmup_requests")):
            log = prediction_log_pb2.PredictionLog()
            log.ParseFromString(record.numpy())
            logs.append(log.predict_log.request)
        assert {r.model_spec.signature_name: sorted(r.inputs) for r in logs} == {
            "serving_default": ["x"], "encode": ["x"], "decode": ["z"], "sample": ["num_samples", "seed"],
            "log_weights": ["num_samples", "seed", "x"]}
        assert all(r.model_spec.name == "tiny" for r in logs)
        # Each request is accepted by the exported signature it names.
        saved = tf.saved_model.load(tiny_export[1])
        for r in logs:
            inputs = {k: tf.make_ndarray(v) for k, v in r.inputs.items()}
            saved.signatures[r.model_spec.signature_name](**{k: tf.constant(v) for k, v in inputs.items()})


class TestSignatures:
    def test_outputs_match_the_keras_model(self, tiny_export, tiny_trained_vae):
        vae = exported.ExportedVAE(tiny_export[1])
        x = np.random.default_rng(1).random((6, 28, 28, 1)).astype(np.float32)
        out = vae.reconstruct(x)
        np.testing.assert_allclose(out["x_mean"], tiny_trained_vae.predict(x, verbose=0), atol=1e-6)
        z_mean, z_log_var = (keras.ops.convert_to_numpy(t) for t in tiny_trained_vae.encode(x))
        np.testing.assert_allclose(out["z_mean"], z_mean, atol=1e-6)
        np.testing.assert_allclose(vae.encode(x)["z_log_var"], z_log_var, atol=1e-6)
        dec = vae.decode(z_mean)
        logits = keras.ops.convert_to_numpy(tiny_trained_vae.decode(z_mean))
        np.testing.assert_allclose(dec["x_logits"], logits, atol=1e-5)
        np.testing.assert_allclose(dec["x_mean"], 1 / (1 + np.exp(-logits)), atol=1e-6)

    def test_sample_is_seeded_and_decodes_its_z(self, tiny_export, tiny_trained_vae):
        vae = exported.ExportedVAE(tiny_export[1])
        a, b, c = vae.sample(5, seed=3), vae.sample(5, seed=3), vae.sample(5, seed=4)
        np.testing.assert_array_equal(a["x_mean"], b["x_mean"])
        assert not np.allclose(a["z"], c["z"])
        assert a["z"].shape == (5, 4) and a["x_mean"].shape == (5, 28, 28, 1)
        np.testing.assert_allclose(a["x_mean"], keras.ops.convert_to_numpy(tiny_trained_vae.decode_mean(a["z"])), atol=1e-6)

    def test_loads_and_runs_in_a_process_that_never_imports_vae_keras(self, tiny_export, tiny_trained_vae):
        script = textwrap.dedent(f"""
            import json, sys
            import numpy as np, tensorflow as tf
            m = tf.saved_model.load({tiny_export[1]!r})
            x = np.random.default_rng(1).random((3, 28, 28, 1)).astype(np.float32)
            out = {{
              "signatures": sorted(m.signatures),
              "x_mean": m.signatures["serving_default"](x=tf.constant(x))["x_mean"].numpy().tolist(),
              "decode_keys": sorted(m.signatures["decode"](z=tf.zeros([2, 4]))),
              "sample_shape": list(m.signatures["sample"](num_samples=tf.constant(7), seed=tf.constant(0))["x_mean"].shape),
              "log_w_shape": list(m.signatures["log_weights"](x=tf.constant(x), num_samples=tf.constant(5),
                                                              seed=tf.constant(0))["log_w"].shape),
              "vae_keras_imported": any(k.startswith("vae_keras") for k in sys.modules),
            }}
            print("RESULT" + json.dumps(out))
        """)
        env = dict(os.environ, PYTHONPATH="", TF_CPP_MIN_LOG_LEVEL="2")
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd="/", env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        result = json.loads(proc.stdout.split("RESULT", 1)[1])
        assert result["signatures"] == ["decode", "encode", "log_weights", "sample", "serving_default"]
        assert result["log_w_shape"] == [5, 3]
        assert result["decode_keys"] == ["x_logits", "x_mean"]
        assert result["sample_shape"] == [7, 28, 28, 1]
        assert result["vae_keras_imported"] is False
        x = np.random.default_rng(1).random((3, 28, 28, 1)).astype(np.float32)
        np.testing.assert_allclose(np.array(result["x_mean"]), tiny_trained_vae.predict(x, verbose=0), atol=1e-6)

    def test_saved_model_cli_lists_the_signatures(self, tiny_export):
        cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
        proc = subprocess.run([cli, "show", "--all", "--dir", tiny_export[1]], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        for name in ("serving_default", "encode", "decode", "sample"):
            assert f"signature_def['{name}']" in proc.stdout
        for line in ("inputs['x'] tensor_info", "inputs['z'] tensor_info", "inputs['num_samples'] tensor_info",
                     "outputs['x_logits'] tensor_info", "outputs['z_log_var'] tensor_info"):
            assert line in proc.stdout


class TestVersions:
    def test_versions_count_up_and_never_touch_earlier_ones(self, tiny_trained_vae, tmp_path):
        first = export.export_model(tiny_trained_vae, tmp_path, "m")
        before = _tree(first)
        second = export.export_model(tiny_trained_vae, tmp_path, "m")
        assert (os.path.basename(first), os.path.basename(second)) == ("1", "2")
        assert _tree(first) == before
        assert exported.read_card(second)["version"] == 2

    def test_next_version_follows_the_highest_existing_number(self, tiny_trained_vae, tmp_path):
        (tmp_path / "m" / "7").mkdir(parents=True)
        (tmp_path / "m" / "notes").mkdir()
        assert export.export_model(tiny_trained_vae, tmp_path, "m").endswith(os.path.join("m", "8"))

    def test_a_crash_mid_export_leaves_no_version_and_no_debris(self, tiny_trained_vae, tmp_path, monkeypatch):
        first = export.export_model(tiny_trained_vae, tmp_path, "m")
        before = _tree(first)

        def fail(*args, **kwargs):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(export, "_write_tfrecord", fail)
        with pytest.raises(OSError, match="No space left"):
            export.export_model(tiny_trained_vae, tmp_path, "m")
        assert sorted(os.listdir(tmp_path / "m")) == ["1"]
        assert _tree(first) == before

    @pytest.mark.parametrize("name", ["", "../evil", "a/b", ".hidden", "-x", None])
    def test_bad_names_are_rejected(self, tiny_trained_vae, tmp_path, name):
        with pytest.raises(ConfigError, match="Received: name="):
            export.export_model(tiny_trained_vae, tmp_path, name)
        assert not os.listdir(tmp_path)


class TestModelsFolder:
    def test_list_models_reports_broken_folders_without_raising(self, tiny_export, tmp_path):
        import shutil

        shutil.copytree(tiny_export[1], tmp_path / "good" / "1")
        (tmp_path / "junk" / "1").mkdir(parents=True)
        (tmp_path / "junk" / "1" / "saved_model.pb").write_bytes(b"not a protobuf")
        (tmp_path / "empty").mkdir()
        entries = {e.label: e for e in exported.list_models(str(tmp_path))}
        assert entries["good/1"].error is None and entries["good/1"].card["latent_dim"] == 4
        assert "model_card.json" in entries["junk/1"].error
        assert "no numeric version" in entries["empty/0"].error

    def test_exported_vae_rejects_non_savedmodels_and_broken_contracts(self, tiny_export, tmp_path):
        import shutil

        with pytest.raises(ModelDirError, match="does not exist"):
            exported.ExportedVAE(str(tmp_path / "missing"))
        (tmp_path / "plain").mkdir()
        with pytest.raises(ModelDirError, match="no saved_model.pb"):
            exported.ExportedVAE(str(tmp_path / "plain"))
        bad = tmp_path / "bad" / "1"
        shutil.copytree(tiny_export[1], bad)
        (bad / "saved_model.pb").write_bytes(b"garbage")
        with pytest.raises(ModelDirError, match="not a loadable SavedModel"):
            exported.ExportedVAE(str(bad))

    def test_contract_check_names_the_missing_signature(self, tmp_path):
        module = tf.Module()
        module.f = tf.function(lambda x: {"y": x * 2}, input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        tf.saved_model.save(module, str(tmp_path / "other" / "1"), signatures={"serving_default": module.f.get_concrete_function()})
        (tmp_path / "other" / "1" / "assets.extra").mkdir()
        (tmp_path / "other" / "1" / "assets.extra" / "model_card.json").write_text(json.dumps({"image_shape": [2], "latent_dim": 1}))
        with pytest.raises(ModelDirError, match=r"Signature 'serving_default'.*needs \['x'\] -> \['x_mean', 'z_log_var', 'z_mean'\]"):
            exported.ExportedVAE(str(tmp_path / "other"))

    def test_resolve_picks_the_newest_version(self, tiny_trained_vae, tmp_path):
        export.export_model(tiny_trained_vae, tmp_path, "m")
        export.export_model(tiny_trained_vae, tmp_path, "m")
        assert exported.resolve_version_dir(str(tmp_path / "m")).endswith(os.path.join("m", "2"))


def test_demo_models_are_committed_and_honour_the_contract():
    """The models the README's dashboard command shows right after install."""
    for name, latent in (("mnist-demo", 16), ("mnist-2d", 2)):
        vae = exported.ExportedVAE(os.path.join(REPO_ROOT, "saved_models", name))
        assert vae.latent_dim == latent and vae.image_shape == (28, 28, 1)
        out = vae.reconstruct(np.zeros((2, 28, 28, 1), np.float32))
        assert out["x_mean"].shape == (2, 28, 28, 1) and out["z_mean"].shape == (2, latent)
        assert vae.sample(3, seed=0)["x_mean"].shape == (3, 28, 28, 1)
        assert len(vae.history) >= 5 and vae.card["metrics"]["test_nll"] < 160


def _custom_networks(latent_dim=4):
    """The README's own-networks example, small: a functional encoder -> [z_mean, z_log_var] and a
    functional decoder -> Bernoulli logits."""
    inputs = keras.Input((28, 28, 1))
    h = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(inputs))
    encoder = keras.Model(inputs, [keras.layers.Dense(latent_dim)(h), keras.layers.Dense(latent_dim)(h)])
    z = keras.Input((latent_dim,))
    h = keras.layers.Dense(16, activation="relu")(z)
    decoder = keras.Model(z, keras.layers.Reshape((28, 28, 1))(keras.layers.Dense(28 * 28)(h)))
    return encoder, decoder


def test_vae_from_your_own_networks_fits_saves_and_exports(mnist_small, tmp_path):
    """Issue 13 item 5: VAE(encoder, decoder), fitted, exported: count_params needs a built model, and
    fit never calls the model itself. The SavedModel then serves with plain TensorFlow."""
    import warnings

    from vae_keras import VAE, data

    encoder, decoder = _custom_networks()
    vae = VAE(encoder, decoder, likelihood="bernoulli", binarize=True, seed=0)
    vae.compile(optimizer="adam")
    vae.fit(data.to_float(mnist_small.x_train[:256]), epochs=1, batch_size=64, verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vae.save(tmp_path / "own.keras")
    assert not [w for w in caught if "built" in str(w.message)], [str(w.message) for w in caught]
    path = export.export_model(vae, tmp_path, "own", dataset="mnist-10k")
    card = exported.read_card(path)
    assert card["parameters"] == encoder.count_params() + decoder.count_params() > 0
    with open(os.path.join(path, "assets.extra", "history.csv")) as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1"]  # from the model's last fit
    served = tf.saved_model.load(path)  # the signatures alone, no vae_keras objects
    x = data.to_float(mnist_small.x_test[:3])
    out = served.signatures["serving_default"](x=tf.constant(x))
    np.testing.assert_allclose(out["x_mean"].numpy(), vae.predict(x, verbose=0), atol=1e-6)
    assert sorted(served.signatures["decode"](z=tf.zeros([2, 4]))) == ["x_logits", "x_mean"]
    assert served.signatures["sample"](num_samples=tf.constant(5), seed=tf.constant(0))["x_mean"].shape == (5, 28, 28, 1)


def test_a_vae_subclass_can_still_add_state_after_init():
    """Building in VAE.__init__ must not lock the model (Keras's build() does): a subclass adds its own
    layers and metrics after super().__init__()."""
    from vae_keras import VAE

    class WithExtra(VAE):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.extra = keras.metrics.Mean(name="extra")

    assert WithExtra(*_custom_networks()).built


def test_export_takes_the_history_of_the_last_fit(mnist_small, tmp_path):
    """Issue 13 item 6: the Python quick start's export had a history.csv with only a header."""
    from vae_keras import build_vae, data

    vae = build_vae((28, 28, 1), latent_dim=2, hidden=(8,), seed=0)
    vae.compile(optimizer="adam")
    x = data.to_float(mnist_small.x_train[:128])
    vae.fit(x, validation_data=(x[:64],), epochs=3, batch_size=64, verbose=0)
    path = export.export_model(vae, tmp_path, "m", dataset="mnist-10k")
    with open(os.path.join(path, "assets.extra", "history.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    np.testing.assert_allclose([float(r["val_loss"]) for r in rows], vae.history.history["val_loss"], rtol=1e-6)
    assert exported.read_card(path)["dataset"] == "mnist-10k"
    # history=[] still means "no history": an explicit value always wins.
    with open(os.path.join(export.export_model(vae, tmp_path, "m", history=[]), "assets.extra", "history.csv")) as f:
        assert list(csv.DictReader(f)) == []
