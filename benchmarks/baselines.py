"""Two classic VAEs re-implemented in plain Keras 3, as yardsticks for vae_keras.

Nothing here imports vae_keras: these are the baselines, trained the way their authors trained them.
(The harness scores them with vae_keras's importance-weighted estimator through a small adapter in
`benchmarks/run.py`; that is scoring, not training.)

1. **The official Keras VAE example** (keras-io ``examples/generative/vae.py``): encoder Conv2D
   32 -> Conv2D 64 (3x3, stride 2, relu, same) -> Flatten -> Dense 16 relu -> z_mean / z_log_var
   (latent 2) -> Sampling; decoder Dense 7*7*64 relu -> Reshape -> Conv2DTranspose 64 -> 32
   (stride 2, relu) -> Conv2DTranspose 1 sigmoid. Its ``train_step`` minimises
   ``binary_crossentropy`` summed over pixels + KL, Adam defaults, batch 128, ``model.fit`` on a
   numpy array of intensities in [0, 1].

   One change, which does not alter the function computed: the last layer
   ``Conv2DTranspose(1, 3, activation="sigmoid")`` is split into ``Conv2DTranspose(1, 3,
   name="x_logits")`` followed by ``Activation("sigmoid")`` (sigmoid(W*h + b) either way), so the
   scorer can read the Bernoulli logits (a log-likelihood computed from clipped probabilities
   would be inaccurate for confident pixels). Training still uses the example's
   ``keras.losses.binary_crossentropy`` on the sigmoid output. Unlike the example, which trains
   on MNIST's train and test images together, only the training split is used here.

2. **Burda, Grosse & Salakhutdinov (2016), "Importance Weighted Autoencoders"**, the VAE with one
   stochastic layer (k = 1): encoder 784-200-200 tanh -> 50-dim Gaussian (mean and log-variance
   from linear layers), decoder 50-200-200 tanh -> 784 Bernoulli logits; dynamic binarization of
   every training batch; Adam with beta1 = 0.9, beta2 = 0.999, epsilon = 1e-4 and learning rate
   1e-3 (the first stage of their schedule, which is all a budget of minutes ever reaches); batch
   20 as in the paper. Weights use Keras's default Glorot-uniform initialisation (the paper uses
   the Glorot "heuristic" initialisation too).

3. **Burda et al.'s VAE at batch 100** (``burda2016_b100``): the same model and optimizer, batch 100
   (faster per image on this CPU, so stronger at equal time), with the decoder's output bias set so
   that the decoded mean starts at the training images' pixel mean (logit of the mean clipped to
   [1e-3, 1 - 1e-3]), as vae_keras does: the strongest plain-Keras VAE we know at a fixed budget.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

IMAGE_SHAPE = (28, 28, 1)
KERAS_EXAMPLE_BATCH = 128
KERAS_EXAMPLE_LATENT = 2
BURDA_BATCH = 20
BURDA_BATCH_LARGE = 100
BURDA_LATENT = 50
BURDA_HIDDEN = 200


def _check_shape(image_shape):
    if tuple(image_shape) != IMAGE_SHAPE:
        raise ValueError(f"The baselines are defined for 28x28x1 images. Received: image_shape={tuple(image_shape)}")


class Sampling(layers.Layer):
    """z = z_mean + exp(z_log_var / 2) * eps, as in the Keras example."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        eps = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * eps


def _kl(z_mean, z_log_var):
    kl = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
    return ops.mean(ops.sum(kl, axis=1))


class _Trackers(keras.Model):
    """The example's three `keras.metrics.Mean` trackers, reset by Keras every epoch."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def _apply(self, tape, total, reconstruction, kl):
        """The example's update: the gradient of ``total`` (recorded on ``tape``) applied, the trackers updated."""
        grads = tape.gradient(total, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        return self._report(total, reconstruction, kl)

    def _report(self, total, reconstruction, kl):
        self.total_loss_tracker.update_state(total)
        self.reconstruction_loss_tracker.update_state(reconstruction)
        self.kl_loss_tracker.update_state(kl)
        return {
            "loss": self.total_loss_tracker.result(),
            "reconstruction_loss": self.reconstruction_loss_tracker.result(),
            "kl_loss": self.kl_loss_tracker.result(),
        }


# ------------------------------------------------------------------------ 1. the Keras example
def keras_example_networks(latent_dim=KERAS_EXAMPLE_LATENT, with_sampling=True, seed=None):
    """The Keras example's encoder and decoder.

    Args:
        latent_dim: 2 in the example.
        with_sampling: True gives the example's encoder outputs ``[z_mean, z_log_var, z]``;
            False gives ``[z_mean, z_log_var]`` (the form `vae_keras.VAE` expects).
        seed: seed of the Sampling layer.

    Returns:
        ``(encoder, decoder)``; the decoder outputs sigmoid probabilities and has a layer named
        ``x_logits`` holding the logits (see `logits_decoder`).
    """
    encoder_inputs = keras.Input(shape=IMAGE_SHAPE)
    x = layers.Conv2D(32, 3, activation="relu", strides=2, padding="same")(encoder_inputs)
    x = layers.Conv2D(64, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(16, activation="relu")(x)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    outputs = [z_mean, z_log_var]
    if with_sampling:
        outputs.append(Sampling(seed=seed)([z_mean, z_log_var]))
    encoder = keras.Model(encoder_inputs, outputs, name="encoder")

    latent_inputs = keras.Input(shape=(latent_dim,))
    x = layers.Dense(7 * 7 * 64, activation="relu")(latent_inputs)
    x = layers.Reshape((7, 7, 64))(x)
    x = layers.Conv2DTranspose(64, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Conv2DTranspose(32, 3, activation="relu", strides=2, padding="same")(x)
    logits = layers.Conv2DTranspose(1, 3, padding="same", name="x_logits")(x)
    decoder_outputs = layers.Activation("sigmoid", name="x_mean")(logits)
    decoder = keras.Model(latent_inputs, decoder_outputs, name="decoder")
    return encoder, decoder


def logits_decoder(decoder):
    """A view of a decoder that outputs its ``x_logits`` layer (shares the weights)."""
    return keras.Model(decoder.inputs, decoder.get_layer("x_logits").output, name="decoder_logits")


class KerasExampleVAE(_Trackers):
    """The Keras example's `VAE` model: `train_step` with a `GradientTape`, BCE summed over pixels + KL."""

    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder

    def call(self, x):
        z_mean, _, _ = self.encoder(x)
        return self.decoder(z_mean)

    def train_step(self, data):
        with tf.GradientTape() as tape:
            z_mean, z_log_var, z = self.encoder(data)
            reconstruction = self.decoder(z)
            reconstruction_loss = ops.mean(
                ops.sum(keras.losses.binary_crossentropy(data, reconstruction), axis=(1, 2))
            )
            kl_loss = _kl(z_mean, z_log_var)
            total_loss = reconstruction_loss + kl_loss
        return self._apply(tape, total_loss, reconstruction_loss, kl_loss)


def build_keras_example(image_shape=IMAGE_SHAPE, seed=0):
    """The compiled Keras example VAE (Adam with Keras defaults). Train it with `fit_kwargs_keras_example`."""
    _check_shape(image_shape)
    encoder, decoder = keras_example_networks(seed=seed)
    vae = KerasExampleVAE(encoder, decoder, name="keras_example_vae")
    vae.compile(optimizer=keras.optimizers.Adam())
    vae(np.zeros((1,) + IMAGE_SHAPE, np.float32))
    return vae


def keras_example_scoring_parts(vae):
    """``(encoder -> [z_mean, z_log_var], z -> Bernoulli logits)`` of a trained Keras example VAE."""
    enc = vae.encoder
    return (keras.Model(enc.inputs, enc.outputs[:2], name="encoder_mean_logvar"), logits_decoder(vae.decoder))


# ------------------------------------------------------------------------ 2. Burda et al. 2016
def burda_networks(latent_dim=BURDA_LATENT, hidden=BURDA_HIDDEN):
    """784-200-200-50 tanh encoder (Gaussian mean, log-variance) and the mirrored decoder (logits)."""
    x_in = keras.Input(shape=IMAGE_SHAPE)
    h = layers.Flatten()(x_in)
    h = layers.Dense(hidden, activation="tanh")(h)
    h = layers.Dense(hidden, activation="tanh")(h)
    z_mean = layers.Dense(latent_dim, name="z_mean")(h)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(h)
    encoder = keras.Model(x_in, [z_mean, z_log_var], name="burda_encoder")

    z_in = keras.Input(shape=(latent_dim,))
    h = layers.Dense(hidden, activation="tanh")(z_in)
    h = layers.Dense(hidden, activation="tanh")(h)
    h = layers.Dense(int(np.prod(IMAGE_SHAPE)), name="x_logits")(h)
    logits = layers.Reshape(IMAGE_SHAPE)(h)
    decoder = keras.Model(z_in, logits, name="burda_decoder")
    return encoder, decoder


class BurdaVAE(_Trackers):
    """One-stochastic-layer VAE trained on the ELBO with dynamic binarization (Burda et al. 2016, k=1)."""

    def __init__(self, encoder, decoder, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.sampling_noise = keras.random.SeedGenerator(seed)
        self.binarize_noise = keras.random.SeedGenerator(None if seed is None else seed + 1)

    def call(self, x):
        z_mean, _ = self.encoder(x)
        return ops.sigmoid(self.decoder(z_mean))

    def train_step(self, data):
        x = ops.cast(keras.random.uniform(ops.shape(data), seed=self.binarize_noise) < data, "float32")
        with tf.GradientTape() as tape:
            z_mean, z_log_var = self.encoder(x)
            eps = keras.random.normal(ops.shape(z_mean), seed=self.sampling_noise)
            z = z_mean + ops.exp(0.5 * z_log_var) * eps
            logits = self.decoder(z)
            bce = ops.binary_crossentropy(x, logits, from_logits=True)
            reconstruction_loss = ops.mean(ops.sum(bce, axis=(1, 2, 3)))
            kl_loss = _kl(z_mean, z_log_var)
            total_loss = reconstruction_loss + kl_loss
        return self._apply(tape, total_loss, reconstruction_loss, kl_loss)


def build_burda(image_shape=IMAGE_SHAPE, seed=0):
    """The compiled Burda et al. VAE: Adam(1e-3, beta1 0.9, beta2 0.999, epsilon 1e-4)."""
    _check_shape(image_shape)
    encoder, decoder = burda_networks()
    vae = BurdaVAE(encoder, decoder, seed=seed, name="burda_vae")
    vae.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-4))
    vae(np.zeros((1,) + IMAGE_SHAPE, np.float32))
    return vae


def set_output_bias_from_mean(vae, x_train_float):
    """Sets the decoder's ``x_logits`` bias to logit(pixel mean), clipped to [1e-3, 1 - 1e-3]."""
    p = np.clip(np.asarray(x_train_float, np.float64).mean(axis=0), 1e-3, 1.0 - 1e-3)
    layer = vae.decoder.get_layer("x_logits")
    layer.bias.assign((np.log(p) - np.log1p(-p)).reshape(layer.bias.shape).astype(np.float32))


def burda_scoring_parts(vae):
    """``(encoder -> [z_mean, z_log_var], z -> Bernoulli logits)`` of a trained Burda VAE."""
    return vae.encoder, vae.decoder


BASELINES = {
    # name: (builder, batch size, scoring parts)
    "keras_example": (build_keras_example, KERAS_EXAMPLE_BATCH, keras_example_scoring_parts),
    "burda2016": (build_burda, BURDA_BATCH, burda_scoring_parts),
    "burda2016_b100": (build_burda, BURDA_BATCH_LARGE, burda_scoring_parts),
}
OUTPUT_BIAS_FROM_MEAN = ("burda2016_b100",)  # baselines whose output bias starts at the data mean


def train_baseline(name, x_train_float, callbacks=(), epochs=10_000, seed=0, verbose=0, batch_size=None):
    """Trains a baseline the way its code does: ``model.fit`` on a float32 numpy array in [0, 1].

    Args:
        name: a key of `BASELINES`.
        x_train_float: float32 [N, 28, 28, 1] intensities.
        callbacks: Keras callbacks (the harness's time limit and snapshots).
        epochs: maximum epochs (the harness stops by time).
        seed: Keras global seed (initialisation, sampling, shuffling).
        batch_size: override of the paper's batch size.

    Returns:
        The trained model.
    """
    builder, default_batch, _ = BASELINES[name]
    keras.utils.set_random_seed(seed)
    model = builder(x_train_float.shape[1:], seed=seed)
    if name in OUTPUT_BIAS_FROM_MEAN:
        set_output_bias_from_mean(model, x_train_float)
    model.fit(x_train_float, epochs=epochs, batch_size=batch_size or default_batch, shuffle=True,
              callbacks=list(callbacks), verbose=verbose)
    return model
