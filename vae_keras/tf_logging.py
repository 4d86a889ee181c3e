"""Quiet TensorFlow start-up: the lines its C++ libraries print while ``import tensorflow`` runs (the absl
notice, oneDNN, CUDA probing on a machine without a GPU) are silenced, unless asked for (``--debug``).

Those lines are written to file descriptor 2 before TensorFlow's logging is set up, so no environment
variable stops them all: `quiet_tensorflow` sets ``TF_CPP_MIN_LOG_LEVEL`` (for what TensorFlow logs later)
and installs an import hook that points descriptor 2 at /dev/null while the ``tensorflow`` module itself
loads, then restores it (whatever other threads write to stderr in those seconds is lost too). Nothing is
imported here: the command line still parses before TensorFlow loads.
"""

import contextlib
import os
import sys

from vae_keras import import_hooks


@contextlib.contextmanager
def _stderr_descriptor_silenced():
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no descriptor 2 to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _load_quietly(load, module):
    with _stderr_descriptor_silenced():
        load(module)


def quiet_tensorflow(debug=False):
    """Silences TensorFlow's start-up lines (call before TensorFlow is imported; later calls change nothing).

    With ``debug`` nothing is changed: every line TensorFlow prints comes through.
    """
    if debug or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import_hooks.wrap_import("tensorflow", _load_quietly)
