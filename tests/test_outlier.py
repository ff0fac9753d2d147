"""Behaviour of VAEOutlierDetector as an unsupervised anomaly detector."""

import numpy as np
import pytest
from sklearn.base import clone, is_outlier_detector
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae import VAEDensityEstimator, VAEOutlierDetector

FAST = dict(n_components=2, hidden_layer_sizes=(16,), max_iter=10, n_importance_samples=8)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _planted(n_normal=300, n_anomalies=15, seed=0):
    """Rows near a curved 2-D manifold in 6-D, then anomalies scattered off it (y=1)."""
    weights = np.random.default_rng(0).normal(size=(2, 6))  # the same manifold for every seed
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n_normal, 2))
    normal = np.tanh(z @ weights) + 0.05 * rng.normal(size=(n_normal, 6))
    anomalies = rng.uniform(-2, 2, size=(n_anomalies, 6))
    X = np.vstack([normal, anomalies])
    y = np.r_[np.zeros(n_normal, dtype=int), np.ones(n_anomalies, dtype=int)]
    return X, y


@pytest.fixture(scope="module")
def X():
    return _planted()[0]


@pytest.fixture(scope="module")
def fitted(X):
    return VAEOutlierDetector(random_state=0, **FAST).fit(X)


def test_is_an_outlier_detector_with_documented_outputs(fitted, X):
    assert is_outlier_detector(fitted)
    scores = fitted.score_samples(X)
    assert scores.shape == (len(X),) and scores.dtype == np.float64
    assert np.all(np.isfinite(scores))
    assert isinstance(fitted.offset_, float)
    assert set(np.unique(fitted.predict(X))) == {-1, 1}


def test_decision_function_is_score_minus_offset_and_predict_follows_its_sign(fitted, X):
    scores, decision = fitted.score_samples(X), fitted.decision_function(X)
    np.testing.assert_allclose(decision, scores - fitted.offset_)
    np.testing.assert_array_equal(fitted.predict(X), np.where(decision < 0, -1, 1))


def test_auto_offset_is_the_lower_tukey_fence_of_the_training_scores(fitted, X):
    q1, q3 = np.percentile(fitted.score_samples(X), [25, 75])
    assert fitted.offset_ == pytest.approx(q1 - 1.5 * (q3 - q1))


@pytest.mark.parametrize("contamination", [0.01, 0.05, 0.2, 0.5])
def test_contamination_sets_the_proportion_flagged_on_training_data(contamination, X):
    od = VAEOutlierDetector(contamination=contamination, random_state=0, **FAST)
    n_flagged = np.sum(od.fit_predict(X) == -1)
    assert abs(n_flagged - contamination * len(X)) <= 1
    assert od.offset_ == pytest.approx(np.percentile(od.score_samples(X), 100 * contamination))


def test_invalid_contamination_is_rejected_at_fit(X):
    for bad in (0.0, 0.6, "high"):
        with pytest.raises(ValueError, match="The 'contamination' parameter"):
            VAEOutlierDetector(contamination=bad, **FAST).fit(X)
    with pytest.raises(ValueError, match="The 'training_noise' parameter"):
        VAEOutlierDetector(training_noise=-0.1, **FAST).fit(X)


def test_same_random_state_gives_identical_detectors(X):
    a = VAEOutlierDetector(random_state=3, **FAST).fit(X)
    b = clone(a).fit(X)
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))
    assert a.offset_ == b.offset_
    c = VAEOutlierDetector(random_state=4, **FAST).fit(X)
    assert not np.array_equal(a.score_samples(X), c.score_samples(X))


def test_works_inside_a_pipeline(X):
    pipe = make_pipeline(StandardScaler(), VAEOutlierDetector(random_state=0, **FAST))
    labels = pipe.fit_predict(X * 100 + 5)
    assert labels.shape == (len(X),) and set(np.unique(labels)) <= {-1, 1}
    np.testing.assert_array_equal(pipe.predict(X * 100 + 5), labels)
    assert pipe.decision_function(X[:3] * 100 + 5).shape == (3,)


def test_planted_anomalies_are_found():
    X, y = _planted(n_normal=400, n_anomalies=20, seed=1)
    od = VAEOutlierDetector(
        n_components=2, hidden_layer_sizes=(32,), max_iter=100, n_importance_samples=16,
        random_state=0,
    ).fit(X)
    assert roc_auc_score(y, -od.score_samples(X)) > 0.95
    X_new, y_new = _planted(n_normal=200, n_anomalies=20, seed=2)
    assert roc_auc_score(y_new, -od.decision_function(X_new)) > 0.95


def test_without_noise_and_transform_it_is_the_density_estimator(X):
    params = dict(random_state=0, **FAST)
    plain = VAEDensityEstimator(**params).fit(X)
    od = VAEOutlierDetector(training_noise=0.0, power_transform=False, **params).fit(X)
    np.testing.assert_array_equal(od.score_samples(X), plain.score_samples(X))
    smoothed = VAEOutlierDetector(training_noise=0.3, power_transform=False, **params).fit(X)
    assert not np.array_equal(smoothed.score_samples(X), plain.score_samples(X))


@pytest.mark.parametrize("params", [
    dict(bounds=(-3.0, 3.0)),
    dict(likelihood="continuous_bernoulli"),
])
def test_training_noise_keeps_other_spaces_valid(params, X):
    data = (X - X.min()) / (X.max() - X.min() + 1e-3) if "likelihood" in params else X
    od = VAEOutlierDetector(training_noise=0.5, random_state=0, **FAST, **params).fit(data)
    assert np.all(np.isfinite(od.density_.loss_curve_))
    assert np.all(np.isfinite(od.score_samples(data)))


def test_partial_fit_updates_the_offset_from_the_chunk(X):
    od = VAEOutlierDetector(contamination=0.1, random_state=0, **FAST)
    od.partial_fit(X[:150])
    first = od.offset_
    od.partial_fit(X[150:])
    assert od.n_iter_ == 2 and od.offset_ != first
    assert od.offset_ == pytest.approx(np.percentile(od.score_samples(X[150:]), 10))


def test_power_transform_scores_are_log_densities_in_data_space(X):
    # The log-Jacobian of every internal map is added back: rescaling the
    # data by a shifts every score by -n_features * log(a), as for a density.
    od = VAEOutlierDetector(random_state=0, **FAST).fit(X)
    assert od.marginal_ is not None
    scaled = clone(od).fit(3.0 * X)
    np.testing.assert_allclose(
        scaled.score_samples(3.0 * X), od.score_samples(X) - X.shape[1] * np.log(3.0), atol=1e-4
    )


@pytest.mark.parametrize("params", [
    dict(likelihood="continuous_bernoulli"),
    dict(bounds=(-3.0, 3.0)),
])
def test_power_transform_needs_the_unbounded_gaussian_likelihood(params, X):
    data = (X - X.min()) / (X.max() - X.min() + 1e-3) if "likelihood" in params else X
    assert VAEOutlierDetector(random_state=0, **FAST, **params).fit(data).marginal_ is None
    with pytest.raises(ValueError, match="power_transform=True requires likelihood='gaussian'"):
        VAEOutlierDetector(power_transform=True, **FAST, **params).fit(data)


def test_feature_names_are_kept_and_checked(X):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    od = VAEOutlierDetector(random_state=0, **FAST).fit(frame)
    assert list(od.feature_names_in_) == list(frame.columns)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        od.score_samples(X)


def test_warm_start_continues_the_same_model_with_new_settings(X):
    od = VAEOutlierDetector(warm_start=True, random_state=0, **FAST).fit(X)
    density, marginal = od.density_, od.marginal_
    od.set_params(max_iter=3).fit(X)
    assert od.density_ is density and od.marginal_ is marginal
    assert od.n_iter_ == 13
