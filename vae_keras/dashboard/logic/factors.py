"""The Factors page's numbers and pictures: which latent follows which factor of variation.

For a model whose dataset has factors (``factor_names``, ``factor_sizes``, ``render``, ``sample_factors``:
`vae_keras.disentanglement.GROUND_TRUTH_ATTRIBUTES`, e.g. ``dsprites``):

- the latent x factor mutual information I(z_j; factor_k) of the test images' posterior means, the
  matrix of `vae_keras.disentanglement.mutual_information_matrix` (MIG's: 20 histogram bins, nats),
  as a long frame and an altair heatmap;
- per latent, the factor it follows: the factor of the highest mutual information (and that
  information as a share of the factor's entropy, so 1.0 means the latent tells the factor exactly);
- the metrics table of an `evaluate_disentanglement` result (or of the card's ``disentanglement``);
- an animated GIF of a traversal (PIL), frames forward then back.

Nothing here imports Streamlit; altair, pandas and PIL are imported by the functions that need them.
"""

import io

import numpy as np

MIN_FRAME_MS = 20  # browsers show GIF frames faster than 20 ms at 100 ms; keep every frame's time honest

METRIC_ROWS = (  # (summary key, label, what it measures)
    ("mig", "MIG", "mutual information gap (Chen et al. 2018)"),
    ("factorvae_score", "FactorVAE score", "majority-vote accuracy (Kim & Mnih 2018)"),
    ("sap", "SAP", "separated attribute predictability (Kumar et al. 2018)"),
    ("dci_disentanglement", "DCI disentanglement", "Eastwood & Williams 2018"),
    ("dci_completeness", "DCI completeness", "Eastwood & Williams 2018"),
    ("dci_informativeness", "DCI informativeness", "the predictor's test accuracy (R^2 for the lasso)"),
    ("beta_vae_score", "beta-VAE score", "logistic-regression accuracy (Higgins et al. 2017)"),
)


def missing_factors(data):
    """What ``data`` lacks to be a ground truth (an empty list: it has factors of variation)."""
    from vae_keras import disentanglement

    return disentanglement.missing_ground_truth_attributes(data)


def no_factors_message(dataset, missing):
    """The page's sentence for a model whose dataset has no factors of variation."""
    return (f"This model was trained on `{dataset}`, which has no factors of variation (it lacks "
            f"{', '.join(missing)}), so there is no latent x factor information to show. The Factors page needs a "
            "model of a dataset with known factors, such as dsprites: "
            "`vae-keras train --dataset dsprites --model conv64 --latent-dim 10 --objective tcvae --beta 6`.")


def mutual_information(codes, factors):
    """I(z_j; factor_k) in nats, [D, F]: `vae_keras.disentanglement.mutual_information_matrix` (MIG's)."""
    from vae_keras import disentanglement

    return disentanglement.mutual_information_matrix(np.asarray(codes), np.asarray(factors))


def followed_factors(mi, factors, factor_names):
    """Per latent: ``{"latent", "factor", "mi", "share"}`` with the factor of the highest mutual information,
    that information in nats and as a share of the factor's entropy (sampled ``factors``)."""
    from vae_keras import disentanglement

    mi = np.asarray(mi, np.float64)
    entropy = disentanglement.factor_entropies(np.asarray(factors))
    rows = []
    for j, row in enumerate(mi):
        k = int(np.argmax(row))
        rows.append({"latent": j, "factor": factor_names[k], "mi": float(row[k]),
                     "share": float(row[k] / entropy[k]) if entropy[k] > 0 else 0.0})
    return rows


def mi_frame(mi, factor_names):
    """The heatmap's data: one row per (latent, factor) with ``latent`` ("z0", ...), ``factor`` and ``mi``."""
    import pandas as pd

    mi = np.asarray(mi, np.float64)
    return pd.DataFrame([{"latent": f"z{j}", "factor": factor_names[k], "mi": float(mi[j, k])}
                         for j in range(mi.shape[0]) for k in range(mi.shape[1])])


def mi_heatmap(frame, factor_names):
    """An altair heatmap of :func:`mi_frame` (latents down, factors across, darker = more information)."""
    import altair as alt

    latents = list(dict.fromkeys(frame["latent"]))
    return (
        alt.Chart(frame, title=alt.TitleParams("Mutual information I(z_j; factor) of the test images (nats)",
                                               anchor="start"))
        .mark_rect()
        .encode(x=alt.X("factor:N", sort=list(factor_names), title="factor"),
                y=alt.Y("latent:N", sort=latents, title="latent (posterior mean)"),
                color=alt.Color("mi:Q", title="nats", scale=alt.Scale(scheme="blues", domainMin=0)),
                tooltip=["latent:N", "factor:N", alt.Tooltip("mi:Q", title="I (nats)", format=".3f")])
        .properties(height=max(120, 24 * len(latents)))
    )


def metrics_rows(result):
    """The metrics table: ``[{"metric", "value", "about"}]`` for the summary keys present in ``result``
    (an `evaluate_disentanglement` result, or its ``summary`` alone)."""
    summary = result.get("summary", result) if isinstance(result, dict) else {}
    return [{"metric": label, "value": float(summary[key]), "about": about}
            for key, label, about in METRIC_ROWS if isinstance(summary.get(key), (int, float))]


def card_metrics(card):
    """The disentanglement metrics a model card carries (``card["disentanglement"]``: an `evaluate_disentanglement`
    result or its summary), or None."""
    value = (card or {}).get("disentanglement")
    return value if isinstance(value, dict) and metrics_rows(value) else None


def traversal_values(steps, limit):
    """``steps`` values from ``-limit`` to ``limit`` (the prior's N(0, 1) scale)."""
    return np.linspace(-float(limit), float(limit), int(steps)).astype(np.float32)


def traversal_gif(frames, scale=1, frame_ms=120):
    """An animated GIF (bytes) of ``frames [T, H, W, C]`` (floats in [0, 1]), forward then back, looping forever."""
    from PIL import Image

    from vae_keras import images as images_lib

    frames = np.asarray(frames)
    if frames.ndim != 4 or len(frames) < 2:
        raise ValueError(f"A traversal GIF needs at least 2 frames [T, H, W, C]; received shape {frames.shape}")
    order = list(range(len(frames))) + list(range(len(frames) - 2, 0, -1))
    pictures = []
    for i in order:
        pixels = np.clip(np.round(images_lib.upscale(frames[i], scale) * 255), 0, 255).astype(np.uint8)
        pictures.append(Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels))
    buf = io.BytesIO()
    pictures[0].save(buf, format="GIF", save_all=True, append_images=pictures[1:], loop=0,
                     duration=max(MIN_FRAME_MS, int(frame_ms)), disposal=2)
    return buf.getvalue()
