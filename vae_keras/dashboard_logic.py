"""What the Streamlit dashboard (``dashboard/app.py``) computes, testable without Streamlit.

The app is a thin front: it loads models with :class:`vae_keras.exported.ExportedVAE`, data with
:mod:`vae_keras.data`, and asks this module for everything in between: the models table, the test
images of a model card's dataset, validated uploads, per-image reconstruction errors, the 2-D view of
the latent space (PCA), the latent codes of manifold grids, traversals and interpolations, and the
tables and altair charts of the training histories.

Nothing here imports Streamlit; altair is imported only by the chart builders.

Example:
>>> import numpy as np
>>> z = latent_traversal(np.zeros(4), dims=[1, 3], values=[-1.0, 0.0, 1.0])
>>> z.shape, z[2].tolist()
((6, 4), [0.0, 1.0, 0.0, 0.0])
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shlex
import statistics

import numpy as np

from vae_keras import images as images_lib
from vae_keras.errors import DataError

MODELS_DIR_ENV = "VAE_KERAS_MODELS_DIR"
TRAIN_COMMAND = "vae-keras train --dataset mnist-10k --epochs 5"
MAX_UPLOAD_MB = 5
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
MAX_UPLOAD_PIXELS = 40_000_000  # decoded size limit (a small PNG can decode to gigabytes)
MAX_TEST_IMAGES = 2000  # test images used for errors and the latent scatter
HISTORY_METRICS = ("loss", "reconstruction", "kl")
METRIC_TITLES = {"loss": "Loss (negative ELBO)", "reconstruction": "Reconstruction  −log p(x|z)", "kl": "KL(q(z|x) ‖ p(z))"}
SPLIT_NAMES = {"": "train", "val_": "validation"}
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_EPS = 1e-7


class UploadError(DataError):
    """An uploaded file that cannot be used as an image (its message is shown to the user)."""


# ------------------------------------------------------------------------------------------------
# Models folder and model cards
# ------------------------------------------------------------------------------------------------


def resolve_models_dir(argv, environ, default):
    """The models folder: ``--models-dir DIR`` in ``argv``, else ``$VAE_KERAS_MODELS_DIR``, else ``default``.

    Args:
        argv: the script's arguments (``sys.argv[1:]``; Streamlit passes what follows ``--``).
        environ: a mapping like ``os.environ``.
        default: the folder used when neither is given.

    Returns:
        An absolute path (it may not exist; the app says so).

    Example:
    >>> resolve_models_dir(["--models-dir", "/m"], {}, "/d"), resolve_models_dir([], {}, "/d")
    ('/m', '/d')
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--models-dir")
    args, _ = parser.parse_known_args(list(argv))
    chosen = args.models_dir or environ.get(MODELS_DIR_ENV) or default
    return os.path.abspath(os.path.expanduser(os.fspath(chosen)))


def train_command(models_dir=None):
    """The command that trains a first model into ``models_dir``.

    Example:
    >>> train_command("/tmp/my models")
    "vae-keras train --dataset mnist-10k --epochs 5 --out '/tmp/my models'"
    """
    if models_dir is None:
        return TRAIN_COMMAND
    return f"{TRAIN_COMMAND} --out {shlex.quote(os.fspath(models_dir))}"


def card_summary(card):
    """One line describing a model card: dataset, image shape, latent size, likelihood, network, size."""
    card = card or {}
    parts = []
    if card.get("dataset"):
        parts.append(f"trained on {card['dataset']}")
    shape = card.get("image_shape")
    if shape:
        parts.append("×".join(str(d) for d in shape) + " images")
    parts.append(f"latent dim {card.get('latent_dim', '?')}")
    if card.get("likelihood"):
        parts.append(f"{card['likelihood']} likelihood")
    network = card.get("network")
    if network:
        hidden = card.get("hidden")
        parts.append(f"{network} network" + (f" ({', '.join(str(h) for h in hidden)})" if hidden else ""))
    if isinstance(card.get("parameters"), int):
        parts.append(f"{card['parameters']:,} parameters")
    epochs = (card.get("metrics") or {}).get("epochs_trained")
    if epochs:
        parts.append(f"{epochs} epochs")
    if card.get("beta") not in (None, 1, 1.0):
        parts.append(f"β = {card['beta']}")
    if card.get("dtype_policy") not in (None, "float32"):
        parts.append(f"{card['dtype_policy']} networks")
    if card.get("created"):
        parts.append(f"exported {str(card['created']).replace('T', ' ').rstrip('Z')} UTC")
    return " · ".join(parts)


def metric(card, name):
    """``card["metrics"][name]`` as a float, or None if missing / not a number."""
    value = ((card or {}).get("metrics") or {}).get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def model_stamp(path):
    """A value that changes when a version folder is rewritten (for cache keys)."""
    stamps = []
    for rel in ("saved_model.pb", os.path.join("assets.extra", "model_card.json"), os.path.join("assets.extra", "history.csv")):
        try:
            st = os.stat(os.path.join(path, rel))
            stamps.append(f"{st.st_mtime_ns}:{st.st_size}")
        except OSError:
            stamps.append("-")
    return "|".join(stamps)


def short_dataset(spec):
    """A dataset spec for display: a path is shortened to its last component.

    Example:
    >>> short_dataset("/data/colour.npz"), short_dataset("mnist-10k"), short_dataset(None)
    ('colour.npz', 'mnist-10k', 'unknown dataset')
    """
    if not spec:
        return "unknown dataset"
    spec = str(spec)
    if "/" in spec or os.sep in spec:
        return os.path.basename(spec.rstrip("/" + os.sep)) or spec
    return spec


def short_reason(reason, models_dir):
    """An error message with the models folder's absolute path taken out (the list already names it)."""
    prefix = os.path.join(os.fspath(models_dir), "")
    return str(reason).replace(prefix, "")


def nll_words(card):
    """``(short label, meaning)`` of a card's test NLL (`vae_keras.evaluation.card_nll_kind`): "NLL" only
    for a discrete likelihood of discrete images; a density or a Bernoulli cross-entropy of intensities
    is labelled as such."""
    from vae_keras import evaluation

    kind = evaluation.card_nll_kind(card)
    return evaluation.NLL_SHORT_LABELS[kind], evaluation.NLL_MEANINGS[kind]


def bits_per_dim(card):
    """The card's test bits/dim, or None unless its NLL is a discrete likelihood (older cards recorded it for any)."""
    from vae_keras import evaluation

    return metric(card, "test_bits_per_dim") if evaluation.card_nll_kind(card) == evaluation.DISCRETE else None


def describe_entry(entry):
    """One line for the models list: ``dataset · z=16 · test NLL 107.53``."""
    card = entry.card or {}
    parts = [short_dataset(card.get("dataset")), f"z={card.get('latent_dim', '?')}"]
    nll = metric(card, "test_nll")
    parts.append(f"test {nll_words(card)[0]} {nll:.2f}" if nll is not None else "no test NLL")
    return " · ".join(parts)


def models_table(entries):
    """A DataFrame with one row per usable ``NAME/VERSION`` (entries with an error are left out)."""
    import pandas as pd

    rows = []
    for e in entries:
        if e.error:
            continue
        card = e.card or {}
        rows.append({
            "model": e.label,
            "dataset": card.get("dataset"),
            "latent dim": card.get("latent_dim"),
            "likelihood": card.get("likelihood"),
            "network": card.get("network"),
            "epochs": ((card.get("metrics") or {}).get("epochs_trained")),
            "test NLL": metric(card, "test_nll"),
            "test NLL is": nll_words(card)[0] if metric(card, "test_nll") is not None else None,
            "test ELBO": metric(card, "test_elbo"),
            "test KL": metric(card, "test_kl"),
            "active units": metric(card, "test_active_units"),
            "final val loss": metric(card, "final_val_loss"),
            "created": card.get("created"),
        })
    return pd.DataFrame(rows, columns=["model", "dataset", "latent dim", "likelihood", "network", "epochs", "test NLL",
                                       "test NLL is", "test ELBO", "test KL", "active units", "final val loss", "created"])


COMPARE_METRICS = (
    ("test_nll", "test NLL (nats)", "lower is better: importance-weighted −log p(x); see 'test NLL is'"),
    ("test_elbo", "test ELBO (nats)", "higher is better"),
    ("test_kl", "test KL (nats)", "KL(q(z|x) ‖ p(z)) on the test images"),
    ("test_active_units", "active units", "latent dims the encoder really uses"),
    ("test_bits_per_dim", "bits/dim", "test NLL in bits per pixel, only for a discrete likelihood of discrete images"),
    ("final_loss", "final train loss", "last epoch"),
    ("final_val_loss", "final val loss", "last epoch"),
)


def comparison_table(models):
    """Metrics side by side: ``models`` is a list of ``(label, card)``; one row per model."""
    import pandas as pd

    rows = []
    for label, card in models:
        card = card or {}
        row = {"model": label, "dataset": short_dataset(card.get("dataset")), "latent dim": card.get("latent_dim"),
               "parameters": card.get("parameters"), "epochs": (card.get("metrics") or {}).get("epochs_trained")}
        for key, title, _ in COMPARE_METRICS:
            row[title] = bits_per_dim(card) if key == "test_bits_per_dim" else metric(card, key)
        row["test NLL is"] = nll_words(card)[0]
        rows.append(row)
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def final_figures(card, history=None):
    """The headline numbers as ``(label, value, help)`` for ``st.metric``; value is a preformatted string.

    Taken from the model card's metrics, or from the last row of the history if the card lacks them.
    """
    figures = []
    last = history.iloc[-1] if history is not None and len(history) else None

    def from_history(col):
        if last is None or col not in last.index or not np.isfinite(last[col]):
            return None
        return float(last[col])

    for key, label, help_text, hist_col, fmt in (
        ("test_nll", f"Test {nll_words(card)[0]}",
         f"−log p(x) on the test set, importance-weighted, in {nll_words(card)[1]} per image; lower is better", None, "{:.2f}"),
        ("test_elbo", "Test ELBO", "Evidence lower bound on the test set (nats per image; higher is better)", None, "{:.2f}"),
        ("test_kl", "Test KL", "KL(q(z|x) ‖ N(0, I)) on the test set (nats per image)", None, "{:.2f}"),
        ("test_active_units", "Active units", "Latent dimensions whose posterior mean varies across the test set", None, "{:.0f}"),
        ("final_loss", "Final train loss", "Negative ELBO on the training data at the last epoch", "loss", "{:.2f}"),
        ("final_val_loss", "Final val loss", "Negative ELBO on the validation data at the last epoch", "val_loss", "{:.2f}"),
    ):
        value = metric(card, key)
        if value is None and hist_col:
            value = from_history(hist_col)
        source = ((card or {}).get("metrics") or {}).get("validation_data")
        if key == "final_val_loss" and source:
            help_text += f"; validation data: {source}"
        if value is not None:
            figures.append((label, fmt.format(value), help_text))
    return figures


def kl_per_dim(card):
    """``test_kl_per_dim`` of the card as a float array, or None."""
    values = ((card or {}).get("metrics") or {}).get("test_kl_per_dim")
    if not isinstance(values, (list, tuple)) or not values:
        return None
    try:
        out = np.asarray(values, np.float64)
    except (TypeError, ValueError):
        return None
    return out if out.ndim == 1 else None


def class_names(card):
    """Class names of a conditional model's card (``"0"`` .. ``"K-1"`` if the card has none), else None."""
    card = card or {}
    if not card.get("conditional"):
        return None
    names = card.get("class_names")
    k = card.get("num_classes") or (len(names) if names else 0)
    if names and len(names) == k:
        return [str(n) for n in names]
    return [str(i) for i in range(int(k))]


def condition_labels(n, cls, num_classes):
    """Labels for ``n`` images of a conditional model: all ``cls``, or every class in turn if ``cls`` is None.

    Example:
    >>> condition_labels(5, None, 3).tolist(), condition_labels(2, 1, 3).tolist()
    ([0, 1, 2, 0, 1], [1, 1])
    """
    if cls is None:
        return (np.arange(int(n)) % int(num_classes)).astype(np.int32)
    if not 0 <= int(cls) < int(num_classes):
        raise ValueError(f"class {cls} is outside 0..{int(num_classes) - 1}")
    return np.full(int(n), int(cls), np.int32)


def default_traversal_dims(card, latent_dim, k=3):
    """The ``k`` latent dims with the largest test KL (the most informative), else the first ``k``."""
    k = max(1, min(int(k), int(latent_dim)))
    kl = kl_per_dim(card)
    if kl is None or len(kl) != latent_dim:
        return list(range(k))
    return sorted(int(i) for i in np.argsort(-kl, kind="stable")[:k])


# ------------------------------------------------------------------------------------------------
# Test images
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TestSet:
    """Test images of a dataset, as the models see them (float32 in [0, 1]), with their labels.

    Pixels are intensities (not binarized): reconstructions of Bernoulli models are the pixel
    probabilities, compared with these intensities.
    """

    __test__ = False  # not a pytest test class

    spec: str
    x: np.ndarray
    y: np.ndarray | None
    class_names: tuple | None

    def label_names(self, indices=None):
        """The class name of each image (or of ``indices``); ``None`` without labels."""
        if self.y is None:
            return None
        y = self.y if indices is None else self.y[np.asarray(indices)]
        if self.class_names:
            return [self.class_names[int(v)] if 0 <= int(v) < len(self.class_names) else str(int(v)) for v in y]
        return [str(int(v)) for v in y]


def load_test_set(spec, image_shape, limit=MAX_TEST_IMAGES):
    """The first ``limit`` test images of dataset ``spec`` (the model card's ``dataset``), sized for the model.

    Args:
        spec: a dataset spec understood by :func:`vae_keras.data.load_images`.
        image_shape: the model's ``(H, W, C)``; images are resized to ``H x W`` if needed.
        limit: at most this many images.

    Raises:
        DataError: no dataset in the card, the dataset cannot be loaded, or its channels differ.
    """
    from vae_keras import data

    if not spec or not isinstance(spec, str):
        raise DataError("The model card names no dataset, so there are no test images to show. Upload PNG/JPEG files instead.")
    h, w, c = (int(d) for d in image_shape)
    loaded = data.load_images(spec, image_size=(h, w))
    if loaded.image_shape[-1] != c:
        raise DataError(f"Dataset {spec!r} has {loaded.image_shape[-1]}-channel images but the model takes {c} channels.")
    x = data.to_float(loaded.x_test[:limit])
    y = None if loaded.y_test is None else np.asarray(loaded.y_test[:limit], np.int32)
    return TestSet(spec=spec, x=x, y=y, class_names=tuple(loaded.class_names) if loaded.class_names else None)


def pick_indices(n_total, n, seed=0):
    """``n`` distinct indices out of ``n_total``, chosen at random with ``seed`` (fewer if ``n_total < n``)."""
    n = max(0, min(int(n), int(n_total)))
    return np.random.default_rng(int(seed)).permutation(int(n_total))[:n]


def rank_indices(errors, n, worst=True):
    """Indices of the ``n`` largest (``worst``) or smallest errors, in that order."""
    order = np.argsort(np.asarray(errors), kind="stable")
    if worst:
        order = order[::-1]
    return order[: max(0, int(n))]


# ------------------------------------------------------------------------------------------------
# Uploads
# ------------------------------------------------------------------------------------------------


def decode_upload(name, payload, image_shape, invert=False, max_bytes=MAX_UPLOAD_BYTES):
    """Validates an uploaded PNG/JPEG and converts it to the model's input: float32 ``[H, W, C]`` in [0, 1].

    After the upload checks (size, PNG/JPEG by content, pixel count) the bytes are decoded by
    :func:`vae_keras.data.decode_image_bytes`, the decoder of training images: EXIF orientation
    applied, transparent pixels composited onto black, converted to the model's channels (colour
    to ITU-R 601-2 luma for a grayscale model) and resized to ``H x W`` (bilinear, no aspect-ratio
    crop). ``invert`` turns dark-on-light drawings into the light-on-dark digits MNIST models know.

    Raises:
        UploadError: empty, too large, not a PNG/JPEG (checked by content, not by name), corrupt or
            truncated, or too many pixels.

    Example:
    >>> import io; from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGB", (50, 40), (255, 0, 0)).save(buf, "PNG")
    >>> decode_upload("red.png", buf.getvalue(), (28, 28, 1)).shape
    (28, 28, 1)
    """
    from vae_keras import data

    h, w, c = (int(d) for d in image_shape)
    size = len(payload)
    if size == 0:
        raise UploadError(f"{name!r} is empty.")
    if size > max_bytes:
        raise UploadError(f"{name!r} is {size / 1024 / 1024:.1f} MB; uploads are limited to {max_bytes / 1024 / 1024:.0f} MB per image.")
    if payload.startswith(_PNG_MAGIC):
        kind = "PNG"
    elif payload.startswith(_JPEG_MAGIC):
        kind = "JPEG"
    else:
        raise UploadError(f"{name!r} is not a PNG or JPEG image (its content is something else). Upload .png or .jpg files.")
    try:
        pixels = data.decode_image_bytes(payload, (h, w, c), name=repr(name), formats=(kind,), max_pixels=MAX_UPLOAD_PIXELS)
    except DataError as e:
        raise UploadError(str(e)) from None
    x = data.to_float(pixels)
    return 1.0 - x if invert else x


def decode_uploads(files, image_shape, invert=False, max_bytes=MAX_UPLOAD_BYTES):
    """Decodes ``[(name, bytes), ...]``; returns ``(x [N, H, W, C] or None, names, messages)``.

    Files that fail are left out; each failure gives one message for the user.
    """
    good, names, messages = [], [], []
    for name, payload in files:
        try:
            good.append(decode_upload(name, payload, image_shape, invert=invert, max_bytes=max_bytes))
            names.append(name)
        except UploadError as e:
            messages.append(str(e))
    x = np.stack(good).astype(np.float32) if good else None
    return x, names, messages


# ------------------------------------------------------------------------------------------------
# Reconstruction errors and pictures
# ------------------------------------------------------------------------------------------------


def error_name(likelihood):
    """What :func:`reconstruction_error` measures for a model with this likelihood, for the UI."""
    if likelihood == "bernoulli":
        return "binary cross-entropy (nats, summed over pixels)"
    return "mean squared error (per pixel)"


def reconstruction_error(x, x_mean, likelihood):
    """Per-image reconstruction error between inputs ``x`` and reconstructions ``x_mean`` ``[N, H, W, C]``.

    Bernoulli models: binary cross-entropy of the pixel probabilities ``x_mean`` against the
    intensities ``x``, summed over pixels (nats, the scale of the loss's reconstruction term).
    Other likelihoods: mean squared error per pixel.

    Example:
    >>> x = np.zeros((1, 2, 2, 1), np.float32)
    >>> float(reconstruction_error(x, x + 0.5, "gaussian")[0])
    0.25
    """
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    m = np.asarray(x_mean, np.float64).reshape(len(x_mean), -1)
    if x.shape != m.shape:
        raise ValueError(f"inputs and reconstructions differ in shape: {x.shape} vs {m.shape}")
    if likelihood == "bernoulli":
        p = np.clip(m, _EPS, 1.0 - _EPS)
        return -(x * np.log(p) + (1.0 - x) * np.log1p(-p)).sum(axis=1)
    return ((x - m) ** 2).mean(axis=1)


def display_scale(height, target=84):
    """Integer nearest-neighbour scale factor that shows an image about ``target`` pixels tall."""
    return max(1, round(target / max(1, int(height))))


def upscale(picture, factor):
    """Nearest-neighbour upscaling of a picture ``[H, W(, C)]`` by an integer factor (crisp pixels)."""
    factor = int(factor)
    if factor <= 1:
        return picture
    return np.repeat(np.repeat(picture, factor, axis=0), factor, axis=1)


def grid_png(images, ncol=None, scale=1, padding=2):
    """PNG bytes of ``images [N, H, W, C]`` tiled by :func:`vae_keras.images.make_grid`, upscaled ``scale`` times.

    C = 1 is saved as a grayscale PNG, C = 3 as RGB.
    """
    grid = images_lib.make_grid(images, ncol=ncol, padding=padding)
    return images_lib.png_bytes(upscale(grid, scale))


def pair_pngs(x, x_mean, scale=1):
    """One PNG per image: the input beside its reconstruction."""
    return [grid_png(np.stack([a, b]), ncol=2, scale=scale) for a, b in zip(x, x_mean)]


def rows_png(rows, scale=1):
    """PNG bytes of equally long rows of images ``[[N, H, W, C], ...]`` stacked (e.g. input, then each model)."""
    stacked = np.concatenate([np.asarray(images_lib.to_uint8(r)) for r in rows])
    return grid_png(stacked, ncol=len(rows[0]), scale=scale)


# ------------------------------------------------------------------------------------------------
# Latent space
# ------------------------------------------------------------------------------------------------


def pca_2d(z):
    """Projects ``z [N, D]`` on its first two principal components (numpy SVD).

    Returns:
        ``(points [N, 2], explained [2])`` where ``explained`` is each component's fraction of the
        total variance. Signs are fixed (largest loading positive) so the picture is stable.
        With D = 1 the second coordinate is zero.
    """
    z = np.asarray(z, np.float64)
    if z.ndim != 2 or len(z) == 0:
        raise ValueError(f"pca_2d needs a non-empty [N, D] array. Received shape {z.shape}")
    centred = z - z.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(2, vt.shape[0])
    comps = vt[:k]
    signs = np.sign(comps[np.arange(k), np.argmax(np.abs(comps), axis=1)])
    comps = comps * np.where(signs == 0, 1.0, signs)[:, None]
    points = centred @ comps.T
    var = s**2
    total = var.sum()
    explained = var[:k] / total if total > 0 else np.zeros(k)
    if k < 2:
        points = np.concatenate([points, np.zeros((len(z), 2 - k))], axis=1)
        explained = np.concatenate([explained, np.zeros(2 - k)])
    return points, explained


def latent_frame(z_mean, labels=None):
    """The latent scatter as a DataFrame (``x``, ``y``, ``label``, ``image``) and the axis titles.

    2-D latents are shown as they are; larger ones through :func:`pca_2d`; 1-D against zero.

    Returns:
        ``(frame, (x_title, y_title), note)``.
    """
    import pandas as pd

    z_mean = np.asarray(z_mean, np.float64)
    d = z_mean.shape[1]
    if d == 2:
        points, titles, note = z_mean, ("z₁", "z₂"), "The 2-D latent space as it is: each point is a test image's posterior mean."
    elif d == 1:
        points = np.concatenate([z_mean, np.zeros_like(z_mean)], axis=1)
        titles, note = ("z₁", ""), "A 1-D latent space: each point is a test image's posterior mean."
    else:
        points, explained = pca_2d(z_mean)
        titles = (f"PC 1 ({explained[0]:.0%} of variance)", f"PC 2 ({explained[1]:.0%} of variance)")
        note = (f"The {d}-D posterior means projected on their two principal components, which keep "
                f"{explained.sum():.0%} of the variance.")
    frame = pd.DataFrame({"x": points[:, 0], "y": points[:, 1], "image": np.arange(len(points))})
    frame["label"] = [str(v) for v in labels] if labels is not None else "unlabelled"
    return frame, titles, note


def normal_quantiles(n, mass=0.9):
    """``n`` evenly spaced quantiles of N(0, 1) covering the central ``mass`` of probability.

    Example:
    >>> [round(v, 3) for v in normal_quantiles(3, mass=0.9)]
    [-1.645, 0.0, 1.645]
    """
    n = int(n)
    if n < 1 or not 0.0 < mass < 1.0:
        raise ValueError(f"normal_quantiles needs n >= 1 and 0 < mass < 1. Received: n={n}, mass={mass}")
    if n == 1:
        return [0.0]
    lo = (1.0 - mass) / 2.0
    dist = statistics.NormalDist()
    return [dist.inv_cdf(lo + i * mass / (n - 1)) for i in range(n)]


def manifold_z(n, mass=0.9):
    """Latent codes of an ``n x n`` manifold grid of a 2-D latent, row-major as make_grid tiles them.

    Columns go along z₁ (left to right, increasing) and rows along z₂ (top to bottom, decreasing),
    so the picture has the orientation of the scatter plot. Values are normal quantiles, so each cell
    holds the same prior probability mass.

    Returns:
        float32 ``[n * n, 2]``.
    """
    q = normal_quantiles(n, mass)
    return np.asarray([[z1, z2] for z2 in reversed(q) for z1 in q], np.float32)


def latent_traversal(base, dims, values):
    """Codes that move one latent dimension at a time away from ``base``.

    Args:
        base: ``[D]`` starting code (e.g. zeros, or a test image's z_mean).
        dims: dimensions to traverse; each gives one row.
        values: the values that dimension takes along the row.

    Returns:
        float32 ``[len(dims) * len(values), D]``, row by row.
    """
    base = np.asarray(base, np.float32).reshape(-1)
    dims = [int(d) for d in dims]
    for d in dims:
        if not 0 <= d < len(base):
            raise ValueError(f"latent dim {d} is out of range for a {len(base)}-D latent space")
    z = np.repeat(base[None, :], len(dims) * len(values), axis=0)
    for r, d in enumerate(dims):
        z[r * len(values):(r + 1) * len(values), d] = np.asarray(values, np.float32)
    return z


def interpolate(z0, z1, steps, spherical=False):
    """``steps`` codes from ``z0`` to ``z1`` inclusive: straight line, or great circle (``spherical``).

    Spherical interpolation keeps the norm typical of N(0, I) samples in high dimensions; it falls
    back to a straight line when the two codes are (anti)parallel or zero.
    """
    z0 = np.asarray(z0, np.float64).reshape(-1)
    z1 = np.asarray(z1, np.float64).reshape(-1)
    steps = int(steps)
    if steps < 2:
        raise ValueError(f"interpolate needs steps >= 2. Received: steps={steps}")
    t = np.linspace(0.0, 1.0, steps)[:, None]
    if spherical:
        n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
        if n0 > 0 and n1 > 0:
            cos = np.clip(np.dot(z0, z1) / (n0 * n1), -1.0, 1.0)
            omega = math.acos(cos)
            if 1e-6 < omega < math.pi - 1e-6:
                so = math.sin(omega)
                return ((np.sin((1.0 - t) * omega) / so) * z0 + (np.sin(t * omega) / so) * z1).astype(np.float32)
    return ((1.0 - t) * z0 + t * z1).astype(np.float32)


# ------------------------------------------------------------------------------------------------
# Histories and charts
# ------------------------------------------------------------------------------------------------


def history_long(history, model=None):
    """history.csv in long format: one row per (epoch, metric, split) with its ``value``.

    Columns: ``epoch``, ``metric`` (loss / reconstruction / kl), ``split`` (train / validation),
    ``value`` and, if ``model`` is given, ``model``. Missing columns and NaNs are left out.
    """
    import pandas as pd

    columns = ["epoch", "metric", "split", "value"] + (["model"] if model is not None else [])
    if history is None or len(history) == 0:
        return pd.DataFrame(columns=columns)
    epochs = history["epoch"] if "epoch" in history else pd.Series(np.arange(1, len(history) + 1))
    parts = []
    for name in HISTORY_METRICS:
        for prefix, split in SPLIT_NAMES.items():
            col = prefix + name
            if col not in history:
                continue
            part = pd.DataFrame({"epoch": np.asarray(epochs), "metric": name, "split": split,
                                 "value": pd.to_numeric(history[col], errors="coerce").to_numpy()})
            parts.append(part.dropna(subset=["value"]))
    if not parts:
        return pd.DataFrame(columns=columns)
    out = pd.concat(parts, ignore_index=True)
    if model is not None:
        out["model"] = model
    return out[columns]


def loss_chart(long, metric_name, height=340, color="split", dash=None, title=None):
    """An interactive altair line chart (zoom/pan, tooltips) of one metric of :func:`history_long` data.

    ``color`` and ``dash`` name the columns that set line colour and stroke dash (e.g. ``model`` and
    ``split`` to overlay several models).
    """
    import altair as alt

    data = long[long["metric"] == metric_name]
    enc = {
        "x": alt.X("epoch:Q", title="epoch", axis=alt.Axis(tickMinStep=1)),
        "y": alt.Y("value:Q", title="nats per image", scale=alt.Scale(zero=False)),
        "color": alt.Color(f"{color}:N", title=color, scale=alt.Scale(scheme="tableau10"),
                           legend=alt.Legend(orient="bottom", direction="horizontal")),
        "tooltip": [c for c in ("model", "split", "epoch") if c in data.columns] + [alt.Tooltip("value:Q", format=".2f")],
    }
    chart_title = title or METRIC_TITLES.get(metric_name, metric_name)
    if dash:
        # Legend symbols of dashes do not render under Streamlit's theme: the subtitle says it instead.
        values = sorted(data[dash].unique()) if dash in data else []
        patterns = [[1, 0], [6, 4], [2, 2], [8, 3, 2, 3]]
        enc["strokeDash"] = alt.StrokeDash(f"{dash}:N", legend=None, scale=alt.Scale(
            domain=values, range=[patterns[i % len(patterns)] for i in range(len(values))]))
        names = ("solid", "dashed", "dotted", "dash-dot")
        subtitle = " · ".join(f"{names[i % len(names)]}: {v}" for i, v in enumerate(values))
        chart_title = alt.TitleParams(chart_title, subtitle=subtitle, anchor="start")
    return (
        alt.Chart(data, title=chart_title)
        .mark_line(point=True)
        .encode(**enc)
        .properties(height=height, width="container")
        .interactive()
    )


def latent_chart(frame, titles, height=420):
    """An interactive altair scatter of :func:`latent_frame` points coloured by label."""
    import altair as alt

    return (
        alt.Chart(frame)
        .mark_circle(size=22, opacity=0.75)
        .encode(
            x=alt.X("x:Q", title=titles[0]),
            y=alt.Y("y:Q", title=titles[1] or None),
            color=alt.Color("label:N", title="label", sort="ascending", scale=alt.Scale(scheme="tableau10")),
            tooltip=[alt.Tooltip("image:Q", title="test image #"), "label:N",
                     alt.Tooltip("x:Q", format=".2f"), alt.Tooltip("y:Q", format=".2f")],
        )
        .properties(height=height, width="container")
        .interactive()
    )


def kl_chart(kl, height=200):
    """A bar chart of the test KL per latent dimension (which dims carry information)."""
    import altair as alt
    import pandas as pd

    frame = pd.DataFrame({"dim": np.arange(len(kl)), "KL (nats)": np.asarray(kl, np.float64)})
    return (
        alt.Chart(frame, title="Test KL per latent dimension")
        .mark_bar()
        .encode(x=alt.X("dim:O", title="latent dim"), y=alt.Y("KL (nats):Q"),
                tooltip=["dim:O", alt.Tooltip("KL (nats):Q", format=".3f")])
        .properties(height=height, width="container")
    )
