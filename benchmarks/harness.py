"""The measuring parts shared by `benchmarks.run` and `benchmarks.defaults_study`.

- `Snapshots`: a Keras callback that keeps copies of the weights when training time crosses given
  checkpoints (the copying is excluded from the clock) and can stop training at a budget.
- `LogitsAdapter`: lets vae_keras's importance-weighted estimator score any encoder/decoder pair
  (the baselines), with the same log-weights as `vae_keras.VAE.log_importance_weights`.
- `train_vae_keras` / `train_baseline_timed`: train one model for a wall-clock budget and return
  its snapshots; `score_snapshots`: NLL of every snapshot on one fixed binarized test set.
- `MixtureSampledView`: a trained default model sampled through a Gaussian mixture fitted after
  training (``gmm:K``), without training it again.
- `fit_throughput`: images/s of `model.fit` per timed window after warm-up; `networks_gradient_step` +
  `step_rates`: images/s of the networks' forward and backward pass alone (the ceiling of any
  training loop around them); `summarize_rates`: median and IQR of either.
- machine description and peak-RSS sampling.
"""

import math
import os
import platform
import tempfile
import threading
import time

import keras
import numpy as np
from keras import ops

from benchmarks import baselines
from vae_keras.callbacks import last_batch_run

FASHION_DIR = os.environ.get("VAE_KERAS_FASHION_DIR", "/usr/share/datasets/fashion-mnist")
DATASET_ALIASES = {"fashion": FASHION_DIR, "fashion-mnist": FASHION_DIR}
# The estimator's settings, identical for every model so the same seed draws the same noise shapes.
SCORE_BATCH = 100
SCORE_MAX_DECODES = 5000
SCORE_SEED = 0


def resolve_dataset(name):
    """'fashion' -> the Debian dataset-fashion-mnist folder; anything else is a vae_keras spec."""
    return DATASET_ALIASES.get(name, name)


def default_checkpoints(budget):
    """budget/8, budget/4, budget/2, budget (240 -> 30, 60, 120, 240 s)."""
    return [budget / 8, budget / 4, budget / 2, float(budget)]


# --------------------------------------------------------------------------- timing callbacks
class Snapshots(keras.callbacks.Callback):
    """Copies the model's weights when the training time first reaches each checkpoint.

    Training time runs from ``on_train_begin`` (so it includes tracing, the input pipeline and any
    validation the training code does) and excludes the time spent copying weights here.

    Args:
        checkpoints: increasing times in seconds.
        stop_at: if set, stop training once the training time reaches it (the baselines' budget;
            vae_keras runs are stopped by their own ``--time-limit``).
        batch_size: recorded to count the images seen.
    """

    def __init__(self, checkpoints, stop_at=None, batch_size=None):
        super().__init__()
        self.checkpoints = sorted(float(c) for c in checkpoints)
        self.stop_at = stop_at
        self.batch_size = batch_size
        self.snapshots = []  # dicts: checkpoint, time, batches, epochs, weights
        self.start = None
        self.paused = 0.0
        self.batches = 0  # training steps done (`StepCounter`), not callback calls
        self.counter = StepCounter()
        self.epochs = 0
        self.end_time = None
        self.first_step = None

    def elapsed(self):
        return time.perf_counter() - self.start - self.paused

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()
        self.paused = 0.0

    def _take(self, checkpoint, elapsed):
        t0 = time.perf_counter()
        self.snapshots.append({
            "checkpoint": checkpoint, "time": elapsed, "cpu_seconds": time.process_time() - self.cpu_start,
            "batches": self.batches,
            "epochs": self.epochs, "weights": [np.array(w) for w in self.model.get_weights()],
        })
        self.paused += time.perf_counter() - t0

    def on_epoch_begin(self, epoch, logs=None):
        self.counter.new_epoch()

    def on_train_batch_end(self, batch, logs=None):
        self.batches = self.counter.batch_end(batch, self.params)
        elapsed = self.elapsed()
        if self.first_step is None:
            self.first_step = elapsed  # tracing + first step; a large value means a stall
        while len(self.snapshots) < len(self.checkpoints) and elapsed >= self.checkpoints[len(self.snapshots)]:
            self._take(self.checkpoints[len(self.snapshots)], elapsed)
        if self.stop_at is not None and elapsed >= self.stop_at:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1

    def on_train_end(self, logs=None):
        self.end_time = self.elapsed()
        # Training ended before some checkpoints (time limit just short, or epochs exhausted):
        # those checkpoints get the final weights, with the time training actually ended.
        while len(self.snapshots) < len(self.checkpoints):
            self._take(self.checkpoints[len(self.snapshots)], self.end_time)


class TimeCosine(keras.callbacks.Callback):
    """Cosine learning-rate decay over *training time* (for the defaults study).

    lr(t) = lr0 * (alpha + (1 - alpha) * (1 + cos(pi * min(t / seconds, 1))) / 2), set before every
    batch; needs an optimizer with a constant learning rate.
    """

    def __init__(self, seconds, alpha=0.05):
        super().__init__()
        self.seconds = float(seconds)
        self.alpha = alpha

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()
        self.lr0 = float(ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_batch_begin(self, batch, logs=None):
        frac = min(1.0, (time.perf_counter() - self.start) / self.seconds)
        lr = self.lr0 * (self.alpha + (1 - self.alpha) * 0.5 * (1 + math.cos(math.pi * frac)))
        self.model.optimizer.learning_rate.assign(lr)


class JitCompile(keras.callbacks.Callback):
    """Recompiles the train step with XLA (``jit_compile=True``) at the start of `fit` (study only)."""

    def on_train_begin(self, logs=None):
        self.model.jit_compile = True
        self.model.make_train_function(force=True)


class StepCounter:
    """Counts training steps from the indices Keras passes to ``on_train_batch_end``.

    With ``steps_per_execution > 1`` Keras calls back once per execution with the last step's
    index (and, for the last, shorter execution of an epoch, with an index past the epoch's end),
    so steps are counted from the indices, clamped to the epoch's steps, not from the calls.
    """

    def __init__(self):
        self.done = 0
        self._last_index = -1

    def new_epoch(self):
        self._last_index = -1

    def batch_end(self, batch, params):
        batch = last_batch_run(batch, (params or {}).get("steps"))
        self.done += batch - self._last_index
        self._last_index = batch
        return self.done


class BatchTimes(keras.callbacks.Callback):
    """Records (time, steps done) at every batch end; stops ``seconds`` after the first batch end
    (so tracing and the first step's set-up do not eat into the measured time), but not before
    ``min_steps`` steps ran after the first batch end (so a loaded machine still yields a timed window).

    Steps are counted by `StepCounter` (right with ``steps_per_execution > 1``).
    """

    def __init__(self, seconds, min_steps=0):
        super().__init__()
        self.seconds = seconds
        self.min_steps = min_steps
        self.times = []
        self.steps = []
        self.counter = StepCounter()

    def on_epoch_begin(self, epoch, logs=None):
        self.counter.new_epoch()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self.times.append(now)
        self.steps.append(self.counter.batch_end(batch, self.params))
        if now - self.times[0] >= self.seconds and self.steps[-1] - self.steps[0] >= self.min_steps:
            self.model.stop_training = True


# --------------------------------------------------------------------------- scoring
class LogitsAdapter:
    """Gives an encoder (x -> [z_mean, z_log_var]) and a decoder (z -> Bernoulli logits) the two
    methods vae_keras's estimator uses, computing log w exactly as `vae_keras.VAE` does:
    log w = log p(x|z) (Bernoulli with logits, summed over pixels) + log N(z; 0, I) - log q(z|x)."""

    def __init__(self, encoder, logits_decoder):
        from vae_keras.likelihoods import Bernoulli

        self.encoder = encoder
        self.decoder = logits_decoder
        self.likelihood = Bernoulli()
        self.image_shape = tuple(int(d) for d in encoder.inputs[0].shape[1:])
        self.latent_dim = int(encoder.outputs[0].shape[-1])

    def decode_mean(self, z, label=None):
        """E[x|z]: the Bernoulli probabilities (for samples)."""
        return ops.sigmoid(self.decoder(z, training=False))

    def encode(self, x):
        z_mean, z_log_var = self.encoder(x, training=False)[:2]
        return z_mean, z_log_var

    def log_importance_weights(self, x, num_samples, seed=None):
        from vae_keras.gaussian import diag_normal_log_prob_of_noise, standard_normal_log_prob

        z_mean, z_log_var = self.encode(x)
        batch = ops.shape(z_mean)[0]
        eps = keras.random.normal((num_samples, batch, self.latent_dim), dtype=z_mean.dtype, seed=seed)
        z = z_mean[None] + ops.exp(0.5 * z_log_var)[None] * eps
        logits = self.decoder(ops.reshape(z, (-1, self.latent_dim)), training=False)
        x_rep = ops.tile(x, (num_samples, 1, 1, 1))
        log_px = ops.reshape(self.likelihood.log_prob(x_rep, logits), (num_samples, batch))
        return log_px + standard_normal_log_prob(z) - diag_normal_log_prob_of_noise(eps, z_log_var[None])


def score(scorable, x_test, iw_samples):
    """Per-image importance-weighted log p(x) and ELBO with the shared estimator settings."""
    from vae_keras import evaluation

    return evaluation.iw_log_likelihood(scorable, x_test, num_samples=iw_samples, batch_size=SCORE_BATCH,
                                        max_decodes=SCORE_MAX_DECODES, seed=SCORE_SEED)


def score_snapshots(run, x_test, iw_samples, quality=None):
    """Loads each snapshot's weights into ``run['model']`` and scores it; fills ``run['points']``.

    ``quality``: optional function of the scorable model at the last snapshot's weights (sample quality),
    whose result goes to ``run['sample_quality']``.

    Returns the per-image log p(x) of the last snapshot (for paired comparisons).
    """
    model, scorable = run.pop("model"), run.pop("scorable")
    points, last = [], None
    for snap in run.pop("snapshots"):
        model.set_weights(snap["weights"])
        t0 = time.perf_counter()
        r = score(scorable, x_test, iw_samples)
        nll = -r["log_px"]
        points.append({
            "checkpoint": snap["checkpoint"], "time": round(snap["time"], 2),
            "cpu_seconds": round(snap["cpu_seconds"], 1), "epochs": snap["epochs"],
            "images_seen": snap["batches"] * run["batch_size"],
            "nll": float(nll.mean()), "nll_se": float(nll.std(ddof=1) / math.sqrt(len(nll))) if len(nll) > 1 else 0.0,
            "elbo": float(r["elbo"].mean()), "score_seconds": round(time.perf_counter() - t0, 1),
        })
        last = r["log_px"]
    run["points"] = points
    if quality is not None:
        t0 = time.perf_counter()
        run["sample_quality"] = dict(quality(scorable), seconds=round(time.perf_counter() - t0, 1))
    return last


# --------------------------------------------------------------------------- training runs
def vae_keras_config(dataset_spec, budget, overrides=None, out=None):
    """The `TrainConfig` of ``vae-keras train --dataset SPEC --time-limit BUDGET`` plus ``overrides``: only
    dataset, time_limit, out and eval_iw_samples=0 are set, so the CLI's defaults are what is measured."""
    from vae_keras.training import TrainConfig

    fields = {"dataset": dataset_spec, "time_limit": float(budget), "out": out or tempfile.mkdtemp(prefix="vae_keras_bench_"),
              "eval_iw_samples": 0}
    fields.update(overrides or {})
    return TrainConfig(**fields)


def train_vae_keras(dataset_spec, data, budget, checkpoints, overrides=None, extra_callbacks=(), out=None):
    """``vae-keras train --dataset SPEC --time-limit BUDGET`` (plus any study ``overrides``).

    Only dataset, time_limit, out and eval_iw_samples=0 are set, so the CLI's defaults are measured.
    """
    from vae_keras.training import train

    config = vae_keras_config(dataset_spec, budget, overrides, out)
    snaps = Snapshots(checkpoints, batch_size=config.batch_size)
    t0 = time.perf_counter()
    result = train(config, data=data, callbacks=[*extra_callbacks, snaps])
    wall = time.perf_counter() - t0
    model = result["model"]
    return {
        "model": model, "scorable": model, "snapshots": snaps.snapshots, "batch_size": config.batch_size,
        "train_seconds": round(snaps.end_time, 2), "epochs_trained": snaps.epochs,
        "first_step_seconds": round(snaps.first_step or 0.0, 2),
        "stopped_by_time_limit": bool(result["metrics"].get("stopped_by_time_limit")),
        "wall_seconds_incl_build_export": round(wall, 1), "export_path": result["export_path"],
        "config": {k: v for k, v in config.to_dict().items() if k not in ("out", "name", "verbose", "tensorboard")},
        "parameters": int(model.count_params()),
    }


class MixtureSampledView:
    """A trained `vae_keras.VAE` whose random samples draw z from a Gaussian mixture fitted after training
    (ex-post density estimation, ``sampler="gmm:K"``) instead of its prior: the same weights, no second training.

    It has what `vae_keras.training.fit_sampler` and `vae_keras.sample_quality.model_samples` use
    (``sampler``, ``encode``, ``sample_latent``, ``decode_mean``), so the mixture is fitted by the library's
    own stage (the same images, binarized the same way) and sampled by the model's own rule.
    """

    def __init__(self, model, config, data, sampler="gmm:10"):
        from vae_keras import training
        from vae_keras.latent_density import GaussianMixtureSampler, parse_sampler

        components = parse_sampler(sampler)
        if components is None:
            raise ValueError(f"MixtureSampledView needs a mixture sampler such as 'gmm:10'. Received: {sampler!r}")
        self.model = model
        self.conditional = getattr(model, "conditional", False)
        self.sampler = GaussianMixtureSampler(components, model.latent_dim)
        self.sampler_name = f"gmm:{components}"
        # scikit-learn's EM with its BLAS / OpenMP threads on a loaded 2-core machine took 42 s for 8,000 codes
        # (10 components, 32 dims) against 5 s with one thread: the same fit, one thread.
        from threadpoolctl import threadpool_limits  # a scikit-learn dependency

        with threadpool_limits(limits=1):
            training.fit_sampler(config, self, training.load_data(config, data))

    def encode(self, x, **kwargs):
        return self.model.encode(x, **kwargs)

    def sample_latent(self, num_samples, seed, label=None):
        return self.sampler.sample(num_samples, seed, label)

    def decode_mean(self, z, label=None):
        return self.model.decode_mean(z, label)


def train_baseline_timed(name, x_train_float, budget, checkpoints, seed=0, batch_size=None):
    """Trains a plain-Keras baseline for ``budget`` seconds of training time."""
    _, default_batch, parts = baselines.BASELINES[name]
    batch = batch_size or default_batch
    snaps = Snapshots(checkpoints, stop_at=budget, batch_size=batch)
    t0 = time.perf_counter()
    model = baselines.train_baseline(name, x_train_float, callbacks=[snaps], seed=seed, batch_size=batch)
    wall = time.perf_counter() - t0
    encoder, decoder = parts(model)
    return {
        "model": model, "scorable": LogitsAdapter(encoder, decoder), "snapshots": snaps.snapshots,
        "batch_size": batch, "train_seconds": round(snaps.end_time, 2), "epochs_trained": snaps.epochs,
        "first_step_seconds": round(snaps.first_step or 0.0, 2), "stopped_by_time_limit": True, "wall_seconds_incl_build_export": round(wall, 1),
        "parameters": int(encoder.count_params() + decoder.count_params()),
    }


# --------------------------------------------------------------------------- throughput
def fit_throughput(model, fit_args, batch_size, seconds, warmup_batches=20, window=25, fit_kwargs=None):
    """Runs ``model.fit(*fit_args)`` for ``seconds`` and returns images/s of each window of
    ``window`` batches after the first ``warmup_batches`` (tracing, pipeline start-up); at least one
    window is timed, however slow the machine."""
    timer = BatchTimes(seconds, min_steps=warmup_batches + 2 * window)
    model.fit(*fit_args, epochs=10_000, callbacks=[timer], verbose=0, **(fit_kwargs or {}))
    t, steps = timer.times, timer.steps
    first = next((i for i, s in enumerate(steps) if s > warmup_batches), len(steps))
    rates, i = [], first
    while i < len(steps):
        j = next((j for j in range(i + 1, len(steps)) if steps[j] - steps[i] >= window), None)
        if j is None:
            break
        rates.append((steps[j] - steps[i]) * batch_size / (t[j] - t[i]))
        i = j
    return rates


def networks_gradient_step(encoder, decoder):
    """The networks' forward and backward pass alone, as a `tf.function` ``step(x) -> gradients``.

    ``z_mean, z_log_var = encoder(x, training=True)``; the loss is the sum of
    ``decoder(z_mean + z_log_var, training=True)`` cast to float32 (a stand-in: no likelihood, KL,
    sampling or optimizer); the gradients are taken with respect to ``encoder.trainable_weights``
    then ``decoder.trainable_weights``, in that order, one per weight. Timed with `step_rates`, it
    is the fastest any training loop around these networks can run at their dtype policy.
    """
    import tensorflow as tf

    weights = [*encoder.trainable_weights, *decoder.trainable_weights]

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            z_mean, z_log_var = encoder(x, training=True)[:2]
            out = decoder(z_mean + z_log_var, training=True)
            loss = tf.reduce_sum(tf.cast(out, tf.float32))
        return tape.gradient(loss, weights)

    return step


def step_rates(step, x, seconds, window=25, warmup=20):
    """Calls ``step(x)`` for about ``seconds`` and returns images/s (``len(x)`` per call) of each
    window of ``window`` calls after the first call (tracing) and ``warmup`` more calls.

    Like `fit_throughput`, ``seconds`` counts from the end of the first call and includes the
    warm-up; at least one window is timed. Each window ends by copying one of the step's outputs
    to numpy, so the clock stops only once the window's computation has finished.
    """
    import tensorflow as tf

    x = tf.convert_to_tensor(x)
    batch_size = int(x.shape[0])

    def run(calls):
        out = None
        for _ in range(calls):
            out = step(x)
        if out is not None:
            tf.nest.flatten(out)[-1].numpy()  # wait for the last call to complete

    run(1)
    start = time.perf_counter()
    run(warmup)
    rates = []
    while True:
        t0 = time.perf_counter()
        run(window)
        t1 = time.perf_counter()
        rates.append(window * batch_size / (t1 - t0))
        if t1 - start >= seconds:
            return rates


def summarize_rates(rates):
    if not rates:
        return {"median": None, "p25": None, "p75": None, "windows": 0}
    return {"median": float(np.median(rates)), "p25": float(np.percentile(rates, 25)),
            "p75": float(np.percentile(rates, 75)), "windows": len(rates)}


# --------------------------------------------------------------------------- machine and memory
def machine_description():
    import tensorflow as tf

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gb = None
    try:
        mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": cpu, "memory_gb": mem_gb, "platform": platform.platform(),
        "python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
        "numpy": np.__version__, "gpus": len(tf.config.list_physical_devices("GPU")),
    }


def load_average():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def current_rss_mb():
    """Resident set size of this process in MiB (Linux /proc; falls back to the peak)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


class RssSampler:
    """Samples the RSS every ``interval`` seconds in a thread; ``peak`` is the largest seen."""

    def __init__(self, interval=0.05):
        self.interval = interval
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss_mb())
            self._stop.wait(self.interval)

    def __enter__(self):
        self.peak = current_rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss_mb())
