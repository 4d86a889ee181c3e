"""Encoder and decoder builders (MLP and convolutional) for any H x W x C image shape, the fixed
64x64 architecture of Higgins et al. (2017) (``conv64``), and FactorVAE's discriminator.

The encoder maps an image to ``[z_mean, z_log_var]``; the decoder maps z to the raw parameters of
the likelihood, a tensor [B, H, W, C * params_per_channel] whose last layer is named ``x_params``
(so its bias can be initialised from the data mean).

``conv64`` (64x64 inputs only): encoder conv 4x4 stride 2 with 32-32-64-64 filters, dense 256, then
the latent; the decoder mirrors it (dense 256, dense 4*4*64, transposed conv 4x4 stride 2 with 64-32-32
filters, then one to the likelihood's parameters), as in disentanglement_lib. ``hidden`` is its four
filter counts.
"""

import math

import keras
from keras import layers

from vae_keras import checks
from vae_keras.errors import ConfigError
from vae_keras.layers import LogVarianceClip
from vae_keras.options import DEFAULT_DISCRIMINATOR_HIDDEN

NETWORKS = ("mlp", "conv", "conv64")
CONV64_FILTERS = (32, 32, 64, 64)  # Higgins et al. 2017; the dense layer is DEFAULT_DENSE_UNITS (256)
CONV64_SHAPE = (64, 64)
DEFAULT_MLP_HIDDEN = (512, 256)
CONV_FILTERS = (32, 64, 128, 256, 512)
DEFAULT_DENSE_UNITS = 256  # conv only: the dense layer between the conv stack and the latent


def _check_image_shape(image_shape):
    shape = tuple(int(d) for d in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(
            f"image_shape must be (height, width, channels) of positive ints. Received: image_shape={image_shape!r}"
        )
    return shape


def _check_positive_int(name, value):
    return checks.check_integer(name, value, 1, message="{name} must be a positive integer. Received: {name}={value!r}")


def _check_network(network):
    checks.check_choice("network", network, NETWORKS)


def default_hidden(network, image_shape):
    """Default hidden sizes: MLP (512, 256); conv doubles filters from 32 per stride-2 layer
    while the feature map stays at least 7 x 7 (28x28 -> (32, 64), 64x64 -> (32, 64, 128))."""
    if network == "mlp":
        return DEFAULT_MLP_HIDDEN
    if network == "conv64":
        return CONV64_FILTERS
    height, width, _ = image_shape
    n = 1
    while n < len(CONV_FILTERS) and math.ceil(height / 2 ** (n + 1)) >= 7 and math.ceil(width / 2 ** (n + 1)) >= 7:
        n += 1
    return CONV_FILTERS[:n]


def _num_downsamples(height, width, max_downsamples):
    """How many stride-2 convolutions keep the feature map at least 4 pixels on each side."""
    n = 0
    while n < max_downsamples and math.ceil(height / 2 ** (n + 1)) >= 4 and math.ceil(width / 2 ** (n + 1)) >= 4:
        n += 1
    return n


def conv_plan(image_shape, filters):
    """Returns (number of stride-2 layers, smallest feature map (h, w)) for a conv network.

    One stride-2 layer per entry of ``filters`` while the map stays >= 4 x 4; the decoder mirrors
    it from ceil(H / 2^n) x ceil(W / 2^n) and crops to H x W, so odd sizes work too.
    """
    height, width, _ = image_shape
    n = _num_downsamples(height, width, len(filters))
    return n, (math.ceil(height / 2**n), math.ceil(width / 2**n))


def _check_conv64(image_shape, hidden):
    """conv64 is for 64x64 images (any channels) with four filter counts."""
    if tuple(image_shape[:2]) != CONV64_SHAPE:
        raise ConfigError(
            f"network='conv64' is Higgins et al.'s architecture for 64x64 images. Received image_shape="
            f"{tuple(image_shape)}: use network='conv' (any size) or resize the images to 64x64.")
    if len(hidden) != len(CONV64_FILTERS):
        raise ConfigError(
            f"network='conv64' takes hidden as its {len(CONV64_FILTERS)} conv filter counts (default "
            f"{','.join(map(str, CONV64_FILTERS))}). Received: hidden={hidden!r}")


def _label_input(num_classes):
    """An int32 label input and its one-hot encoding (conditional networks only)."""
    _check_positive_int("num_classes", num_classes)
    label = keras.Input(shape=(), dtype="int32", name="label")
    return label, layers.CategoryEncoding(num_tokens=num_classes, output_mode="one_hot", name="label_one_hot")(label)


def build_encoder(image_shape, latent_dim, network="mlp", hidden=None, activation="relu", name="encoder",
                  num_classes=None):
    """Builds the encoder q(z|x): image -> [z_mean, z_log_var] (conditional: [x, label] -> ...).

    Args:
        image_shape: (H, W, C).
        latent_dim: size of z.
        network: "mlp" or "conv".
        hidden: MLP hidden units, or conv filters per stride-2 layer; defaults per network.
        activation: hidden activation.
        name: model name.
        num_classes: for a conditional encoder, the number of classes; the one-hot label joins
            the image features before the dense layers.

    Returns:
        A functional `keras.Model`.

    Example:
    >>> enc = build_encoder((28, 28, 1), 2)
    >>> [tuple(t.shape) for t in enc.outputs]
    [(None, 2), (None, 2)]
    """
    image_shape = _check_image_shape(image_shape)
    _check_positive_int("latent_dim", latent_dim)
    _check_network(network)
    hidden = tuple(hidden or default_hidden(network, image_shape))
    for h in hidden:
        _check_positive_int("hidden", h)
    if network == "conv64":
        _check_conv64(image_shape, hidden)
    x_in = keras.Input(shape=image_shape, name="x")
    inputs, one_hot = x_in, None
    if num_classes is not None:
        label, one_hot = _label_input(num_classes)
        inputs = [x_in, label]
    if network == "mlp":
        h = layers.Flatten()(x_in)
        if one_hot is not None:
            h = layers.Concatenate(name="with_label")([h, one_hot])
        for i, units in enumerate(hidden):
            h = layers.Dense(units, activation=activation, name=f"dense_{i}")(h)
    elif network == "conv64":
        h = x_in
        for i, filters in enumerate(hidden):
            h = layers.Conv2D(filters, 4, strides=2, padding="same", activation=activation, name=f"conv_{i}")(h)
        h = layers.Flatten()(h)
        if one_hot is not None:
            h = layers.Concatenate(name="with_label")([h, one_hot])
        h = layers.Dense(DEFAULT_DENSE_UNITS, activation=activation, name="dense")(h)
    else:
        h = x_in
        n, _ = conv_plan(image_shape, hidden)
        for i, filters in enumerate(hidden):
            h = layers.Conv2D(filters, 3, strides=2 if i < n else 1, padding="same", activation=activation, name=f"conv_{i}")(h)
        h = layers.Flatten()(h)
        if one_hot is not None:
            h = layers.Concatenate(name="with_label")([h, one_hot])
        h = layers.Dense(DEFAULT_DENSE_UNITS, activation=activation, name="dense")(h)
    z_mean = layers.Dense(latent_dim, name="z_mean")(h)
    z_log_var = layers.Dense(latent_dim, name="z_log_var_raw")(h)
    z_log_var = LogVarianceClip(name="z_log_var")(z_log_var)
    return keras.Model(inputs, [z_mean, z_log_var], name=name)


def build_decoder(image_shape, latent_dim, params_per_channel=1, network="mlp", hidden=None, activation="relu",
                  name="decoder", num_classes=None):
    """Builds the decoder p(x|z): z -> likelihood parameters [B, H, W, C * params_per_channel].

    Args:
        image_shape: (H, W, C) of the images.
        latent_dim: size of z.
        params_per_channel: how many parameters the likelihood needs per pixel channel.
        network: "mlp" or "conv"; mirrors `build_encoder`.
        hidden: as for `build_encoder` (used in reverse order).
        activation: hidden activation.
        name: model name.
        num_classes: for a conditional decoder ([z, label] -> ...), the number of classes.

    Example:
    >>> dec = build_decoder((28, 28, 1), 2, network="conv")
    >>> tuple(dec.output.shape)
    (None, 28, 28, 1)
    """
    image_shape = _check_image_shape(image_shape)
    _check_positive_int("latent_dim", latent_dim)
    _check_positive_int("params_per_channel", params_per_channel)
    _check_network(network)
    hidden = tuple(hidden or default_hidden(network, image_shape))
    if network == "conv64":
        _check_conv64(image_shape, hidden)
    height, width, channels = image_shape
    out_channels = channels * params_per_channel
    z_in = keras.Input(shape=(latent_dim,), name="z")
    inputs, h_in = z_in, z_in
    if num_classes is not None:
        label, one_hot = _label_input(num_classes)
        inputs = [z_in, label]
        h_in = layers.Concatenate(name="with_label")([z_in, one_hot])
    if network == "mlp":
        h = h_in
        for i, units in enumerate(reversed(hidden)):
            h = layers.Dense(units, activation=activation, name=f"dense_{i}")(h)
        h = layers.Dense(height * width * out_channels, name="x_params")(h)
        out = layers.Reshape((height, width, out_channels), name="x_params_image")(h)
    elif network == "conv64":
        side = CONV64_SHAPE[0] // 2 ** len(hidden)  # 4
        h = layers.Dense(DEFAULT_DENSE_UNITS, activation=activation, name="dense")(h_in)
        h = layers.Dense(side * side * hidden[-1], activation=activation, name="dense_map")(h)
        h = layers.Reshape((side, side, hidden[-1]))(h)
        for i, filters in enumerate(reversed(hidden[:-1])):
            h = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", activation=activation, name=f"deconv_{i}")(h)
        out = layers.Conv2DTranspose(out_channels, 4, strides=2, padding="same", name="x_params")(h)
    else:
        n, (h0, w0) = conv_plan(image_shape, hidden)
        h = layers.Dense(DEFAULT_DENSE_UNITS, activation=activation, name="dense")(h_in)
        h = layers.Dense(h0 * w0 * hidden[-1], activation=activation, name="dense_map")(h)
        h = layers.Reshape((h0, w0, hidden[-1]))(h)
        for i, filters in enumerate(reversed(hidden)):
            stride = 2 if len(hidden) - 1 - i < n else 1
            h = layers.Conv2DTranspose(filters, 3, strides=stride, padding="same", activation=activation, name=f"deconv_{i}")(h)
        h = layers.Conv2D(out_channels, 3, padding="same", name="x_params")(h)
        crop_h, crop_w = h0 * 2**n - height, w0 * 2**n - width
        out = layers.Cropping2D(((0, crop_h), (0, crop_w)), name="crop")(h) if crop_h or crop_w else h
    return keras.Model(inputs, out, name=name)


def build_discriminator(latent_dim, hidden=DEFAULT_DISCRIMINATOR_HIDDEN, name="discriminator"):
    """FactorVAE's discriminator (Kim & Mnih 2018): z [B, latent_dim] -> 2 logits [B, 2], column 0 for
    "a sample of q(z)", column 1 for "a dimension-wise permuted sample" (of the product of the marginals).

    Always float32 (whatever the global dtype policy): it is part of the loss, and trained by its own
    optimizer without loss scaling.

    Example:
    >>> tuple(build_discriminator(10, hidden=(16, 16)).output.shape)
    (None, 2)
    """
    _check_positive_int("latent_dim", latent_dim)
    hidden = tuple(hidden)
    if not hidden:
        raise ConfigError(f"discriminator_hidden must list at least one layer size. Received: {hidden!r}")
    for units in hidden:
        _check_positive_int("discriminator_hidden", units)
    z_in = keras.Input(shape=(latent_dim,), name="z")
    h = z_in
    for i, units in enumerate(hidden):
        h = layers.Dense(units, name=f"dense_{i}", dtype="float32")(h)
        h = layers.LeakyReLU(negative_slope=0.2, name=f"leaky_relu_{i}", dtype="float32")(h)
    logits = layers.Dense(2, name="logits", dtype="float32")(h)
    return keras.Model(z_in, logits, name=name)
