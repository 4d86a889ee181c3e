"""Shared fixtures: tiny models and datasets, made once per test session."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def mnist_small():
    """First 512 train and 256 test images of the embedded mnist-10k, as an ImageData."""
    from vae_keras import data

    return data.load_images("mnist-10k").subset(n_train=512, n_test=256)


@pytest.fixture(scope="session")
def tiny_trained_vae(mnist_small):
    """A small MLP VAE fitted for two epochs on 512 digits (seeded)."""
    import keras

    from vae_keras import build_vae, data

    keras.utils.set_random_seed(0)
    vae = build_vae((28, 28, 1), latent_dim=4, hidden=(32,), binarize=True, seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(2e-3))
    vae.fit(data.to_float(mnist_small.x_train), epochs=2, batch_size=64, verbose=0)
    return vae


@pytest.fixture(scope="session")
def tiny_export(tiny_trained_vae, tmp_path_factory):
    """(models_dir, version_dir) of `tiny_trained_vae` exported once per session. Read-only!"""
    from vae_keras.export import export_model

    models_dir = tmp_path_factory.mktemp("models")
    history = [
        {"epoch": 1, "loss": 300.0, "reconstruction": 290.0, "kl": 10.0, "val_loss": 280.0, "val_reconstruction": 271.0, "val_kl": 9.0},
        {"epoch": 2, "loss": 250.0, "reconstruction": 238.0, "kl": 12.0, "val_loss": 245.0, "val_reconstruction": 233.0, "val_kl": 12.0},
    ]
    path = export_model(tiny_trained_vae, models_dir, "tiny", history=history, dataset="mnist-10k",
                        metrics={"test_nll": 240.0}, config={"latent_dim": 4})
    return str(models_dir), path


@pytest.fixture(scope="session")
def tfds_prepared_dir(tmp_path_factory):
    """A TFDS data_dir where mnist, fashion_mnist and cifar10 look prepared (their metadata files only).

    Pass it to ``tfds.testing.mock_data(data_dir=...)``: vae_keras then takes the prepared path (no
    network, no download) and the mock supplies the examples.
    """
    import tensorflow_datasets as tfds

    root = tmp_path_factory.mktemp("tfds_data_dir")
    for name in ("mnist", "fashion_mnist", "cifar10"):
        builder = tfds.builder(name, data_dir=str(root))
        os.makedirs(builder.data_dir, exist_ok=True)
        builder.info.write_to_directory(builder.data_dir)
    return str(root)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ------------------------------------------------------------------------------------------------
# Dashboard fixtures (tests/test_dashboard_*.py)
# ------------------------------------------------------------------------------------------------


def _dashboard_export_tiny(out_dir, name, image_shape, latent_dim, x_train, x_val, dataset, likelihood="bernoulli",
                           seed=0, created=None, labels=None, num_classes=None, sampler=None):
    """Trains a tiny MLP VAE for a few steps and exports it with a history and a model card.

    ``created`` overrides the card's timestamp (the dashboard shows the newest model first);
    ``labels=(y_train, y_val)`` with ``num_classes`` makes a conditional VAE; ``sampler="gmm:K"`` fits a mixture
    to the training images' posterior means after training (the export's `sample` draws from it).
    """
    import json

    import keras

    from vae_keras import build_vae
    from vae_keras.evaluation import nll_kind
    from vae_keras.export import export_model, history_rows_from_keras

    keras.utils.set_random_seed(seed)
    extra = {} if num_classes is None else {"num_classes": num_classes}
    if sampler is not None:
        extra["sampler"] = sampler
    model = build_vae(image_shape, latent_dim=latent_dim, hidden=(16,), likelihood=likelihood, seed=seed, **extra)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    if labels is not None:
        x_train, x_val = [x_train, labels[0]], ([x_val, labels[1]],)
    else:
        x_val = (x_val,)
    history = model.fit(x_train, validation_data=x_val, epochs=3, batch_size=128, verbose=0)
    if sampler is not None:
        from vae_keras.latent_density import fit_gmm_sampler

        if labels is not None:  # a conditional model: one mixture per class
            fit_gmm_sampler(model, x_train[0], labels=labels[0])
        else:
            fit_gmm_sampler(model, x_train)
    rows = history_rows_from_keras(history.history)
    last = rows[-1]
    # Stand-in test metrics (cheap, not measured); test_dashboard_app.py also checks a card that train() wrote.
    metrics = {
        "epochs_trained": len(rows),
        "final_loss": last["loss"],
        "final_val_loss": last["val_loss"],
        "test_nll": last["val_loss"] - 1.0,
        "test_elbo": -last["val_loss"],
        "test_kl": last["val_kl"],
        "test_active_units": latent_dim,
        "test_kl_per_dim": [float(v) for v in np.linspace(0.1, 1.0, latent_dim)],
        "test_nll_kind": nll_kind(model.likelihood, x_val[0][0] if labels is not None else x_val[0]),  # intensities
    }
    path = export_model(model, out_dir, name, history=rows, dataset=dataset, metrics=metrics,
                        card_extra={"network": "mlp", "hidden": [16], "test_binarized": False})
    if created:
        card_path = os.path.join(path, "assets.extra", "model_card.json")
        with open(card_path, encoding="utf-8") as f:
            card = json.load(f)
        card["created"] = created
        with open(card_path, "w", encoding="utf-8") as f:
            json.dump(card, f)
    return path


@pytest.fixture(scope="session")
def dashboard_models_dir(tmp_path_factory):
    """A models folder for the dashboard tests, exported once per session (about 10 s).

    - ``tiny/1`` and ``tiny/2``: 28x28x1 Bernoulli VAEs with a 2-D latent, dataset ``mnist-10k``;
    - ``tinycond/1``: a conditional (10 classes) 28x28x1 VAE with a 2-D latent on ``mnist-10k``;
    - ``tinyrgb/1``: an 8x8x3 Gaussian VAE with a 3-D latent on a colour ``.npz`` dataset in the
      folder, the most recently "created" (so the dashboard shows it first);
    - ``broken/1``: a junk ``saved_model.pb`` and no model card;
    - ``nopb/1``: an empty version folder;
    - ``corrupt/1``: a valid model card beside a junk ``saved_model.pb`` (fails only when loaded).
    """
    import json

    from vae_keras import data

    root = tmp_path_factory.mktemp("dashboard")
    out = root / "models"
    out.mkdir()
    mnist = data.load_images("mnist-10k")
    x_train, x_val = data.to_float(mnist.x_train[:512]), data.to_float(mnist.x_test[:256])
    _dashboard_export_tiny(out, "tiny", (28, 28, 1), 2, x_train, x_val, "mnist-10k", seed=0,
                           created="2026-01-01T00:00:01Z")
    _dashboard_export_tiny(out, "tiny", (28, 28, 1), 2, x_train, x_val, "mnist-10k", seed=1,
                           created="2026-01-01T00:00:02Z")
    _dashboard_export_tiny(out, "tinycond", (28, 28, 1), 2, x_train, x_val, "mnist-10k", seed=2,
                           created="2026-01-01T00:00:03Z", labels=(mnist.y_train[:512], mnist.y_test[:256]),
                           num_classes=10)

    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, size=(4, 3))
    labels = np.arange(120) % 4
    x = np.empty((120, 8, 8, 3), np.uint8)
    for i, lab in enumerate(labels):
        x[i] = np.clip(colours[lab] + rng.normal(0, 20, (8, 8, 3)), 0, 255)
    npz = root / "colour.npz"
    np.savez(npz, x_train=x[:100], y_train=labels[:100], x_test=x[100:], y_test=labels[100:],
             class_names=np.array(["red-ish", "green-ish", "blue-ish", "grey-ish"]))
    xf = data.to_float(x)
    _dashboard_export_tiny(out, "tinyrgb", (8, 8, 3), 3, xf[:100], xf[100:], str(npz), likelihood="gaussian",
                           created="2026-01-01T00:00:04Z")

    (out / "broken" / "1").mkdir(parents=True)
    (out / "broken" / "1" / "saved_model.pb").write_bytes(b"this is not a protobuf")
    (out / "nopb" / "1").mkdir(parents=True)
    corrupt = out / "corrupt" / "1"
    (corrupt / "assets.extra").mkdir(parents=True)
    (corrupt / "saved_model.pb").write_bytes(b"\x00junk\xff" * 10)
    card = json.loads((out / "tiny" / "1" / "assets.extra" / "model_card.json").read_text())
    card.update(name="corrupt", version=1)
    (corrupt / "assets.extra" / "model_card.json").write_text(json.dumps(card))
    return out


@pytest.fixture(scope="session")
def dashboard_single_model_dir(dashboard_models_dir, tmp_path_factory):
    """A models folder holding only ``tiny/2`` (copied from ``dashboard_models_dir``)."""
    import shutil

    out = tmp_path_factory.mktemp("dashboard_single") / "models"
    shutil.copytree(os.path.join(dashboard_models_dir, "tiny", "2"), out / "tiny" / "1")
    return out


@pytest.fixture(scope="session")
def dashboard_factors_dir(tmp_path_factory):
    """A models folder with ``sprites/1``: a tiny unconditional 64x64x1 MLP VAE (3-D latent) trained a few steps
    on dsprites images, its card naming the dataset ``dsprites`` (which has factors of variation)."""
    from vae_keras import data

    out = tmp_path_factory.mktemp("dashboard_factors") / "models"
    out.mkdir()
    sprites = data.load_images("dsprites")
    _dashboard_export_tiny(out, "sprites", (64, 64, 1), 3, data.to_float(sprites.x_train[:512]),
                           data.to_float(sprites.x_test[:256]), "dsprites", seed=0)
    return out
