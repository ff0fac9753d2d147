"""scikit-learn conformance: every check of the installed scikit-learn, on every estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skvae import VAEDensityEstimator, VAEImputer, VAEOutlierDetector, VAETransformer

FAST = dict(hidden_layer_sizes=(8,), n_components=2, max_iter=2, n_importance_samples=4, random_state=0)


def _estimators():
    return [VAEDensityEstimator(**FAST), VAEImputer(**FAST), VAEOutlierDetector(**FAST), VAETransformer(**FAST)]


def _expected_failed_checks(estimator):
    return {}


@parametrize_with_checks(_estimators(), expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
