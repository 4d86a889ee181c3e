"""Shared fixtures: tiny models and datasets, made once per test session."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

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


@pytest.fixture
def rng():
    return np.random.default_rng(0)
