"""Loading exported models: the models folder, model cards, histories and the SavedModel signatures.

Everything here works on the exported files alone (``tf.saved_model.load``), as TF Serving would;
the dashboard and ``vae-keras sample`` use it.
"""

import dataclasses
import json
import os

import numpy as np

from vae_keras import checks, layout
from vae_keras import labels as labels_lib
from vae_keras.errors import ConfigError, ModelDirError

REQUIRED_SIGNATURES = {
    "serving_default": ({"x"}, {"x_mean", "z_mean", "z_log_var"}),
    "encode": ({"x"}, {"z_mean", "z_log_var"}),
    "decode": ({"z"}, {"x_mean"}),
    "sample": ({"num_samples", "seed"}, {"x_mean", "z"}),
}


@dataclasses.dataclass
class ModelEntry:
    """One ``NAME/VERSION`` folder of a models folder, read without loading the SavedModel."""

    name: str
    version: int
    path: str
    card: dict | None
    error: str | None

    @property
    def label(self):
        return f"{self.name}/{self.version}"


def read_card(version_dir):
    """The model card of an exported version; raises ModelDirError if missing or unreadable."""
    path = os.path.join(version_dir, layout.ASSETS_EXTRA, layout.MODEL_CARD)
    try:
        with open(path, encoding="utf-8") as f:
            card = json.load(f)
    except FileNotFoundError:
        raise ModelDirError(f"{version_dir!r} has no {layout.ASSETS_EXTRA}/{layout.MODEL_CARD}; it was not exported by vae_keras.") from None
    except (OSError, ValueError) as e:
        raise ModelDirError(f"The model card {path!r} cannot be read: {e}") from None
    if not isinstance(card, dict) or "image_shape" not in card or "latent_dim" not in card:
        raise ModelDirError(f"The model card {path!r} lacks image_shape/latent_dim; re-export the model.")
    return card


def read_history(version_dir):
    """history.csv as a pandas DataFrame (None if the file is missing)."""
    import pandas as pd

    path = os.path.join(version_dir, layout.ASSETS_EXTRA, layout.HISTORY)
    if not os.path.exists(path):
        return None
    try:
        return pd.read_csv(path)
    except Exception as e:  # noqa: BLE001 - pandas raises many types for a broken CSV
        raise ModelDirError(f"The training history {path!r} cannot be read: {e}") from None


def list_models(models_dir):
    """Every ``NAME/VERSION`` under ``models_dir``, newest version first within a name, names sorted.

    A version folder that is not a usable export comes back with ``error`` set instead of raising.
    """
    entries = []
    if not os.path.isdir(models_dir):
        return entries
    for name in sorted(os.listdir(models_dir)):
        base = os.path.join(models_dir, name)
        if name.startswith(".") or not os.path.isdir(base):
            continue
        versions = layout.existing_versions(base)
        if not versions:
            entries.append(ModelEntry(name, 0, base, None, "no numeric version folders (expected NAME/1/saved_model.pb)"))
        for version in reversed(versions):
            path = os.path.join(base, str(version))
            card, error = None, None
            if not os.path.exists(os.path.join(path, "saved_model.pb")):
                error = "no saved_model.pb: not a SavedModel"
            else:
                try:
                    card = read_card(path)
                except ModelDirError as e:
                    error = str(e)
            entries.append(ModelEntry(name, version, path, card, error))
    return entries


def resolve_version_dir(path):
    """``NAME/VERSION`` folder for ``path``: the folder itself, or the newest version of a NAME folder."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise ModelDirError(f"Model folder {path!r} does not exist. Pass an exported model folder such as saved_models/NAME or saved_models/NAME/1.")
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    versions = layout.existing_versions(path)
    if not versions:
        raise ModelDirError(f"{path!r} is not a SavedModel folder (no saved_model.pb) and has no numeric version folders.")
    return os.path.join(path, str(versions[-1]))


def card_prior(card):
    """A model card's prior: "standard" (also for exports older than the learned priors), "vamp", "mog"."""
    return (card or {}).get("prior") or "standard"


class ExportedVAE:
    """A VAE loaded from its SavedModel signatures (no vae_keras model code involved).

    Args:
        path: a ``NAME/VERSION`` folder or a ``NAME`` folder (newest version).

    Example:
    >>> vae = ExportedVAE("saved_models/mnist-demo")  # doctest: +SKIP
    >>> vae.sample(16, seed=0)["x_mean"].shape        # doctest: +SKIP
    (16, 28, 28, 1)
    """

    def __init__(self, path):
        import tensorflow as tf

        self.path = resolve_version_dir(path)
        self.card = read_card(self.path)
        try:
            self._saved = tf.saved_model.load(self.path)
        except Exception as e:  # noqa: BLE001 - TF raises several types for a broken SavedModel
            raise ModelDirError(f"{self.path!r} is not a loadable SavedModel: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        self.signatures = dict(self._saved.signatures)
        self.conditional = bool(self.card.get("conditional"))
        self.num_classes = self.card.get("num_classes") if self.conditional else None
        check_signatures(self.signatures, self.path, conditional=self.conditional)
        self.image_shape = tuple(int(d) for d in self.card["image_shape"])
        self.latent_dim = int(self.card["latent_dim"])

    @property
    def class_names(self):
        names = self.card.get("class_names")
        if names:
            return list(names)
        return [str(i) for i in range(self.num_classes)] if self.num_classes else None

    @property
    def history(self):
        return read_history(self.path)

    def _call(self, signature, **inputs):
        import tensorflow as tf

        out = self.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in out.items()}

    def _check_images(self, x):
        x = np.asarray(x)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ConfigError(f"This model takes images of shape {self.image_shape}; received an array of shape {x.shape}.")
        if x.dtype.kind not in "fiub":
            raise ConfigError(f"Images must be numbers in [0, 1]; received dtype {x.dtype}.")
        with np.errstate(all="ignore"):
            x = x.astype(np.float32)
        if x.size and not (np.all(np.isfinite(x)) and x.min() >= 0.0 and x.max() <= 1.0):
            bad = int(np.sum(~np.isfinite(x)))
            raise ConfigError(
                f"Images must be finite floats in [0, 1]; received {bad} NaN/inf values and range "
                f"[{np.nanmin(np.where(np.isfinite(x), x, np.nan)) if bad < x.size else 'nan'}, "
                f"{np.nanmax(np.where(np.isfinite(x), x, np.nan)) if bad < x.size else 'nan'}]. Scale pixels to [0, 1].")
        return x

    def _labels(self, label, n):
        """{'label': int32 [n]} for a conditional model (label: int or [n] ints), {} otherwise."""
        if not self.conditional:
            if label is not None:
                raise ConfigError(f"This model is not conditional; it takes no label. Received: label={label!r}")
            return {}
        if label is None:
            raise ConfigError(f"This conditional model needs a label in 0..{self.num_classes - 1} for every image. Received: label=None")
        labels = labels_lib.check_labels(
            label, n, self.num_classes, broadcast=True,
            shape_message="Labels must be {n} integers. Received an array of shape {shape} and dtype {dtype}",
            range_message="Label {bad} is outside the trained range 0..{top} ({names}). Received: label={label!r}",
            names=", ".join(self.class_names), label=label)
        return {"label": labels}

    def reconstruct(self, x, label=None):
        """serving_default: dict with x_mean, z_mean, z_log_var."""
        x = self._check_images(x)
        return self._call("serving_default", x=x, **self._labels(label, len(x)))

    def encode(self, x, label=None):
        x = self._check_images(x)
        return self._call("encode", x=x, **self._labels(label, len(x)))

    def decode(self, z, label=None):
        z = np.asarray(z, np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ModelDirError(f"This model decodes z of shape [N, {self.latent_dim}]; received {z.shape}.")
        return self._call("decode", z=z, **self._labels(label, len(z)))

    def log_weights(self, x, num_samples, seed=0, label=None):
        """log w [num_samples, N] = log p(x, z_k) - log q(z_k|x) from the ``log_weights`` signature.

        ``logsumexp(log_w, axis=0) - log(num_samples)`` estimates log p(x) (binarize ``x`` first for a
        Bernoulli model evaluated on binary images).
        """
        if "log_weights" not in self.signatures:
            raise ModelDirError(f"{self.path!r} has no 'log_weights' signature (exported before it existed); "
                                "re-export it with this version of vae_keras.")
        checks.check_integer("num_samples", num_samples, 1, numpy=True)
        x = self._check_images(x)
        return self._call("log_weights", x=x, num_samples=np.int32(num_samples), seed=np.int32(seed),
                          **self._labels(label, len(x)))["log_w"]

    @property
    def prior(self):
        """The model card's prior (`card_prior`)."""
        return card_prior(self.card)

    def sample(self, num_samples, seed=0, temperature=1.0, label=None):
        """Draws z from the prior and decodes it: the `sample` signature.

        For the standard prior, a temperature other than 1 draws z ~ N(0, temperature^2 I): the same seeded
        z (TensorFlow's stateless normal with seed [seed, 0]) is scaled and sent through `decode`, so a given
        seed shows the same images at every temperature, only sharper or wilder. A learned prior has no
        temperature (it is refused). A conditional model needs ``label``: one class for all samples, or one
        per sample.
        """
        checks.check_integer("num_samples", num_samples, 0, numpy=True)
        checks.check_number("temperature", temperature)
        if temperature != 1.0 and self.prior != "standard":
            raise ConfigError(f"temperature={temperature!r} scales z ~ N(0, I); this model samples from its learned "
                              f"{self.prior!r} prior, which has no temperature. Use temperature 1 (a model trained "
                              "with --prior standard takes one).")
        seed = int(np.int32(np.int64(seed) & 0xFFFFFFFF)) if not -2**31 <= int(seed) < 2**31 else int(seed)
        labels = self._labels(label, int(num_samples))
        sampler = (self.card.get("sampler") or {}).get("name", "prior")
        if temperature != 1.0 and sampler != "prior":
            raise ConfigError(f"temperature={temperature} scales z ~ N(0, I), and this model samples z from its fitted "
                              f"mixture ({sampler}): use temperature 1.")
        if temperature == 1.0:
            return self._call("sample", num_samples=np.int32(num_samples), seed=np.int32(seed), **labels)
        z = self.standard_normal_z(num_samples, seed) * np.float32(temperature)
        out = self._call("decode", z=z, **labels)
        return {"x_mean": out["x_mean"], "z": z}

    def standard_normal_z(self, num_samples, seed=0):
        """z ~ N(0, I) [num_samples, latent_dim] (float32 numpy), TensorFlow's stateless normal with seed [seed, 0]:
        the codes `sample` scales by a temperature, and the dashboard decodes as the standard prior's samples beside
        a fitted mixture's (whose `sample` signature draws from the mixture)."""
        import tensorflow as tf

        checks.check_integer("num_samples", num_samples, 0, numpy=True)
        seed = int(np.int32(np.int64(seed) & 0xFFFFFFFF)) if not -2**31 <= int(seed) < 2**31 else int(seed)
        return tf.random.stateless_normal([int(num_samples), self.latent_dim], seed=[seed, 0]).numpy()


def check_signatures(signatures, where="the SavedModel", conditional=False):
    """Raises ModelDirError unless ``signatures`` have the inputs and outputs of docs/contracts.md (REQUIRED_SIGNATURES)."""
    for name, (inputs, outputs) in REQUIRED_SIGNATURES.items():
        if conditional:
            inputs = inputs | {"label"}
        if name not in signatures:
            raise ModelDirError(f"{where!r} lacks the {name!r} signature; it has {sorted(signatures)}. Re-export it with vae_keras.")
        fn = signatures[name]
        got_in = set(fn.structured_input_signature[1])
        got_out = set(fn.structured_outputs)
        if not inputs <= got_in or not outputs <= got_out:
            raise ModelDirError(
                f"Signature {name!r} of {where!r} takes {sorted(got_in)} -> {sorted(got_out)}; "
                f"the contract needs {sorted(inputs)} -> {sorted(outputs)}."
            )

