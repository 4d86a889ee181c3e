"""The variational autoencoder as a subclassed `keras.Model`.

loss = reconstruction + beta * KL, where
  reconstruction = -log p(x|z), summed over pixels, averaged over the batch, z ~ q(z|x);
  KL = KL(q(z|x) || N(0, I)), analytic, summed over latent dims, averaged over the batch.
  With a learned prior (``prior="vamp"`` or ``"mog"``, `vae_keras.priors`) KL has no closed form and
  is the Monte-Carlo term log q(z|x) - log p(z) at the same z.
`train_step`/`test_step` compute it, so `model.fit`, `model.evaluate` and callbacks work as usual;
`call(x)` is the deterministic reconstruction from z_mean. How the options combine (warm-up, free
bits, controlled capacity, the IWAE objective, the disentangling objectives beta-TCVAE, FactorVAE and
DIP-VAE-I/II, sample weights) is `vae_keras.options`' contract.

FactorVAE's discriminator is a training part: `compile` creates it with its own optimizer, `train_step`
updates both in the same step, checkpoints (`save_weights`) hold both, and the export
(`inference_weights`, `vae_keras.export.inference_copy`) leaves them out.

`train_step` is the one training step: `model.fit` runs it on one device and under
`MirroredStrategy`, and the multi-worker loop (`vae_keras.distribute.distributed_fit`) runs it on
every replica. Its batch means are global-batch means (`vae_keras.replica.batch_means`), so every
strategy optimises the single-device objective.

A conditional VAE (``num_classes`` set) models q(z|x, y) and p(x|z, y): its encoder takes
``[x, label]`` and its decoder ``[z, label]``, with integer labels; the data then yields
``(x, label)`` pairs.
"""

import contextlib
import math

import keras
from keras import ops

from vae_keras import autoregressive, checks, dreg, latent_density, networks
from vae_keras import likelihoods as likelihoods_lib
from vae_keras import options as options_lib
from vae_keras import priors as priors_lib
from vae_keras.errors import ConfigError
from vae_keras.gaussian import LOG_2PI, diag_normal_log_prob_of_noise, gaussian_kl, standard_normal_log_prob  # noqa: F401 - LOG_2PI re-exported
from vae_keras.layers import Sampling

OBJECTIVES = ("elbo", "iwae", "tcvae", "factorvae", "dipvae1", "dipvae2")
# FactorVAE's discriminator optimizer when compile is not given one (Kim & Mnih 2018: Adam, 1e-4, beta_1 0.5, beta_2 0.9).
DISCRIMINATOR_ADAM = {"learning_rate": 1e-4, "beta_1": 0.5, "beta_2": 0.9}


@keras.saving.register_keras_serializable(package="vae_keras")
class VAE(keras.Model):
    """Variational autoencoder with a custom `train_step` and `test_step`.

    Args:
        encoder: `keras.Model` mapping x [B, H, W, C] (conditional: ``[x, label]``) to
            ``[z_mean, z_log_var]``, each [B, latent_dim].
        decoder: `keras.Model` mapping z (conditional: ``[z, label]``) to the likelihood's raw
            parameters [B, H, W, C * P]; or an autoregressive one (`vae_keras.autoregressive`), which also
            takes the image as a last input named ``x_pixels`` and gives pixel i's parameters given z and
            the pixels before it (see `decode`).
        likelihood: "bernoulli", "gaussian", "logistic", or a `vae_keras.likelihoods.Likelihood`.
        beta: weight of the KL term (1.0 is the ELBO; > 1 is a beta-VAE).
        binarize: if True, every training and validation batch is binarized afresh (dynamic
            binarization: each pixel is 1 with probability equal to its intensity). Already binary
            data is unchanged by it.
        kl_warmup_steps: anneal the KL weight linearly from 0 to `beta` over this many optimizer
            steps (0: no warm-up). Validation always uses the full `beta`.
        free_bits: KL floor per latent dim in nats (Kingma et al. 2016): during training each
            dim's batch-mean KL counts as max(KL_j, free_bits). 0 disables it.
        capacity_max: Burgess et al. (2018)'s controlled capacity: when > 0, training minimises
            reconstruction + capacity_gamma * |KL - C| with the target C growing linearly from 0
            to `capacity_max` nats over `capacity_steps` optimizer steps (beta is then unused in
            training; validation still reports reconstruction + beta * KL).
        capacity_steps: steps over which C grows.
        capacity_gamma: weight of |KL - C|.
        objective: "elbo"; "iwae" to train on the importance-weighted bound with `iw_samples`
            samples (Burda et al. 2016); "tcvae" (beta-TCVAE, Chen et al. 2018: beta weights the
            total correlation), "factorvae" (Kim & Mnih 2018), "dipvae1" or "dipvae2" (Kumar et
            al. 2018). `vae_keras.options` gives every objective's loss.
        iw_samples: number of importance samples K for `objective="iwae"`.
        gamma: FactorVAE's weight of the discriminator's TC estimate.
        lambda_od, lambda_d: DIP-VAE's weights of the covariance's off-diagonal and diagonal terms
            (lambda_d None: 10 * lambda_od for dipvae1, lambda_od for dipvae2).
        dataset_size: N, the number of training images, for beta-TCVAE's estimate of q(z) (`train`
            passes it).
        discriminator_hidden: FactorVAE's discriminator layer sizes (default 6 x 1000, the paper's).
        num_classes: number of classes of a conditional VAE; None for an unconditional one.
        sampler: where random samples' z come from: "prior" (the model's prior p(z), the default), or
            "gmm:K" for a K-component Gaussian mixture fitted after training to the posterior means
            (`vae_keras.latent_density.fit_gmm_sampler`; it equals N(0, I) until fitted), or a
            `GaussianMixtureSampler`. A conditional model gets one mixture per class. It only changes sampling
            (`sample_latent`, the exported `sample` signature), never the loss or the likelihood estimates.
        seed: seed of the sampling and binarization noise (and of a learned prior's initial values).
        prior: p(z): "standard" (N(0, I)), "vamp" (the VampPrior), "mog" (a mixture of Gaussians), or a
            `vae_keras.priors.Prior`; see `vae_keras.priors`. Held as ``self.prior`` (``log_prob``,
            ``sample``). A learned prior makes the ELBO's KL the Monte-Carlo term log q(z|x) - log p(z).
        prior_components: K of a learned prior given by name (default `vae_keras.priors.DEFAULT_COMPONENTS`).
        iwae_gradient: "plain", or "dreg" for the doubly reparameterized encoder gradient of the IWAE
            bound (Tucker et al. 2019; `vae_keras.dreg`). Only with `objective="iwae"`.
        **kwargs: base `keras.Model` arguments (e.g. `name`).

    Example:
    >>> import numpy as np
    >>> vae = build_vae((28, 28, 1), latent_dim=2, seed=0)
    >>> vae.compile(optimizer="adam")
    >>> x = np.random.default_rng(0).random((64, 28, 28, 1)).astype("float32")
    >>> history = vae.fit(x, epochs=1, batch_size=32, verbose=0)
    >>> sorted(history.history)
    ['kl', 'loss', 'reconstruction']
    """

    def __init__(self, encoder, decoder, likelihood="bernoulli", beta=1.0, binarize=False,
                 kl_warmup_steps=0, free_bits=0.0, capacity_max=0.0, capacity_steps=options_lib.DEFAULT_CAPACITY_STEPS,
                 capacity_gamma=options_lib.DEFAULT_CAPACITY_GAMMA, objective="elbo", iw_samples=1, num_classes=None,
                 seed=None, sampler="prior", prior="standard", prior_components=None, iwae_gradient="plain",
                 gamma=options_lib.DEFAULT_GAMMA, lambda_od=options_lib.DEFAULT_LAMBDA_OD, lambda_d=None,
                 dataset_size=None, discriminator_hidden=options_lib.DEFAULT_DISCRIMINATOR_HIDDEN, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("beta", beta), ("free_bits", free_bits), ("capacity_max", capacity_max),
                            ("capacity_gamma", capacity_gamma), ("gamma", gamma), ("lambda_od", lambda_od)):
            checks.check_number(name, value)
        if lambda_d is not None:
            checks.check_number("lambda_d", lambda_d)
        if dataset_size is not None:
            checks.check_integer("dataset_size", dataset_size, 1)
        discriminator_hidden = tuple(discriminator_hidden)
        for units in discriminator_hidden:
            checks.check_integer("discriminator_hidden", units, 1)
        checks.check_integer("kl_warmup_steps", kl_warmup_steps, 0)
        checks.check_integer("capacity_steps", capacity_steps, 1)
        checks.check_integer("iw_samples", iw_samples, 1)
        checks.check_choice("objective", objective, OBJECTIVES)
        checks.check_choice("iwae_gradient", iwae_gradient, dreg.IWAE_GRADIENTS)
        prior_kind = prior.kind if isinstance(prior, priors_lib.Prior) else priors_lib.check_name(prior)
        if prior_components is not None:
            checks.check_integer("prior_components", prior_components, 1)
        if num_classes is not None:
            checks.check_integer("num_classes", num_classes, 2)
        likelihood = likelihoods_lib.get(likelihood)
        decoder_kind = autoregressive.decoder_kind(decoder)
        options_lib.check_model_options(
            objective=objective, beta=beta, kl_warmup=kl_warmup_steps, free_bits=free_bits, capacity_max=capacity_max,
            capacity_steps_set=capacity_steps != options_lib.DEFAULT_CAPACITY_STEPS, capacity_gamma=capacity_gamma,
            iw_samples=iw_samples, binarize=bool(binarize), likelihood=likelihood.name,
            sampler=_sampler_name(sampler), prior=prior_kind, prior_components=prior_components,
            iwae_gradient=iwae_gradient, num_classes=num_classes, gamma=gamma, lambda_od=lambda_od,
            lambda_d=lambda_d, dataset_size=dataset_size,
            discriminator_hidden_set=discriminator_hidden != options_lib.DEFAULT_DISCRIMINATOR_HIDDEN,
            decoder=decoder_kind,
            given={"capacity_steps": capacity_steps, "likelihood": likelihood.name, "num_classes": num_classes})
        expected_inputs = 1 if num_classes is None else 2
        for part, net in (("encoder", encoder), ("decoder", decoder)):
            if len(net.inputs) != expected_inputs + (part == "decoder" and decoder_kind == "pixelcnn"):
                raise ConfigError(
                    f"A{' conditional' if num_classes else 'n unconditional'} VAE needs a {part} with "
                    f"{expected_inputs} input(s). Received a {part} with {len(net.inputs)} inputs "
                    f"and num_classes={num_classes!r}"
                )
        self.encoder = encoder
        self.decoder = decoder
        self.decoder_kind = decoder_kind
        self.likelihood = likelihood
        self.beta = float(beta)
        self.binarize = bool(binarize)
        self.kl_warmup_steps = kl_warmup_steps
        self.free_bits = float(free_bits)
        self.capacity_max = float(capacity_max)
        self.capacity_steps = capacity_steps
        self.capacity_gamma = float(capacity_gamma)
        self.objective = objective
        self.iw_samples = iw_samples
        self.num_classes = num_classes
        self.seed = seed
        self.sampler = _make_sampler(sampler, self.latent_dim, num_classes)  # None: the prior (latent_dim: the top layer's)
        self.iwae_gradient = iwae_gradient
        self.prior = priors_lib.get(prior, self.latent_dim, self.image_shape, components=prior_components, seed=seed)
        self.prior.bind(self)
        self.gamma = float(gamma)
        self.lambda_od = float(lambda_od)
        self.lambda_d = None if lambda_d is None else float(lambda_d)
        self.dataset_size = dataset_size
        self.discriminator_hidden = discriminator_hidden
        # FactorVAE's training parts, created by compile (so an export or an uncompiled copy has none).
        self.discriminator = None
        self.discriminator_optimizer = None
        self.permutation_noise = None
        self.sampling = Sampling(seed=seed, name="sampling", dtype="float32")
        self.noise = keras.random.SeedGenerator(None if seed is None else seed + 1)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        # The objective's own terms, logged beside loss / reconstruction / kl.
        extra = {"tcvae": ("tc",), "factorvae": ("tc", "discriminator_loss"), "dipvae1": ("dip_penalty",),
                 "dipvae2": ("dip_penalty",)}.get(objective, ())
        self.objective_trackers = [keras.metrics.Mean(name=name) for name in extra]
        # The encoder and decoder are built functional models, so every weight exists already: the VAE is
        # built from here on, so that count_params, save and export_model work for any VAE(encoder, decoder),
        # fitted or not (fit never calls the model itself, so nothing else would build it). Not self.build():
        # Keras then locks the state, and a subclass could not add layers after super().__init__().
        self.sampling.build([encoder.outputs[0].shape, encoder.outputs[1].shape])
        self.built = True

    def build(self, input_shape=None):
        # Encoder and decoder are built functional models; nothing else holds weights.
        self.sampling.build([self.encoder.outputs[0].shape, self.encoder.outputs[1].shape])
        self.built = True

    # ----------------------------------------------------------------- shapes and properties
    @property
    def conditional(self):
        return self.num_classes is not None

    @property
    def image_shape(self):
        return tuple(int(d) for d in self.encoder.inputs[0].shape[1:])

    @property
    def latent_dim(self):
        return int(self.encoder.outputs[0].shape[-1])

    @property
    def metrics(self):
        # Listed here so Keras resets them at the start of every epoch and of `evaluate`.
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker] + self.objective_trackers

    @property
    def dip_lambda_d(self):
        """DIP-VAE's diagonal weight: lambda_d, or by default 10 * lambda_od (I) / lambda_od (II)."""
        if self.lambda_d is not None:
            return self.lambda_d
        return options_lib.DIP_LAMBDA_D_FACTOR.get(self.objective, 1.0) * self.lambda_od

    # ----------------------------------------------------------------- FactorVAE's training parts
    def _training_only_weights(self):
        discriminator = getattr(self, "discriminator", None)  # Keras may ask before __init__ sets it
        return [] if discriminator is None else list(discriminator.weights)

    def _without_training_only(self, variables):
        exclude = {id(v) for v in self._training_only_weights()}
        return [v for v in variables if id(v) not in exclude]

    @property
    def trainable_weights(self):
        """The encoder's and decoder's trainable weights, which the model's optimizer trains (FactorVAE's
        discriminator has its own optimizer)."""
        return self._without_training_only(super().trainable_weights)

    @property
    def trainable_variables(self):
        return self._without_training_only(super().trainable_variables)

    def objective_options(self):
        """The objective's own settings, for the model card (``{}`` for elbo and iwae)."""
        if self.objective == "tcvae":
            return {"dataset_size": self.dataset_size}
        if self.objective == "factorvae":
            return {"gamma": self.gamma, "discriminator_hidden": list(self.discriminator_hidden)}
        if self.objective in options_lib.DIP_OBJECTIVES:
            return {"lambda_od": self.lambda_od, "lambda_d": self.dip_lambda_d}
        return {}

    def inference_weights(self):
        """``get_weights()`` without the training-only parts (FactorVAE's discriminator): the weights of a
        copy built from ``get_config()``, as the export makes it."""
        exclude = {id(v) for v in self._training_only_weights()}
        return [v.numpy() for v in self.weights if id(v) not in exclude]

    def compile(self, optimizer="rmsprop", *args, discriminator_optimizer=None, **kwargs):
        """`keras.Model.compile`; for ``objective="factorvae"`` also creates the discriminator and its
        optimizer ``discriminator_optimizer`` (default Adam, learning rate 1e-4, beta_1 0.5, beta_2 0.9,
        as Kim & Mnih), built at once so that checkpoints can restore its state."""
        super().compile(optimizer, *args, **kwargs)
        if self.objective != "factorvae":
            if discriminator_optimizer is not None:
                raise ConfigError(f"discriminator_optimizer is FactorVAE's (objective='factorvae'). Received it with "
                                  f"objective={self.objective!r}: drop it.")
            return
        if self.discriminator is None:
            self.discriminator = networks.build_discriminator(self.latent_dim, self.discriminator_hidden)
            self.permutation_noise = keras.random.SeedGenerator(None if self.seed is None else self.seed + 2)
        if discriminator_optimizer is None:
            discriminator_optimizer = keras.optimizers.Adam(**DISCRIMINATOR_ADAM)
        self.discriminator_optimizer = keras.optimizers.get(discriminator_optimizer)
        self.discriminator_optimizer.build(self.discriminator.trainable_weights)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config is not None and self.discriminator_optimizer is not None:
            config = dict(config)
            config["discriminator_optimizer"] = keras.saving.serialize_keras_object(self.discriminator_optimizer)
        return config

    def compile_from_config(self, config):
        """Compiles a loaded model as it was saved (FactorVAE: with its discriminator optimizer's settings),
        and builds the optimizers so that the saved state can be loaded into them."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.optimizer is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def permute_dims(self, z):
        """Shuffles every latent dim independently across the batch: a sample of prod_j q(z_j) (FactorVAE)."""
        keys = keras.random.uniform(ops.shape(z), seed=self.permutation_noise)
        return ops.take_along_axis(z, ops.argsort(keys, axis=0), axis=0)

    def discriminator_logits(self, z):
        if self.discriminator is None:
            raise ConfigError("objective='factorvae' trains and validates with its discriminator, which compile() "
                              "creates: compile the model first.")
        return ops.cast(self.discriminator(z), "float32")

    def example_inputs(self, batch_size=1):
        """Zeros shaped like the model's input (``[x, label]`` for a conditional model)."""
        x = ops.zeros((batch_size,) + self.image_shape)
        return [x, ops.zeros((batch_size,), "int32")] if self.conditional else x

    # ----------------------------------------------------------------- the model's parts
    def _with_label(self, tensor, label):
        if not self.conditional:
            return tensor
        if label is None:
            raise ConfigError(f"This conditional VAE ({self.num_classes} classes) needs a label for every image. Received: label=None")
        return [ops.convert_to_tensor(tensor), ops.cast(label, "int32")]

    def encode(self, x, label=None, training=False):
        """Returns (z_mean, z_log_var) of q(z|x) (conditional: q(z|x, label))."""
        z_mean, z_log_var = self.encoder(self._with_label(x, label), training=training)
        return ops.cast(z_mean, "float32"), ops.cast(z_log_var, "float32")

    @property
    def autoregressive(self):
        """True for a PixelCNN decoder (`vae_keras.autoregressive`), whose p(x|z) needs x itself."""
        return self.decoder_kind == "pixelcnn"

    def decode(self, z, label=None, training=False, x=None, seed=None):
        """Returns the likelihood's raw parameters [B, H, W, C * P] for latent codes z.

        A factorized decoder ignores ``x`` and ``seed``. An autoregressive (PixelCNN) decoder returns
        each pixel's parameters given z and the pixels before it: of ``x`` when given (teacher forcing,
        one pass: the parameters log p(x|z) needs), otherwise of images it generates pixel by pixel
        (`vae_keras.autoregressive.sequential_decode`: greedy without ``seed``, sampled with one).
        """
        if not self.autoregressive:
            return ops.cast(self.decoder(self._with_label(z, label), training=training), "float32")
        if x is None:
            self._with_label(z, label)  # a conditional model needs its label
            return autoregressive.sequential_decode(self.decoder, z, label, seed=seed)[1]
        inputs = self._with_label(ops.convert_to_tensor(z, "float32"), label)
        inputs = (inputs if isinstance(inputs, list) else [inputs]) + [ops.cast(x, "float32")]
        return ops.cast(self.decoder(inputs, training=training), "float32")

    def decode_mean(self, z, label=None, x=None, seed=None):
        """Returns E[x|z] [B, H, W, C]; for an autoregressive decoder, each pixel's mean given z and the
        earlier pixels (of ``x``, or generated: see `decode`)."""
        return self.likelihood.mean(self.decode(z, label, x=x, seed=seed))

    def sample_latent(self, num_samples, seed, label=None):
        """z [num_samples, D] for random samples, stateless and seeded (the same int seed, the same z): the
        model's prior (`self.prior.sample`; N(0, I) is TensorFlow's stateless normal with seed [seed, 0]), or
        the fitted mixture of ``sampler`` (a conditional model's: the mixture of each sample's class, ``label``
        [num_samples]). The prior p(z) of a conditional model is the same for every class."""
        if self.sampler is not None:
            return self.sampler.sample(num_samples, seed, label if self.sampler.num_classes else None)
        return self.prior.sample(num_samples, seed)

    @property
    def sampler_name(self):
        """"prior", or "gmm:K"."""
        return "prior" if self.sampler is None else f"gmm:{self.sampler.num_components}"

    def _split_inputs(self, inputs):
        if self.conditional:
            if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
                raise ConfigError("A conditional VAE is called on [x, label]. Received a single tensor.")
            return inputs[0], inputs[1]
        return inputs, None

    def call(self, inputs, training=False):
        """Deterministic reconstruction: the decoder's mean at z = z_mean (inputs: x or [x, label]); for an
        autoregressive decoder each pixel's mean given z_mean and the earlier pixels of x (one pass)."""
        x, label = self._split_inputs(inputs)
        z_mean, _ = self.encode(x, label, training=training)
        return self.likelihood.mean(self.decode(z_mean, label, training=training, x=x))

    def binarize_batch(self, x):
        """Dynamic binarization: each pixel 1 with probability equal to its intensity."""
        u = keras.random.uniform(ops.shape(x), dtype=x.dtype, seed=self.noise)
        return ops.cast(u < x, x.dtype)

    # ----------------------------------------------------------------- losses
    def _step(self):
        return ops.cast(self.optimizer.iterations, "float32")

    def kl_weight(self):
        """The KL weight at the current optimizer step (warm-up applied)."""
        if not self.kl_warmup_steps or self.optimizer is None:
            return ops.convert_to_tensor(self.beta, "float32")
        return self.beta * ops.minimum(1.0, (self._step() + 1.0) / float(self.kl_warmup_steps))

    def kl_ramp(self):
        """r_t = min(1, (t + 1) / kl_warmup_steps), the warm-up's share of beta (1 without warm-up)."""
        if not self.kl_warmup_steps or self.optimizer is None:
            return ops.convert_to_tensor(1.0, "float32")
        return ops.minimum(1.0, (self._step() + 1.0) / float(self.kl_warmup_steps))

    def capacity(self):
        """The KL target C at the current optimizer step (controlled-capacity training)."""
        if self.optimizer is None:
            return ops.convert_to_tensor(0.0, "float32")
        return self.capacity_max * ops.minimum(1.0, (self._step() + 1.0) / float(self.capacity_steps))

    def _latent_noise(self, shape):
        """Standard-normal noise for the reparameterization, from the `Sampling` layer's seed generator
        (the one source of latent noise in training and in the importance weights)."""
        return keras.random.normal(shape, dtype="float32", seed=self.sampling.seed_generator)

    def log_importance_weights(self, x, num_samples, seed=None, label=None):
        """log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x) for z_k ~ q(z|x).

        Args:
            x: images [B, H, W, C] (already binarized if the model is evaluated on binary data).
            num_samples: K.
            seed: a `keras.random.SeedGenerator` (or int); defaults to the model's noise.
            label: integer labels [B] for a conditional model.

        Returns:
            A tensor [K, B]. logsumexp over K minus log K is the IWAE bound; its mean over K is
            an estimate of the ELBO.
        """
        z_mean, z_log_var = self._first_posterior(x, label)
        batch = ops.shape(z_mean)[0]
        eps = keras.random.normal((num_samples, batch, self._noise_dim), dtype="float32",
                                  seed=self.noise if seed is None else seed)
        log_px, log_pz, log_qz = self._log_weight_terms(x, label, z_mean, z_log_var, eps)
        return log_px + log_pz - log_qz

    # Hooks of the loss and the importance weights: a model with another latent structure (e.g.
    # `vae_keras.models.hierarchical.HierarchicalVAE`) overrides these four, never compute_vae_losses.
    def _first_posterior(self, x, label=None, training=False):
        """(mean, log_var) of the posterior factor that takes x: q(z|x) here."""
        return self.encode(x, label, training=training)

    @property
    def _noise_dim(self):
        """Size of the standard-normal noise eps of one sample of all latents (latent_dim here)."""
        return self.latent_dim

    def _kl_per_dim(self, z_mean, z_log_var, eps, training=False):
        """The KL term per latent dim [B, D] (analytic KL(q(z|x) || N(0, I)) here); eps [1, B, noise dim] is the
        first sample's noise, for models whose KL needs a sample."""
        return gaussian_kl(z_mean, z_log_var)

    def _log_weight_terms(self, x, label, z_mean, z_log_var, eps, training=False, gradient_scale=None):
        """(log p(x|z_k), log p(z_k), log q(z_k|x)), each [K, B], for z_k = mean + sigma * eps_k (eps [K, B, D]).

        log p(z) is the model's prior (``self.prior``). With a `vae_keras.dreg.GradientScale` (DReG), z_k
        reaches every term through it and log q(z_k|x) is a function of z_k with the encoder's outputs held
        fixed; the values are the same.
        """
        z = z_mean[None] + ops.exp(0.5 * z_log_var)[None] * eps  # [K, B, D]
        if gradient_scale is None:
            log_qz = diag_normal_log_prob_of_noise(eps, z_log_var[None])
        else:
            z = gradient_scale(z)
            log_qz = dreg.log_q_of_z(z, eps, z_log_var[None])
        log_px = self._log_px(x, label, z, training=training)
        return log_px, self.prior.log_prob(z), log_qz

    def _log_px(self, x, label, z, training=False):
        """log p(x|z_k) [K, B] for samples z [K, B, D] of the decoder's input."""
        num_samples, batch = ops.shape(z)[0], ops.shape(z)[1]
        flat_z = ops.reshape(z, (-1, ops.shape(z)[-1]))
        flat_label = None if label is None else ops.tile(label, (num_samples,))  # k-major like flat_z
        x_rep = ops.tile(x, (num_samples, 1, 1, 1))  # [K * B, H, W, C], k-major like flat_z
        # VAE.decode: the decoder p(x|z) itself (a subclass's decode may start from another latent); an
        # autoregressive decoder reads x_rep (teacher forcing), a factorized one ignores it.
        params = VAE.decode(self, flat_z, flat_label, training=training, x=x_rep)
        return ops.reshape(self.likelihood.log_prob(x_rep, params), (num_samples, batch))

    def compute_vae_losses(self, x, label=None, training=False, sample_weight=None):
        """The loss of one batch and its parts, as `vae_keras.options` defines them.

        All values are means over the *global* batch (every replica under `tf.distribute`; see
        `vae_keras.replica.batch_means`), weighted by ``sample_weight`` if given.

        Args:
            x: images [B, H, W, C] in [0, 1] (binarized afresh here if the model binarizes).
            label: integer labels [B] of a conditional model.
            training: the training loss (warm-up weight, free bits, capacity target) if True, else the
                validation loss (full beta).
            sample_weight: optional per-image weights [B].

        Returns:
            A dict of scalars: ``loss`` (to minimise), ``reconstruction`` (-log p(x|z) summed over
            pixels) and ``kl`` (summed over dims), plus the schedules' current ``kl_weight`` /
            ``capacity`` in training when they are used.
        """
        from vae_keras import regularizers, replica  # TensorFlow-specific (tf.distribute)

        x = ops.convert_to_tensor(x, "float32")
        if self.binarize:
            x = self.binarize_batch(x)
        z_mean, z_log_var = self._first_posterior(x, label, training=training)
        num_samples = self.iw_samples if self.objective == "iwae" else 1
        eps = self._latent_noise((num_samples, ops.shape(z_mean)[0], self._noise_dim))
        scale = dreg.GradientScale() if training and self.objective == "iwae" and self.iwae_gradient == "dreg" else None
        terms_options = {} if scale is None else {"gradient_scale": scale}  # DReG: plain latents only (the contract)
        log_px, log_pz, log_qz = self._log_weight_terms(x, label, z_mean, z_log_var, eps, training=training,
                                                        **terms_options)
        weight = self.kl_weight() if training else ops.convert_to_tensor(self.beta, "float32")
        if self.prior.learned:  # no closed form: the Monte-Carlo KL at the reconstruction's z
            kl_per_dim, kl = None, log_qz[0] - log_pz[0]
        else:
            kl_per_dim = self._kl_per_dim(z_mean, z_log_var, eps[:1], training=training)  # [B, D]
            kl = ops.sum(kl_per_dim, axis=-1)
        per_example = {"reconstruction": -log_px[0], "kl": kl}
        if self.objective in ("tcvae", "factorvae"):  # one latent layer (the contract): eps[0] is z's noise
            z = z_mean + ops.exp(0.5 * z_log_var) * eps[0]  # the sample behind log_px[0]
        discriminator_loss = None
        if self.objective == "iwae":
            log_w = log_px + weight * (log_pz - log_qz)
            if scale is not None:
                scale.set_factor(log_w, weight)
            per_example["bound"] = -(ops.logsumexp(log_w, axis=0) - math.log(num_samples))
        elif self.objective == "tcvae":
            per_example["tc"] = regularizers.total_correlation(z, z_mean, z_log_var, self.dataset_size)
            per_example["sampled_kl"] = log_qz[0] - log_pz[0]  # MI + TC + dimension-wise KL
        elif self.objective == "factorvae":
            logits = self.discriminator_logits(z)
            per_example["tc"] = logits[:, 0] - logits[:, 1]
            permuted = self.discriminator_logits(self.permute_dims(ops.stop_gradient(z)))
            # The discriminator's cross-entropy: class 0 for samples of q(z), class 1 for permuted ones.
            discriminator_loss = -0.5 * (ops.mean(ops.log_softmax(logits, axis=-1)[:, 0])
                                         + ops.mean(ops.log_softmax(permuted, axis=-1)[:, 1]))
        if training and self.free_bits > 0 and self.objective != "tcvae":
            per_example["kl_per_dim"] = kl_per_dim
        means = replica.batch_means(per_example, sample_weight)
        losses = {"reconstruction": means["reconstruction"], "kl": means["kl"]}
        if self.objective == "iwae":
            losses["loss"] = means["bound"]
        elif self.objective == "tcvae":
            ramp = self.kl_ramp() if training else ops.convert_to_tensor(1.0, "float32")
            losses["tc"] = means["tc"]
            losses["loss"] = means["reconstruction"] + ramp * means["sampled_kl"] + ramp * (self.beta - 1.0) * means["tc"]
        elif training and self.capacity_max > 0:
            losses["capacity"] = self.capacity()
            losses["loss"] = means["reconstruction"] + self.capacity_gamma * ops.abs(means["kl"] - losses["capacity"])
        elif training and self.free_bits > 0:
            losses["loss"] = means["reconstruction"] + weight * ops.sum(ops.maximum(means["kl_per_dim"], self.free_bits))
        else:
            losses["loss"] = means["reconstruction"] + weight * means["kl"]
        if self.objective == "factorvae":
            losses["tc"] = means["tc"]
            losses["discriminator_loss"] = discriminator_loss
            losses["loss"] = losses["loss"] + self.gamma * means["tc"]
        elif self.objective in options_lib.DIP_OBJECTIVES:
            covariance = regularizers.dip_covariance(z_mean, z_log_var, self.objective, sample_weight)
            losses["dip_penalty"] = regularizers.dip_penalty(covariance, self.lambda_od, self.dip_lambda_d)
            losses["loss"] = losses["loss"] + losses["dip_penalty"]
        if training and self.kl_warmup_steps:
            losses["kl_weight"] = weight
        return losses

    def _update_metrics(self, losses, batch_size):
        # The losses are global-batch values (the same on every replica); weighting each replica's update
        # by its own share of the batch makes the epoch means exact under any split, empty shares included.
        self.loss_tracker.update_state(losses["loss"], sample_weight=batch_size)
        self.reconstruction_tracker.update_state(losses["reconstruction"], sample_weight=batch_size)
        self.kl_tracker.update_state(losses["kl"], sample_weight=batch_size)
        for tracker in self.objective_trackers:
            tracker.update_state(losses[tracker.name], sample_weight=batch_size)
        return {m.name: m.result() for m in self.metrics}

    def _unpack(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if isinstance(x, (tuple, list)):
            x, y = (x[0], x[1]) if len(x) > 1 else (x[0], y)
        if self.conditional and y is None:
            raise ConfigError(
                f"This conditional VAE ({self.num_classes} classes) trains on (images, labels) pairs. "
                "Received images only: pass fit(x, y) or a dataset of (x, y)."
            )
        if sample_weight is not None:
            sample_weight = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        return x, (y if self.conditional else None), sample_weight

    def _keep_sample_weight(self, x, y, sample_weight):
        # Keras's array adapter drops sample_weight when y is None (an unconditional VAE's usual call):
        # give it placeholder labels, which an unconditional model ignores, so the weights reach train_step.
        if sample_weight is not None and y is None and not self.conditional and hasattr(x, "shape") and hasattr(x, "__len__"):
            import numpy as np

            return np.zeros(len(x), "int32")
        return y

    def fit(self, x=None, y=None, *args, sample_weight=None, **kwargs):
        """`keras.Model.fit`; ``sample_weight`` [N] weights each image's loss (see `vae_keras.options`)."""
        self.build_optimizer()
        return super().fit(x, self._keep_sample_weight(x, y, sample_weight), *args, sample_weight=sample_weight, **kwargs)

    def build_optimizer(self):
        """Creates the optimizer's slot variables now, before `fit` traces the train step.

        Without a distribution strategy Keras leaves this to the first trace of the train step; the slots are
        then created inside ``tf.function``, and TensorFlow traces the whole step a second time (once to create
        the variables, once to run): twice the start-up of every new model's first `fit` (measured: 2 traces of
        ``train_step``, 1 after this). Nothing happens under a distribution strategy (Keras builds the optimizer
        before tracing there, in the strategy's scope), when the optimizer is built already (a restored
        checkpoint) or when a layer is not built yet (its weights come with the first call, so Keras's own
        deferred build must see them)."""
        if self.optimizer is None or self.optimizer.built or getattr(self, "_distribute_strategy", None) is not None:
            return
        if not all(layer.built for layer in self._flatten_layers()):
            return
        self.optimizer.build(self.trainable_variables)

    def evaluate(self, x=None, y=None, *args, sample_weight=None, **kwargs):
        """`keras.Model.evaluate`; ``sample_weight`` [N] weights each image's loss."""
        return super().evaluate(x, self._keep_sample_weight(x, y, sample_weight), *args, sample_weight=sample_weight,
                                **kwargs)

    def train_step(self, data):
        """One optimizer step: the loss of `compute_vae_losses`, its gradient, the update, the metrics.

        The one training step for every strategy: `fit` calls it on one device and under
        `MirroredStrategy`, `vae_keras.distribute.distributed_fit` on every replica of every worker.
        """
        import tensorflow as tf  # train_step is TensorFlow-specific (GradientTape, tf.distribute).

        from vae_keras import replica

        x, label, sample_weight = self._unpack(data)
        self._check_replicas()
        with tf.GradientTape(persistent=self.objective == "factorvae") as tape:
            losses = self.compute_vae_losses(x, label, training=True, sample_weight=sample_weight)
            # The loss is the global batch's on every replica, and its gradient reaches each replica's
            # weights through the all-reduce; Keras's optimizer sums the replicas' gradients: divide by
            # their number (1 on one device).
            loss = losses["loss"] / replica.num_replicas()
            # Loss scaling (a LossScaleOptimizer under mixed_float16, or loss_scale_factor); a no-op otherwise.
            loss = self.optimizer.scale_loss(loss)
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        if self.objective == "factorvae":  # the discriminator's step, with its own optimizer, on the same batch
            variables = self.discriminator.trainable_weights
            self.discriminator_optimizer.apply_gradients(zip(tape.gradient(losses["discriminator_loss"], variables), variables))
            del tape
        logs = self._update_metrics(losses, ops.cast(ops.shape(x)[0], "float32"))
        # Schedules (KL weight, capacity target), logged per epoch at the epoch's last step.
        logs.update({k: v for k, v in losses.items() if k in ("kl_weight", "capacity")})
        return logs

    def _check_replicas(self):
        from vae_keras import replica

        if self.objective in options_lib.NOT_DISTRIBUTED_OBJECTIVES and replica.num_replicas() > 1:
            raise ConfigError(f"objective={self.objective!r} cannot be trained or evaluated under a tf.distribute strategy "
                              f"with {replica.num_replicas()} replicas: its total-correlation term needs the whole batch "
                              "on one device. Train it without a strategy, or use objective dipvae1/dipvae2.")

    def test_step(self, data):
        x, label, sample_weight = self._unpack(data)
        self._check_replicas()
        losses = self.compute_vae_losses(x, label, training=False, sample_weight=sample_weight)
        return self._update_metrics(losses, ops.cast(ops.shape(x)[0], "float32"))

    # ----------------------------------------------------------------- output bias
    def initialize_output_bias(self, pixel_mean):
        """Sets the decoder's last bias so that the decoded mean starts at ``pixel_mean`` [H, W, C].

        Works for decoders whose last parameterized layer is named ``x_params`` with a per-pixel
        (dense) or per-channel (conv, spatial mean used) bias.
        """
        try:
            layer = self.decoder.get_layer("x_params")
        except ValueError:
            raise ConfigError(
                "initialize_output_bias needs a decoder layer named 'x_params'. "
                f"Received a decoder with layers {[layer.name for layer in self.decoder.layers]}"
            ) from None
        bias_image = ops.convert_to_numpy(self.likelihood.output_bias(pixel_mean))
        if tuple(bias_image.shape[:2]) != self.image_shape[:2]:
            raise ConfigError(f"pixel_mean must have shape {self.image_shape}. Received: {tuple(ops.shape(pixel_mean))}")
        bias_shape = tuple(layer.bias.shape)
        if bias_shape == (bias_image.size,):
            layer.bias.assign(bias_image.reshape(-1))
        elif bias_shape == (bias_image.shape[-1],):
            layer.bias.assign(bias_image.mean(axis=(0, 1)))
        else:
            raise ConfigError(f"Cannot map an output bias of shape {bias_image.shape} onto x_params bias {bias_shape}")

    # ----------------------------------------------------------------- serialization
    def get_config(self):
        config = super().get_config()
        config.update({
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "likelihood": likelihoods_lib.serialize(self.likelihood),
            "beta": self.beta,
            "binarize": self.binarize,
            "kl_warmup_steps": self.kl_warmup_steps,
            "free_bits": self.free_bits,
            "capacity_max": self.capacity_max,
            "capacity_steps": self.capacity_steps,
            "capacity_gamma": self.capacity_gamma,
            "objective": self.objective,
            "iw_samples": self.iw_samples,
            "num_classes": self.num_classes,
            "seed": self.seed,
            "sampler": "prior" if self.sampler is None else keras.saving.serialize_keras_object(self.sampler),
            "prior": keras.saving.serialize_keras_object(self.prior),
            "iwae_gradient": self.iwae_gradient,
            "gamma": self.gamma,
            "lambda_od": self.lambda_od,
            "lambda_d": self.lambda_d,
            "dataset_size": self.dataset_size,
            "discriminator_hidden": list(self.discriminator_hidden),
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        config["decoder"] = keras.saving.deserialize_keras_object(config["decoder"])
        config["likelihood"] = likelihoods_lib.get(config["likelihood"])
        if isinstance(config.get("sampler"), dict):
            config["sampler"] = keras.saving.deserialize_keras_object(config["sampler"])
        if isinstance(config.get("prior"), dict):
            config["prior"] = keras.saving.deserialize_keras_object(config["prior"])
        return cls(**config)


def _sampler_name(sampler):
    if isinstance(sampler, latent_density.GaussianMixtureSampler):
        return f"gmm:{sampler.num_components}"
    latent_density.parse_sampler(sampler)  # a clear error for anything else
    return sampler


def _make_sampler(sampler, latent_dim, num_classes=None):
    """None for the prior, else a `GaussianMixtureSampler` (an unfitted one, equal to N(0, I), for "gmm:K"; one
    mixture per class for a conditional model)."""
    if isinstance(sampler, latent_density.GaussianMixtureSampler):
        if sampler.latent_dim != latent_dim:
            raise ConfigError(f"The sampler draws z of {sampler.latent_dim} dims; the encoder's latent has {latent_dim}.")
        if sampler.num_classes != num_classes:
            raise ConfigError(f"The sampler holds mixtures for num_classes={sampler.num_classes}; the model has "
                              f"num_classes={num_classes}.")
        return sampler
    components = latent_density.parse_sampler(sampler)
    if components is None:
        return None
    return latent_density.GaussianMixtureSampler(components, latent_dim, num_classes=num_classes, name="sampler")


DTYPE_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


@contextlib.contextmanager
def dtype_policy_scope(policy):
    """Sets Keras's global dtype policy to ``policy`` (None: leave it) for the block, then restores it.

    Layers take the policy in force when they are created, so build the networks inside the block.
    """
    previous = keras.config.dtype_policy()
    if policy is not None:
        keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def latent_sizes(latent_dim, latent_layers=1, cli=False):
    """The sizes of z_1..z_L (bottom first) for ``latent_dim`` (one int, or one per layer) and ``latent_layers``."""
    checks.check_integer("latent_layers", latent_layers, 1)
    sizes = (latent_dim,) if checks.is_integer(latent_dim) else tuple(latent_dim) if isinstance(latent_dim, (list, tuple)) else ()
    if not sizes or not all(checks.is_integer(d) and d >= 1 for d in sizes):
        raise ConfigError(f"latent_dim must be a positive integer or one positive integer per stochastic layer. "
                          f"Received: latent_dim={latent_dim!r}")
    shown = ",".join(str(d) for d in sizes) if cli else latent_dim
    options_lib.check_model_options(latent_layers=latent_layers, latent_sizes=len(sizes), cli=cli,
                                    given={"latent_dim": shown})
    return sizes * latent_layers if len(sizes) == 1 else sizes


def build_vae(image_shape, latent_dim=32, network="mlp", hidden=None, likelihood="bernoulli",
              activation="relu", num_classes=None, dtype_policy=None, latent_layers=1, decoder="factorized", **kwargs):
    """Builds a `VAE` with matching encoder and decoder networks.

    Args:
        image_shape: (H, W, C) of the images.
        latent_dim: size of z; with ``latent_layers`` L > 1, one size for every layer or L sizes, bottom first.
        network: "mlp", "conv" or "conv64" (64x64 images; see `vae_keras.networks`).
        hidden: hidden sizes (MLP units or conv filters); defaults per network.
        likelihood: "bernoulli", "gaussian", "logistic" or a `Likelihood`.
        activation: hidden activation.
        num_classes: build a conditional VAE over this many classes (None: unconditional).
        decoder: "factorized" (pixels independent given z; the default) or "pixelcnn" (an autoregressive
            PixelCNN head over the pixels, conditioned on z: `vae_keras.autoregressive`; bernoulli only).
        dtype_policy: Keras dtype policy of the networks, one of `DTYPE_POLICIES` ("mixed_bfloat16" runs
            them in bfloat16, "mixed_float16" in float16 with loss scaling when compiled); None takes the
            global policy. The losses, the KL and the likelihood stay float32 either way. The global policy
            is left as it was.
        latent_layers: the number of stochastic layers; L > 1 builds a
            `vae_keras.models.hierarchical.HierarchicalVAE` (Burda et al. 2016's bottom-up hierarchy),
            whose `latent_dim`, `encode`, `decode` and samples are those of the top layer.
        **kwargs: further `VAE` arguments (beta, binarize, kl_warmup_steps, free_bits,
            capacity_*, objective, iw_samples, iwae_gradient, prior, prior_components, sampler, gamma,
            lambda_od, lambda_d, dataset_size, discriminator_hidden, seed, name).

    Example:
    >>> vae = build_vae((32, 32, 3), latent_dim=16, network="conv")
    >>> vae.latent_dim, vae.image_shape
    (16, (32, 32, 3))
    """
    if dtype_policy is not None and dtype_policy not in DTYPE_POLICIES:
        raise ConfigError(f"dtype_policy must be one of {list(DTYPE_POLICIES)} or None. Received: {dtype_policy!r}")
    like = likelihoods_lib.get(likelihood)
    autoregressive.check_decoder(decoder)
    sizes = latent_sizes(latent_dim, latent_layers)
    # Refused pairs first (e.g. a PixelCNN decoder with a non-Bernoulli likelihood), before any network is built.
    options_lib.check_model_options(likelihood=like.name, decoder=decoder, latent_layers=latent_layers)
    build_decoder = autoregressive.build_pixelcnn_decoder if decoder == "pixelcnn" else networks.build_decoder
    with dtype_policy_scope(dtype_policy):
        if len(sizes) > 1:
            from vae_keras.models.hierarchical import build_hierarchical_vae  # a subclass of VAE: imported here

            vae = build_hierarchical_vae(image_shape, sizes, network, hidden, like, activation, num_classes, **kwargs)
            vae(vae.example_inputs())
            return vae
        latent_dim = sizes[0]
        encoder = networks.build_encoder(image_shape, latent_dim, network, hidden, activation, num_classes=num_classes)
        decoder = build_decoder(image_shape, latent_dim, like.params_per_channel, network, hidden, activation,
                                num_classes=num_classes)
        vae = VAE(encoder, decoder, likelihood=like, num_classes=num_classes, **kwargs)
        vae(vae.example_inputs())  # build all weights
    return vae
