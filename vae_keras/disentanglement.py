"""Disentanglement metrics: MIG, the FactorVAE score, SAP, DCI and the beta-VAE score.

Each metric asks how well single latent codes follow single factors of variation of a dataset whose
factors are known (dSprites: shape, scale, orientation, x, y). The definitions and default sample
sizes follow google-research/disentanglement_lib (``evaluation/metrics/{mig,factor_vae,sap_score,
dci,beta_vae,utils}.py`` and the ``config/unsupervised_study_v1/metric_configs`` of Locatello et al.
2019), so the numbers can be set beside theirs:

================  =====================================================================  ===========================
metric            what is computed                                                       samples (default)
================  =====================================================================  ===========================
MIG               Chen et al. 2018. Every code is discretised into 20 equal-width        10,000 images
                  histogram bins (``np.digitize`` on ``np.histogram``'s edges); the
                  discrete mutual information I(code_j; factor_k) (nats, scikit-learn's
                  ``mutual_info_score``); per factor, the gap between the largest and the
                  second largest I over codes, divided by the factor's entropy H(factor_k);
                  the mean over factors.
FactorVAE score   Kim & Mnih 2018. Codes are divided by their standard deviation over    a pool of 10,000 images
                  10,000 images; codes with a standard deviation < 0.05 are pruned. A     (the variances, and the
                  vote: fix one factor (chosen uniformly) over a group of 64 images,     votes' images); 10,000
                  take the code of least normalised variance. A majority-vote            training votes and 5,000
                  classifier (code -> factor) is fit on the training votes; the score    evaluation votes of 64
                  is its accuracy on the evaluation votes. 0 if every code is pruned.    images each
SAP               Kumar et al. 2018. For every (code, factor): a linear SVM                10,000 training and
                  (``LinearSVC(C=0.01, class_weight="balanced")``, ``random_state=seed``  5,000 test images
                  added) predicts the factor from the single code; the score matrix is its test accuracy (the
                  factors are discrete, disentanglement_lib's ``continuous_factors=False``);
                  per factor, the gap between the best and the second best code; the
                  mean over factors.
DCI               Eastwood & Williams 2018, one predictor per factor; the importance     10,000 training and
                  matrix R[code, factor] is its ``feature_importances_``. The default   5,000 test images
                  ``predictor="forest"``: scikit-learn's ``RandomForestClassifier``
                  (Eastwood & Williams' random forest; ``n_estimators=20``,
                  ``max_depth=8``, ``max_features=None`` so every split may use any
                  code and a code that carries nothing about the factor gets next to
                  no importance, ``random_state=seed``, ``n_jobs`` = the cores this
                  process may use), impurity-based importances; seconds at 10,000
                  images. ``predictor="gbt"``: ``GradientBoostingClassifier()`` (its
                  defaults, 100 stages of depth-3 trees, one tree per class and stage,
                  exactly as disentanglement_lib; ``random_state=seed``); minutes. Disentanglement: 1 - the entropy (base
                  #factors) of each code's row, weighted by the code's share of the total
                  importance. Completeness: 1 - the entropy (base #codes) of each
                  factor's column, weighted likewise. Informativeness: the classifiers'
                  mean accuracy on the train and test images (disentanglement_lib's
                  convention; higher is better; Eastwood & Williams report an error).
                  ``predictor="lasso"`` (Eastwood & Williams' own linear predictor,
                  seconds instead of minutes): codes and factor index standardised,
                  ``LassoCV(cv=5)`` per factor, R = |weights|, informativeness = R^2.
beta-VAE score    Higgins et al. 2017. A sample: fix one factor (chosen uniformly) in    10,000 training and 5,000
                  64 pairs of images, otherwise drawn independently; the feature is the   evaluation samples of 64
                  mean over pairs of |code(a) - code(b)|. scikit-learn's                 pairs each, from a pool
                  ``LogisticRegression`` (defaults) predicts the fixed factor; the score  of 10,000 images
                  is its evaluation accuracy.
================  =====================================================================  ===========================

The vote pool: disentanglement_lib renders fresh images for every vote of the FactorVAE and beta-VAE scores
(the FactorVAE score then encodes 970,000 images, the beta-VAE score 1,920,000: minutes). By default both
scores here draw the images of their votes from one pool of ``pool_size`` = 10,000 images, drawn uniformly
from the factor grid and represented once: a vote fixing factor k takes 64 distinct pool images that share
k's value (that of a uniformly drawn pool image), a beta-VAE pair takes a pool image and another pool image
with its value of k. Each vote's images are then a uniform draw from the pool's images with that value,
as fresh images are from the grid's; the scores agree with fresh renders within their sampling noise
(tested), and the encoder sees 10,000 images instead of a million. ``pool_size=None`` renders fresh images
for every vote, exactly as disentanglement_lib. A pool smaller than 64 x the most values of a factor is
refused (a value would be held by fewer than 64 images).

Cost at the default sizes (10,000 images, measured on this 2-core machine; README "Disentanglement
metrics"): seconds for every metric but DCI with boosted trees, which takes about 4.5 s of CPU per factor
value (one tree per class and stage): minutes for dSprites.

Seeds: every metric starts from its own ``np.random.RandomState(seed)`` (``seed=0`` by default, as
disentanglement_lib's ``evaluation.random_seed = 0``), so a metric gives the same number whether it
runs alone or inside :func:`evaluate_disentanglement`. The draws are made in larger batches than
disentanglement_lib's (one ``sample_factors`` call per set instead of one per 16 or 64 images), so
the same seed gives the same *kind* of sample, not the same images.

What to expect: the true factors used as codes give MIG and DCI disentanglement/completeness near
1 when every factor has at most 20 values (a factor with more values loses information in the 20
bins: dSprites' 40 orientations and 32 positions cap even the true factors' MIG below 1, as in
disentanglement_lib); a constant code gives 0 for MIG, SAP, DCI and the FactorVAE score, and chance
(about 1/#factors) for the beta-VAE score. MIG, the FactorVAE score and DCI are unchanged by a
permutation of the codes and by scaling or flipping the sign of a code; SAP and the beta-VAE score
are unchanged by a permutation and a sign flip, but their regularised linear classifiers (as in
disentanglement_lib) depend on the scale of a code.

The ground truth is any object with

- ``factor_names``: a list of names, e.g. ``["shape", "scale", "orientation", "x", "y"]``;
- ``factor_sizes``: a tuple of ints (each >= 2), e.g. ``(3, 6, 40, 32, 32)``;
- ``render(factors)``: float32 images ``[N, H, W, C]`` for an int array ``[N, num_factors]`` of
  factor indices;
- ``sample_factors(n, random_state)``: an int array ``[n, num_factors]``, uniform over the grid,
  drawn with the ``np.random.RandomState`` it is given;

and a representation is any function ``represent(images) -> codes [N, D]``; for a VAE use
:func:`representation_from_model` (its encoder's ``z_mean``) or :func:`representation_from_export`
(an exported SavedModel's ``encode`` signature). Images are rendered and represented
``chunk_size`` at a time, so memory stays bounded whatever the sample sizes.

Example:
>>> from vae_keras import disentanglement                                          # doctest: +SKIP
>>> represent = disentanglement.representation_from_export("saved_models/dsprites")  # doctest: +SKIP
>>> scores = disentanglement.evaluate_disentanglement(represent, load_images("dsprites"))  # doctest: +SKIP
>>> scores["summary"]["mig"]                                                       # doctest: +SKIP
"""

import time

import numpy as np

from vae_keras import checks
from vae_keras.errors import ConfigError, DataError

NUM_BINS = 20  # disentanglement_lib's histogram discretiser (discretizer.num_bins = 20)
NUM_TRAIN = 10000  # mig / dci / sap / factor_vae_score / beta_vae_sklearn num_train
NUM_TEST = 5000  # dci / sap num_test, factor_vae_score / beta_vae_sklearn num_eval
NUM_VARIANCE_ESTIMATE = 10000  # factor_vae_score.num_variance_estimate
VOTE_BATCH_SIZE = 64  # factor_vae_score.batch_size, beta_vae_sklearn.batch_size
PRUNE_THRESHOLD = 0.05  # prune_dims.threshold: codes with a standard deviation below it are collapsed
SAP_C = 0.01  # LinearSVC(C=0.01, class_weight="balanced")
DCI_PREDICTORS = ("forest", "gbt", "lasso")  # random forest (default); disentanglement_lib's boosted trees; the lasso
DCI_PREDICTOR = "forest"  # the default of dci / evaluate_disentanglement / vae-keras evaluate --disentanglement
DCI_FOREST_TREES = 20  # RandomForestClassifier(n_estimators=...): 20 keeps 10,000 images well under a minute
DCI_FOREST_MAX_DEPTH = 8  # RandomForestClassifier(max_depth=...); every split sees every code (max_features=None)
POOL_SIZE = 10000  # images the FactorVAE and beta-VAE scores' votes draw from (None: fresh images per vote)
CHUNK_SIZE = 1024  # images rendered and represented at once (memory only; not part of any metric)

GROUND_TRUTH_ATTRIBUTES = ("factor_names", "factor_sizes", "render", "sample_factors")

METRICS = ("mig", "factorvae_score", "sap", "dci", "beta_vae_score")


# --------------------------------------------------------------------------------------------------
# Ground truth and representations
# --------------------------------------------------------------------------------------------------

def missing_ground_truth_attributes(obj):
    """The names in GROUND_TRUTH_ATTRIBUTES that ``obj`` lacks (an empty list: it is a ground truth)."""
    return [name for name in GROUND_TRUTH_ATTRIBUTES if getattr(obj, name, None) is None]


def check_ground_truth(ground_truth):
    """Raises DataError unless ``ground_truth`` has the four attributes and sensible factors; returns
    (factor_names, factor_sizes)."""
    missing = missing_ground_truth_attributes(ground_truth)
    if missing:
        raise DataError(f"A ground truth for the disentanglement metrics needs {', '.join(GROUND_TRUTH_ATTRIBUTES)}; "
                        f"{type(ground_truth).__name__} lacks {', '.join(missing)}. Use a dataset with factors of "
                        f"variation (such as dsprites).")
    names = list(ground_truth.factor_names)
    sizes = tuple(ground_truth.factor_sizes)
    if (not sizes or len(names) != len(sizes)
            or not all(checks.is_integer(s, numpy=True) and s >= 2 for s in sizes)):
        raise DataError(f"A ground truth needs one name and one size (an integer >= 2) per factor. "
                        f"Received factor_names={names!r}, factor_sizes={sizes!r}")
    return names, tuple(int(s) for s in sizes)


def _sample_factors(ground_truth, n, random_state, sizes):
    factors = np.asarray(ground_truth.sample_factors(n, random_state))
    if factors.shape != (n, len(sizes)) or factors.dtype.kind not in "iu":
        raise DataError(f"ground_truth.sample_factors({n}, random_state) must return integers of shape "
                        f"{(n, len(sizes))}. Received an array of shape {factors.shape}, dtype {factors.dtype}")
    if factors.size and (factors.min() < 0 or np.any(factors.max(axis=0) >= np.asarray(sizes))):
        raise DataError(f"ground_truth.sample_factors returned factor indices outside 0..size-1 for the sizes {sizes}")
    return factors.astype(np.int64)


def _codes(represent, ground_truth, factors, chunk_size):
    """Renders ``factors`` and represents the images, ``chunk_size`` at a time: float64 codes [N, D]."""
    out = []
    for start in range(0, len(factors), chunk_size):
        part = factors[start:start + chunk_size]
        images = ground_truth.render(part)
        if getattr(images, "ndim", 0) != 4 or len(images) != len(part):
            raise DataError(f"ground_truth.render must return images [N, H, W, C] for N={len(part)} factor rows. "
                            f"Received shape {getattr(images, 'shape', type(images).__name__)}")
        codes = np.asarray(represent(images), dtype=np.float64)
        if codes.ndim != 2 or len(codes) != len(part) or codes.shape[1] < 1:
            raise ConfigError(f"represent(images) must return codes [N, D] with N={len(part)}. Received shape {codes.shape}")
        if not np.all(np.isfinite(codes)):
            raise ConfigError(f"represent(images) returned {int(np.sum(~np.isfinite(codes)))} NaN/inf values; "
                              f"the metrics need finite codes (check the encoder).")
        out.append(codes)
    if out and len({c.shape[1] for c in out}) != 1:
        raise ConfigError(f"represent(images) returned codes of different widths: {sorted({c.shape[1] for c in out})}")
    return np.concatenate(out)


def _factor_code_set(represent, ground_truth, n, random_state, sizes, chunk_size):
    factors = _sample_factors(ground_truth, n, random_state, sizes)
    return _codes(represent, ground_truth, factors, chunk_size), factors


def check_unconditional(model):
    """Refuses a conditional model (a `VAE` or an `ExportedVAE`): its encoder needs a label for every image,
    and the factors give none."""
    if getattr(model, "conditional", False):
        raise ConfigError("The disentanglement metrics need an unconditional model: a conditional encoder needs a "
                          "label for every image, and the factors give none. Evaluate an unconditional model.")


def representation_from_model(model, batch_size=256):
    """``represent(images) -> z_mean [N, D]`` from a `vae_keras.VAE` (its encoder, ``batch_size`` images
    per call, inside one ``tf.function``). A conditional model is refused: its encoder needs labels,
    and the factors give none."""
    checks.check_integer("batch_size", batch_size, 1, numpy=True)
    check_unconditional(model)
    import keras
    import tensorflow as tf

    image_shape = tuple(model.image_shape)

    @tf.function(reduce_retracing=True)
    def encode(x):
        return model.encode(x)[0]

    def represent(images):
        images = np.asarray(images, np.float32)
        if tuple(images.shape[1:]) != image_shape:
            raise DataError(f"The ground truth renders images of shape {tuple(images.shape[1:])}; "
                            f"the model takes {image_shape}. Evaluate it on the dataset it was trained on.")
        return np.concatenate([keras.ops.convert_to_numpy(encode(tf.constant(images[s:s + batch_size])))
                               for s in range(0, len(images), batch_size)])

    return represent


def representation_from_export(exported, batch_size=256):
    """``represent(images) -> z_mean [N, D]`` from an exported SavedModel's ``encode`` signature.

    ``exported``: a `vae_keras.ExportedVAE`, or a path that `ExportedVAE` accepts."""
    from vae_keras.exported import ExportedVAE

    checks.check_integer("batch_size", batch_size, 1, numpy=True)
    if not isinstance(exported, ExportedVAE):
        exported = ExportedVAE(exported)
    check_unconditional(exported)

    def represent(images):
        return np.concatenate([exported.encode(images[s:s + batch_size])["z_mean"]
                               for s in range(0, len(images), batch_size)])

    return represent


# --------------------------------------------------------------------------------------------------
# The metrics on codes (no sampling): the formulas
# --------------------------------------------------------------------------------------------------

def histogram_discretize(codes, num_bins=NUM_BINS):
    """Each code column into ``num_bins`` equal-width bins over its range: ints 1..num_bins [N, D]
    (disentanglement_lib's ``_histogram_discretize``)."""
    codes = np.asarray(codes)
    out = np.zeros(codes.shape, np.int64)
    for j in range(codes.shape[1]):
        out[:, j] = np.digitize(codes[:, j], np.histogram(codes[:, j], num_bins)[1][:-1])
    return out


def mutual_information_matrix(codes, factors, num_bins=NUM_BINS):
    """I(discretised code_j; factor_k) in nats, [D, F] (scikit-learn's ``mutual_info_score``)."""
    from sklearn.metrics import mutual_info_score

    binned = histogram_discretize(codes, num_bins)
    factors = np.asarray(factors)
    return np.array([[mutual_info_score(factors[:, k], binned[:, j]) for k in range(factors.shape[1])]
                     for j in range(binned.shape[1])])


def factor_entropies(factors):
    """H(factor_k) in nats of the sampled factors, [F]."""
    from sklearn.metrics import mutual_info_score

    factors = np.asarray(factors)
    return np.array([mutual_info_score(factors[:, k], factors[:, k]) for k in range(factors.shape[1])])


def mig_from_codes(codes, factors, num_bins=NUM_BINS):
    """MIG of codes [N, D] for factors [N, F]: a dict with ``mig``, ``mig_per_factor`` and the
    ``mutual_information`` matrix [D][F] (nats)."""
    m = mutual_information_matrix(codes, factors, num_bins)
    entropy = factor_entropies(factors)
    top = np.sort(m, axis=0)[::-1]
    second = top[1] if len(top) > 1 else np.zeros_like(top[0])  # one code: the gap is its whole information
    per_factor = (top[0] - second) / entropy
    return {"mig": float(np.mean(per_factor)), "mig_per_factor": _floats(per_factor),
            "mutual_information": [_floats(row) for row in m], "num_bins": int(num_bins)}


def _normalised_entropy(p, base, axis):
    from scipy.stats import entropy

    return entropy(p + 1e-11, base=base, axis=axis)


def dci_scores(importance):
    """DCI disentanglement and completeness of an importance matrix [D codes, F factors]."""
    importance = np.asarray(importance, np.float64)
    num_codes, num_factors = importance.shape
    per_code = 1.0 - _normalised_entropy(importance, num_factors, axis=1) if num_factors > 1 else np.ones(num_codes)
    per_factor = 1.0 - _normalised_entropy(importance, num_codes, axis=0) if num_codes > 1 else np.ones(num_factors)
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    code_share = weights.sum(axis=1) / weights.sum()
    factor_share = weights.sum(axis=0) / weights.sum()
    return float(np.sum(per_code * code_share)), float(np.sum(per_factor * factor_share))


def dci_from_codes(train_codes, train_factors, test_codes, test_factors, seed=0, predictor=DCI_PREDICTOR):
    """DCI from codes and factors: one predictor per factor (see DCI_PREDICTORS)."""
    checks.check_choice("predictor", predictor, DCI_PREDICTORS)
    fit = {"forest": _forest_importance, "gbt": _gbt_importance, "lasso": _lasso_importance}[predictor]
    num_factors = train_factors.shape[1]
    importance = np.zeros((train_codes.shape[1], num_factors))
    train_info, test_info = [], []
    for k in range(num_factors):
        importance[:, k], train_score, test_score = fit(train_codes, train_factors[:, k], test_codes, test_factors[:, k],
                                                        seed)
        train_info.append(train_score)
        test_info.append(test_score)
    d, c = dci_scores(importance)
    return {"disentanglement": d, "completeness": c, "informativeness_train": float(np.mean(train_info)),
            "informativeness_test": float(np.mean(test_info)),
            "informativeness_measure": "r2" if predictor == "lasso" else "accuracy",
            "predictor": predictor, "importance": [_floats(row) for row in importance]}


def forest_n_jobs():
    """The forest's worker count: every core this process may use (``os.sched_getaffinity``), at least 1."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _forest_importance(x_train, y_train, x_test, y_test, seed):
    """Eastwood & Williams' random forest for one factor: ``RandomForestClassifier(n_estimators=
    DCI_FOREST_TREES, max_depth=DCI_FOREST_MAX_DEPTH, random_state=seed)``; importances are the forest's
    impurity-based ``feature_importances_``, informativeness its train/test accuracy."""
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(n_estimators=DCI_FOREST_TREES, max_depth=DCI_FOREST_MAX_DEPTH, max_features=None,
                                   random_state=seed, n_jobs=forest_n_jobs()).fit(x_train, y_train)
    return (np.abs(model.feature_importances_), np.mean(model.predict(x_train) == y_train),
            np.mean(model.predict(x_test) == y_test))


def _gbt_importance(x_train, y_train, x_test, y_test, seed):
    """disentanglement_lib's compute_importance_gbt for one factor: importances and train/test accuracy."""
    from sklearn.ensemble import GradientBoostingClassifier

    model = GradientBoostingClassifier(random_state=seed).fit(x_train, y_train)
    return (np.abs(model.feature_importances_), np.mean(model.predict(x_train) == y_train),
            np.mean(model.predict(x_test) == y_test))


def _lasso_importance(x_train, y_train, x_test, y_test, seed):
    """Eastwood & Williams' lasso for one factor: codes and factor standardised (training statistics),
    LassoCV (5 folds) picks the penalty; importances |weights|, train/test R^2."""
    from sklearn.linear_model import LassoCV

    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant code stays 0 after centring: it gets no weight
    y_mean, y_std = y_train.mean(), y_train.std() or 1.0
    model = LassoCV(cv=5, random_state=seed).fit((x_train - mean) / std, (y_train - y_mean) / y_std)
    return (np.abs(model.coef_), model.score((x_train - mean) / std, (y_train - y_mean) / y_std),
            model.score((x_test - mean) / std, (y_test - y_mean) / y_std))


def sap_from_codes(train_codes, train_factors, test_codes, test_factors, seed=0):
    """SAP from codes and (discrete) factors: a linear SVM per (code, factor)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    num_codes, num_factors = train_codes.shape[1], train_factors.shape[1]
    score = np.zeros((num_codes, num_factors))
    for j in range(num_codes):
        for k in range(num_factors):
            classifier = LinearSVC(C=SAP_C, class_weight="balanced", random_state=seed)
            with warnings.catch_warnings():
                # liblinear on a single feature with C=0.01 often stops at max_iter; disentanglement_lib
                # runs it the same way (the score is the test accuracy it reaches).
                warnings.simplefilter("ignore", ConvergenceWarning)
                classifier.fit(train_codes[:, j:j + 1], train_factors[:, k])
            score[j, k] = np.mean(classifier.predict(test_codes[:, j:j + 1]) == test_factors[:, k])
    top = np.sort(score, axis=0)
    second = top[-2] if num_codes > 1 else np.zeros(num_factors)
    return {"sap": float(np.mean(top[-1] - second)), "score_matrix": [_floats(row) for row in score]}


def _floats(values):
    return [float(v) for v in values]


# --------------------------------------------------------------------------------------------------
# The metrics on a ground truth and a representation
# --------------------------------------------------------------------------------------------------

def check_seed(seed):
    """The seed of numpy's RandomState: an integer in 0..2**32 - 1."""
    if not checks.is_integer(seed, numpy=True) or not 0 <= seed < 2 ** 32:
        raise ConfigError(f"The disentanglement metrics' seed must be an integer in 0..{2 ** 32 - 1} (numpy's RandomState). "
                          f"Received: seed={seed!r}")
    return seed


def _check_common(ground_truth, seed, chunk_size, **counts):
    check_seed(seed)
    checks.check_integer("chunk_size", chunk_size, 1, numpy=True)
    for name, value in counts.items():
        checks.check_integer(name, value, 2, numpy=True)
    return check_ground_truth(ground_truth)


def mig(represent, ground_truth, num_train=NUM_TRAIN, seed=0, num_bins=NUM_BINS, chunk_size=CHUNK_SIZE):
    """The mutual information gap (Chen et al. 2018) on ``num_train`` images. See the module docstring."""
    _, sizes = _check_common(ground_truth, seed, chunk_size, num_train=num_train, num_bins=num_bins)
    codes, factors = _factor_code_set(represent, ground_truth, num_train, np.random.RandomState(seed), sizes, chunk_size)
    return mig_from_codes(codes, factors, num_bins)


def _train_test_sets(represent, ground_truth, num_train, num_test, seed, sizes, chunk_size):
    random_state = np.random.RandomState(seed)
    train = _factor_code_set(represent, ground_truth, num_train, random_state, sizes, chunk_size)
    test = _factor_code_set(represent, ground_truth, num_test, random_state, sizes, chunk_size)
    return train, test


def dci(represent, ground_truth, num_train=NUM_TRAIN, num_test=NUM_TEST, seed=0, predictor=DCI_PREDICTOR,
        chunk_size=CHUNK_SIZE):
    """DCI disentanglement / completeness / informativeness (Eastwood & Williams 2018) with a random forest
    (``predictor="forest"``, the default; seconds), gradient boosted trees (``"gbt"``, disentanglement_lib's;
    minutes) or the lasso (``"lasso"``). See the module docstring."""
    checks.check_choice("predictor", predictor, DCI_PREDICTORS)
    _, sizes = _check_common(ground_truth, seed, chunk_size, num_train=num_train, num_test=num_test)
    (train_codes, train_factors), (test_codes, test_factors) = _train_test_sets(
        represent, ground_truth, num_train, num_test, seed, sizes, chunk_size)
    return dci_from_codes(train_codes, train_factors, test_codes, test_factors, seed=seed, predictor=predictor)


def sap(represent, ground_truth, num_train=NUM_TRAIN, num_test=NUM_TEST, seed=0, chunk_size=CHUNK_SIZE):
    """The SAP score (Kumar et al. 2018) for discrete factors. See the module docstring."""
    _, sizes = _check_common(ground_truth, seed, chunk_size, num_train=num_train, num_test=num_test)
    (train_codes, train_factors), (test_codes, test_factors) = _train_test_sets(
        represent, ground_truth, num_train, num_test, seed, sizes, chunk_size)
    return sap_from_codes(train_codes, train_factors, test_codes, test_factors, seed=seed)


def _grouped_factors(ground_truth, num_groups, batch_size, random_state, sizes):
    """Factors [num_groups, batch_size, F] with one factor per group (uniformly chosen, [num_groups])
    fixed to one value over the group, and the chosen factor indices."""
    fixed = random_state.randint(len(sizes), size=num_groups)
    factors = _sample_factors(ground_truth, num_groups * batch_size, random_state, sizes)
    return factors.reshape(num_groups, batch_size, len(sizes)), fixed


def check_pool_size(pool_size, batch_size, sizes):
    """Refuses a pool too small for votes of ``batch_size`` images: every value of the factor with the most values
    should be held by about ``batch_size`` pool images. ``None`` (fresh images for every vote) passes."""
    if pool_size is None:
        return None
    checks.check_integer("pool_size", pool_size, 2, numpy=True)
    need = int(batch_size) * max(sizes)
    if pool_size < need:
        raise ConfigError(f"pool_size={pool_size} is too small for votes of {batch_size} images: the factor with "
                          f"{max(sizes)} values needs pool_size >= {batch_size} x {max(sizes)} = {need}. Raise pool_size, "
                          f"or pass pool_size=None to render fresh images for every vote.")
    return int(pool_size)


class _Pool:
    """``size`` images drawn uniformly from the factor grid, rendered and represented once, and for every factor
    its images grouped by value: the votes of the FactorVAE and beta-VAE scores draw their images from here."""

    def __init__(self, represent, ground_truth, size, random_state, sizes, chunk_size):
        self.codes, self.factors = _factor_code_set(represent, ground_truth, size, random_state, sizes, chunk_size)
        self.order, self.start, self.count, self.rank = [], [], [], []
        for k, num_values in enumerate(sizes):
            values = self.factors[:, k]
            order = np.argsort(values, kind="stable")  # pool indices, value by value
            count = np.bincount(values, minlength=num_values)
            start = np.concatenate([[0], np.cumsum(count)[:-1]])
            rank = np.empty(size, np.int64)  # each image's place within its value's group
            rank[order] = np.arange(size) - start[values[order]]
            self.order.append(order)
            self.start.append(start)
            self.count.append(count)
            self.rank.append(rank)

    def members(self, k, value):
        """Pool indices of the images whose factor ``k`` has ``value``."""
        return self.order[k][self.start[k][value]:self.start[k][value] + self.count[k][value]]

    def partners(self, k, images, random_state):
        """For each pool index in ``images`` (any shape), another pool image with the same value of factor ``k``
        (uniformly among the others; the image itself only when it holds its value alone)."""
        values = self.factors[images, k]
        others = self.count[k][values] - 1
        pick = np.floor(random_state.random_sample(images.shape) * others).astype(np.int64)
        pick += (pick >= self.rank[k][images]) & (others > 0)  # skip the image itself
        return self.order[k][self.start[k][values] + pick]


def _pool_groups(pool, fixed, batch_size, random_state, sizes):
    """For votes fixing the factors ``fixed`` [n]: pool indices [n, batch_size], each vote's images sharing the
    value (that of a uniformly drawn pool image) of its fixed factor, drawn without replacement (with replacement
    only for a value fewer than ``batch_size`` pool images hold)."""
    anchors = random_state.randint(len(pool.codes), size=len(fixed))
    groups = np.empty((len(fixed), batch_size), np.int64)
    for k in range(len(sizes)):
        for value in range(sizes[k]):
            votes = np.flatnonzero((fixed == k) & (pool.factors[anchors, k] == value))
            if not len(votes):
                continue
            members = pool.members(k, value)
            if len(members) >= batch_size:
                keys = random_state.random_sample((len(votes), len(members)))
                groups[votes] = members[np.argpartition(keys, batch_size - 1, axis=1)[:, :batch_size]]
            else:
                groups[votes] = members[random_state.randint(len(members), size=(len(votes), batch_size))]
    return groups


def _vote_counts(local_variances, fixed, scale, active, num_factors):
    """Votes [F, D]: how often fixing factor k left code d with the least normalised variance."""
    active_index = np.flatnonzero(active)
    chosen = active_index[np.argmin(local_variances[:, active] / scale[active] ** 2, axis=1)]
    votes = np.zeros((num_factors, len(scale)), np.int64)
    np.add.at(votes, (fixed, chosen), 1)
    return votes


def _factorvae_votes(represent, ground_truth, num_votes, batch_size, random_state, sizes, scale, active, chunk_size,
                     pool=None):
    """Votes [F, D] from ``num_votes`` groups of ``batch_size`` images: fresh images, or the pool's."""
    if pool is not None:
        fixed = random_state.randint(len(sizes), size=num_votes)
        groups = _pool_groups(pool, fixed, batch_size, random_state, sizes)
        return _vote_counts(np.var(pool.codes[groups], axis=1, ddof=1), fixed, scale, active, len(sizes))
    factors, fixed = _grouped_factors(ground_truth, num_votes, batch_size, random_state, sizes)
    rows = np.arange(num_votes)
    factors[rows, :, fixed] = factors[rows, 0, fixed][:, None]
    votes = np.zeros((len(sizes), len(scale)), np.int64)
    groups_per_chunk = max(1, chunk_size // batch_size)
    for start in range(0, num_votes, groups_per_chunk):
        part = factors[start:start + groups_per_chunk]
        codes = _codes(represent, ground_truth, part.reshape(-1, len(sizes)), chunk_size)
        if codes.shape[1] != len(scale):
            raise ConfigError(f"represent(images) returned {codes.shape[1]} codes, earlier {len(scale)}")
        local = np.var(codes.reshape(len(part), batch_size, -1), axis=1, ddof=1)
        votes += _vote_counts(local, fixed[start:start + len(part)], scale, active, len(sizes))
    return votes


def factorvae_score(represent, ground_truth, num_train=NUM_TRAIN, num_eval=NUM_TEST, num_variance_estimate=None,
                    batch_size=VOTE_BATCH_SIZE, prune_threshold=PRUNE_THRESHOLD, seed=0, chunk_size=CHUNK_SIZE,
                    pool_size=POOL_SIZE):
    """The FactorVAE score (Kim & Mnih 2018): ``eval_accuracy`` of a majority-vote classifier, plus
    ``train_accuracy``, ``num_active_dims`` and ``pool_size``. See the module docstring.

    ``pool_size``: the votes draw their images from ``pool_size`` images represented once (the default, 10,000);
    ``None`` renders fresh images for every vote, as disentanglement_lib (``num_train + num_eval`` votes of
    ``batch_size`` images: about 100 times the images). ``num_variance_estimate``: the images of the codes'
    standard deviations: with a pool, its first images (None: all of it); without one, fresh images (None: 10,000).
    """
    _, sizes = _check_common(ground_truth, seed, chunk_size, num_train=num_train, num_eval=num_eval,
                             batch_size=batch_size)
    checks.check_number("prune_threshold", prune_threshold, 0, numpy=True)
    pool_size = check_pool_size(pool_size, batch_size, sizes)
    if num_variance_estimate is not None:
        checks.check_integer("num_variance_estimate", num_variance_estimate, 2, numpy=True)
        if pool_size is not None and num_variance_estimate > pool_size:
            raise ConfigError(f"num_variance_estimate={num_variance_estimate} exceeds pool_size={pool_size}: the "
                              f"variance estimate uses the pool's images. Lower it, raise pool_size, or pass "
                              f"pool_size=None for fresh images.")
    random_state = np.random.RandomState(seed)
    pool = None
    if pool_size is not None:
        pool = _Pool(represent, ground_truth, pool_size, random_state, sizes, chunk_size)
        codes = pool.codes[:num_variance_estimate or pool_size]
    else:
        codes, _ = _factor_code_set(represent, ground_truth, num_variance_estimate or NUM_VARIANCE_ESTIMATE,
                                    random_state, sizes, chunk_size)
    scale = np.std(codes, axis=0, ddof=1)
    active = scale >= prune_threshold
    if not active.any():
        return {"eval_accuracy": 0.0, "train_accuracy": 0.0, "num_active_dims": 0, "pool_size": pool_size}
    train = _factorvae_votes(represent, ground_truth, num_train, batch_size, random_state, sizes, scale, active,
                             chunk_size, pool)
    classifier = np.argmax(train, axis=0)  # per code: the factor it voted for most
    columns = np.arange(train.shape[1])
    evaluation = _factorvae_votes(represent, ground_truth, num_eval, batch_size, random_state, sizes, scale, active,
                                  chunk_size, pool)
    return {"eval_accuracy": float(evaluation[classifier, columns].sum() / evaluation.sum()),
            "train_accuracy": float(train[classifier, columns].sum() / train.sum()),
            "num_active_dims": int(active.sum()), "pool_size": pool_size}


def _beta_vae_points(represent, ground_truth, num_points, batch_size, random_state, sizes, chunk_size, pool=None):
    """Features [num_points, D] (mean |code(a) - code(b)| over a group of pairs sharing one factor) and labels."""
    if pool is not None:
        fixed = random_state.randint(len(sizes), size=num_points)
        first = random_state.randint(len(pool.codes), size=(num_points, batch_size))
        second = np.empty_like(first)
        for k in range(len(sizes)):
            rows = np.flatnonzero(fixed == k)
            second[rows] = pool.partners(k, first[rows], random_state)
        return np.abs(pool.codes[first] - pool.codes[second]).mean(axis=1), fixed
    first, fixed = _grouped_factors(ground_truth, num_points, batch_size, random_state, sizes)
    second = _sample_factors(ground_truth, num_points * batch_size, random_state, sizes).reshape(first.shape)
    rows = np.arange(num_points)
    second[rows, :, fixed] = first[rows, :, fixed]
    features = []
    groups_per_chunk = max(1, chunk_size // batch_size)
    for start in range(0, num_points, groups_per_chunk):
        a = _codes(represent, ground_truth, first[start:start + groups_per_chunk].reshape(-1, len(sizes)), chunk_size)
        b = _codes(represent, ground_truth, second[start:start + groups_per_chunk].reshape(-1, len(sizes)), chunk_size)
        features.append(np.abs(a - b).reshape(-1, batch_size, a.shape[1]).mean(axis=1))
    return np.concatenate(features), fixed


def beta_vae_score(represent, ground_truth, num_train=NUM_TRAIN, num_eval=NUM_TEST, batch_size=VOTE_BATCH_SIZE, seed=0,
                   chunk_size=CHUNK_SIZE, pool_size=POOL_SIZE):
    """The beta-VAE score (Higgins et al. 2017): ``eval_accuracy`` of a logistic regression, plus
    ``train_accuracy`` and ``pool_size``. See the module docstring.

    ``pool_size``: the pairs are drawn from ``pool_size`` images represented once (the default, 10,000); ``None``
    renders fresh pairs for every sample, as disentanglement_lib (``2 x batch_size`` images per sample)."""
    from sklearn.linear_model import LogisticRegression

    _, sizes = _check_common(ground_truth, seed, chunk_size, num_train=num_train, num_eval=num_eval,
                             batch_size=batch_size)
    pool_size = check_pool_size(pool_size, batch_size, sizes)
    random_state = np.random.RandomState(seed)
    pool = _Pool(represent, ground_truth, pool_size, random_state, sizes, chunk_size) if pool_size else None
    train_x, train_y = _beta_vae_points(represent, ground_truth, num_train, batch_size, random_state, sizes, chunk_size,
                                        pool)
    model = LogisticRegression(random_state=seed)
    model.fit(train_x, train_y)
    eval_x, eval_y = _beta_vae_points(represent, ground_truth, num_eval, batch_size, random_state, sizes, chunk_size,
                                      pool)
    return {"eval_accuracy": float(np.mean(model.predict(eval_x) == eval_y)),
            "train_accuracy": float(np.mean(model.predict(train_x) == train_y)), "pool_size": pool_size}


def evaluate_disentanglement(represent, ground_truth, num_train=NUM_TRAIN, num_test=None, seed=0, dci_predictor=DCI_PREDICTOR,
                             chunk_size=CHUNK_SIZE, metrics=METRICS, pool_size=POOL_SIZE):
    """All five metrics (or those named in ``metrics``), as a JSON-able dict.

    Args:
        represent: ``represent(images) -> codes [N, D]``.
        ground_truth: an object with factor_names, factor_sizes, render, sample_factors.
        num_train: training images (MIG, SAP, DCI), votes (FactorVAE; also its variance estimate)
            and samples (beta-VAE). disentanglement_lib: 10,000.
        num_test: test images (SAP, DCI) and evaluation votes / samples (FactorVAE, beta-VAE);
            None: ``num_train // 2`` (disentanglement_lib: 5,000).
        seed: every metric starts from ``np.random.RandomState(seed)``: the numbers are those of the
            metric functions called one by one with the same arguments.
        dci_predictor: ``"forest"`` (the default: a random forest, seconds), ``"gbt"``
            (disentanglement_lib's gradient boosted trees; minutes at the default sizes) or ``"lasso"``
            (Eastwood & Williams' lasso; seconds).
        chunk_size: images rendered and represented at once (memory only).
        metrics: a subset of METRICS.
        pool_size: the FactorVAE and beta-VAE scores draw the images of their votes from ``pool_size``
            images represented once (the default 10,000; the FactorVAE score's variance estimate is the
            whole pool); ``None`` renders fresh images for every vote, as disentanglement_lib (about 100
            times the images, minutes instead of seconds).

    Returns:
        ``{"summary": {name: score}, "factor_names": [...], "settings": {...}, "seconds": {metric: s},
        "mig": {...}, "factorvae_score": {...}, "sap": {...}, "dci": {...}, "beta_vae_score": {...}}``;
        ``summary`` holds ``mig``, ``factorvae_score``, ``sap``, ``dci_disentanglement``,
        ``dci_completeness``, ``dci_informativeness`` (test accuracy) and ``beta_vae_score``.
    """
    num_test = max(2, num_train // 2) if num_test is None and checks.is_integer(num_train, numpy=True) else num_test
    names, sizes = _check_common(ground_truth, seed, chunk_size, num_train=num_train, num_test=num_test)
    checks.check_choice("dci_predictor", dci_predictor, DCI_PREDICTORS)
    metrics = tuple(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ConfigError(f"metrics must be a non-empty subset of {list(METRICS)}. Received: metrics={list(metrics)!r}")
    votes = bool({"factorvae_score", "beta_vae_score"} & set(metrics))
    pool_size = check_pool_size(pool_size, VOTE_BATCH_SIZE, sizes) if votes else None
    result = {"factor_names": names, "factor_sizes": list(sizes), "summary": {}, "seconds": {},
              "settings": {"num_train": int(num_train), "num_test": int(num_test), "seed": int(seed),
                           "num_bins": NUM_BINS, "vote_batch_size": VOTE_BATCH_SIZE,
                           "prune_threshold": PRUNE_THRESHOLD, "dci_predictor": dci_predictor,
                           "pool_size": pool_size}}  # None: fresh images per vote, or no vote metric ran
    sets = None
    if {"mig", "sap", "dci"} & set(metrics):
        # MIG, SAP and DCI each start from RandomState(seed) and draw the training set first (then SAP and
        # DCI the test set): one draw serves all three, with the same numbers as three separate calls.
        began = time.monotonic()
        need_test = bool({"sap", "dci"} & set(metrics))
        random_state = np.random.RandomState(seed)
        train = _factor_code_set(represent, ground_truth, num_train, random_state, sizes, chunk_size)
        test = _factor_code_set(represent, ground_truth, num_test, random_state, sizes, chunk_size) if need_test else None
        sets = train, test
        result["seconds"]["sampling"] = time.monotonic() - began
    for name in METRICS:
        if name not in metrics:
            continue
        began = time.monotonic()
        if name == "mig":
            out = mig_from_codes(*sets[0])
            result["summary"]["mig"] = out["mig"]
        elif name == "sap":
            out = sap_from_codes(*sets[0], *sets[1], seed=seed)
            result["summary"]["sap"] = out["sap"]
        elif name == "dci":
            out = dci_from_codes(*sets[0], *sets[1], seed=seed, predictor=dci_predictor)
            result["summary"].update({"dci_disentanglement": out["disentanglement"],
                                      "dci_completeness": out["completeness"],
                                      "dci_informativeness": out["informativeness_test"]})
        elif name == "factorvae_score":
            out = factorvae_score(represent, ground_truth, num_train=num_train, num_eval=num_test,
                                  num_variance_estimate=None if pool_size else num_train, seed=seed,
                                  chunk_size=chunk_size, pool_size=pool_size)
            result["summary"]["factorvae_score"] = out["eval_accuracy"]
        else:
            out = beta_vae_score(represent, ground_truth, num_train=num_train, num_eval=num_test, seed=seed,
                                 chunk_size=chunk_size, pool_size=pool_size)
            result["summary"]["beta_vae_score"] = out["eval_accuracy"]
        result[name] = out
        result["seconds"][name] = time.monotonic() - began
    return result
