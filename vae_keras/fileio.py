"""Atomic, non-destructive file writes.

Every file vae_keras writes goes to a temporary name in the target folder first and is then renamed
into place, so a crash or a full disk leaves either the old state or the complete new file, never a
half-written one. By default nothing existing is overwritten.
"""

import contextlib
import json
import os
import shutil
import tempfile

from vae_keras.errors import ConfigError, OutputExistsError


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_output_folder(path, what, hint="Pass a folder you can write to (it is created if missing)."):
    """Raises ConfigError unless ``path`` is a writable folder or can be created as one.

    For checks before long work (a training run), so that a bad output path fails at once rather
    than after the work is done. ``what`` names the option in the message (e.g. ``"--out"``).
    """
    given = os.fspath(path)
    target = os.path.abspath(given)
    existing = target
    while not os.path.exists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    problem = None
    if not os.path.isdir(existing):
        problem = "is a file, not a folder" if existing == target else f"cannot be created: {existing!r} is a file"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = "is not writable" if existing == target else f"cannot be created: {existing!r} is not writable"
    if problem:
        raise ConfigError(f"{what} {given!r} {problem}. {hint}")


def atomic_write_bytes(path, data, overwrite=False):
    """Writes ``data`` to ``path`` atomically.

    Args:
        path: destination file.
        data: bytes to write.
        overwrite: if False (the default) an existing ``path`` raises
            :class:`OutputExistsError` and is left untouched.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if not overwrite and os.path.exists(path):
        raise OutputExistsError(
            f"Refusing to overwrite existing file {path!r}. Choose another output path or "
            "delete the file first."
        )
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix="-" + os.path.basename(path))
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from other users
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            # link() fails if path appeared meanwhile, so a concurrent writer is never clobbered.
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise OutputExistsError(
                    f"Refusing to overwrite existing file {path!r}. Choose another output path."
                ) from None
            os.unlink(tmp)
        _fsync_dir(folder)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text, overwrite=False):
    """Writes ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def atomic_write_json(path, obj, overwrite=False):
    """Writes ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n", overwrite=overwrite)


@contextlib.contextmanager
def staging_dir(parent, prefix=".tmp-"):
    """Yields a fresh temporary folder inside ``parent`` that is removed unless moved away.

    Use it to build a folder completely before renaming it into place with
    :func:`publish_dir`. On any exception the folder and everything in it are deleted.
    """
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=prefix)
    os.chmod(tmp, 0o777 & ~_umask())  # readable by a server running as another user
    try:
        yield tmp
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def publish_dir(tmp, path):
    """Renames the finished folder ``tmp`` to ``path``; fails if ``path`` exists.

    Returns:
        True if ``tmp`` was renamed, False if ``path`` already existed (``tmp`` is left as is).
    """
    if os.path.exists(path):
        return False
    try:
        os.rename(tmp, path)
    except OSError:
        # rename() onto an existing non-empty folder fails: someone else published first.
        if os.path.exists(path):
            return False
        raise
    _fsync_dir(os.path.dirname(os.path.abspath(path)))
    return True
