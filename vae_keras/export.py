"""Export a trained VAE as a SavedModel in TF Serving's layout: ``OUT/NAME/VERSION/``.

Each version folder holds ``saved_model.pb``, ``variables/`` and ``assets.extra/`` with
``model_card.json``, ``history.csv``, ``model.keras``, ``config.json`` and
``tf_serving_warmup_requests``. The signatures (docs/contracts.md) need nothing from vae_keras to load:

- ``serving_default``: x float32 [None, H, W, C] -> x_mean, z_mean, z_log_var
- ``encode``: x -> z_mean, z_log_var
- ``decode``: z float32 [None, latent_dim] -> x_mean and the likelihood's parameters
- ``sample``: num_samples int32 scalar, seed int32 scalar -> x_mean, z (z drawn from the model's prior)
- ``log_weights``: x, num_samples int32 scalar, seed int32 scalar -> log_w [num_samples, None]
- ``log_prior`` (models with a learned prior only): z -> log_pz [None]

A PixelCNN decoder (`vae_keras.autoregressive`) generates its pixels one at a time: ``decode``
greedily (every pixel takes its more likely value), ``sample`` by sampling each pixel with the
stateless seed [seed, 1] (z uses [seed, 0]); x_mean is then each pixel's probability given z and
the generated earlier pixels. ``serving_default`` gives each pixel's probability given z_mean and
the earlier pixels of x.

A version is built in a hidden temporary folder beside the versions (TF Serving only loads folders
whose names are integers) and renamed into place, so a crash never leaves a half-written version and
an existing version is never touched.
"""

import csv
import io
import os
import platform
import re
import time

import keras
import numpy as np
import tensorflow as tf

from vae_keras import fileio
from vae_keras.errors import ConfigError, OutputExistsError
from vae_keras.layout import (  # noqa: F401 - the export layout's names, re-exported (export.ASSETS_EXTRA, ...)
    ASSETS_EXTRA,
    CONFIG_FILE,
    HISTORY,
    KERAS_FILE,
    LEARNED_PRIOR_SIGNATURES,
    MODEL_CARD,
    SIGNATURES,
    WARMUP_FILE,
    existing_versions,
)

HISTORY_FIRST_COLUMNS = ("epoch", "loss", "reconstruction", "kl", "val_loss", "val_reconstruction", "val_kl")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_model_name(name):
    """A model name is one folder name: letters, digits, '_', '.', '-', not starting with '.'."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in (".", ".."):
        raise ConfigError(
            "A model name must be a plain folder name (letters, digits, '_', '.', '-'; not starting "
            f"with '.' or '-'). Received: name={name!r}"
        )
    return name


def signature_names(model):
    """The signatures an export of ``model`` has: `SIGNATURES`, plus ``log_prior`` with a learned prior."""
    return list(SIGNATURES) + (list(LEARNED_PRIOR_SIGNATURES) if model.prior.learned else [])


def _signature_functions(model):
    """The serving functions (`signature_names`), closed over the model's variables.

    A conditional model's functions also take ``label`` int32 [None]; labels outside
    [0, num_classes) fail with an InvalidArgumentError that names the range.
    """
    image_shape = model.image_shape
    latent_dim = model.latent_dim
    likelihood = model.likelihood
    num_classes = model.num_classes

    def checked(label):
        if num_classes is None:
            return None
        tf.debugging.assert_non_negative(label, message="label must be >= 0")
        tf.debugging.assert_less(label, tf.constant(num_classes, tf.int32),
                                 message=f"label must be < num_classes = {num_classes}")
        return label

    def decode_outputs(z, label, seed=None):
        # An autoregressive decoder generates the pixels one by one: greedily without a seed, sampled with one.
        params_raw = model.decode(z, label, seed=seed)
        outputs = {"x_mean": likelihood.mean(params_raw)}
        outputs.update(likelihood.split(params_raw))
        return outputs

    def serving_default(x, label=None):
        label = checked(label)
        z_mean, z_log_var = model.encode(x, label)
        x_mean = likelihood.mean(model.decode(z_mean, label, x=x))  # autoregressive: given the earlier pixels of x
        return {"x_mean": x_mean, "z_mean": z_mean, "z_log_var": z_log_var}

    def encode(x, label=None):
        z_mean, z_log_var = model.encode(x, checked(label))
        return {"z_mean": z_mean, "z_log_var": z_log_var}

    def decode(z, label=None):
        return decode_outputs(z, checked(label))

    def sample(num_samples, seed, label=None):
        if label is not None:
            tf.debugging.assert_equal(tf.shape(label)[0], num_samples, message="label needs one entry per sample")
        label = checked(label)
        z = model.sample_latent(num_samples, seed, label)  # the prior, or the fitted mixture (of each sample's class)
        return {"x_mean": decode_outputs(z, label, seed=seed)["x_mean"], "z": z}

    def log_weights(x, num_samples, seed, label=None):
        # log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x), z_k = mean + sigma * eps_k, eps: seed [seed, 0]
        # (the model's latent hooks: with several stochastic layers eps covers all of them, bottom first).
        label = checked(label)
        z_mean, z_log_var = model._first_posterior(x, label)
        eps = tf.random.stateless_normal(tf.stack([num_samples, tf.shape(z_mean)[0], model._noise_dim]),
                                         seed=tf.stack([seed, 0]))
        log_px, log_pz, log_qz = model._log_weight_terms(x, label, z_mean, z_log_var, eps)
        return {"log_w": log_px + log_pz - log_qz}

    def log_prior(z):
        return {"log_pz": model.prior.log_prob(z)}

    x_spec = tf.TensorSpec((None,) + tuple(image_shape), tf.float32, name="x")
    z_spec = tf.TensorSpec((None, latent_dim), tf.float32, name="z")
    scalar = [tf.TensorSpec((), tf.int32, name="num_samples"), tf.TensorSpec((), tf.int32, name="seed")]
    label = [tf.TensorSpec((None,), tf.int32, name="label")] if num_classes is not None else []
    functions = {
        "serving_default": (serving_default, [x_spec] + label),
        "encode": (encode, [x_spec] + label),
        "decode": (decode, [z_spec] + label),
        "sample": (sample, scalar + label),
        "log_weights": (log_weights, [x_spec] + scalar + label),
        "log_prior": (log_prior, [z_spec]),
    }
    return {name: functions[name] for name in signature_names(model)}


def write_saved_model(model, path):
    """Writes the model's SavedModel with its signatures (`signature_names`) to ``path`` (no assets.extra).

    A plain `tf.Module` holding the model: `keras.export.ExportArchive` would store every
    variable twice (once per tracking path), doubling ``variables/`` for nothing.
    """
    module = tf.Module()
    module.model = model
    signatures = {}
    for name, (fn, input_signature) in _signature_functions(model).items():
        function = tf.function(fn, input_signature=input_signature)
        setattr(module, f"{name}_function", function)
        signatures[name] = function.get_concrete_function()
    tf.saved_model.save(module, path, signatures=signatures)


def inference_copy(model):
    """A copy of ``model`` with the same weights and no optimizer, for export.

    Exporting the training model itself would also save Adam's two moment estimates per weight,
    tripling the files for nothing a server or the dashboard uses. Training-only parts (FactorVAE's
    discriminator, which ``compile`` creates) are left out too: the copy is not compiled.
    """
    clone = type(model).from_config(model.get_config())
    clone(clone.example_inputs())  # builds it with a known input shape
    clone.set_weights(model.inference_weights())
    return clone


def history_csv(history_rows):
    """CSV text, one row per epoch, with HISTORY_FIRST_COLUMNS first (docs/contracts.md, history.csv)."""
    rows = [dict(r) for r in history_rows]
    columns = [c for c in HISTORY_FIRST_COLUMNS if any(c in r for r in rows) or c in HISTORY_FIRST_COLUMNS[:4]]
    for r in rows:
        columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _plain(v) for k, v in r.items()})
    return buf.getvalue()


def _plain(value):
    if isinstance(value, (np.generic,)):
        return value.item()
    return value


def history_rows_from_keras(history, first_epoch=1):
    """Turns a `keras.callbacks.History.history` dict into per-epoch rows (epochs count from 1)."""
    keys = list(history)
    n = max((len(history[k]) for k in keys), default=0)
    rows = []
    for i in range(n):
        row = {"epoch": first_epoch + i}
        for k in keys:
            if i < len(history[k]):
                row[k] = float(history[k][i])
        rows.append(row)
    return rows


def last_fit_history(model):
    """Per-epoch rows of ``model``'s last ``fit`` (Keras keeps its `History` as ``model.history``); [] if none."""
    fit = getattr(model, "history", None)
    logs = getattr(fit, "history", None)
    if not isinstance(logs, dict) or not logs:
        return []
    epochs = getattr(fit, "epoch", None) or [0]
    return history_rows_from_keras(logs, first_epoch=int(epochs[0]) + 1)


def warmup_records(model, model_name):
    """Serialized `PredictionLog` records, one request per signature, in TF Serving's warm-up format."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    x = np.full((1,) + tuple(model.image_shape), 0.5, np.float32)
    z = np.zeros((1, model.latent_dim), np.float32)
    inputs = {
        "serving_default": {"x": x},
        "encode": {"x": x},
        "decode": {"z": z},
        "sample": {"num_samples": np.int32(1), "seed": np.int32(0)},
        "log_weights": {"x": x, "num_samples": np.int32(1), "seed": np.int32(0)},
        "log_prior": {"z": z},
    }
    if model.conditional:
        for name, tensors in inputs.items():
            if name != "log_prior":
                tensors["label"] = np.zeros((1,), np.int32)
    records = []
    for signature in signature_names(model):
        tensors = inputs[signature]
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
        for key, value in tensors.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
        records.append(log.SerializeToString())
    return records


def _write_tfrecord(path, records):
    with tf.io.TFRecordWriter(path) as writer:
        for r in records:
            writer.write(r)


def _sampler_card(model):
    sampler = getattr(model, "sampler", None)
    if sampler is None:
        if model.prior.kind == "standard":
            return {"name": "prior", "description": "z ~ N(0, I), the prior"}
        return {"name": "prior", "description": f"z from the learned prior ({model.prior.kind})"}
    if sampler.num_classes is None:
        return {"name": f"gmm:{sampler.num_components}", "covariance": sampler.covariance,
                "description": f"z from a {sampler.num_components}-component Gaussian mixture ({sampler.covariance} "
                               "covariance) fitted to the encoder's posterior means of the training images"}
    return {"name": f"gmm:{sampler.num_components}", "covariance": sampler.covariance, "per_class": True,
            "description": f"z from the sample's class's {sampler.num_components}-component Gaussian mixture "
                           f"({sampler.covariance} covariance), fitted to the encoder's posterior means of that "
                           "class's training images"}


def build_model_card(model, dataset=None, metrics=None, extra=None):
    """The model card: what the model is, what it was trained on, how well it does."""
    card = {
        "format": "vae_keras/model_card/v1",
        "model_class": type(model).__name__,
        "image_shape": list(model.image_shape),
        "latent_dim": model.latent_dim,
        "likelihood": model.likelihood.name,
        "likelihood_config": model.likelihood.get_config(),
        "likelihood_params": list(model.likelihood.param_names),
        "decoder": getattr(model, "decoder_kind", "factorized"),  # pixelcnn: decode/sample are sequential over pixels
        "conditional": model.conditional,
        "num_classes": model.num_classes,
        "class_names": None,
        "beta": model.beta,
        "binarize": model.binarize,
        "objective": model.objective,
        "objective_options": model.objective_options(),
        "capacity_max": model.capacity_max,
        "sampler": _sampler_card(model),
        "prior": model.prior.kind,
        "prior_components": getattr(model.prior, "num_components", None),
        "iwae_gradient": model.iwae_gradient,
        "parameters": int(sum(w.size for w in model.inference_weights())),  # what is exported (no discriminator)
        "dtype_policy": model.decoder.dtype_policy.name,  # "mixed_bfloat16": the networks compute in bfloat16
        "dataset": dataset,
        "metrics": metrics or {},
        "signatures": signature_names(model),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": {
            "vae_keras": _vae_keras_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "python": platform.python_version(),
        },
    }
    card.update(extra or {})
    return card


def _vae_keras_version():
    from vae_keras import __version__

    return __version__


def export_model(model, out_dir, name, *, history=None, dataset=None, metrics=None, config=None,
                 card_extra=None):
    """Exports ``model`` to ``out_dir/name/VERSION/`` (VERSION = next integer) and returns that path.

    Args:
        model: a trained `vae_keras.VAE`.
        out_dir: the models folder (e.g. ``saved_models``).
        name: the model's name (one folder name).
        history: per-epoch rows (dicts with ``epoch``, ``loss``, ...) for ``history.csv``; None (the
            default) takes them from the model's last ``fit`` (``model.history``), if it was fitted.
        dataset: the dataset spec (e.g. ``"mnist-10k"``) or description for the model card;
            ``vae-keras evaluate`` reloads this spec when no ``--dataset`` is given.
        metrics: final metrics for the model card.
        config: the resolved training config, saved as ``assets.extra/config.json``.
        card_extra: more model-card fields (e.g. ``class_names``, ``network``).

    Returns:
        The path of the new version folder.

    Example:
    >>> path = export_model(vae, "saved_models", "mnist")  # doctest: +SKIP
    """
    check_model_name(name)
    base = os.path.join(os.fspath(out_dir), name)
    if os.path.exists(base) and not os.path.isdir(base):
        raise OutputExistsError(f"Cannot export to {base!r}: it exists and is not a folder. Choose another --name or --out.")
    if history is None:
        history = last_fit_history(model)
    card = build_model_card(model, dataset=dataset, metrics=metrics, extra=card_extra)
    model = inference_copy(model)
    with fileio.staging_dir(base, prefix=".tmp-export-") as tmp:
        write_saved_model(model, tmp)
        extra = os.path.join(tmp, ASSETS_EXTRA)
        os.makedirs(extra, exist_ok=True)
        model.save(os.path.join(extra, KERAS_FILE))
        fileio.atomic_write_text(os.path.join(extra, HISTORY), history_csv(history))
        fileio.atomic_write_json(os.path.join(extra, CONFIG_FILE), config or {})
        _write_tfrecord(os.path.join(extra, WARMUP_FILE), warmup_records(model, name))
        for _ in range(100):
            version = (existing_versions(base) or [0])[-1] + 1
            card["version"] = version
            card["name"] = name
            fileio.atomic_write_json(os.path.join(extra, MODEL_CARD), card, overwrite=True)
            target = os.path.join(base, str(version))
            if fileio.publish_dir(tmp, target):
                return target
        raise OutputExistsError(f"Could not claim a new version folder under {base!r}: other writers keep taking them.")
