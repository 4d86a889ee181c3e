"""The Compare page: metrics, loss curves and reconstructions of several models side by side."""

import streamlit as st

from vae_keras.dashboard import logic as dl
from vae_keras.dashboard.common import SEED_MAX, history_of, no_test_images
from vae_keras.errors import VaeKerasError

TITLE = "Compare"


def render(sel, listed):
    import pandas as pd  # here, not at import: the shell is drawn before pandas loads

    labels = [s.label for s in listed]
    default = [sel.label] + [lb for lb in labels if lb != sel.label][:3]
    chosen = st.multiselect("Models to compare", labels, default=default, key="compare_models", persist_state="page")
    if len(chosen) < 2:
        st.info("Choose two or more models to compare." if len(labels) > 1 else
                f"Only one model is in this folder; train another to compare: `{dl.TRAIN_COMMAND}`.")
        if not chosen:
            return
    models = []
    for s in (s for s in listed if s.label in chosen):  # the chosen ones are loaded now, the others never
        try:
            s.model  # noqa: B018
            models.append(s)
        except VaeKerasError as e:
            st.warning(str(e))
    if not models:
        return

    st.subheader("Metrics")
    st.dataframe(dl.comparison_table([(s.label, s.card) for s in models]))

    st.subheader("Loss curves")
    long = pd.concat([dl.history_long(history_of(s.key, s.model), model=s.label) for s in models], ignore_index=True)
    if long.empty:
        st.info("None of these models has a training history.")
    else:
        metric_name = st.selectbox("Curve", dl.HISTORY_METRICS, format_func=dl.METRIC_TITLES.get, key="compare_metric",
                                   persist_state="page")
        st.altair_chart(dl.loss_chart(long, metric_name, height=400, color="model", dash="split"), width="stretch")

    st.subheader("The same test images reconstructed by each model")
    c1, c2 = st.columns(2)
    n = c1.slider("Images", 4, 16, 10, key="compare_n", persist_state="page")
    seed = c2.number_input("Shuffle seed", 0, SEED_MAX, 0, key="compare_seed", persist_state="page")
    groups = {}
    for s in models:
        groups.setdefault((s.card.get("dataset"), tuple(s.model.image_shape)), []).append(s)
    for (dataset, shape), group in groups.items():
        if len(groups) > 1:
            st.markdown(f"**{dl.short_dataset(dataset)}** ({'×'.join(map(str, shape))})")
        test, out = group[0].test()
        if test is None:
            no_test_images(out)
            continue
        idx = dl.pick_indices(len(test.x), n, seed=seed)
        scale = dl.display_scale(shape[0], target=56)
        rows = [("input", test.x[idx])] + [(s.label, s.test()[1]["x_mean"][idx]) for s in group]
        for name, images in rows:
            left, right = st.columns([1, 6], vertical_alignment="center")
            left.markdown(f"**{name}**")
            right.image(dl.grid_png(images, ncol=len(images), scale=scale), output_format="PNG")
