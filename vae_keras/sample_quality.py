"""Sample quality: Fréchet distance and precision/recall of samples against real images.

Inception weights cannot be downloaded everywhere, so the features are those of a small CNN trained
on the dataset itself (seeded): its penultimate layer (``FEATURE_DIM`` units). On those features

- the Fréchet distance (FD; "FID" with Inception features, Heusel et al. 2017) is
  |mu_r - mu_s|^2 + tr(C_r + C_s - 2 (C_r C_s)^(1/2)), the distance between Gaussians fitted to the
  real and the sample features: 0 for the same distribution, larger is worse;
- precision and recall (Kynkäänniemi et al. 2019) estimate each manifold as the union of balls
  around its points, each ball's radius the distance to the point's k-th nearest neighbour in its
  own set (k = 3 as in the paper): precision is the share of samples inside the real manifold
  (are samples realistic?), recall the share of real images inside the samples' manifold (do the
  samples cover the data?). Both are in [0, 1], 1 is best.

The classifier for ``mnist-10k`` ships with the package (``data_files/classifier-mnist-10k``,
trained by ``python -m vae_keras.sample_quality --train mnist-10k``; its test accuracy is in the
``.json`` beside it). For any other labelled dataset it is trained once on first use (a minute or
two on a CPU for 60,000 images, with a progress message on stderr) and cached under
``$VAE_KERAS_CACHE`` (default ``~/.cache/vae_keras``), keyed by the dataset's name and a hash of its
images and labels, so changed data gets a new classifier.

The same classifier says how often a conditional model's samples are recognised as their own class
(`class_accuracy`).
"""

import hashlib
import importlib.resources
import json
import os
import re
import sys
import tempfile

import numpy as np

from vae_keras import checks, fileio
from vae_keras.errors import ConfigError, DataError

K_NEAREST = 3  # Kynkäänniemi et al. 2019
FEATURE_DIM = 64
CLASSIFIER_SEED = 0
CLASSIFIER_EPOCHS = 8
CLASSIFIER_BATCH = 128
SHIPPED = ("mnist-10k",)
CACHE_ENV = "VAE_KERAS_CACHE"


def check_num_samples(name, value):
    """A number of samples to score: 0 (off), or more than `K_NEAREST` (precision/recall's k-NN radii need k + 1)."""
    checks.check_integer(name, value, 0, message="{name} must be an integer >= 0 (0: off). Received: {value!r}")
    if 0 < value <= K_NEAREST:
        raise ConfigError(f"{name} needs more than {K_NEAREST} samples for precision/recall's {K_NEAREST}-nearest-neighbour "
                          f"radii. Received: {value!r}; pass e.g. 2000, or 0 to skip it")


# ----------------------------------------------------------------------------- the metrics
def frechet_distance(features_a, features_b):
    """The Fréchet distance between Gaussians fitted to two feature sets [N, D] and [M, D].

    tr((C_a C_b)^(1/2)) is computed as the sum of the square roots of the eigenvalues of the symmetric
    matrix C_a^(1/2) C_b C_a^(1/2) (the same eigenvalues), which stays exact when the covariances are
    singular (ReLU features that are always 0), where a general matrix square root is not.
    """
    a, b = _features(features_a, "features_a"), _features(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ConfigError(f"Both feature sets need the same dimension. Received {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    inner = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = float(np.sum(np.sqrt(np.clip(inner, 0.0, None))))
    value = float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root)
    return max(value, 0.0)  # rounding can leave -1e-12 for identical sets


def _features(f, name):
    f = np.asarray(f, np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ConfigError(f"{name} must be an array [N, D] with N >= 2. Received shape {f.shape}")
    return f


def _squared_distances(a, b):
    d = np.sum(a * a, axis=1)[:, None] + np.sum(b * b, axis=1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def _knn_radii(f, k, block=1000):
    """Squared distance of every point to its k-th nearest neighbour in its own set (itself excluded)."""
    radii = np.empty(len(f))
    for start in range(0, len(f), block):  # bounded memory: block x len(f) distances at a time
        d = _squared_distances(f[start:start + block], f)
        rows = np.arange(len(d))
        d[rows, start + rows] = np.inf
        radii[start:start + block] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return radii


def _coverage(points, centres, radii):
    """The share of ``points`` inside at least one ball (``centres``, squared ``radii``)."""
    inside = np.zeros(len(points), bool)
    for start in range(0, len(points), 1000):  # bounded memory: 1000 x len(centres) distances at a time
        block = _squared_distances(points[start:start + 1000], centres)
        inside[start:start + 1000] = np.any(block <= radii[None, :], axis=1)
    return float(inside.mean())


def precision_recall(real_features, sample_features, k=K_NEAREST):
    """Kynkäänniemi et al. (2019)'s improved precision and recall, with k-nearest-neighbour radii.

    Returns:
        (precision, recall): the share of samples inside the real images' manifold, and the share of
        real images inside the samples' manifold.
    """
    checks.check_integer("k", k, 1)
    real, fake = _features(real_features, "real_features"), _features(sample_features, "sample_features")
    if min(len(real), len(fake)) <= k:
        raise ConfigError(f"precision/recall with k={k} needs more than {k} real and sample features. "
                          f"Received {len(real)} and {len(fake)}")
    precision = _coverage(fake, real, _knn_radii(real, k))
    recall = _coverage(real, fake, _knn_radii(fake, k))
    return precision, recall


# ----------------------------------------------------------------------------- the classifier
def build_classifier(image_shape, num_classes, seed=CLASSIFIER_SEED):
    """The small CNN: two conv + max-pool blocks, one more pooling, a ``features`` layer of `FEATURE_DIM` units, logits."""
    import keras

    init = keras.initializers.GlorotUniform
    inputs = keras.Input(tuple(image_shape), name="x")
    h = inputs
    for i, filters in enumerate((32, 64)):
        h = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_initializer=init(seed + i),
                                name=f"conv{i + 1}")(h)
        h = keras.layers.MaxPooling2D(2, name=f"pool{i + 1}")(h)
    h = keras.layers.MaxPooling2D(2, padding="same", name="pool3")(h)  # 28 -> 4 x 4 x 64: a small file
    h = keras.layers.Flatten(name="flatten")(h)
    features = keras.layers.Dense(FEATURE_DIM, activation="relu", kernel_initializer=init(seed + 2), name="features")(h)
    logits = keras.layers.Dense(num_classes, kernel_initializer=init(seed + 3), name="logits")(features)
    return keras.Model(inputs, logits, name="sample_quality_classifier")


class Classifier:
    """A trained feature classifier: `features` (penultimate layer) and `predict` (class indices).

    Attributes:
        model: the Keras model (images [N, H, W, C] in [0, 1] -> logits).
        info: its record: dataset, content hash, test accuracy, epochs, seed.
    """

    def __init__(self, model, info):
        import keras

        self.model = model
        self.info = dict(info)
        self._both = keras.Model(model.inputs[0], [model.get_layer("features").output, model.outputs[0]])

    @property
    def image_shape(self):
        return tuple(int(d) for d in self.model.inputs[0].shape[1:])

    def _run(self, x, batch_size=500):
        x = np.asarray(x, np.float32)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise DataError(f"The classifier of {self.info.get('dataset')!r} takes images of shape {self.image_shape}. "
                            f"Received an array of shape {x.shape}")
        feats, logits = [], []
        for start in range(0, len(x), batch_size):
            f, y = self._both(x[start:start + batch_size], training=False)
            feats.append(np.asarray(f))
            logits.append(np.asarray(y))
        return np.concatenate(feats), np.concatenate(logits)

    def features(self, x):
        """Penultimate-layer features [N, FEATURE_DIM] of images [N, H, W, C] in [0, 1]."""
        return self._run(x)[0]

    def predict(self, x):
        """The predicted class index [N] of every image."""
        return np.argmax(self._run(x)[1], axis=1).astype(np.int32)


def content_hash(data):
    """sha256 (16 hex digits) of a dataset's train images, train labels and test images."""
    h = hashlib.sha256()
    for a in (data.x_train, data.y_train, data.x_test):
        h.update(str((a.dtype, a.shape)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _as_float(x):
    from vae_keras.data import to_float

    return to_float(x)


def _require_labels(data):
    if data.y_train is None:
        raise DataError(f"Sample quality needs a classifier trained on the dataset's labels, and {data.name!r} has none. "
                        "Use a labelled dataset (mnist-10k, IDX with labels, class subfolders, npz with y_train).")


def train_classifier(data, seed=CLASSIFIER_SEED, epochs=CLASSIFIER_EPOCHS, verbose=0):
    """Trains the feature classifier on ``data`` (an `ImageData` with labels), seeded.

    Returns:
        A `Classifier` whose ``info`` records the test accuracy.
    """
    import keras

    _require_labels(data)
    x_train, x_test = _as_float(data.x_train), _as_float(data.x_test)
    model = build_classifier(data.image_shape, data.num_classes, seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    rng = np.random.default_rng(seed)
    for _ in range(epochs):  # our own seeded shuffle: no global random state is touched
        order = rng.permutation(len(x_train))
        model.fit(x_train[order], data.y_train[order], batch_size=CLASSIFIER_BATCH, epochs=1, shuffle=False,
                  verbose=verbose)
    info = {"dataset": data.name, "content_hash": content_hash(data), "seed": seed, "epochs": epochs,
            "num_classes": int(data.num_classes), "image_shape": list(data.image_shape),
            "train_images": int(len(x_train)), "feature_dim": FEATURE_DIM}
    classifier = Classifier(model, info)
    classifier.info["test_accuracy"] = float(np.mean(classifier.predict(x_test) == data.y_test))
    return classifier


def save_classifier(classifier, weights_path):
    """Writes the weights (``.weights.h5``) and the record (``.json`` beside them), each atomically."""
    if not weights_path.endswith(".weights.h5"):
        raise ConfigError(f"The classifier's weights file must end in .weights.h5. Received {weights_path!r}")
    folder = os.path.dirname(os.path.abspath(weights_path))
    os.makedirs(folder, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".tmp-") as tmp:
        staged = os.path.join(tmp, "classifier.weights.h5")
        # A fresh copy without the optimizer: save_weights would store Adam's state too (3x the file).
        bare = build_classifier(classifier.image_shape, classifier.info["num_classes"], classifier.info["seed"])
        bare.set_weights(classifier.model.get_weights())
        bare.save_weights(staged)
        with open(staged, "rb") as f:
            fileio.atomic_write_bytes(weights_path, f.read(), overwrite=True)
    fileio.atomic_write_json(_record_path(weights_path), classifier.info, overwrite=True)


def _record_path(weights_path):
    return weights_path[: -len(".weights.h5")] + ".json"


def load_classifier(weights_path):
    """Reads a classifier written by `save_classifier`."""
    with open(_record_path(weights_path)) as f:
        info = json.load(f)
    model = build_classifier(info["image_shape"], info["num_classes"], info["seed"])
    model.load_weights(weights_path)
    return Classifier(model, info)


def shipped_path(name):
    """The packaged classifier's weights file of a dataset in `SHIPPED`."""
    ref = importlib.resources.files("vae_keras") / "data_files" / f"classifier-{name}.weights.h5"
    return str(ref)


def cache_dir():
    """``$VAE_KERAS_CACHE``, or ``~/.cache/vae_keras``."""
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "vae_keras")


def cached_path(data):
    """Where the classifier of ``data`` is cached: its name and content hash in the file name."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(os.path.normpath(data.name)) or "dataset").strip("_")
    return os.path.join(cache_dir(), "classifiers", f"{name}-{content_hash(data)}.weights.h5")


def find_classifier(data):
    """The shipped or cached feature classifier of ``data`` (an `ImageData`), or None when it has neither: it
    never trains one (the dashboard uses this; `get_classifier` trains and caches a missing one)."""
    _require_labels(data)
    if data.name in SHIPPED:
        classifier = load_classifier(shipped_path(data.name))
        if classifier.info["content_hash"] == content_hash(data):
            return classifier
    path = cached_path(data)
    if os.path.exists(path) and os.path.exists(_record_path(path)):
        return load_classifier(path)
    return None


def get_classifier(data, progress=True):
    """The feature classifier of ``data`` (an `ImageData`, or a dataset spec): the shipped one for
    ``mnist-10k``, else the cached one, trained and cached on first use."""
    if isinstance(data, (str, os.PathLike)):
        from vae_keras.data import load_images

        data = load_images(data)
    classifier = find_classifier(data)
    if classifier is not None:
        return classifier
    path = cached_path(data)
    if progress:
        print(f"vae-keras: training the sample-quality classifier of {data.name!r} ({len(data.x_train):,} images, "
              f"{CLASSIFIER_EPOCHS} epochs; once, then cached in {path})", file=sys.stderr, flush=True)
    classifier = train_classifier(data)
    save_classifier(classifier, path)
    if progress:
        print(f"vae-keras: classifier trained: test accuracy {classifier.info['test_accuracy']:.4f}", file=sys.stderr,
              flush=True)
    return classifier


# ----------------------------------------------------------------------------- scoring
def reference_images(data, num_images=None):
    """The test images (float32 intensities in [0, 1]) that samples are scored against."""
    x = _as_float(data.x_test)
    return x if num_images is None else x[:num_images]


def score(classifier, samples, reference, k=K_NEAREST):
    """FD, precision and recall of ``samples`` against ``reference`` images, in the classifier's features.

    Returns:
        A dict: ``fd``, ``precision``, ``recall``, ``num_samples``, ``num_reference``, ``k``.
    """
    real, fake = classifier.features(reference), classifier.features(samples)
    precision, recall = precision_recall(real, fake, k)
    return {"fd": frechet_distance(real, fake), "precision": precision, "recall": recall,
            "num_samples": int(len(fake)), "num_reference": int(len(real)), "k": int(k)}


def class_accuracy(classifier, samples, labels):
    """The share of ``samples`` that the classifier recognises as their own class ``labels`` [N]."""
    labels = np.asarray(labels)
    if labels.shape != (len(samples),):
        raise ConfigError(f"class_accuracy needs one label per sample: {len(samples)}. Received labels of shape {labels.shape}")
    return float(np.mean(classifier.predict(samples) == labels))


def model_samples(model, num_samples, seed=0, labels=None, batch_size=500):
    """``num_samples`` random images E[x|z] of a model, seeded (``labels`` [N] for a conditional one).

    z comes from the model's ``sample_latent(n, seed)`` (a `VAE`: its prior, or its fitted mixture under
    ``sampler="gmm:K"``, of each sample's class for a conditional model), or from N(0, I) drawn with numpy for a
    model without one.
    """
    import keras

    checks.check_integer("num_samples", num_samples, 1)
    if hasattr(model, "sample_latent"):
        # A conditional model's fitted sampler draws from each sample's class's mixture.
        given = {} if labels is None else {"label": np.asarray(labels, np.int32)}
        z = keras.ops.convert_to_numpy(model.sample_latent(num_samples, seed, **given)).astype(np.float32)
    else:
        z = np.random.default_rng(seed).standard_normal((num_samples, model.latent_dim)).astype(np.float32)
    out = []
    for start in range(0, num_samples, batch_size):
        label = None if labels is None else np.asarray(labels[start:start + batch_size], np.int32)
        out.append(keras.ops.convert_to_numpy(model.decode_mean(z[start:start + batch_size], label)))
    return np.concatenate(out)


def evaluate_samples(model, data, num_samples=2000, seed=0, classifier=None, progress=True):
    """Sample quality of a `VAE` on ``data``: `score` of ``num_samples`` samples against the test images.

    A conditional model draws its samples' labels like the test labels (seeded), and the result
    adds ``class_accuracy``: how often the classifier recognises a sample as its own class.
    """
    check_num_samples("num_samples", num_samples)
    classifier = classifier or get_classifier(data, progress=progress)
    labels = None
    if getattr(model, "conditional", False):
        labels = np.random.default_rng(seed + 1).choice(data.y_test, size=num_samples)
    samples = model_samples(model, num_samples, seed=seed, labels=labels)
    result = score(classifier, samples, reference_images(data))
    result["classifier_test_accuracy"] = classifier.info["test_accuracy"]
    result["sampler"] = getattr(model, "sampler_name", "prior")
    if labels is not None:
        result["class_accuracy"] = class_accuracy(classifier, samples, labels)
    return result


def main(argv=None):
    """``python -m vae_keras.sample_quality --train DATASET [--out PATH]``: (re)trains a classifier."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m vae_keras.sample_quality",
                                     description="Train the sample-quality classifier of a dataset.")
    parser.add_argument("--train", required=True, metavar="DATASET", help="dataset spec, e.g. mnist-10k")
    parser.add_argument("--out", help="weights file (.weights.h5); default: the packaged file for mnist-10k, else the cache")
    args = parser.parse_args(argv)
    from vae_keras.data import load_images

    data = load_images(args.train)
    out = args.out or (shipped_path(data.name) if data.name in SHIPPED else cached_path(data))
    classifier = train_classifier(data, verbose=2)
    save_classifier(classifier, out)
    print(f"Wrote {out}: test accuracy {classifier.info['test_accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
