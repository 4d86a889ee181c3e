"""Sample quality for the dashboard: the model card's ``test_sample_*`` figures (`vae_keras.sample_quality`, written by
``vae-keras train --sample-quality N``) with their units and meanings, and how often a conditional model's drawn
samples are recognised as their class.

No Streamlit or TensorFlow here; pandas is imported by the table builder.
"""

from __future__ import annotations

import numpy as np

from vae_keras.dashboard.logic.cards import metric
from vae_keras.dashboard.logic.numbers import compact_number

# (card metric, label, unit: "share" (shown in %) or "" (a distance), meaning); the Compare table's columns of these
# metrics are in `vae_keras.dashboard.logic.cards.COMPARE_METRICS`.
SAMPLE_QUALITY = (
    ("test_sample_fd", "Sample FD", "",
     "Fréchet distance between random samples and the test images in the features of the dataset's classifier "
     "(squared feature units; 0 = the same feature mean and covariance); lower is better."),
    ("test_sample_precision", "Sample precision", "share",
     "Share of random samples that fall inside the test images' feature manifold (k-nearest-neighbour balls, "
     "Kynkäänniemi et al. 2019): how realistic the samples are; higher is better."),
    ("test_sample_recall", "Sample recall", "share",
     "Share of test images that fall inside the samples' feature manifold: how much of the data's variety the samples "
     "cover; higher is better."),
    ("test_sample_class_accuracy", "Sample class accuracy", "share",
     "Share of a conditional model's random samples that the dataset's classifier recognises as the class they were "
     "drawn for; higher is better."),
)


def sample_quality_figures(card):
    """The card's sample-quality numbers as ``(label, value, help)`` for ``st.metric`` (empty if the card has none):
    FD as a number, precision / recall / class accuracy in percent; the help says what each means and how the card
    measured it (``test_sample_quality``)."""
    how = ((card or {}).get("metrics") or {}).get("test_sample_quality")
    how = f" Measured on {how}." if isinstance(how, str) and how else ""
    figures = []
    for key, label, unit, meaning in SAMPLE_QUALITY:
        value = metric(card, key)
        if value is None:
            continue
        shown = f"{100 * value:.1f} %" if unit == "share" else f"{compact_number(value, 2)} (lower is better)"
        figures.append((label, shown, meaning + how))
    return figures


def recognition_table(labels, predicted, class_names):
    """Per class: how many drawn samples the classifier recognises as the class they were drawn for.

    Args:
        labels: the class each sample was drawn for [N].
        predicted: the classifier's class of each sample [N].
        class_names: the names of the classes (index = label).

    Returns:
        ``(frame, overall share)``; the frame has one row per class drawn: ``class``, ``samples``, ``recognised``,
        ``share`` (recognised / samples, in [0, 1]) and ``most often seen as`` (the classifier's commonest answer).

    Example:
    >>> frame, overall = recognition_table([0, 0, 1, 1], [0, 1, 1, 1], ["a", "b"])
    >>> frame["share"].tolist(), overall
    ([0.5, 1.0], 0.75)
    """
    import pandas as pd

    labels, predicted = np.asarray(labels).astype(int), np.asarray(predicted).astype(int)
    if labels.shape != predicted.shape or labels.ndim != 1:
        raise ValueError(f"labels and predicted need the same shape [N]. Received {labels.shape} and {predicted.shape}")
    rows = []
    for k in sorted(set(labels.tolist())):
        mine = predicted[labels == k]
        common = int(np.bincount(mine).argmax())
        rows.append({"class": str(class_names[k]), "samples": int(len(mine)), "recognised": int(np.sum(mine == k)),
                     "share": float(np.mean(mine == k)),
                     "most often seen as": str(class_names[common]) if common < len(class_names) else str(common)})
    overall = float(np.mean(labels == predicted)) if len(labels) else float("nan")
    return pd.DataFrame(rows, columns=["class", "samples", "recognised", "share", "most often seen as"]), overall
