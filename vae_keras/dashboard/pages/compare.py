"""The Compare page: metrics, loss curves, reconstructions and random samples of several models side by side.

Each model keeps its colour (`dl.model_colors` over every listed model) and the rows follow the order in
which the models were chosen; the model shown in the sidebar is always among the compared ones.
"""

import numpy as np
import streamlit as st

from vae_keras.dashboard import logic as dl
from vae_keras.dashboard.common import SEED_MAX, file_stem, history_of, no_test_images, sample_images, show_grid
from vae_keras.errors import VaeKerasError

TITLE = "Compare"
UNIT_CHOICES = {"nats": "nats per image", "bits/dim": "bits per dimension (÷ pixels × channels × ln 2)"}


def chosen_models(sel, labels):
    """The compared models' labels (the multiselect's state): the model shown in the sidebar is put first
    whenever it changes, so switching the model and coming back never leaves a stale selection (issue 16)."""
    state = st.session_state.get("compare_models")
    if state is None:
        state = [sel.label] + [lb for lb in labels if lb != sel.label][:3]
    state = [lb for lb in state if lb in labels]  # models that left the folder
    if st.session_state.get("compare_shown") != sel.label and sel.label not in state:
        state = [sel.label] + state
    st.session_state["compare_shown"] = sel.label
    st.session_state["compare_models"] = state
    return st.multiselect("Models to compare (rows and colours follow this order)", labels, key="compare_models",
                          persist_state="page",
                          help="The model shown in the sidebar joins the comparison when you switch to it")


COUNTS = ("latent dim", "parameters", "epochs", "active units")


def with_separators(table):
    """The metrics table with thousands separators (counts as integers, bits/dim with 4 decimals, shares with 3,
    the rest with 2); the values stay numbers, so the columns still sort numerically."""
    import pandas as pd

    numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
    style = table.style.format(na_rep="–")
    for fmt, cols in (("{:,.0f}", [c for c in numeric if c in COUNTS]),
                      ("{:,.4f}", [c for c in numeric if c == "bits/dim"]),
                      ("{:.3f}", [c for c in numeric if c in SHARES]),
                      ("{:,.2f}", [c for c in numeric if c not in COUNTS + SHARES and c != "bits/dim"])):
        if cols:
            style = style.format(fmt, subset=cols, na_rep="–")
    return style


SHARES = ("sample precision", "sample recall", "sample class accuracy")


def column_help(table):
    """Each metric column's meaning (`dl.COMPARE_METRICS`), shown when the pointer rests on its header; the
    active units' names the rule."""
    return {title: st.column_config.Column(help=help_text) for _, title, help_text in dl.COMPARE_METRICS
            if title in table.columns}


def render(sel, listed):
    import pandas as pd  # here, not at import: the shell is drawn before pandas loads

    labels = [s.label for s in listed]
    chosen = chosen_models(sel, labels)
    if len(chosen) < 2:
        st.info("Choose two or more models to compare." if len(labels) > 1 else
                f"Only one model is in this folder; train another to compare: `{dl.TRAIN_COMMAND}`.")
        if not chosen:
            return
    by_label = {s.label: s for s in listed}
    models = []
    for s in (by_label[lb] for lb in chosen):  # the chosen ones are loaded now, in the chosen order
        try:
            s.model  # noqa: B018
            models.append(s)
        except VaeKerasError as e:
            st.warning(str(e))
    if not models:
        return
    colors = dl.model_colors(labels)

    st.subheader("Metrics")
    table = dl.comparison_table([(s.label, s.card) for s in models])
    st.dataframe(with_separators(table), column_config=column_help(table))

    st.subheader("Loss curves")
    c1, c2, c3 = st.columns([2, 3, 1], vertical_alignment="bottom")
    metric_name = c1.selectbox("Curve", dl.HISTORY_METRICS, format_func=dl.METRIC_TITLES.get, key="compare_metric",
                               persist_state="page")
    unit = c2.radio("Units", list(UNIT_CHOICES), format_func=UNIT_CHOICES.get, key="compare_unit", horizontal=True,
                    persist_state="page", help="Bits per dimension put models of different image sizes on one scale")
    log = c3.checkbox("Log scale", key="compare_log", persist_state="page")
    parts = []
    for s in models:
        part = dl.history_long(history_of(s.key, s.model), model=s.label)
        parts.append(dl.per_dimension(part, s.h * s.w * s.c) if unit == "bits/dim" else part)
    long = pd.concat(parts, ignore_index=True)
    if long.empty:
        st.info("None of these models has a training history.")
    else:
        try:
            chart = dl.loss_chart(long, metric_name, height=400, color="model", dash="split", unit=unit, log=log,
                                  color_scale=colors)
        except ValueError as e:
            st.warning(f"{e} Showing a linear scale instead; untick 'Log scale' or choose another curve.")
            chart = dl.loss_chart(long, metric_name, height=400, color="model", dash="split", unit=unit,
                                  color_scale=colors)
        st.altair_chart(chart, width="stretch")

    st.subheader("The same test images reconstructed by each model")
    c1, c2 = st.columns(2)
    n = c1.slider("Images", 4, 16, 10, key="compare_n", persist_state="page")
    seed = c2.number_input("Shuffle seed (also the samples' seed)", 0, SEED_MAX, 0, key="compare_seed",
                           persist_state="page")
    groups = {}
    for s in models:
        groups.setdefault((s.card.get("dataset"), tuple(s.model.image_shape)), []).append(s)
    for g, ((dataset, shape), group) in enumerate(groups.items()):
        if len(groups) > 1:
            st.markdown(f"**{dl.short_dataset(dataset)}** ({'×'.join(map(str, shape))})")
        test, out = group[0].test()
        if test is None:
            no_test_images(out)
            continue
        idx = dl.pick_indices(len(test.x), n, seed=seed)
        scale = dl.display_scale(shape[0], target=56)
        rows = [("input", test.x[idx])] + [(s.label, s.test()[1]["x_mean"][idx]) for s in group]
        images = np.concatenate([part for _, part in rows])
        show_grid(dl.tile_pngs(images, scale), len(idx), row_headers=[name for name, _ in rows],
                  alt="test image or reconstruction",
                  download=(dl.grid_download_png(images, len(idx), scale),
                            f"compare-reconstructions-{dl.short_dataset(dataset)}.png", f"dl_compare_rec_{g}"))

    st.subheader("Random samples, side by side")
    per_row = 4
    for start in range(0, len(models), per_row):
        cols = st.columns(per_row)
        for col, (i, s) in zip(cols, enumerate(models[start:start + per_row], start)):
            ncol = min(len(s.class_names), 4) if s.conditional else 4
            scale = dl.display_scale(s.h, target=40)
            x = sample_images(s.key, s.model, 16, int(seed), 1.0, s.labels(16, None))
            with col:
                st.markdown(f"**{s.label}**")
                show_grid(dl.tile_pngs(x, scale), ncol, alt=f"sample of {s.label}",
                          download=(dl.grid_download_png(x, ncol, scale), f"{file_stem(s)}-samples-seed{seed}.png",
                                    f"dl_compare_samples_{i}"))
    st.caption(f"16 samples of each model, seed {seed}, each drawn by the model's own sampler (the prior, or a fitted "
               "mixture: see each model's Random samples page)"
               + (" (conditional models: every class in turn)" if any(s.conditional for s in models) else "") + ".")
