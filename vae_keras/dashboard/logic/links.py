"""The dashboard's address bar: which model and page a link asks for, and what the page says when a link
names something that is not there (pure functions; `vae_keras.dashboard.main` applies them).

Every model or page change writes ``?model=NAME/VERSION&page=TITLE`` from Python (`st.query_params`),
which the browser records as a new history entry, so Back and Forward walk the user's steps; the model is
always in the address, the default (newest) one too, so a shared link keeps its meaning when a newer model
is exported.
"""

from __future__ import annotations


def resolve_link(requested, choices, fallback, what, failed=None):
    """``(value to show, note or None)`` for a link's ``?model=`` or ``?page=`` value: a requested value that
    is not among ``choices`` is never replaced silently, the note says what was asked for and what is shown.

    Args:
        requested: the value in the address (None if absent).
        choices: the values that can be shown.
        fallback: the value shown when ``requested`` is absent or not among ``choices`` (for a model: the
            newest, the dashboard's default).
        what: ``"model"`` or ``"page"``, for the note.
        failed: for models, ``{label: reason}`` of the folders that exist but cannot be loaded.

    Example:
    >>> resolve_link("b", ["a", "b"], "a", "page")
    ('b', None)
    >>> resolve_link(None, ["a", "b"], "a", "page")
    ('a', None)
    >>> resolve_link("Bogus", ["Overview"], "Overview", "page")[1]
    "The link asked for page 'Bogus', which is not a page of this dashboard; showing Overview instead."
    """
    if requested is None or requested in choices:
        return (requested if requested is not None else fallback), None
    failed = failed or {}
    if requested in failed:
        why = f"which exists but cannot be loaded ({failed[requested]})"
    elif what == "model":
        why = "which is not a model in this folder"
    else:
        why = "which is not a page of this dashboard"
    shown = f"{fallback} (the newest)" if what == "model" else fallback
    return fallback, f"The link asked for {what} {requested!r}, {why}; showing {shown} instead."
