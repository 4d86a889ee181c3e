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
    """Draws the models list; returns ``(label of the model to show or None, notes for the page)``.

    The address bar's ``?model=`` chooses the model when it changed outside the app (a link, Back or
    Forward); one that names no listed model is replaced by the newest, and a note says so.
    """
    with st.sidebar:
        st.header("Models")
        st.caption(f"Folder: `{models_dir}`")
        if not entries:
            st.info(f"No models yet. Train one:\n\n`{dl.train_command(models_dir)}`")
            return None, []
        chosen, notes = None, []
        if listed:
            labels = [s.label for s in listed]
            newest = labels[max(range(len(listed)), key=lambda i: (str(listed[i].card.get("created") or ""), -i))]
            current = st.session_state.get("model")
            if current not in labels:
                current = newest
            if link_changed():
                requested = st.query_params.get("model")
                model, note = dl.resolve_link(requested if requested is not None else current, labels, newest,
                                              "model", dict(failed))
                notes += [note] if note else []
                if st.session_state.get("model") not in (None, model):
                    reset_model_controls()
                current = model
            st.session_state["model"] = current
            chosen = st.selectbox("Show model", labels, key="model", on_change=reset_model_controls,
                                  help=f"The newest model ({newest}) is shown first; the address bar names the "
                                       "model shown, so a link keeps showing it")
            st.markdown("\n".join(f"- **{s.label}** · {dl.describe_entry(s.entry)}" for s in listed))
        if failed:
            st.subheader(f"Not loadable ({len(failed)})")
            for label, reason in failed:
                st.warning(f"**{label}**: {dl.short_reason(reason, models_dir)}")
        return chosen, notes


LINK_KEY = "_link_shown"  # the (model, page) the address bar had at the end of the last run


def link_changed():
    """True when the address bar's model or page is not what this app wrote last: the first run of a session,
    a followed link, Back or Forward (the browser reruns the app with the restored address)."""
    return st.session_state.get(LINK_KEY) != (st.query_params.get("model"), st.query_params.get("page"))


def choose_page(titles):
    """The page to open (sets the tabs' state); a note if the address asked for a page that does not exist."""
    current = st.session_state.get("page")
    if current not in titles:
        current = titles[0]
    note = None
    if link_changed():
        requested = st.query_params.get("page")
        current, note = dl.resolve_link(requested if requested is not None else current, titles, titles[0], "page")
    st.session_state["page"] = current
    return note


def write_link(model, page):
    """Puts the shown model and page in the address bar. Set from Python, a change makes a new browser history
    entry (a widget bound to the address would replace the entry instead); during Back/Forward it replaces it."""
    wanted = {"model": model, "page": page}
    if any(st.query_params.get(k) != v for k, v in wanted.items() if v is not None):
        st.query_params.update({k: v for k, v in wanted.items() if v is not None})
    st.session_state[LINK_KEY] = (st.query_params.get("model"), st.query_params.get("page"))


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
    chosen, notes = sidebar(models_dir, entries, listed, failed)
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
    titles = [page.TITLE for page in PAGES]
    page_note = choose_page(titles)
    notes += [page_note] if page_note else []
    st.title(sel.label)
    st.caption(dl.card_summary(sel.card))
    for note in notes:
        st.warning(note)
    try:  # the first model shown imports TensorFlow here (a spinner says so), after the shell is drawn
        sel.model  # noqa: B018 - load the shown model now, so that a broken one is reported here, once
    except VaeKerasError as e:
        write_link(sel.label, st.session_state.get("page"))
        st.error(f"{e}. Choose another model in the sidebar, or train a new one: `{dl.train_command(models_dir)}`")
        return
    tabs = st.tabs(titles, key="page", on_change="rerun")
    opened = [(tab, page) for tab, page in zip(tabs, PAGES) if tab.open]
    write_link(sel.label, opened[0][1].TITLE if opened else st.session_state.get("page"))
    for tab, page in opened:
        with tab:
            guarded(page.render, sel, listed)
