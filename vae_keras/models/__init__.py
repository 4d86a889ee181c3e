"""VAE models: subclassed `keras.Model`s with their own `train_step` and `test_step`."""

from vae_keras.models.vae import VAE, build_vae

__all__ = ["VAE", "build_vae"]
