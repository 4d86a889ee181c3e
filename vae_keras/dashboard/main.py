"""The dashboard's shell and page switch: page config, the sidebar's models list (from the model cards
alone), the title, and the tabs; only the open tab's page runs (`vae_keras.dashboard.pages`).

The shell is drawn before TensorFlow is imported: the first SavedModel loads (with a spinner) only once
the title and the sidebar are on the screen.
"""

import os
import sys

import streamlit as st

from vae_keras import exported
from vae_keras.dashboard import logic as dl
from vae_keras.dashboard.common import Selected, guarded, reset_model_controls
from vae_keras.dashboard.pages import PAGES
from vae_keras.errors import VaeKerasError
from vae_keras.tf_logging import quiet_tensorflow


def empty_folder(models_dir, exists):
    st.title("vae_keras dashboard")
    if exists:
        st.info(f"No exported models in `{models_dir}` yet. Train one, and it appears here:")
    else:
        st.warning(f"The models folder `{models_dir}` does not exist. Train a model into it:")
    st.code(dl.train_command(models_dir), language="bash")
    st.markdown("Or point the dashboard at another folder: `streamlit run dashboard/app.py -- --models-dir DIR` "
                f"(or set `{dl.MODELS_DIR_ENV}`).")


def sidebar(models_dir, entries, listed, failed):
    """Draws the models list; returns ``(label of the model to show or None, a note for the page or None)``.

    A ``?model=`` that names no listed, loadable model is replaced by the model shown (the selectbox owns the
    parameter, so its value is set; the browser then rewrites the address), and the note says so.
    """
    with st.sidebar:
        st.header("Models")
        st.caption(f"Folder: `{models_dir}`")
        if not entries:
            st.info(f"No models yet. Train one:\n\n`{dl.train_command(models_dir)}`")
            return None, None
        chosen, note = None, None
        if listed:
            labels = [s.label for s in listed]
            newest = max(range(len(listed)), key=lambda i: (str(listed[i].card.get("created") or ""), -i))
            requested = st.query_params.get("model")
            if requested is not None and requested not in labels:  # the widget owns the parameter: set its value
                st.session_state["model"] = labels[newest]
                note = (f"The link asked for model {requested!r}, which is not a loadable model in this folder; "
                        f"showing {labels[newest]}, the newest, instead (the address bar no longer names {requested!r}).")
            chosen = st.selectbox("Show model", labels, index=newest, key="model", bind="query-params",
                                  help="Defaults to the most recently exported model", on_change=reset_model_controls)
            st.markdown("\n".join(f"- **{s.label}** · {dl.describe_entry(s.entry)}" for s in listed))
        if failed:
            st.subheader(f"Not loadable ({len(failed)})")
            for label, reason in failed:
                st.warning(f"**{label}**: {dl.short_reason(reason, models_dir)}")
        return chosen, note


def run(default_models_dir):
    """Draws the dashboard for the models in ``--models-dir`` (after ``--``), ``$VAE_KERAS_MODELS_DIR`` or
    ``default_models_dir``."""
    quiet_tensorflow()
    st.set_page_config(page_title="vae_keras dashboard", layout="wide")
    models_dir = dl.resolve_models_dir(sys.argv[1:], os.environ, default_models_dir)
    entries = exported.list_models(models_dir)
    # The list comes from the model cards; a SavedModel is loaded only when a page shows it.
    listed = [Selected(entry) for entry in entries if not entry.error]
    failed = [(entry.label, entry.error) for entry in entries if entry.error]
    chosen, note = sidebar(models_dir, entries, listed, failed)
    if not entries:
        empty_folder(models_dir, os.path.isdir(models_dir))
        return
    if not listed:
        st.title("vae_keras dashboard")
        st.error(f"None of the {len(entries)} model folder(s) in `{models_dir}` can be loaded; the sidebar says why. "
                 "Train a new one:")
        st.code(dl.train_command(models_dir), language="bash")
        return
    sel = next(s for s in listed if s.label == chosen) if chosen else listed[0]
    st.title(sel.label)
    st.caption(dl.card_summary(sel.card))
    if note:
        st.warning(note)
    try:  # the first model shown imports TensorFlow here (a spinner says so), after the shell is drawn
        sel.model  # noqa: B018 - load the shown model now, so that a broken one is reported here, once
    except VaeKerasError as e:
        st.error(f"{e}. Choose another model in the sidebar, or train a new one: `{dl.train_command(models_dir)}`")
        return
    tabs = st.tabs([page.TITLE for page in PAGES], key="page", on_change="rerun", bind="query-params")
    for tab, page in zip(tabs, PAGES):
        if tab.open:
            with tab:
                guarded(page.render, sel, listed)
