"""The fitted latent density for sampling (--sampler gmm:K): the mixture's samples and density against
independent formulas, the fit against scikit-learn run directly, the round trip through model.keras and the
SavedModel, and that it changes sampling only, never the likelihood."""

import json
import os

import keras
import numpy as np
import pytest

import vae_keras
from vae_keras import latent_density as ld
from vae_keras.errors import ConfigError


def _mixture(seed=0, k=3, d=2, covariance="full"):
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(k) * 3)
    means = rng.normal(0, 3, (k, d))
    a = rng.normal(0, 0.6, (k, d, d))
    cov = a @ np.transpose(a, (0, 2, 1)) + 0.2 * np.eye(d)
    if covariance == "diag":
        cov = cov * np.eye(d)
    sampler = ld.GaussianMixtureSampler(k, d, covariance)
    sampler.set_mixture(weights, means, np.linalg.cholesky(cov))
    return sampler, weights, means, cov


def test_samples_have_the_mixtures_mean_and_covariance_and_a_seed_repeats_them():
    sampler, w, mu, cov = _mixture()
    z = np.asarray(sampler.sample(200_000, 7))
    mean = (w[:, None] * mu).sum(0)
    # the law of total covariance: E[cov_k] + Cov[mu_k]
    total = (w[:, None, None] * (cov + np.einsum("ki,kj->kij", mu - mean, mu - mean))).sum(0)
    np.testing.assert_allclose(z.mean(0), mean, atol=0.03)
    np.testing.assert_allclose(np.cov(z, rowvar=False), total, atol=0.08)
    np.testing.assert_array_equal(np.asarray(sampler.sample(50, 7)), np.asarray(sampler.sample(50, 7)))
    assert not np.allclose(np.asarray(sampler.sample(50, 7)), np.asarray(sampler.sample(50, 8)))


def test_the_density_integrates_to_one_and_matches_scipy():
    from scipy.stats import multivariate_normal

    sampler, w, mu, cov = _mixture(1)
    grid = np.linspace(-15, 15, 301)
    zz = np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2).astype(np.float32)
    density = np.exp(np.asarray(sampler.log_prob(zz), np.float64))
    assert density.sum() * (grid[1] - grid[0]) ** 2 == pytest.approx(1.0, abs=2e-3)
    points = zz[::997]
    expected = sum(wk * multivariate_normal(m, c).pdf(points) for wk, m, c in zip(w, mu, cov))
    np.testing.assert_allclose(density[::997], expected, rtol=1e-4, atol=1e-12)


def test_the_option_is_parsed_and_a_conditional_model_gets_one_mixture_per_class():
    assert ld.parse_sampler("prior") is None and ld.parse_sampler("gmm") == 10 and ld.parse_sampler("gmm:3") == 3
    for bad in ("gmm:0", "gmm3", "flow", "gmm:-1", None):
        with pytest.raises(ConfigError, match="gmm:K"):
            ld.parse_sampler(bad)
    vae = vae_keras.build_vae((6, 6, 1), latent_dim=2, hidden=(4,), num_classes=3, sampler="gmm:2")
    assert vae.sampler.mixture_shape == (3, 2) and tuple(vae.sampler.means.shape) == (3, 2, 2)
    from vae_keras.training import TrainConfig

    TrainConfig(sampler="gmm:4", conditional=True).validate()  # combined, no longer refused
    with pytest.raises(ConfigError, match="num_classes=None; the model has num_classes=3"):
        vae_keras.build_vae((6, 6, 1), latent_dim=2, hidden=(4,), num_classes=3, sampler=ld.GaussianMixtureSampler(2, 2))


def _per_class_sampler(k=3, d=2, classes=2):
    parts = [_mixture(seed=10 + c, k=k, d=d) for c in range(classes)]
    sampler = ld.GaussianMixtureSampler(k, d, num_classes=classes)
    sampler.set_mixture(np.stack([p[1] for p in parts]), np.stack([p[2] for p in parts]),
                        np.stack([np.linalg.cholesky(p[3]) for p in parts]))
    return sampler, parts


def test_a_per_class_sampler_draws_each_sample_from_its_class_mixture():
    """Per label, the samples have the class mixture's mean and covariance (the law of total covariance), and the
    density is the class mixture's, by scipy; a missing label, or a label for a one-mixture sampler, is refused."""
    from scipy.stats import multivariate_normal

    sampler, parts = _per_class_sampler()
    labels = np.arange(200_000) % 2
    z = np.asarray(sampler.sample(len(labels), 7, labels))
    for c, (_, w, mu, cov) in enumerate(parts):
        mean = (w[:, None] * mu).sum(0)
        total = (w[:, None, None] * (cov + np.einsum("ki,kj->kij", mu - mean, mu - mean))).sum(0)
        np.testing.assert_allclose(z[labels == c].mean(0), mean, atol=0.04)
        np.testing.assert_allclose(np.cov(z[labels == c], rowvar=False), total, atol=0.1)
        points = z[labels == c][:20]
        expected = sum(wk * multivariate_normal(m, cv).pdf(points) for wk, m, cv in zip(w, mu, cov))
        got = np.exp(np.asarray(sampler.log_prob(points, np.full(20, c))))
        np.testing.assert_allclose(got, expected, rtol=1e-4)
    np.testing.assert_array_equal(np.asarray(sampler.sample(4, 7, [0, 1, 0, 1])), np.asarray(sampler.sample(4, 7, [0, 1, 0, 1])))
    with pytest.raises(ConfigError, match="one mixture per class .*pass the label"):
        sampler.sample(4, 7)
    with pytest.raises(ConfigError, match="takes no label"):
        _mixture()[0].sample(4, 7, np.zeros(4, np.int32))
    with pytest.raises(ConfigError, match=r"holds weights \(2, 3\)"):
        sampler.set_mixture(*(np.asarray(a)[0] for a in (parts[0][1], parts[0][2], np.linalg.cholesky(parts[0][3]))))


def test_a_conditional_model_fits_one_mixture_per_class_and_the_export_samples_the_labels_class(mnist_small, tmp_path):
    """train(conditional=True, sampler="gmm:2"): each class's mixture is scikit-learn's on that class's posterior
    means; the SavedModel's `sample` draws the same z per label as the library, and `vae-keras sample --label`
    works."""
    from sklearn.mixture import GaussianMixture

    from vae_keras import data, evaluation
    from vae_keras.cli import main
    from vae_keras.training import TrainConfig, train

    result = train(TrainConfig(conditional=True, sampler="gmm:2", epochs=1, latent_dim=2, hidden=(16,),
                               eval_iw_samples=0, out=str(tmp_path), verbose=0), data=mnist_small)
    model = result["model"]
    x, y = data.binarize(mnist_small.x_train, 0), mnist_small.y_train
    z_mean, _ = evaluation.latent_statistics(model, x, labels=y)
    for c in (0, 7):
        gmm = GaussianMixture(2, covariance_type="full", random_state=0, reg_covar=1e-5).fit(z_mean[y == c].astype(np.float64))
        got = model.sampler.means.numpy()[c]
        np.testing.assert_allclose(got[np.argsort(got[:, 0])], gmm.means_[np.argsort(gmm.means_[:, 0])], rtol=1e-4, atol=1e-5)
    labels = np.array([0, 7, 7, 3, 0, 1], np.int32)
    z = np.asarray(model.sample_latent(6, 3, labels))
    exported = vae_keras.ExportedVAE(result["export_path"])
    np.testing.assert_allclose(exported.sample(6, seed=3, label=labels)["z"], z, rtol=1e-5, atol=1e-6)
    # each z comes from its own class's mixture: the class-0 and class-7 codes differ with the label alone
    assert not np.allclose(np.asarray(model.sample_latent(6, 3, np.zeros(6, np.int32))), np.asarray(model.sample_latent(6, 3, np.full(6, 7, np.int32))))
    assert exported.card["sampler"]["per_class"] is True
    png = str(tmp_path / "s.png")
    assert main(["sample", result["export_path"], "--num", "4", "--label", "3", "--output", png]) == 0


@pytest.fixture(scope="module")
def fitted(mnist_small):
    from vae_keras import data

    keras.utils.set_random_seed(0)
    vae = vae_keras.build_vae((28, 28, 1), latent_dim=3, hidden=(16,), binarize=True, seed=0, sampler="gmm:4")
    vae.compile(optimizer=keras.optimizers.Adam(2e-3))
    vae.fit(data.to_float(mnist_small.x_train), epochs=1, batch_size=64, verbose=0)
    x = data.binarize(mnist_small.x_train, 0)
    return vae, x


def test_the_fit_is_scikit_learns_on_the_posterior_means(fitted):
    from sklearn.mixture import GaussianMixture

    from vae_keras import evaluation

    vae, x = fitted
    ld.fit_gmm_sampler(vae, x, seed=0)
    z_mean, _ = evaluation.latent_statistics(vae, x)
    gmm = GaussianMixture(4, covariance_type="full", random_state=0, reg_covar=1e-5).fit(z_mean.astype(np.float64))
    order = np.argsort(gmm.means_[:, 0])
    got = np.argsort(vae.sampler.means.numpy()[:, 0])
    np.testing.assert_allclose(vae.sampler.means.numpy()[got], gmm.means_[order], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.exp(vae.sampler.logits.numpy())[got], gmm.weights_[order], rtol=1e-4)
    # the fitted density is scikit-learn's
    np.testing.assert_allclose(np.asarray(vae.sampler.log_prob(z_mean[:50])), gmm.score_samples(z_mean[:50]),
                               rtol=1e-3, atol=1e-3)


def test_sampling_only_the_likelihood_is_the_priors(fitted):
    """The same weights without the sampler give the same importance weights: the mixture never enters log p(z)."""
    vae, x = fitted
    ld.fit_gmm_sampler(vae, x, seed=0)
    config = vae.get_config()
    config["sampler"] = "prior"
    plain = vae_keras.VAE.from_config(config)
    plain(plain.example_inputs())
    plain.set_weights(vae.get_weights()[: len(plain.get_weights())])
    a = vae.log_importance_weights(x[:8], 3, seed=keras.random.SeedGenerator(1))
    b = plain.log_importance_weights(x[:8], 3, seed=keras.random.SeedGenerator(1))
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    assert plain.sampler is None and vae.sampler_name == "gmm:4"


def test_model_keras_and_the_savedmodel_draw_the_same_z(fitted, tmp_path):
    vae, x = fitted
    ld.fit_gmm_sampler(vae, x, covariance="diag", seed=0)
    z = np.asarray(vae.sample_latent(6, 3))
    path = str(tmp_path / "m.keras")
    vae.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded.sample_latent(6, 3)), z, rtol=1e-6)
    assert loaded.sampler.covariance == "diag"
    version = vae_keras.export_model(vae, str(tmp_path / "models"), "g", dataset="mnist-10k")
    exported = vae_keras.ExportedVAE(version)
    out = exported.sample(6, seed=3)
    np.testing.assert_allclose(out["z"], z, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["x_mean"], np.asarray(vae.decode_mean(z)), atol=1e-5)
    with open(os.path.join(version, "assets.extra", "model_card.json")) as f:
        card = json.load(f)
    assert card["sampler"]["name"] == "gmm:4" and card["sampler"]["covariance"] == "diag"
    with pytest.raises(ConfigError, match="temperature"):
        exported.sample(6, seed=3, temperature=0.5)
    # the samples are not the prior's
    prior = np.random.default_rng(0).standard_normal((6, 3))
    assert not np.allclose(z, prior, atol=0.5)


def test_a_prior_model_cannot_be_fitted():
    vae = vae_keras.build_vae((6, 6, 1), latent_dim=2, hidden=(4,))
    with pytest.raises(ConfigError, match="sampler='gmm:K'"):
        ld.fit_gmm_sampler(vae, np.zeros((10, 6, 6, 1), np.float32))


def test_train_with_sampler_gmm_fits_it_and_the_card_and_vae_keras_sample_use_it(mnist_small, tmp_path, capsys,
                                                                                  monkeypatch):
    """Also --sample-quality N at export: the card's test_sample_* metrics, of the mixture's samples (the 512-image
    subset is not the shipped classifier's data: a classifier is trained for it, one epoch here, in a temporary cache)."""
    from vae_keras import sample_quality
    from vae_keras.cli import main
    from vae_keras.training import TrainConfig, train

    monkeypatch.setenv(sample_quality.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(sample_quality, "CLASSIFIER_EPOCHS", 1)
    result = train(TrainConfig(sampler="gmm:3", epochs=1, latent_dim=2, hidden=(16,), eval_iw_samples=0,
                               sample_quality=50, out=str(tmp_path), verbose=0), data=mnist_small)
    model = result["model"]
    assert model.sampler_name == "gmm:3" and not np.allclose(model.sampler.means.numpy(), 0.0)  # fitted, not N(0, I)
    with open(os.path.join(result["export_path"], "assets.extra", "model_card.json")) as f:
        card = json.load(f)
    assert card["sampler"]["name"] == "gmm:3"
    m = card["metrics"]
    assert m["test_sample_fd"] > 0 and 0 <= m["test_sample_precision"] <= 1 and 0 <= m["test_sample_recall"] <= 1
    assert "50 random samples (gmm:3, seed 0) against 256 test images" in m["test_sample_quality"]
    with pytest.raises(ConfigError, match="sample-quality needs more than 3 samples"):
        TrainConfig(sample_quality=3).validate()
    png = str(tmp_path / "s.png")
    assert main(["sample", result["export_path"], "--num", "4", "--output", png]) == 0
    assert os.path.getsize(png) > 0
    capsys.readouterr()
    assert main(["train", "--sampler", "gmm:0", "--out", str(tmp_path / "x")]) == 2
    assert "expected prior, gmm or gmm:K" in capsys.readouterr().err
