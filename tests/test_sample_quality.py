"""Sample quality: the Fréchet distance and precision/recall against independent formulas, and the shipped
mnist-10k classifier's scores on images whose quality is known (real, blurred, noisy, the data mean)."""

import json
import os

import numpy as np
import pytest
from scipy import ndimage

from vae_keras import sample_quality as sq
from vae_keras.errors import ConfigError

N = 1000  # images per set in the classifier tests: 1,000 against 1,000 keeps them at a few seconds


# ----------------------------------------------------------------------------- the formulas
def test_frechet_distance_of_gaussians_matches_the_closed_form():
    """For diagonal Gaussians FD = |mu_a - mu_b|^2 + sum_j (s_a,j - s_b,j)^2 (fails if the trace term is wrong)."""
    rng = np.random.default_rng(0)
    mu_a, mu_b = rng.normal(size=4), rng.normal(size=4)
    s_a, s_b = np.array([1.0, 2.0, 0.5, 1.5]), np.array([0.5, 1.0, 1.0, 3.0])
    a = mu_a + s_a * rng.standard_normal((200_000, 4))
    b = mu_b + s_b * rng.standard_normal((200_000, 4))
    exact = np.sum((mu_a - mu_b) ** 2) + np.sum((s_a - s_b) ** 2)
    assert sq.frechet_distance(a, b) == pytest.approx(exact, rel=0.02)


def test_frechet_distance_with_full_covariances_matches_scipy_sqrtm():
    from scipy import linalg

    rng = np.random.default_rng(1)
    a = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    b = rng.normal(size=(400, 5)) @ rng.normal(size=(5, 5)) + 1.0
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(ca + cb - 2 * np.real(linalg.sqrtm(ca @ cb)))
    assert sq.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert sq.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def _brute_force_precision_recall(real, fake, k):
    """Kynkäänniemi et al.'s definition, one point at a time with Python loops."""
    def radius(points, i):
        d = sorted(float(np.linalg.norm(points[i] - points[j])) for j in range(len(points)) if j != i)
        return d[k - 1]

    def covered(p, centres):
        return any(np.linalg.norm(p - c) <= radius(centres, j) for j, c in enumerate(centres))

    return np.mean([covered(f, real) for f in fake]), np.mean([covered(r, fake) for r in real])


def test_precision_recall_matches_a_brute_force_implementation():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(40, 3))
    fake = rng.normal(0.7, 1.3, size=(30, 3))
    for k in (1, 3):
        assert sq.precision_recall(real, fake, k) == pytest.approx(_brute_force_precision_recall(real, fake, k))


def test_precision_recall_refuses_too_few_points():
    with pytest.raises(ConfigError, match="k=3"):
        sq.precision_recall(np.zeros((3, 2)), np.zeros((10, 2)))


# ----------------------------------------------------------------------------- the shipped classifier
@pytest.fixture(scope="module")
def mnist():
    from vae_keras import data

    d = data.load_images("mnist-10k")
    classifier = sq.get_classifier(d, progress=False)
    return d, classifier, data.to_float(d.x_test[:N]), data.to_float(d.x_train[:N])


def test_the_shipped_classifier_is_small_records_its_accuracy_and_matches_the_data(mnist):
    d, classifier, x_test, _ = mnist
    path = sq.shipped_path("mnist-10k")
    assert os.path.getsize(path) < 500_000
    with open(path[: -len(".weights.h5")] + ".json") as f:
        record = json.load(f)
    assert record["content_hash"] == sq.content_hash(d)  # the shipped file was used, not a cached retraining
    accuracy = sq.class_accuracy(classifier, sq.reference_images(d), d.y_test)
    assert accuracy == pytest.approx(record["test_accuracy"]) and accuracy > 0.95
    # class_accuracy is a share of agreements: wrong labels are recognised about 1 time in 10
    assert sq.class_accuracy(classifier, x_test, np.roll(d.y_test[:N], 1)) < 0.2


def test_the_test_split_against_the_training_split_scores_near_perfect(mnist):
    _, classifier, x_test, x_train = mnist
    q = sq.score(classifier, x_train, x_test)
    mean = sq.score(classifier, np.repeat(x_train.mean(0, keepdims=True), N, 0), x_test)
    assert q["fd"] < 0.02 * mean["fd"] and q["fd"] < 3.0, (q, mean)
    assert q["precision"] > 0.8 and q["recall"] > 0.8, q


def test_the_data_mean_scores_badly(mnist):
    """A 'model' whose every sample is the data mean covers nothing of the data: recall 0, a large FD."""
    _, classifier, x_test, x_train = mnist
    q = sq.score(classifier, np.repeat(x_train.mean(0, keepdims=True), N, 0), x_test)
    assert q["recall"] < 0.01 and q["fd"] > 100, q


def _scores(classifier, reference, images_per_level):
    return [sq.score(classifier, x, reference) for x in images_per_level]


def test_growing_blur_scores_monotonically_worse(mnist):
    """FD up and recall down with the blur's width. Precision is not monotone under blur: a blurred digit stays
    inside the real images' k-NN balls, which are wide around ambiguous digits (the data mean itself has
    precision 1); it is asserted for noise below."""
    _, classifier, x_test, x_train = mnist
    levels = [ndimage.gaussian_filter(x_train, sigma=(0, s, s, 0)) if s else x_train for s in (0, 0.5, 1.0, 1.5)]
    scores = _scores(classifier, x_test, levels)
    fd = [q["fd"] for q in scores]
    recall = [q["recall"] for q in scores]
    assert fd == sorted(fd) and len(set(fd)) == len(fd), scores
    assert recall == sorted(recall, reverse=True) and recall[0] - recall[-1] > 0.5, scores


def test_growing_noise_scores_monotonically_worse(mnist):
    _, classifier, x_test, x_train = mnist
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(x_train.shape).astype(np.float32)
    levels = [np.clip(x_train + s * noise, 0.0, 1.0) for s in (0.0, 0.2, 0.3, 0.45)]
    scores = _scores(classifier, x_test, levels)
    fd = [q["fd"] for q in scores]
    precision = [q["precision"] for q in scores]
    recall = [q["recall"] for q in scores]
    assert fd == sorted(fd) and len(set(fd)) == len(fd), scores
    assert precision == sorted(precision, reverse=True) and precision[0] - precision[-1] > 0.3, scores
    assert recall == sorted(recall, reverse=True), scores


# ----------------------------------------------------------------------------- the cache
def test_another_dataset_trains_once_caches_by_content_and_retrains_for_changed_data(tmp_path, monkeypatch, capsys):
    from vae_keras.data import ImageData

    monkeypatch.setenv(sq.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(sq, "CLASSIFIER_EPOCHS", 1)
    rng = np.random.default_rng(0)
    y = (np.arange(96) % 2).astype(np.int32)
    x = (rng.random((96, 8, 8, 1)) * 0.3 + 0.7 * y[:, None, None, None]).astype(np.float32)  # class = brightness
    data = ImageData.from_arrays(x[:80], y[:80], x[80:], y[80:], name="toy")
    first = sq.get_classifier(data)
    assert "training the sample-quality classifier of 'toy'" in capsys.readouterr().err
    path = sq.cached_path(data)
    assert path.startswith(str(tmp_path / "cache")) and sq.content_hash(data) in os.path.basename(path)
    assert os.path.exists(path)
    again = sq.get_classifier(data)
    assert capsys.readouterr().err == ""  # loaded from the cache, not retrained
    np.testing.assert_allclose(again.features(x), first.features(x), rtol=1e-6)
    changed = ImageData.from_arrays(x[:80], 1 - y[:80], x[80:], 1 - y[80:], name="toy")
    assert sq.cached_path(changed) != path


def test_a_dataset_without_labels_is_refused_with_a_clear_message(tmp_path, monkeypatch):
    from vae_keras.data import ImageData
    from vae_keras.errors import DataError

    monkeypatch.setenv(sq.CACHE_ENV, str(tmp_path))
    data = ImageData.from_arrays(np.zeros((20, 8, 8), np.uint8), name="nolabels")
    with pytest.raises(DataError, match="has none"):
        sq.get_classifier(data)


# ----------------------------------------------------------------------------- models and the CLI
def test_a_conditional_model_reports_class_accuracy(mnist):
    """A conditional "model" whose decoder returns a real test image of the asked class: class accuracy near
    the classifier's own accuracy; with the labels shifted by one, near 0."""
    d, classifier, _, _ = mnist
    x_test = sq.reference_images(d)
    by_class = {c: x_test[d.y_test == c] for c in range(10)}

    class FakeConditional:
        conditional, latent_dim = True, 2

        def __init__(self, shift):
            self.shift, self.count = shift, 0

        def decode_mean(self, z, label):
            out = np.stack([by_class[(int(c) + self.shift) % 10][(self.count + i) % 50] for i, c in enumerate(label)])
            self.count += len(label)
            return out

    good = sq.evaluate_samples(FakeConditional(0), d, 300, classifier=classifier)
    bad = sq.evaluate_samples(FakeConditional(1), d, 300, classifier=classifier)
    assert good["class_accuracy"] > 0.9 and bad["class_accuracy"] < 0.1, (good, bad)


def test_evaluate_sample_quality_on_the_command_line(tiny_export, capsys):
    from vae_keras.cli import main

    version_dir = tiny_export[1]
    assert main(["evaluate", version_dir, "--iw-samples", "2", "--num-images", "20", "--sample-quality", "300",
                 "--json"]) == 0
    q = json.loads(capsys.readouterr().out)["sample_quality"]
    assert q["num_samples"] == 300 and q["num_reference"] == 2000 and q["k"] == 3
    assert q["fd"] > 0 and 0 <= q["precision"] <= 1 and 0 <= q["recall"] <= 1
    assert "class_accuracy" not in q
    assert main(["evaluate", version_dir, "--iw-samples", "2", "--num-images", "20", "--sample-quality", "300"]) == 0
    assert f"FD {q['fd']:.2f}, precision {q['precision']:.3f}" in capsys.readouterr().out
