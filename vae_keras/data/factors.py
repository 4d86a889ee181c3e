"""Datasets with known factors of variation: a grid of factors, its renderer, and `FactorImageData`.

A *factor grid* (:class:`FactorGrid`) names the factors that generate every image (e.g. dSprites'
``shape, scale, orientation, x, y``), their number of values, the values themselves, and a
deterministic renderer from factor *indices* to images. :class:`FactorImageData` is an
:class:`~vae_keras.data.ImageData` whose every image also carries its factors (``factors_train``,
``factors_test``: int64 ``[N, K]``, column k the index of factor k's value), and which renders any
other factor combination on demand (:meth:`FactorImageData.render`) or draws combinations uniformly
from the full grid (:meth:`FactorImageData.sample_factors`). Disentanglement metrics need exactly that:
images for factor values they choose.

Example:
>>> from vae_keras.data import load_images
>>> d = load_images("dsprites")                           # doctest: +SKIP
>>> d.factor_names, d.factor_sizes                         # doctest: +SKIP
(['shape', 'scale', 'orientation', 'x', 'y'], (3, 6, 40, 32, 32))
>>> d.render(d.sample_factors(4, random_state=0)).shape    # doctest: +SKIP
(4, 64, 64, 1)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from vae_keras import checks
from vae_keras.data.arrays import _describe
from vae_keras.data.image_data import ImageData
from vae_keras.errors import DataError


@dataclasses.dataclass(frozen=True, eq=False)
class FactorGrid:
    """The factors of a procedurally rendered dataset and the renderer.

    Attributes:
        name: the dataset's name (for messages).
        names: one name per factor.
        sizes: the number of values of each factor.
        values: one array per factor: the value of each index (e.g. the scales 0.5 .. 1).
        image_shape: ``(H, W, C)`` of the rendered images.
        rasterize: ``f(factors, dtype) -> [N, H, W]`` array of ``dtype`` with values in {0, 1} for a
            checked int64 array ``[N, K]``; deterministic and image by image (an image never depends on
            the others in the call), so the same factors always give the same pixels.
    """

    name: str
    names: tuple[str, ...]
    sizes: tuple[int, ...]
    values: tuple[np.ndarray, ...]
    image_shape: tuple[int, int, int]
    rasterize: Callable[[np.ndarray, type], np.ndarray]

    @property
    def num_combinations(self):
        """The number of factor combinations (images) in the full grid."""
        return int(np.prod(self.sizes, dtype=np.int64))

    def check_factors(self, factors, what="factors"):
        """``factors`` as an int64 array ``[N, K]`` of valid indices, or a :class:`DataError` saying why not."""
        a = np.asarray(factors)
        sizes = np.asarray(self.sizes, np.int64)
        names = ", ".join(f"{n} 0..{s - 1}" for n, s in zip(self.names, self.sizes))
        if a.ndim != 2 or a.shape[1] != len(self.sizes) or not (a.dtype.kind in "iu" or a.size == 0):
            raise DataError(
                f"{self.name} {what} must be an integer array [N, {len(self.sizes)}] (one column per factor: "
                f"{', '.join(self.names)}). Received: {_describe(factors)}."
            )
        a = a.astype(np.int64, copy=False)
        bad = (a < 0) | (a >= sizes)
        if bad.any():
            row, col = (int(v) for v in np.argwhere(bad)[0])
            raise DataError(
                f"{self.name} {what}[{row}, {col}] = {int(a[row, col])} is not an index of factor "
                f"{self.names[col]!r}. Each column holds the index of the factor's value: {names}."
            )
        return a

    def render(self, factors):
        """float32 images ``[N, H, W, C]`` with values in {0, 1} for factor indices ``[N, K]``."""
        a = self.check_factors(factors)
        h, w, c = self.image_shape
        if len(a) == 0:
            return np.zeros((0, h, w, c), np.float32)
        return self.rasterize(a, np.float32).reshape(len(a), h, w, c)

    def sample_factors(self, n, random_state):
        """``n`` factor combinations drawn uniformly (with replacement) from the full grid: int64 ``[n, K]``.

        ``random_state`` is an int seed, a ``numpy.random.Generator`` or a ``numpy.random.RandomState``
        (advanced by the call); the same seed gives the same combinations.
        """
        checks.check_integer("n", n, 0, numpy=True, error=DataError,
                             message="sample_factors needs n, an integer >= 0. Received: n={value!r}")
        if checks.is_integer(random_state, numpy=True):
            random_state = np.random.default_rng(int(random_state))
        if isinstance(random_state, np.random.Generator):
            return random_state.integers(0, self.sizes, size=(int(n), len(self.sizes)), dtype=np.int64)
        if isinstance(random_state, np.random.RandomState):
            return np.stack([random_state.randint(0, s, size=int(n)) for s in self.sizes], axis=1).astype(np.int64)
        raise DataError(
            "sample_factors needs random_state, an int seed, a numpy.random.Generator or a "
            f"numpy.random.RandomState. Received: {random_state!r}."
        )

    def factors_of(self, flat):
        """The factor indices ``[N, K]`` of flat grid indices ``[N]`` (row-major: the last factor varies fastest)."""
        return np.stack(np.unravel_index(np.asarray(flat, np.int64), self.sizes), axis=1).astype(np.int64)

    def flat_index(self, factors):
        """The flat grid index ``[N]`` of factor indices ``[N, K]`` (the inverse of :meth:`factors_of`)."""
        return np.ravel_multi_index(tuple(self.check_factors(factors).T), self.sizes).astype(np.int64)


@dataclasses.dataclass(frozen=True, eq=False)
class FactorImageData(ImageData):
    """An :class:`ImageData` whose images carry their factors of variation, and can render any others.

    Attributes (beside ImageData's):
        factors_train: int64 ``[N, K]``: row i holds the factor indices of ``x_train[i]``.
        factors_test: int64 ``[M, K]``, the same for ``x_test``.
        grid: the :class:`FactorGrid` (names, sizes, values, renderer).

    The factors follow their images through :meth:`subset` and :meth:`hold_out_validation`.
    """

    factors_train: np.ndarray | None = None
    factors_test: np.ndarray | None = None
    grid: FactorGrid | None = None

    _PER_IMAGE = ("x", "y", "factors")

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.grid, FactorGrid):
            raise DataError(f"FactorImageData needs grid, a FactorGrid. Received: {self.grid!r}.")
        if self.image_shape != tuple(self.grid.image_shape):
            raise DataError(
                f"FactorImageData images have shape {self.image_shape} but its grid renders "
                f"{tuple(self.grid.image_shape)}; they must agree."
            )
        for fw, xw in (("factors_train", "x_train"), ("factors_test", "x_test")):
            f = self.grid.check_factors(getattr(self, fw), what=fw)
            if len(f) != len(getattr(self, xw)):
                raise DataError(
                    f"FactorImageData.{fw} has {len(f)} rows but {xw} has {len(getattr(self, xw))} images; "
                    "one row of factors per image is needed."
                )
            object.__setattr__(self, fw, f)

    @property
    def factor_names(self):
        """The factors' names, e.g. ``["shape", "scale", "orientation", "x", "y"]`` (a new list)."""
        return list(self.grid.names)

    @property
    def factor_sizes(self):
        """The number of values of each factor, e.g. ``(3, 6, 40, 32, 32)``."""
        return tuple(self.grid.sizes)

    @property
    def factor_values(self):
        """One float array per factor: the value of each index (e.g. scale index 0 is 0.5)."""
        return [v.copy() for v in self.grid.values]

    def render(self, factors):
        """float32 images ``[N, H, W, C]`` with values in {0, 1} for any int array of factor indices ``[N, K]``."""
        return self.grid.render(factors)

    def sample_factors(self, n, random_state):
        """``n`` factor combinations drawn uniformly from the full grid (int64 ``[n, K]``); see
        :meth:`FactorGrid.sample_factors`."""
        return self.grid.sample_factors(n, random_state)

    def __repr__(self):
        return super().__repr__()[:-1] + f", factors={dict(zip(self.grid.names, self.grid.sizes))})"
