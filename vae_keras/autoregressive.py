"""The autoregressive (PixelCNN) decoder: p(x|z) = prod_i p(x_i | x_<i, z) in raster order.

As in PixelVAE (Gulrajani et al. 2017) and VLAE (Chen et al. 2017), a few masked convolutions
(van den Oord et al. 2016) run over the image itself, each layer also receiving a feature map of z:

- the *trunk* is the factorized decoder of `vae_keras.networks` (MLP or conv), mapping z (and the
  label of a conditional model) to a feature map [B, H, W, COND_CHANNELS] instead of the likelihood's
  parameters;
- the *head* is a mask-A 7x7 convolution of x (a pixel never sees itself) followed by
  ``PIXELCNN_LAYERS`` residual mask-B 3x3 convolutions, each adding a 1x1 convolution of the trunk's
  map; the last layer, ``x_params`` (1x1), reads the head's features and the trunk's map and gives one
  Bernoulli logit per pixel channel. All channels of a pixel are conditionally independent given the
  earlier pixels and z.

The decoder is a functional model ``[z, x_pixels]`` (conditional: ``[z, label, x_pixels]``) -> logits
[B, H, W, C]: in training the logits of every pixel given the true earlier pixels come from one pass
(teacher forcing), so log p(x|z) is exact and costs one forward pass. Generating x needs H * W passes
of the head, one per pixel (`sequential_decode`).
"""

import keras
import numpy as np
from keras import layers

from vae_keras import checks
from vae_keras.errors import ConfigError

DECODERS = ("factorized", "pixelcnn")
PIXEL_INPUT = "x_pixels"  # the name of the autoregressive decoder's image input
TRUNK = "trunk"
HEAD = "pixelcnn_head"
COND_CHANNELS = 8
PIXELCNN_FILTERS = 32
PIXELCNN_LAYERS = 3
MASK_TYPES = ("A", "B")


@keras.saving.register_keras_serializable(package="vae_keras")
class MaskedConv2D(layers.Conv2D):
    """A stride-1 "same" convolution whose kernel only sees the pixels before the centre, in raster
    order (rows above; the same row to the left). Mask "A" also hides the centre pixel (the first layer
    over x), mask "B" keeps it (later layers, whose centre features already depend on earlier pixels only).

    The mask is a constant (not a weight), applied to the kernel in every call, so the kernel's hidden
    entries never act, whatever the optimizer does to them.

    Args:
        filters: output channels.
        kernel_size: odd int or (odd, odd).
        mask_type: "A" or "B".
        **kwargs: further `keras.layers.Conv2D` arguments (not strides, dilation or padding).

    Example:
    >>> import numpy as np
    >>> layer = MaskedConv2D(1, 3, mask_type="A", kernel_initializer="ones", use_bias=False)
    >>> x = np.zeros((1, 3, 3, 1), "float32"); x[0, 1, 1, 0] = 1.0  # only the centre pixel is on
    >>> float(layer(x)[0, 1, 1, 0]), float(layer(x)[0, 2, 2, 0])  # centre hidden from itself; seen later
    (0.0, 1.0)
    """

    def __init__(self, filters, kernel_size, mask_type="B", **kwargs):
        checks.check_choice("mask_type", mask_type, MASK_TYPES)
        for name, default in (("strides", (1, 1)), ("dilation_rate", (1, 1)), ("padding", "same")):
            value = kwargs.pop(name, default)
            if (tuple(value) if isinstance(value, (list, tuple)) else value) not in (default, 1):
                raise ConfigError(f"MaskedConv2D is a stride-1, undilated 'same' convolution. Received: {name}={value!r}")
        super().__init__(filters, kernel_size, padding="same", **kwargs)
        if any(k % 2 == 0 for k in self.kernel_size):
            raise ConfigError(f"MaskedConv2D needs an odd kernel size (it has a centre). Received: kernel_size={kernel_size!r}")
        self.mask_type = mask_type

    def kernel_mask(self, in_channels):
        """The constant 0/1 mask [kh, kw, in_channels, filters]."""
        kh, kw = self.kernel_size
        mask = np.ones((kh, kw, in_channels, self.filters), "float32")
        mask[kh // 2, kw // 2 + (self.mask_type == "B"):] = 0.0
        mask[kh // 2 + 1:] = 0.0
        return mask

    def build(self, input_shape):
        super().build(input_shape)
        self._mask = self.kernel_mask(int(input_shape[-1]))

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, kernel * keras.ops.cast(self._mask, kernel.dtype))

    def get_config(self):
        config = super().get_config()
        for name in ("strides", "dilation_rate", "padding"):
            config.pop(name, None)
        config["mask_type"] = self.mask_type
        return config


def check_decoder(decoder):
    """Refuses an unknown decoder name."""
    checks.check_choice("decoder", decoder, DECODERS)
    return decoder


def decoder_kind(decoder_network):
    """"pixelcnn" for a decoder network with an image input named `PIXEL_INPUT`, else "factorized"."""
    names = [getattr(t, "name", "") for t in decoder_network.inputs]
    return "pixelcnn" if any(n.split(":")[0] == PIXEL_INPUT for n in names) else "factorized"


def build_head(image_shape, filters=PIXELCNN_FILTERS, num_layers=PIXELCNN_LAYERS,
               cond_channels=COND_CHANNELS, activation="relu", name=HEAD):
    """The PixelCNN head: ``[cond [B, H, W, cond_channels], x [B, H, W, C]]`` -> features for `x_params`."""
    height, width, channels = image_shape
    cond = keras.Input(shape=(height, width, cond_channels), name="cond")
    x = keras.Input(shape=(height, width, channels), name="x")
    h = MaskedConv2D(filters, 7, mask_type="A", name="masked_a")(x)
    h = layers.Add(name="masked_a_with_z")([h, layers.Conv2D(filters, 1, name="cond_a")(cond)])
    h = layers.Activation(activation, name="masked_a_act")(h)
    for i in range(num_layers):
        u = MaskedConv2D(filters, 3, mask_type="B", name=f"masked_b_{i}")(h)
        u = layers.Add(name=f"masked_b_{i}_with_z")([u, layers.Conv2D(filters, 1, name=f"cond_b_{i}")(cond)])
        h = layers.Add(name=f"residual_{i}")([h, layers.Activation(activation, name=f"masked_b_{i}_act")(u)])
    features = layers.Concatenate(name="features")([h, cond])
    return keras.Model([cond, x], features, name=name)


def build_pixelcnn_decoder(image_shape, latent_dim, params_per_channel=1, network="mlp", hidden=None,
                           activation="relu", name="decoder", num_classes=None):
    """The autoregressive decoder ``[z, x_pixels]`` (conditional ``[z, label, x_pixels]``) -> logits [B, H, W, C * P].

    Arguments as for `vae_keras.networks.build_decoder`, whose network is the trunk here.

    Example:
    >>> dec = build_pixelcnn_decoder((28, 28, 1), 2)
    >>> [tuple(t.shape) for t in dec.inputs], tuple(dec.output.shape)
    ([(None, 2), (None, 28, 28, 1)], (None, 28, 28, 1))
    """
    from vae_keras import networks

    trunk = networks.build_decoder(image_shape, latent_dim, COND_CHANNELS, network, hidden, activation, name=TRUNK,
                                   num_classes=num_classes)
    height, width, channels = (int(d) for d in image_shape)
    head = build_head((height, width, channels), cond_channels=channels * COND_CHANNELS, activation=activation)
    trunk_inputs = [keras.Input(shape=tuple(t.shape[1:]), dtype=t.dtype, name=t.name.split(":")[0]) for t in trunk.inputs]
    x = keras.Input(shape=(height, width, channels), name=PIXEL_INPUT)
    cond = layers.Activation(activation, name="cond_act")(trunk(trunk_inputs if num_classes else trunk_inputs[0]))
    logits = layers.Conv2D(channels * params_per_channel, 1, name="x_params")(head([cond, x]))
    return keras.Model(trunk_inputs + [x], logits, name=name)


def conditioning(decoder, z, label=None):
    """The trunk's map of z (and label): the part of the decoder that does not depend on x."""
    trunk_inputs = z if label is None else [z, keras.ops.cast(label, "int32")]
    return decoder.get_layer("cond_act")(decoder.get_layer(TRUNK)(trunk_inputs))


def head_logits(decoder, cond, x, training=False):
    """The logits of every pixel given the earlier pixels of x and the trunk's map ``cond``."""
    return decoder.get_layer("x_params")(decoder.get_layer(HEAD)([cond, x], training=training))


def sequential_decode(decoder, z, label=None, seed=None):
    """Generates x one pixel at a time (raster order) in a `tf.while_loop` of H * W steps.

    Args:
        decoder: a PixelCNN decoder (`build_pixelcnn_decoder`).
        z: latent codes [B, latent_dim].
        label: labels [B] of a conditional model.
        seed: None for greedy decoding (each pixel takes its more likely value, p >= 0.5: deterministic),
            or an int32 scalar (a Python int or a tensor) for sampling: pixel i is 1 iff u_i < p_i, with
            u = `tf.random.stateless_uniform` of shape [B, H, W, C] at seed [seed, 1] (the same seed gives
            the same images).

    Returns:
        (x, logits): the generated binary images [B, H, W, C] and each pixel's logit given the earlier
        generated pixels and z (sigmoid(logits) is the per-pixel probability along the generated path).
    """
    import tensorflow as tf  # the loop is TensorFlow-specific (tf.while_loop, stateless random ops)

    z = tf.convert_to_tensor(z, tf.float32)
    cond = conditioning(decoder, z, label)
    height, width, channels = (int(d) for d in decoder.get_layer(HEAD).inputs[1].shape[1:])
    shape = tf.stack([tf.shape(z)[0], height, width, channels])
    if seed is None:
        threshold = tf.fill(shape, 0.5)
    else:
        threshold = tf.random.stateless_uniform(shape, seed=tf.stack([tf.cast(seed, tf.int32), 1]))
    num_pixels = height * width

    def body(i, x):
        probs = tf.sigmoid(tf.cast(head_logits(decoder, cond, x), tf.float32))
        where = tf.reshape(tf.one_hot(i, num_pixels, dtype=tf.float32), (1, height, width, 1))
        value = tf.cast(probs >= threshold if seed is None else threshold < probs, tf.float32)
        return i + 1, x + where * value  # pixel i was 0 so far

    _, x = tf.while_loop(lambda i, x: i < num_pixels, body, (tf.constant(0), tf.zeros(shape, tf.float32)),
                         parallel_iterations=1)
    # Pixel i's logit depends on pixels < i only, all final now: one pass gives every pixel's logit on this path.
    return x, tf.cast(head_logits(decoder, cond, x), tf.float32)
