"""Dataset specs -> in-memory images -> `tf.data` pipelines.

A *dataset spec* is what users pass as ``--dataset SPEC`` or to :func:`load_dataset`. It is resolved
in this order:

1. ``"mnist-10k"``: 10,000 real MNIST digits shipped in the package (8,000 train / 2,000 test,
   fixed split), class names ``"0"`` .. ``"9"``. Works offline.
2. ``"dsprites"``: the dSprites factor grid (Matthey et al. 2017: a square, an ellipse or a heart
   at 6 scales, 40 orientations and 32 x 32 positions; 737,280 binary 64x64 images), rendered
   procedurally (no download). A seeded subset is held in memory (20,000 train / 5,000 test
   images); any other combination is rendered on demand. Class labels are the shapes. The data is a
   :class:`~vae_keras.data.factors.FactorImageData`: ``factor_names``, ``factor_sizes``,
   ``factors_train`` / ``factors_test`` (the factor indices of every image), ``render(factors)`` and
   ``sample_factors(n, random_state)``. The shapes, the placement rule and the subset are defined
   in :mod:`~vae_keras.data.dsprites`. Only 64x64 (``image_size`` None or 64) is accepted.
3. an existing path:
   - an ``.npz`` file with ``x_train`` (``y_train``, ``x_test``, ``y_test``, ``class_names``
     optional);
   - a folder of IDX files (``train-images-idx3-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``,
     labels ``train-labels-idx1-ubyte[.gz]`` / ``t10k-labels-idx1-ubyte[.gz]`` optional). Class
     names come from an optional ``classes.txt`` beside them (one name per line, line 1 names
     label 0); without it, Fashion-MNIST's ten names (:data:`FASHION_MNIST_CLASSES`) when the
     training labels are Fashion-MNIST's (recognised by their SHA-256, wherever the folder is);
     otherwise none (labels are then addressed by index);
   - a folder of PNG/JPEG images (extensions matched case-insensitively), either directly in it
     (no labels) or in class subfolders (labels; class names are the sorted names of the
     subfolders that hold images, searched recursively), not both. If the folder has both a
     ``train/`` and a ``test/`` subfolder, those two are the splits (each laid out as above, both
     labelled or both not) and nothing else in the folder is read. Hidden entries and non-image
     files are ignored.
4. a TensorFlow Datasets name (``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``, ...), loaded
   whole into memory: the first ``Image`` feature gives the images, the first ``ClassLabel``
   feature the labels and class names, the ``test`` split (if there is one) the test split.
   Variable-size images follow the image-folder size rule. A dataset already prepared in the TFDS
   data_dir (``~/tensorflow_datasets`` or ``$TFDS_DATA_DIR``) loads without network. Otherwise the
   download host is probed for at most 5 s first; unreachable, or a failed download, is one
   :class:`DataError` naming the data_dir and the local alternatives, and the failed attempt's
   temporary files are removed.

IDX files must hold unsigned bytes (magic ``0x00000803`` for images, ``0x00000801`` for labels);
their byte count must match the header exactly.

Whatever the source, images are validated once and kept in memory as ``uint8`` (0..255) or
``float32`` (in [0, 1]) arrays of shape ``[N, H, W, C]`` with ``C`` in (1, 3); the pipelines turn
each batch into ``float32`` in [0, 1], which is what the models see.

Rules applied to every source:

- **Channels.** 2-D images (``[N, H, W]`` arrays, grayscale files) get one channel. Four channels are
  read as RGBA and *composited onto black* (``rgb * alpha``) to give RGB, so transparent pixels
  become background instead of whatever colour happened to be stored under them. Other channel
  counts are refused. In an image folder, if every image is grayscale (PIL modes ``1``, ``L``,
  ``LA``, ``I``, ``I;16``..., and palette images whose colours are all grey) the data has one
  channel, otherwise three (grayscale images are repeated into R, G and B). 16-bit images are
  scaled to 8 bits (``v / 257``). Image files are decoded by :func:`decode_image_bytes`, the one
  place of these rules (the dashboard decodes its uploads with it too); asked for one channel, it
  turns colour into ITU-R 601-2 luma (``0.299 R + 0.587 G + 0.114 B``).
- **Size.** With ``image_size=(H, W)`` every image is resized to it. An image folder without
  ``image_size`` uses the most common ``(H, W)`` among its images (a tie goes to the larger area);
  other images are resized to that. Resizing is PIL's bilinear filter (which antialiases when
  shrinking); no aspect-ratio preserving crop or pad is done.
- **Hold-out.** A source without a test split (an ``.npz`` without ``x_test``, a folder without
  ``t10k-*`` files or ``test/``, a TFDS dataset without a ``test`` split) gets one: the images are
  permuted with ``np.random.default_rng(0)`` and the first ``max(1, N // 10)`` of that permutation
  become the test split; both splits keep the original order of their images. At least two images
  are needed. A *validation* split is a different, optional thing, taken from the training split
  only (:meth:`ImageData.hold_out_validation`, :func:`validation_indices`; ``vae-keras train
  --validation-split F``).
- **Unreadable files** (corrupt, truncated, wrong format) are errors naming the file, never
  skipped silently. JPEG EXIF orientation is applied.
- **Labels** are one non-negative integer per image (``[N]`` or ``[N, 1]``), stored as ``int32``.
  Either both splits have labels or neither does.

Layout: one module per concern. :mod:`~vae_keras.data.arrays` (validation, conversion, hold-out
rules), :mod:`~vae_keras.data.decode` (image files), :mod:`~vae_keras.data.image_data` (``ImageData``
and its pipelines), :mod:`~vae_keras.data.factors` (``FactorImageData``: images with known factors of
variation), one module per source (:mod:`~vae_keras.data.embedded`, :mod:`~vae_keras.data.dsprites`,
:mod:`~vae_keras.data.npz`, :mod:`~vae_keras.data.idx`, :mod:`~vae_keras.data.image_folder`,
:mod:`~vae_keras.data.tfds_source`) and :mod:`~vae_keras.data.registry`, which tries the sources in
order. A new source is one module with ``claim(spec, path)`` and ``load(claimed, image_size)`` and one
line in ``registry.SOURCES``.

Example:
>>> from vae_keras import data
>>> images = data.load_images("mnist-10k")
>>> images.image_shape, images.num_classes
((28, 28, 1), 10)
>>> train = images.pipeline("train", batch_size=64, with_labels=True)
>>> x, y = next(iter(train))
>>> x.shape, x.dtype.name, y.dtype.name
(TensorShape([64, 28, 28, 1]), 'float32', 'int32')
"""

from vae_keras.data import dsprites, embedded, factors, idx, image_folder, npz, registry, tfds_source
from vae_keras.data.arrays import HOLDOUT_SEED, binarize, to_float, validation_indices
from vae_keras.data.decode import decode_image_bytes
from vae_keras.data.embedded import MNIST_10K
from vae_keras.data.factors import FactorGrid, FactorImageData
from vae_keras.data.idx import FASHION_MNIST_CLASSES, IDX_CLASSES_FILE, read_idx
from vae_keras.data.image_data import ImageData
from vae_keras.data.image_folder import IMAGE_EXTENSIONS
from vae_keras.data.registry import SOURCES, load_dataset, load_images

__all__ = [
    "FASHION_MNIST_CLASSES",
    "HOLDOUT_SEED",
    "IDX_CLASSES_FILE",
    "IMAGE_EXTENSIONS",
    "MNIST_10K",
    "SOURCES",
    "FactorGrid",
    "FactorImageData",
    "ImageData",
    "binarize",
    "decode_image_bytes",
    "dsprites",
    "embedded",
    "factors",
    "idx",
    "image_folder",
    "load_dataset",
    "load_images",
    "npz",
    "read_idx",
    "registry",
    "tfds_source",
    "to_float",
    "validation_indices",
]
