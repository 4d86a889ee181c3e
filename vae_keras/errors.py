"""User-facing error types.

Every error a user can cause (a bad dataset path, a corrupt file, a nonsense option value, a folder
that is not a SavedModel) is raised as a :class:`VaeKerasError` whose message says what was received
and what to do. The CLI prints such errors as one line on stderr and exits non-zero without a
traceback; anything else is a bug and keeps its traceback under ``--debug``.
"""


class VaeKerasError(Exception):
    """Base class of errors caused by user input, with a message meant for the user."""


class DataError(VaeKerasError, ValueError):
    """A dataset spec, file or array that cannot be used as image data."""


class ModelDirError(VaeKerasError, ValueError):
    """A folder that is not an exported vae_keras SavedModel, or breaks the signature contract."""


class ConfigError(VaeKerasError, ValueError):
    """An option or config file value that is out of range or of the wrong type."""


class OutputExistsError(VaeKerasError, FileExistsError):
    """Refusing to overwrite an existing file or folder."""
