"""VAE models: subclassed `keras.Model`s with their own `train_step` and `test_step`."""

from vae_keras.models.hierarchical import HierarchicalVAE
from vae_keras.models.vae import VAE, build_vae

__all__ = ["VAE", "HierarchicalVAE", "build_vae"]
