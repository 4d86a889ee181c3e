"""Label checks for a conditional model: the one place that turns a caller's labels into int32 ``[n]``.

Used by evaluation (``labels=[N]``) and by :class:`~vae_keras.exported.ExportedVAE` (``label`` an int
or ``[n]`` ints). Each caller keeps its own wording through the ``*_message`` format strings.
"""

import numpy as np

from vae_keras.errors import ConfigError


def check_labels(labels, n, num_classes, *, broadcast=False, shape_message, range_message, error=ConfigError, **fields):
    """``labels`` as int32 ``[n]``, each in ``0..num_classes - 1``.

    Args:
        labels: array-like of integers (not None: the caller words a missing label itself).
        n: how many labels are needed (one per image).
        num_classes: the model's number of classes.
        broadcast: a scalar label is repeated ``n`` times.
        shape_message: format string for labels that are not ``n`` integers; fields ``n``,
            ``shape``, ``dtype``.
        range_message: format string for a label out of range; fields ``top`` (num_classes - 1),
            ``low``, ``high`` (the smallest and largest label), ``bad`` (the first out of range).
        error: the exception class raised.
        **fields: more fields for the two messages (e.g. the caller's own argument).
    """
    array = np.asarray(labels)
    if broadcast and array.ndim == 0:
        array = np.broadcast_to(array, (n,))
    if array.shape != (n,) or not np.issubdtype(array.dtype, np.integer):
        raise error(shape_message.format(n=n, shape=array.shape, dtype=array.dtype, **fields))
    bad = array[(array < 0) | (array >= num_classes)]
    if bad.size:
        raise error(range_message.format(top=num_classes - 1, low=array.min(), high=array.max(), bad=int(bad[0]), **fields))
    return array.astype(np.int32)
