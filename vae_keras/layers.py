"""Custom layers: the reparameterization trick and the log-variance guard."""

import keras
from keras import ops

from vae_keras.errors import ConfigError


@keras.saving.register_keras_serializable(package="vae_keras")
class Sampling(keras.layers.Layer):
    """Draws z = z_mean + exp(z_log_var / 2) * eps with eps ~ N(0, I) (reparameterization).

    The noise comes from a `keras.random.SeedGenerator`, so a layer built with a seed draws the
    same sequence of samples in every run, and gradients flow to `z_mean` and `z_log_var`.

    Args:
        seed: int or None. Seed of the layer's noise generator.
        **kwargs: base `keras.layers.Layer` arguments.

    Example:
    >>> import numpy as np
    >>> z = Sampling(seed=0)([np.zeros((2, 3)), np.zeros((2, 3))])
    >>> tuple(z.shape)
    (2, 3)
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        eps = keras.random.normal(ops.shape(z_mean), dtype=z_mean.dtype, seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * eps

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update({"seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="vae_keras")
class LogVarianceClip(keras.layers.Layer):
    """Keeps a log-variance inside [min_value, max_value] so that exp() can never overflow.

    A smooth clip: min + (max - min) * sigmoid(...) would change the model's parameterization;
    a plain clip leaves values in the range untouched and only stops runaway values.

    Args:
        min_value: float, lower bound of the log-variance.
        max_value: float, upper bound of the log-variance.
    """

    def __init__(self, min_value=-30.0, max_value=20.0, **kwargs):
        super().__init__(**kwargs)
        if not min_value < max_value:
            raise ConfigError(
                "LogVarianceClip needs min_value < max_value. "
                f"Received: min_value={min_value}, max_value={max_value}"
            )
        self.min_value = float(min_value)
        self.max_value = float(max_value)

    def call(self, inputs):
        return ops.clip(inputs, self.min_value, self.max_value)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"min_value": self.min_value, "max_value": self.max_value})
        return config
