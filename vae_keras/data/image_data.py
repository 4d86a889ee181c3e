"""`ImageData`: a dataset held in memory (train and test splits) and its `tf.data` pipelines."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from vae_keras import checks
from vae_keras.data.arrays import (
    _as_class_names,
    _as_images,
    _as_labels,
    _binarize_uint8,
    _check_image_size,
    _describe,
    _holdout_indices,
    _resize_images,
    to_float,
    validation_indices,
)
from vae_keras.errors import ConfigError, DataError


@dataclasses.dataclass(frozen=True, eq=False)
class ImageData:
    """A dataset held in memory: validated images and labels of a train and a test split.

    Build one with :func:`load_images` or :meth:`ImageData.from_arrays` (which validate and
    convert); the constructor only checks the invariants below.

    Attributes:
        name: the dataset spec, canonical (``"mnist-10k"``, a TFDS name, or an absolute path).
        x_train: ``[N, H, W, C]`` uint8 (0..255) or float32 in [0, 1], ``C`` in (1, 3).
        y_train: int32 ``[N]`` class indices, or None.
        x_test: ``[M, H, W, C]``, same image shape as ``x_train``.
        y_test: int32 ``[M]`` or None (None exactly when ``y_train`` is None).
        class_names: one name per class, or None.

    Example:
    >>> d = ImageData.from_arrays(np.zeros((20, 8, 8), np.uint8), np.arange(20) % 2)
    >>> d.image_shape, d.num_classes, len(d.x_train), len(d.x_test)
    ((8, 8, 1), 2, 18, 2)
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    class_names: tuple[str, ...] | None = None

    def __post_init__(self):
        for what in ("x_train", "x_test"):
            x = getattr(self, what)
            if not (
                isinstance(x, np.ndarray)
                and x.ndim == 4
                and x.dtype in (np.uint8, np.float32)
                and x.shape[-1] in (1, 3)
                and len(x) > 0
            ):
                raise DataError(
                    f"ImageData.{what} must be a non-empty uint8 or float32 array [N, H, W, C] with "
                    f"C in (1, 3). Received: {_describe(x)}. Use ImageData.from_arrays() to "
                    "validate and convert arrays."
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(
                f"ImageData x_test images have shape {self.x_test.shape[1:]} but x_train images "
                f"have shape {self.x_train.shape[1:]}; both splits need the same image shape."
            )
        if (self.y_train is None) != (self.y_test is None):
            raise DataError(
                "ImageData needs labels for both splits or for neither. Received: "
                f"y_train={_describe(self.y_train)}, y_test={_describe(self.y_test)}."
            )
        for xw, yw in (("x_train", "y_train"), ("x_test", "y_test")):
            y = getattr(self, yw)
            if y is None:
                continue
            if not (
                isinstance(y, np.ndarray) and y.dtype == np.int32 and y.shape == (len(getattr(self, xw)),)
            ):
                raise DataError(
                    f"ImageData.{yw} must be int32 of shape ({len(getattr(self, xw))},), one label "
                    f"per image of {xw}. Received: {_describe(y)}."
                )
        if self.class_names is not None:
            object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_arrays(
        cls,
        x_train,
        y_train=None,
        x_test=None,
        y_test=None,
        *,
        class_names=None,
        name="arrays",
        image_size=None,
        source=None,
    ):
        """Validates and converts numpy arrays into an :class:`ImageData`.

        Applies the module's rules (channel axis, RGBA compositing, value checks, hold-out when
        ``x_test`` is None, optional resize).

        Args:
            x_train: images ``[N, H, W]`` or ``[N, H, W, C]``; uint8/bool/ints in 0..255 or
                floats in [0, 1].
            y_train: optional integer labels ``[N]``.
            x_test: optional test images with the same image shape as ``x_train``.
            y_test: test labels; required when ``x_test`` and ``y_train`` are given.
            class_names: optional sequence of names, one per class.
            name: the dataset name to record.
            image_size: optional ``(H, W)`` (or int) to resize every image to.
            source: how to name the data in error messages (default: ``name``).

        Raises:
            DataError: if the arrays cannot be used as image data.
        """
        source = source or repr(name)
        image_size = _check_image_size(image_size)
        if x_train is None:
            raise DataError(f"{source} has no x_train images. Provide x_train.")
        x_tr = _as_images(x_train, "x_train", source)
        y_tr = None if y_train is None else _as_labels(y_train, len(x_tr), "y_train", "x_train", source)
        if x_test is None:
            if y_test is not None:
                raise DataError(
                    f"{source} has y_test but no x_test. Provide x_test, or drop y_test to hold "
                    "out 10% of x_train as the test split."
                )
            if len(x_tr) < 2:
                raise DataError(
                    f"{source} has only {len(x_tr)} image and no test split; at least 2 images are "
                    "needed to hold out a test split. Add images or an x_test array."
                )
            tr, te = _holdout_indices(len(x_tr))
            x_te, y_te = x_tr[te], (None if y_tr is None else y_tr[te])
            x_tr, y_tr = x_tr[tr], (None if y_tr is None else y_tr[tr])
        else:
            x_te = _as_images(x_test, "x_test", source)
            if x_te.shape[1:] != x_tr.shape[1:]:
                raise DataError(
                    f"x_test from {source} has images of shape {x_te.shape[1:]} but x_train has "
                    f"{x_tr.shape[1:]}. Both splits need the same (H, W, C)."
                )
            if (y_tr is None) != (y_test is None):
                have, missing = ("y_train", "y_test") if y_tr is not None else ("y_test", "y_train")
                raise DataError(
                    f"{source} has {have} but no {missing}. Provide labels for both splits, or "
                    f"drop {have} to use the data unlabelled."
                )
            y_te = None if y_test is None else _as_labels(y_test, len(x_te), "y_test", "x_test", source)
            if x_tr.dtype != x_te.dtype:
                x_tr, x_te = to_float(x_tr), to_float(x_te)
        if class_names is not None:
            if y_tr is None:
                raise DataError(
                    f"{source} has class_names but no labels. Add y_train (and y_test), or drop class_names."
                )
            class_names = _as_class_names(class_names, (y_tr, y_te), source)
        if image_size is not None:
            x_tr, x_te = _resize_images(x_tr, image_size), _resize_images(x_te, image_size)
        return cls(str(name), x_tr, y_tr, x_te, y_te, class_names)

    # -- properties --------------------------------------------------------------------------

    @property
    def image_shape(self):
        """``(H, W, C)`` as a tuple of Python ints."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self):
        """``len(class_names)``, else the largest label + 1, else None (unlabelled)."""
        if self.class_names is not None:
            return len(self.class_names)
        if self.y_train is None:
            return None
        return int(max(self.y_train.max(initial=-1), self.y_test.max(initial=-1))) + 1

    @property
    def has_labels(self):
        return self.y_train is not None

    def __repr__(self):
        return (
            f"ImageData(name={self.name!r}, image_shape={self.image_shape}, "
            f"train={len(self.x_train)}, test={len(self.x_test)}, num_classes={self.num_classes})"
        )

    # -- derived data ------------------------------------------------------------------------

    def subset(self, n_train=None, n_test=None):
        """The first ``n_train`` training and ``n_test`` test images (None keeps a split whole).

        Example:
        >>> d = load_images("mnist-10k").subset(100, 10)
        >>> len(d.x_train), len(d.x_test)
        (100, 10)
        """
        for arg, v in (("n_train", n_train), ("n_test", n_test)):
            if v is not None:
                checks.check_integer(arg, v, 1, numpy=True, message="{name} must be None or a positive int. Received: {name}={value!r}")

        return self._take(("train", slice(n_train)), ("test", slice(n_test)))

    def hold_out_validation(self, fraction, seed=0):
        """Splits the training images into the part to train on and a held-out validation part.

        The split follows :func:`validation_indices` (a seeded random ``fraction``); labels follow
        their images. ``vae-keras train --validation-split F`` uses it.

        Returns:
            An :class:`ImageData` whose *train* split holds the images kept for training and whose
            *test* split holds the held-out validation images, so ``pipeline("test")`` gives the
            validation batches. The original test split is not part of it.

        Raises:
            ConfigError: see :func:`validation_indices`.

        Example:
        >>> d = load_images("mnist-10k").subset(100, 10).hold_out_validation(0.2, seed=0)
        >>> len(d.x_train), len(d.x_test)
        (80, 20)
        """
        train_idx, val_idx = validation_indices(len(self.x_train), fraction, seed)
        return self._take(("train", train_idx), ("train", val_idx))

    # Per-image arrays: ``<prefix>_train`` and ``<prefix>_test`` follow their images whenever a split is
    # cut or re-split (a subclass with more per-image arrays, e.g. `FactorImageData`, extends it).
    _PER_IMAGE = ("x", "y")

    def _take(self, train, test):
        """A copy whose train split is ``train = (split, index)`` of this data and whose test split is ``test``:
        every per-image array (images, labels, ...) is indexed alike, so they stay aligned."""
        changes = {}
        for new, (split, index) in (("train", train), ("test", test)):
            for prefix in self._PER_IMAGE:
                a = getattr(self, f"{prefix}_{split}")
                changes[f"{prefix}_{new}"] = None if a is None else a[index]
        return dataclasses.replace(self, **changes)

    def pipeline(
        self,
        split="train",
        batch_size=128,
        shuffle=None,
        seed=0,
        with_labels=False,
        binarize_seed=None,
        drop_remainder=False,
        cache=True,
        skip_epochs=0,
    ):
        """A ``tf.data.Dataset`` of float32 batches in [0, 1] of shape ``[B, H, W, C]``.

        Images stay uint8 in memory; each batch is gathered and converted in one op (shuffling
        shuffles indices, not images), and batches are prefetched with ``tf.data.AUTOTUNE``.

        Args:
            split: ``"train"`` or ``"test"``.
            batch_size: images per batch.
            shuffle: reshuffle every epoch; defaults to True for ``"train"``, False for ``"test"``.
            seed: shuffle seed; a fixed seed gives the same order of epochs in every run.
            with_labels: yield ``(x, y)`` with int32 ``y`` instead of ``x``.
            binarize_seed: if an int, binarize the images once with :func:`binarize` (the same
                0/1 images in every epoch and every call with this seed).
            drop_remainder: drop the last, smaller batch.
            cache: keep the converted float32 batches of an unshuffled pipeline in memory after
                the first pass (ignored when shuffling, where batches differ every epoch).
            skip_epochs: a shuffled pipeline starts with the order of pass ``skip_epochs + 1`` of a
                pipeline built with the same seed (a run resumed after that many epochs sees the
                data in the order of the uninterrupted run).

        Raises:
            DataError: ``with_labels=True`` on unlabelled data.
            ConfigError: for an unknown split or a bad batch size or seed.

        Example:
        >>> d = load_images("mnist-10k").subset(256, 64)
        >>> [tuple(x.shape) for x in d.pipeline("test", batch_size=50)]
        [(50, 28, 28, 1), (14, 28, 28, 1)]
        """
        if split not in ("train", "test"):
            raise ConfigError(f"split must be 'train' or 'test'. Received: split={split!r}")
        checks.check_integer("batch_size", batch_size, 1, numpy=True, message="{name} must be a positive int. Received: {name}={value!r}")
        checks.check_integer("seed", seed, numpy=True, message="{name} must be an int. Received: {name}={value!r}")
        checks.check_integer("skip_epochs", skip_epochs, 0, numpy=True, message="{name} must be an int >= 0. Received: {name}={value!r}")
        if binarize_seed is not None:
            checks.check_integer("binarize_seed", binarize_seed, numpy=True,
                                 message="{name} must be None or an int. Received: {name}={value!r}")
        x = self.x_train if split == "train" else self.x_test
        y = self.y_train if split == "train" else self.y_test
        if with_labels and y is None:
            raise DataError(
                f"Dataset {self.name!r} has no labels, so with_labels=True (e.g. a conditional "
                "model) cannot be used. Use a dataset with labels (class subfolders, y_train/y_test "
                "arrays or label files), or train without labels."
            )
        if shuffle is None:
            shuffle = split == "train"
        scale = 255.0
        if binarize_seed is not None:
            x, scale = _binarize_uint8(x, int(binarize_seed)), 1.0
        elif x.dtype != np.uint8:
            scale = 1.0
        n = len(x)
        with tf.device("/CPU:0"):
            x_t = tf.constant(x)
            y_t = tf.constant(y) if with_labels else None

        def fetch(idx):
            xb = tf.cast(tf.gather(x_t, idx), tf.float32)
            if scale != 1.0:
                xb = xb / scale
            if with_labels:
                return xb, tf.gather(y_t, idx)
            return xb

        if shuffle:
            ds = _shuffled_index_batches(n, int(batch_size), int(seed), bool(drop_remainder), int(skip_epochs))
        else:
            ds = tf.data.Dataset.range(n).batch(int(batch_size), drop_remainder=bool(drop_remainder))
        ds = ds.map(fetch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if cache and not shuffle:
            ds = ds.cache()
        return ds.prefetch(tf.data.AUTOTUNE)


def _shuffled_index_batches(n, batch_size, seed, drop_remainder, skip_epochs=0):
    """Batches of indices into ``n`` images, in a new random order on every pass over the dataset.

    Each pass draws one permutation in a single op and cuts it into batches, so tf.data handles
    ``n / batch_size`` index vectors per epoch instead of shuffling ``n`` scalars one by one, which
    halves tf.data's own time per epoch. Seeded: pipelines built with the same seed give the same
    sequence of epoch orders; ``skip_epochs`` starts that sequence at pass ``skip_epochs + 1``.
    """
    full = n // batch_size
    rest = n - full * batch_size
    lengths = [batch_size] * full + ([rest] if rest and not drop_remainder else [])

    def one_pass(pass_seed):
        perm = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([pass_seed, tf.constant(seed, tf.int64)]))
        if drop_remainder:  # a static batch size, as batch(drop_remainder=True) gives
            return tf.data.Dataset.from_tensor_slices(tf.reshape(perm[: full * batch_size], (full, batch_size)))
        # Rows of a ragged tensor slice into plain [None] tensors, so the last batch may be shorter.
        return tf.data.Dataset.from_tensor_slices(tf.RaggedTensor.from_row_lengths(perm[: sum(lengths)], lengths))

    # One fresh seed per pass (Keras iterates the dataset anew in every epoch). flat_map hides the
    # number of batches, which Keras needs for its progress bar and steps per epoch: state it.
    pass_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    for _ in range(skip_epochs):  # each new iterator advances the pass seeds' generator by one pass
        iter(pass_seeds)
    ds = pass_seeds.take(1).flat_map(one_pass)
    return ds.apply(tf.data.experimental.assert_cardinality(len(lengths)))
