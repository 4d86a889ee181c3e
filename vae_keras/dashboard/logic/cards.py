"""The models folder and the model cards, for the dashboard: listing lines, headline figures, tables.

Everything here reads model cards (small JSON files) and never imports TensorFlow, Keras or Streamlit.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex

import numpy as np

from vae_keras import nll_kinds
from vae_keras.active_units import ACTIVE_UNIT_RULE
from vae_keras.dashboard.logic.numbers import compact_number, exact_number
from vae_keras.exported import card_prior

MODELS_DIR_ENV = "VAE_KERAS_MODELS_DIR"
TRAIN_COMMAND = "vae-keras train --dataset mnist-10k --epochs 5"

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
    """``(short label, meaning)`` of a card's test NLL (`vae_keras.nll_kinds.card_nll_kind`): "NLL" only
    for a discrete likelihood of discrete images; a density or a Bernoulli cross-entropy of intensities
    is labelled as such."""
    kind = nll_kinds.card_nll_kind(card)
    return nll_kinds.NLL_SHORT_LABELS[kind], nll_kinds.NLL_MEANINGS[kind]


def bits_per_dim(card):
    """The card's test bits/dim, or None unless its NLL is a discrete likelihood (older cards recorded it for any)."""
    return metric(card, "test_bits_per_dim") if nll_kinds.card_nll_kind(card) == nll_kinds.DISCRETE else None


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
    ("test_active_units", "active units", f"latent dims the encoder really uses: {ACTIVE_UNIT_RULE}"),
    ("test_bits_per_dim", "bits/dim", "test NLL in bits per pixel, only for a discrete likelihood of discrete images"),
    ("final_loss", "final train loss (nats)", "at the epoch whose weights were exported, with its KL weight"),
    ("final_val_loss", "final val loss (nats)", "at the epoch whose weights were exported"),
    # Sample quality (vae-keras train --sample-quality N): the columns of vae_keras.dashboard.logic.quality
    ("test_sample_fd", "sample FD", "Fréchet distance of random samples to the test images in the dataset "
     "classifier's features; lower is better"),
    ("test_sample_precision", "sample precision", "share of samples inside the test images' feature manifold "
     "(realism, 0 to 1); higher is better"),
    ("test_sample_recall", "sample recall", "share of test images inside the samples' feature manifold "
     "(variety, 0 to 1); higher is better"),
    ("test_sample_class_accuracy", "sample class accuracy", "share of a conditional model's samples the classifier "
     "recognises as their class (0 to 1); higher is better"),
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


def _evaluated_on(card):
    """What the card's test metrics were measured on, in words ("" if the card does not say)."""
    m = (card or {}).get("metrics") or {}
    if isinstance(m.get("test_evaluation"), str):
        return m["test_evaluation"]
    n = m.get("test_num_images") or m.get("test_images_available")
    return f"{int(n):,} test images" if isinstance(n, (int, float)) and not isinstance(n, bool) else ""


def _weights_epoch(card):
    """``"epoch N (the exported weights')"`` from the card, or the generic words."""
    m = (card or {}).get("metrics") or {}
    epoch = m.get("weights_epoch")
    if isinstance(epoch, int) and not isinstance(epoch, bool):
        return f"epoch {epoch}, the epoch whose weights were exported"
    return "the epoch whose weights were exported"


def final_figures(card, history=None):
    """The headline numbers as ``(label, value, help)`` for ``st.metric``; value is a preformatted string
    with its unit, short enough for a card at 1024 px (`compact_number`); the help gives the exact value.

    Taken from the model card's metrics, or from the last row of the history if the card lacks them.
    Bits/dim follow the NLL for a discrete likelihood of discrete images.
    """
    figures = []
    last = history.iloc[-1] if history is not None and len(history) else None
    card = card or {}
    latent = card.get("latent_dim")
    on = _evaluated_on(card)
    on = f" Measured on {on}." if on else ""

    def from_history(col):
        if last is None or col not in last.index or not np.isfinite(last[col]):
            return None
        return float(last[col])

    nll_label, nll_unit = nll_words(card)
    rows = (
        ("test_nll", f"Test {nll_label}", "nats",
         f"−log p(x) on the test set, importance-weighted, in {nll_unit} per image; lower is better.{on}", None),
        ("test_bits_per_dim", "Test bits/dim", "bits/dim",
         "The test NLL in bits per pixel and channel (NLL ÷ (pixels × ln 2)); lower is better.", None),
        ("test_elbo", "Test ELBO", "nats", f"Evidence lower bound on the test set, nats per image; higher is better.{on}",
         None),
        ("test_kl", "Test KL", "nats", f"KL(q(z|x) ‖ p(z)) on the test set, nats per image.{on}", None),
        ("test_active_units", "Active units", "dims",
         f"Latent dimensions in use: {ACTIVE_UNIT_RULE}", None),
        ("final_loss", "Final train loss", "nats",
         f"Negative ELBO on the training data (nats per image) at {_weights_epoch(card)}, with that epoch's KL weight",
         "loss"),
        ("final_val_loss", "Final val loss", "nats",
         f"Negative ELBO on the validation data (nats per image) at {_weights_epoch(card)}", "val_loss"),
    )
    for key, label, unit, help_text, hist_col in rows:
        value = bits_per_dim(card) if key == "test_bits_per_dim" else metric(card, key)
        if value is None and hist_col:
            value = from_history(hist_col)
            if value is not None:
                help_text = help_text.replace(_weights_epoch(card), "the last epoch of history.csv (the card has no value)")
        source = (card.get("metrics") or {}).get("validation_data")
        if key == "final_val_loss" and source:
            help_text += f"; validation data: {source}"
        if value is None:
            continue
        if key == "test_active_units":
            shown = f"{value:.0f} of {latent}" if isinstance(latent, int) else f"{value:.0f} dims"
        else:
            shown = f"{compact_number(value, 3 if key == 'test_bits_per_dim' else 2)} {unit}"
        figures.append((label, shown, f"{help_text} Exact value: {exact_number(value)}."))
    return figures


def over_test_images(card, n_loaded, limit):
    """What a dashboard figure over the loaded test images is over, beside what the card's metrics used:
    ``n_loaded`` images are the first ones of the test split, at most ``limit`` (issue 16: "over all 2000
    test images" was a 2,000-image subset while the card's NLL used 10,000).

    Example:
    >>> over_test_images({"metrics": {"test_images_available": 10000,
    ...                                "test_evaluation": "all 10,000 images of the test split, K=5000"}}, 2000, 2000)
    "the first 2,000 of the 10,000 test images (the dashboard loads at most 2,000); the card's test metrics used all 10,000 images of the test split, K=5000"
    """
    available = metric(card, "test_images_available")
    if available is not None and available > n_loaded:
        words = f"the first {n_loaded:,} of the {available:,.0f} test images (the dashboard loads at most {limit:,})"
    elif available is not None and available == n_loaded:
        words = f"all {n_loaded:,} test images"
    elif n_loaded >= limit:
        words = (f"the first {n_loaded:,} test images (the dashboard loads at most {limit:,}; the test split may "
                 "have more)")
    else:
        words = f"the {n_loaded:,} test images the dashboard loaded"
    evaluated = ((card or {}).get("metrics") or {}).get("test_evaluation")
    return words + (f"; the card's test metrics used {evaluated}" if isinstance(evaluated, str) else "")


def metrics_json(label, card):
    """The model card's metrics as a JSON document for download (with the model's name and dataset)."""
    import json

    card = card or {}
    doc = {"model": label, "dataset": card.get("dataset"), "likelihood": card.get("likelihood"),
           "latent_dim": card.get("latent_dim"), "created": card.get("created"),
           "metrics": card.get("metrics") or {}}
    return json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n"


def metric_vector(card, key):
    """The card's per-dim metric ``key`` (e.g. ``test_kl_per_dim``) as a finite 1-D float array, or None (absent,
    empty, or not a list of numbers: older cards do not record every metric)."""
    values = ((card or {}).get("metrics") or {}).get(key)
    if not isinstance(values, (list, tuple)) or not values:
        return None
    try:
        out = np.asarray(values, np.float64)
    except (TypeError, ValueError):
        return None
    return out if out.ndim == 1 and np.all(np.isfinite(out)) else None


def kl_per_dim(card):
    """``test_kl_per_dim`` of the card as a float array, or None."""
    return metric_vector(card, "test_kl_per_dim")


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


def sampler_words(card):
    """Where a model's random samples' z come from, in words (the card's ``prior`` and ``sampler``).

    Example:
    >>> sampler_words({}), sampler_words({"prior": "vamp"}), sampler_words({"sampler": {"name": "gmm:10"}})
    ('z ~ N(0, I)', "z ~ the learned 'vamp' prior", "z ~ the gmm:10 mixture fitted to the training images' posterior means")
    """
    card = card or {}
    sampler = (card.get("sampler") or {}).get("name", "prior")
    prior = card_prior(card)
    if sampler != "prior":
        return f"z ~ the {sampler} mixture fitted to the training images' posterior means"
    return "z ~ N(0, I)" if prior == "standard" else f"z ~ the learned {prior!r} prior"


def condition_labels(n, cls, num_classes):
    """Labels for ``n`` images of a conditional model: all ``cls``, or every class in turn if ``cls`` is None.

    Example:
    >>> condition_labels(5, None, 3).tolist(), condition_labels(2, 1, 3).tolist()
    ([0, 1, 2, 0, 1], [1, 1])
    """
    from vae_keras.labels import check_labels

    if cls is None:
        return (np.arange(int(n)) % int(num_classes)).astype(np.int32)
    return check_labels(int(cls), int(n), int(num_classes), broadcast=True, error=ValueError,
                        shape_message="class must be one integer, received {shape}", range_message="class {bad} is outside 0..{top}")


def default_traversal_dims(card, latent_dim, k=3):
    """The ``k`` latent dims with the largest test KL (the most informative), else the first ``k``."""
    k = max(1, min(int(k), int(latent_dim)))
    kl = kl_per_dim(card)
    if kl is None or len(kl) != latent_dim:
        return list(range(k))
    return sorted(int(i) for i in np.argsort(-kl, kind="stable")[:k])
