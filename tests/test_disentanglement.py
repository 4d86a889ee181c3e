"""Disentanglement metrics (vae_keras.disentanglement) against encoders whose answer is known, and
`vae-keras evaluate --disentanglement`.

The synthetic ground truth's "images" are the factor values themselves ([N, 1, 1, F], each factor
scaled to [0, 1]), so a representation can be any function of the factors: the factors themselves
(a perfectly disentangled code), a fixed rotation that mixes them, a constant, noise.
"""

import json

import numpy as np
import pytest

from vae_keras import disentanglement as dis
from vae_keras.errors import ConfigError, DataError

SIZES = (3, 4, 5, 6)  # at most 20 values per factor: the 20 histogram bins of MIG keep every value apart
F = len(SIZES)
SMALL = {"num_train": 400, "num_test": 200}
CHANCE = 1.0 / F
HOUSEHOLDER = np.eye(F) - 2.0 / F * np.ones((F, F))  # orthogonal, every entry +-1/2: mixes every factor into every code


class Synthetic:
    """A ground truth whose image of a factor row is the row itself, each factor scaled to [0, 1]."""

    factor_names = [f"f{k}" for k in range(F)]
    factor_sizes = SIZES

    def sample_factors(self, n, random_state):
        return np.stack([random_state.randint(s, size=n) for s in self.factor_sizes], axis=1)

    def render(self, factors):
        scaled = np.asarray(factors, np.float32) / (np.asarray(self.factor_sizes, np.float32) - 1)
        return scaled[:, None, None, :]


GT = Synthetic()


def true_codes(images):
    return images.reshape(len(images), -1).astype(np.float64)


def rotated(images):
    return true_codes(images) @ HOUSEHOLDER


def constant(images):
    return np.full((len(images), F), 0.5)


def noise(images):
    # Depends on the images only through their number: pure noise, but the same for the same call.
    return np.random.RandomState(len(images)).randn(len(images), F)


def partly_mixed(images):
    """Between the extremes, so that an invariance test compares non-trivial numbers."""
    codes = true_codes(images) @ (np.eye(F) + 0.35 * HOUSEHOLDER)
    return codes + 0.05 * np.random.RandomState(len(images)).randn(*codes.shape)


@pytest.fixture(scope="module")
def scores():
    """All metrics for the four reference encoders (DCI with the default predictor, the random forest)."""
    return {name: dis.evaluate_disentanglement(fn, GT, seed=0, **SMALL)
            for name, fn in (("true", true_codes), ("rotated", rotated), ("constant", constant), ("noise", noise))}


def test_true_factors_score_near_one_and_the_result_is_json(scores):
    s = scores["true"]["summary"]
    assert s["mig"] > 0.95
    assert s["dci_disentanglement"] > 0.95 and s["dci_completeness"] > 0.95 and s["dci_informativeness"] > 0.95
    assert s["factorvae_score"] == 1.0 and s["beta_vae_score"] > 0.95
    assert s["sap"] > 0.1
    r = json.loads(json.dumps(scores["true"]))  # JSON-able as it is
    assert r["factor_names"] == GT.factor_names and r["factor_sizes"] == list(SIZES)
    assert r["settings"]["num_train"] == 400 and r["settings"]["num_test"] == 200 and r["settings"]["num_bins"] == 20
    assert np.asarray(r["mig"]["mutual_information"]).shape == (F, F)
    assert set(r["seconds"]) >= set(dis.METRICS)


def test_a_rotation_that_mixes_the_factors_scores_clearly_lower(scores):
    true, mixed = scores["true"]["summary"], scores["rotated"]["summary"]
    assert mixed["mig"] < 0.3 < true["mig"]
    assert mixed["dci_disentanglement"] < 0.5 and mixed["dci_completeness"] < 0.5
    assert mixed["sap"] < true["sap"] - 0.05
    assert mixed["factorvae_score"] < 0.9 and mixed["beta_vae_score"] < 0.95
    # The rotation loses no information: only how it is spread over the codes changed.
    assert mixed["dci_informativeness"] > 0.6


def test_a_constant_encoder_scores_zero_or_chance(scores):
    s = scores["constant"]["summary"]
    assert s["mig"] == 0.0 and s["sap"] == 0.0
    assert s["dci_disentanglement"] == pytest.approx(0.0, abs=1e-6) and s["dci_completeness"] == pytest.approx(0.0, abs=1e-6)
    assert s["factorvae_score"] == 0.0 and scores["constant"]["factorvae_score"]["num_active_dims"] == 0  # all pruned
    assert abs(s["beta_vae_score"] - CHANCE) < 0.12


def test_a_noise_encoder_scores_near_zero_or_chance(scores):
    s = scores["noise"]["summary"]
    assert s["mig"] < 0.05 and s["sap"] < 0.05
    assert s["dci_disentanglement"] < 0.2 and s["dci_completeness"] < 0.2
    assert abs(s["factorvae_score"] - CHANCE) < 0.12 and abs(s["beta_vae_score"] - CHANCE) < 0.12


def _transformed(represent, scale):
    perm = np.array([2, 0, 3, 1])
    factor = np.array([-1.0, 3.0, -0.25, 7.0]) if scale else np.array([-1.0, 1.0, -1.0, 1.0])
    return lambda images: represent(images)[:, perm] * factor


def test_permuting_scaling_and_flipping_the_codes_changes_nothing():
    """MIG, FactorVAE and DCI are invariant to permutation, scale and sign; SAP and the beta-VAE score
    (regularised linear classifiers, as disentanglement_lib) to permutation and sign."""
    base = dis.evaluate_disentanglement(partly_mixed, GT, **SMALL)["summary"]
    assert 0.1 < base["mig"] < 0.9 and 0.1 < base["dci_disentanglement"] < 0.95  # non-trivial numbers compared
    scaled = dis.evaluate_disentanglement(_transformed(partly_mixed, True), GT, metrics=("mig", "factorvae_score", "dci"),
                                          **SMALL)["summary"]
    flipped = dis.evaluate_disentanglement(_transformed(partly_mixed, False), GT, metrics=("sap", "beta_vae_score"),
                                           **SMALL)["summary"]
    for name in ("mig", "factorvae_score"):
        assert scaled[name] == pytest.approx(base[name], abs=1e-9), name
    for name in ("dci_disentanglement", "dci_completeness", "dci_informativeness"):
        assert scaled[name] == pytest.approx(base[name], abs=0.02), name  # tree ties may split differently
    for name in ("sap", "beta_vae_score"):
        assert flipped[name] == pytest.approx(base[name], abs=1e-9), name


def test_mig_is_the_gap_a_duplicated_code_closes():
    """Factor 0 carried whole by two codes: its gap is 0; the other factors' gaps stay near 1."""
    result = dis.mig(lambda images: true_codes(images)[:, [0, 0, 1, 2, 3]], GT, num_train=400)
    assert result["mig_per_factor"][0] == pytest.approx(0.0, abs=1e-9)
    assert min(result["mig_per_factor"][1:]) > 0.95
    assert result["mig"] == pytest.approx(np.mean(result["mig_per_factor"]))


def test_the_combined_run_gives_the_numbers_of_separate_calls():
    combined = dis.evaluate_disentanglement(partly_mixed, GT, seed=3, metrics=("mig", "sap", "factorvae_score"), **SMALL)
    assert dis.mig(partly_mixed, GT, num_train=400, seed=3)["mig"] == combined["summary"]["mig"]
    assert dis.sap(partly_mixed, GT, seed=3, **SMALL)["sap"] == combined["summary"]["sap"]
    alone = dis.factorvae_score(partly_mixed, GT, num_train=400, num_eval=200, seed=3)
    assert alone == combined["factorvae_score"]
    other_seed = dis.mig(partly_mixed, GT, num_train=400, seed=4)["mig"]
    assert other_seed != combined["summary"]["mig"]


def _counting(represent):
    """``represent``, and a list that holds the number of images of every call."""
    calls = []

    def counted(images):
        calls.append(len(images))
        return represent(images)

    return counted, calls


def test_the_vote_pool_groups_share_the_fixed_value_and_never_repeat_an_image():
    """The FactorVAE score's groups hold distinct pool images that share the fixed factor's value; the beta-VAE
    score's partner of an image shares the value and is another image."""
    rs = np.random.RandomState(0)
    pool = dis._Pool(true_codes, GT, 3000, rs, SIZES, 1024)
    fixed = rs.randint(F, size=500)
    groups = dis._pool_groups(pool, fixed, 64, rs, SIZES)
    values = pool.factors[groups, fixed[:, None]]  # [votes, 64]: the fixed factor's value of every image
    assert np.all(values == values[:, :1])
    assert all(len(set(row)) == 64 for row in groups)
    # The other factors still vary within a group (they are not fixed too).
    other = (fixed + 1) % F
    assert np.mean([len(set(pool.factors[g, k])) > 1 for g, k in zip(groups, other)]) > 0.99
    images = rs.randint(3000, size=(200, 64))
    for k in range(F):
        partners = pool.partners(k, images, rs)
        assert np.all(pool.factors[partners, k] == pool.factors[images, k])
        assert not np.any(partners == images)
        assert np.mean(pool.factors[partners, (k + 1) % F] != pool.factors[images, (k + 1) % F]) > 0.5


@pytest.mark.parametrize("name", ["factorvae_score", "beta_vae_score"])
def test_the_pooled_scores_match_fresh_renders_and_represent_only_the_pool(name):
    """The default votes draw from a pool of 10,000 images represented once; the score agrees with fresh images
    for every vote (disentanglement_lib's way, ~100x the images) on encoders between the extremes."""
    metric = getattr(dis, name)
    # Deterministic encoders (a noise term that depends on the call's size would repeat across fresh chunks).
    for represent in (rotated, lambda images: true_codes(images) @ (0.3 * np.eye(F) + HOUSEHOLDER)):
        counted, calls = _counting(represent)
        pooled = metric(counted, GT, num_train=3000, num_eval=1500)
        assert sum(calls) == dis.POOL_SIZE and pooled["pool_size"] == dis.POOL_SIZE
        counted, calls = _counting(represent)
        fresh = metric(counted, GT, num_train=3000, num_eval=1500, pool_size=None)
        assert sum(calls) >= 4500 * 64 and fresh["pool_size"] is None
        assert 0.2 < fresh["eval_accuracy"] < 0.95  # a non-trivial number compared
        assert pooled["eval_accuracy"] == pytest.approx(fresh["eval_accuracy"], abs=0.05)


def test_a_pool_too_small_for_the_votes_is_refused():
    with pytest.raises(ConfigError, match=r"pool_size=300 is too small.*64 x 6 = 384.*pool_size=None"):
        dis.factorvae_score(true_codes, GT, pool_size=300)
    with pytest.raises(ConfigError, match="pool_size=300 is too small"):
        dis.evaluate_disentanglement(true_codes, GT, metrics=("beta_vae_score",), pool_size=300, **SMALL)
    with pytest.raises(ConfigError, match="num_variance_estimate=5000 exceeds pool_size=4000"):
        dis.factorvae_score(true_codes, GT, pool_size=4000, num_variance_estimate=5000)
    # A metric without votes takes no pool: the setting says so.
    assert dis.evaluate_disentanglement(true_codes, GT, metrics=("mig",), **SMALL)["settings"]["pool_size"] is None


def test_mutual_information_matches_a_numpy_contingency_table(rng):
    codes = rng.normal(size=(500, 3))
    factors = rng.integers(0, 4, size=(500, 2))
    factors[:, 1] = (codes[:, 0] > 0.3).astype(int) + 2 * factors[:, 1] // 4  # related to code 0
    binned = dis.histogram_discretize(codes)
    assert binned.min() >= 1 and binned.max() <= 20
    edges = np.linspace(codes.min(axis=0), codes.max(axis=0), 21)  # 20 equal bins over each code's range
    for j in range(3):
        expected_bins = np.clip(np.searchsorted(edges[:, j], codes[:, j], side="right"), 1, 20)
        np.testing.assert_array_equal(binned[:, j], expected_bins)
    m = dis.mutual_information_matrix(codes, factors)
    for j in range(3):
        for k in range(2):
            joint = np.zeros((21, 4))
            np.add.at(joint, (binned[:, j], factors[:, k]), 1)
            p = joint / joint.sum()
            outer = p.sum(axis=1, keepdims=True) * p.sum(axis=0, keepdims=True)
            nz = p > 0
            assert m[j, k] == pytest.approx(np.sum(p[nz] * np.log(p[nz] / outer[nz])), rel=1e-9)
    assert m[0, 1] > 5 * m[1, 1]


def test_dci_scores_of_known_importance_matrices():
    assert dis.dci_scores(np.eye(3)) == pytest.approx((1.0, 1.0), abs=1e-6)
    assert dis.dci_scores(np.ones((3, 3))) == pytest.approx((0.0, 0.0), abs=1e-6)
    # Code 0 (importance 2) and code 1 (importance 1) follow one factor each; code 2 (importance 1) is split
    # evenly over both. Disentanglement weighs each code's 1 - H(row) by its share of the total (4):
    r = np.array([[2.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    d, c = dis.dci_scores(r)
    assert d == pytest.approx(1.0 * 2 / 4 + 1.0 * 1 / 4 + 0.0 * 1 / 4, abs=1e-6)

    def h3(*p):  # entropy in base 3 (three codes)
        return -sum(v * np.log(v) for v in p if v > 0) / np.log(3)

    # Completeness: factor 0's column (2, 0, 0.5) and factor 1's (0, 1, 0.5), weighted 2.5/4 and 1.5/4.
    assert c == pytest.approx((1 - h3(0.8, 0.2)) * 2.5 / 4 + (1 - h3(2 / 3, 1 / 3)) * 1.5 / 4, abs=1e-6)


def test_dci_with_the_lasso():
    true = dis.dci(true_codes, GT, predictor="lasso", **SMALL)
    mixed = dis.dci(rotated, GT, predictor="lasso", **SMALL)
    assert true["predictor"] == "lasso" and true["informativeness_measure"] == "r2"
    assert true["disentanglement"] > 0.95 and true["completeness"] > 0.95 and true["informativeness_test"] > 0.95
    assert mixed["disentanglement"] < 0.5 and mixed["informativeness_test"] > 0.95
    with pytest.raises(ConfigError, match="predictor"):
        dis.dci(true_codes, GT, predictor="tree", **SMALL)


def test_the_forest_is_the_default_and_gbt_still_gives_the_known_answers(scores):
    """The known-answer tests above ran the default predictor, the random forest; disentanglement_lib's boosted
    trees stay available and give the same answers (true factors near 1, a rotation clearly lower)."""
    assert dis.DCI_PREDICTOR == "forest" and scores["true"]["settings"]["dci_predictor"] == "forest"
    assert scores["true"]["dci"]["predictor"] == "forest" and scores["true"]["dci"]["informativeness_measure"] == "accuracy"
    true = dis.dci(true_codes, GT, predictor="gbt", **SMALL)
    mixed = dis.dci(rotated, GT, predictor="gbt", **SMALL)
    assert true["predictor"] == "gbt" and true["informativeness_measure"] == "accuracy"
    assert true["disentanglement"] > 0.95 and true["completeness"] > 0.95 and true["informativeness_test"] > 0.95
    assert mixed["disentanglement"] < 0.5 and mixed["completeness"] < 0.5


def test_the_forest_follows_each_factor_to_its_own_code():
    """With every split free to choose any code (max_features=None), a code that only copies noise gets next to
    no importance: the importance matrix of true factors plus a noise code is (nearly) diagonal."""
    def with_noise(images):
        codes = true_codes(images)
        return np.concatenate([codes, np.random.RandomState(len(images)).randn(len(codes), 1)], axis=1)

    r = dis.dci(with_noise, GT, predictor="forest", **SMALL)
    importance = np.asarray(r["importance"])
    assert importance.shape == (F + 1, F)
    np.testing.assert_allclose(importance[:F].argmax(axis=0), np.arange(F))
    assert np.all(np.diag(importance[:F]) > 0.9) and importance[F].max() < 0.05


class TestRefusals:
    def test_an_object_without_factors_is_named_with_what_it_lacks(self):
        class Images:
            factor_names = ["a"]

        with pytest.raises(DataError, match="lacks factor_sizes, render, sample_factors"):
            dis.mig(true_codes, Images(), num_train=50)

    def test_factor_sizes_must_fit_the_names(self):
        class Bad(Synthetic):
            factor_sizes = (3, 1, 5, 6)

        with pytest.raises(DataError, match="integer >= 2"):
            dis.mig(true_codes, Bad(), num_train=50)

    def test_codes_of_the_wrong_shape_or_not_finite(self):
        with pytest.raises(ConfigError, match=r"codes \[N, D\] with N=50. Received shape \(50,\)"):
            dis.mig(lambda x: np.zeros(len(x)), GT, num_train=50)
        with pytest.raises(ConfigError, match="50 NaN/inf"):
            dis.mig(lambda x: np.where(true_codes(x) > -1, np.nan, 0)[:, :1], GT, num_train=50)

    def test_a_conditional_model_is_refused(self):
        class Conditional:
            conditional = True
            image_shape = (1, 1, F)

        with pytest.raises(ConfigError, match="unconditional model"):
            dis.representation_from_model(Conditional())

    def test_sample_sizes_and_metric_names(self):
        with pytest.raises(ConfigError, match="num_train"):
            dis.mig(true_codes, GT, num_train=1)
        with pytest.raises(ConfigError, match="metrics must be"):
            dis.evaluate_disentanglement(true_codes, GT, metrics=("mig", "irs"), **SMALL)


# --------------------------------------------------------------------------------------------------
# Representations of a VAE and of an export; the command line
# --------------------------------------------------------------------------------------------------

class Squares:
    """A 28x28 ground truth for the tiny MNIST model: a 6x6 bright square at one of 4 x 4 positions."""

    factor_names = ["x", "y"]
    factor_sizes = (4, 4)
    image_shape = (28, 28, 1)

    def sample_factors(self, n, random_state):
        return np.stack([random_state.randint(s, size=n) for s in self.factor_sizes], axis=1)

    def render(self, factors):
        images = np.zeros((len(factors), 28, 28, 1), np.float32)
        for i, (x, y) in enumerate(np.asarray(factors)):
            images[i, 2 + 6 * y:8 + 6 * y, 2 + 6 * x:8 + 6 * x, 0] = 1.0
        return images


def test_the_representations_of_a_vae_and_of_its_export_are_its_z_mean(tiny_trained_vae, tiny_export):
    images = Squares().render(np.array([[0, 0], [3, 1], [2, 2]]))
    expected = np.asarray(tiny_trained_vae.encode(images)[0])
    np.testing.assert_allclose(dis.representation_from_model(tiny_trained_vae, batch_size=2)(images), expected, atol=1e-5)
    np.testing.assert_allclose(dis.representation_from_export(tiny_export[1], batch_size=2)(images), expected, atol=1e-5)
    with pytest.raises(DataError, match=r"shape \(1, 1, 4\); the model takes \(28, 28, 1\)"):
        dis.representation_from_model(tiny_trained_vae)(GT.render(np.zeros((2, F), int)))


class TestCommandLine:
    @pytest.fixture
    def with_factors(self, monkeypatch):
        """`load_images` answers every spec with MNIST test images plus the Squares factors."""
        from vae_keras import data

        real = data.load_images("mnist-10k").subset(n_train=64, n_test=32)

        class Loaded(Squares):
            def __getattr__(self, name):
                return getattr(real, name)

        monkeypatch.setattr(data, "load_images", lambda spec, image_size=None: Loaded())

    def test_evaluate_json_runs_the_metrics_on_a_dataset_with_factors(self, tiny_export, with_factors, capsys):
        from vae_keras.cli import main

        capsys.readouterr()
        code = main(["evaluate", tiny_export[1], "--iw-samples", "2", "--num-images", "8", "--json", "--disentanglement",
                     "--disentanglement-samples", "200", "--dci-predictor", "lasso", "--seed", "1", "--vote-pool", "500"])
        out = capsys.readouterr().out
        assert code == 0
        result = json.loads(out)
        assert result["num_images"] == 8  # the likelihood part is unchanged
        d = result["disentanglement"]
        assert d["factor_names"] == ["x", "y"]
        assert d["settings"] == {**d["settings"], "num_train": 200, "num_test": 100, "seed": 1, "dci_predictor": "lasso",
                                 "pool_size": 500}
        assert d["factorvae_score"]["pool_size"] == d["beta_vae_score"]["pool_size"] == 500
        assert set(d["summary"]) == {"mig", "factorvae_score", "sap", "dci_disentanglement", "dci_completeness",
                                     "dci_informativeness", "beta_vae_score"}
        assert all(np.isfinite(v) for v in d["summary"].values())

    def test_evaluate_text_prints_the_metrics(self, tiny_export, with_factors, capsys):
        from vae_keras.cli import main

        capsys.readouterr()
        assert main(["evaluate", tiny_export[1], "--iw-samples", "2", "--num-images", "8", "--disentanglement",
                     "--disentanglement-samples", "100", "--dci-predictor", "lasso", "--vote-pool", "fresh"]) == 0
        out = capsys.readouterr().out
        for name in ("MIG", "FactorVAE score", "SAP", "DCI disentanglement", "beta-VAE score", "factors          x, y"):
            assert name in out, out

    def test_a_dataset_without_factors_is_refused_in_one_line(self, tiny_export, capsys):
        from vae_keras.cli import main

        capsys.readouterr()
        code = main(["evaluate", tiny_export[1], "--iw-samples", "2", "--disentanglement"])
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("vae-keras")]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err
        assert "--disentanglement" in lines[0] and "'mnist-10k'" in lines[0] and "factor" in lines[0]

    def test_a_seed_numpy_cannot_take_is_refused_before_the_evaluation(self, tiny_export, with_factors, monkeypatch, capsys):
        from vae_keras import evaluation
        from vae_keras.cli import main

        monkeypatch.setattr(evaluation, "evaluate", lambda *a, **k: pytest.fail("evaluated before refusing the seed"))
        capsys.readouterr()
        assert main(["evaluate", tiny_export[1], "--disentanglement", "--seed", "-1"]) == 2
        assert "seed must be an integer in 0..4294967295" in capsys.readouterr().err

    def test_a_vote_pool_is_a_positive_integer_or_fresh(self, tiny_export, capsys):
        from vae_keras.cli import main

        capsys.readouterr()
        assert main(["evaluate", tiny_export[1], "--disentanglement", "--vote-pool", "many"]) == 2
        assert "expected a positive integer or 'fresh', received 'many'" in capsys.readouterr().err

    @pytest.mark.parametrize("flags", [["--disentanglement-samples", "100"], ["--dci-predictor", "lasso"],
                                       ["--vote-pool", "fresh"]])
    def test_the_metric_flags_need_disentanglement(self, tiny_export, capsys, flags):
        from vae_keras.cli import main

        capsys.readouterr()
        assert main(["evaluate", tiny_export[1], "--iw-samples", "2", *flags]) == 2
        err = capsys.readouterr().err
        assert f"{flags[0]} needs --disentanglement" in err
