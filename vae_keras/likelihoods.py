"""Decoder distributions p(x|z): log-likelihoods in nats, means, and their parameters.

A likelihood turns the decoder's raw output, a tensor [B, H, W, C * params_per_channel], into named
parameters (Bernoulli: ``x_logits``), a mean image ``x_mean`` and ``log_prob(x)`` summed over all
pixels (one number per image, so the reconstruction term is a sum over pixels as the ELBO needs).
"""

import abc
import math

import keras
from keras import ops

from vae_keras import checks
from vae_keras.errors import ConfigError
from vae_keras.gaussian import LOG_2PI


class Likelihood(abc.ABC):
    """Base class. Subclasses set `name`, `param_names` and implement the methods below."""

    name = None
    param_names = ()

    @property
    def params_per_channel(self):
        return len(self.param_names)

    def split(self, outputs):
        """Splits the decoder output [B, H, W, C * P] into a dict of [B, H, W, C] parameters."""
        if self.params_per_channel == 1:
            return {self.param_names[0]: outputs}
        parts = ops.split(outputs, self.params_per_channel, axis=-1)
        return dict(zip(self.param_names, parts))

    @abc.abstractmethod
    def log_prob(self, x, outputs):
        """log p(x|z) in nats, summed over pixels: a tensor [B]."""

    @abc.abstractmethod
    def mean(self, outputs):
        """E[x|z]: a tensor [B, H, W, C] in the data's range."""

    @abc.abstractmethod
    def output_bias(self, pixel_mean):
        """Decoder output bias [H, W, C * P] that makes the mean equal ``pixel_mean`` [H, W, C]."""

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="vae_keras")
class Bernoulli(Likelihood):
    """Independent Bernoulli pixels parameterized by logits (numerically stable for any logit).

    log p(x|l) = x * l - softplus(l), which is the negative binary cross-entropy with logits and is
    valid for intensities in [0, 1] too (the cross-entropy of "soft" targets).

    Example:
    >>> import numpy as np
    >>> float(Bernoulli().log_prob(np.ones((1, 1, 1, 1)), np.zeros((1, 1, 1, 1)))[0])  # log 0.5
    -0.6931...
    """

    name = "bernoulli"
    param_names = ("x_logits",)

    def log_prob(self, x, outputs):
        logits = ops.convert_to_tensor(outputs)
        x = ops.cast(x, logits.dtype)
        # x*l - softplus(l) == -(max(l, 0) - l*x + log1p(exp(-|l|)))
        per_pixel = -(ops.relu(logits) - logits * x + ops.log1p(ops.exp(-ops.abs(logits))))
        return ops.sum(ops.reshape(per_pixel, (ops.shape(per_pixel)[0], -1)), axis=-1)

    def mean(self, outputs):
        return ops.sigmoid(outputs)

    def output_bias(self, pixel_mean):
        p = ops.clip(ops.convert_to_tensor(pixel_mean, "float32"), 1e-3, 1.0 - 1e-3)
        return ops.log(p) - ops.log1p(-p)


@keras.saving.register_keras_serializable(package="vae_keras")
class Gaussian(Likelihood):
    """Independent Gaussian pixels with a per-pixel mean and either a fixed or a learned scale.

    Args:
        scale: a positive float for a fixed standard deviation (the decoder then outputs only the
            mean), or ``"learned"`` for a per-pixel log-scale output by the decoder.
        min_log_scale: lower bound of the learned log-scale (keeps the density finite).
    """

    name = "gaussian"

    def __init__(self, scale="learned", min_log_scale=-7.0):
        if scale != "learned":
            try:
                scale = float(scale)
            except (TypeError, ValueError):
                scale = -1.0
            if not scale > 0 or not math.isfinite(scale):
                raise ConfigError(
                    "Gaussian scale must be 'learned' or a positive number. "
                    f"Received: scale={scale!r}"
                )
        self.scale = scale
        self.min_log_scale = float(min_log_scale)

    @property
    def param_names(self):
        return ("x_loc",) if self.scale != "learned" else ("x_loc", "x_log_scale")

    def _loc_log_scale(self, outputs):
        params = self.split(outputs)
        loc = params["x_loc"]
        if self.scale == "learned":
            log_scale = ops.maximum(params["x_log_scale"], self.min_log_scale)
        else:
            log_scale = ops.full_like(loc, math.log(self.scale))
        return loc, log_scale

    def log_prob(self, x, outputs):
        loc, log_scale = self._loc_log_scale(ops.convert_to_tensor(outputs))
        x = ops.cast(x, loc.dtype)
        per_pixel = -0.5 * LOG_2PI - log_scale - 0.5 * ops.square((x - loc) * ops.exp(-log_scale))
        return ops.sum(ops.reshape(per_pixel, (ops.shape(per_pixel)[0], -1)), axis=-1)

    def mean(self, outputs):
        return self.split(outputs)["x_loc"]

    def output_bias(self, pixel_mean):
        loc = ops.convert_to_tensor(pixel_mean, "float32")
        if self.scale != "learned":
            return loc
        return ops.concatenate([loc, ops.full_like(loc, math.log(0.1))], axis=-1)

    def get_config(self):
        return {"scale": self.scale, "min_log_scale": self.min_log_scale}


@keras.saving.register_keras_serializable(package="vae_keras")
class DiscretizedLogistic(Likelihood):
    """A logistic distribution per pixel channel, discretized to the 256 levels of 8-bit images.

    Pixel values x = k / 255 (k = 0..255) get the probability mass of the bin [x - 1/510,
    x + 1/510] under Logistic(loc, scale); the edge bins take the tails (Salimans et al. 2017,
    PixelCNN++, without the mixture), so the masses of the 256 levels sum to one and
    -log p(x) is a proper code length in nats (bits per dimension = nats / (D * ln 2)).

    Args:
        num_levels: number of intensity levels (256 for 8-bit images).
        min_log_scale: lower bound of the log-scale.
    """

    name = "logistic"
    param_names = ("x_loc", "x_log_scale")

    def __init__(self, num_levels=256, min_log_scale=-7.0):
        checks.check_integer("num_levels", num_levels, 2)
        self.num_levels = num_levels
        self.min_log_scale = float(min_log_scale)

    def log_prob(self, x, outputs):
        params = self.split(ops.convert_to_tensor(outputs))
        loc = params["x_loc"]
        log_scale = ops.maximum(params["x_log_scale"], self.min_log_scale)
        x = ops.cast(x, loc.dtype)
        top = float(self.num_levels - 1)
        half_bin = 0.5 / top
        inv_scale = ops.exp(-log_scale)
        centered = x - loc
        plus_in = inv_scale * (centered + half_bin)
        min_in = inv_scale * (centered - half_bin)
        log_cdf_plus = plus_in - ops.softplus(plus_in)  # log sigmoid(plus_in), the lowest bin
        log_one_minus_cdf_min = -ops.softplus(min_in)  # log (1 - sigmoid(min_in)), the highest bin
        cdf_delta = ops.sigmoid(plus_in) - ops.sigmoid(min_in)
        mid_in = inv_scale * centered
        # Where the bin's mass underflows, use the density at its centre times the bin width.
        log_pdf_mid = mid_in - log_scale - 2.0 * ops.softplus(mid_in) - math.log(top)
        log_mid = ops.where(cdf_delta > 1e-5, ops.log(ops.maximum(cdf_delta, 1e-12)), log_pdf_mid)
        per_pixel = ops.where(x < half_bin, log_cdf_plus, ops.where(x > 1.0 - half_bin, log_one_minus_cdf_min, log_mid))
        return ops.sum(ops.reshape(per_pixel, (ops.shape(per_pixel)[0], -1)), axis=-1)

    def mean(self, outputs):
        return ops.clip(self.split(outputs)["x_loc"], 0.0, 1.0)

    def output_bias(self, pixel_mean):
        loc = ops.convert_to_tensor(pixel_mean, "float32")
        return ops.concatenate([loc, ops.full_like(loc, math.log(0.1))], axis=-1)

    def get_config(self):
        return {"num_levels": self.num_levels, "min_log_scale": self.min_log_scale}


LIKELIHOODS = {"bernoulli": Bernoulli, "gaussian": Gaussian, "logistic": DiscretizedLogistic}


def get(identifier):
    """Returns a likelihood object from a name, a config dict or an instance."""
    if isinstance(identifier, Likelihood):
        return identifier
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    if isinstance(identifier, str) and identifier.lower() in LIKELIHOODS:
        return LIKELIHOODS[identifier.lower()]()
    raise ConfigError(
        f"Unknown likelihood. Expected one of {sorted(LIKELIHOODS)}. Received: likelihood={identifier!r}"
    )


def serialize(likelihood):
    return keras.saving.serialize_keras_object(likelihood)
