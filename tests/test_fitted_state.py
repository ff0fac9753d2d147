"""Fitted state is held as scikit-learn holds it: plain attributes, set by fit and by load."""

import inspect

import numpy as np
import pytest

from skvae import VAEDensityEstimator, VAEImputer, VAEOutlierDetector, VAETransformer, load

ESTIMATORS = [VAEDensityEstimator, VAEImputer, VAEOutlierDetector, VAETransformer]
FAST = dict(n_components=2, hidden_layer_sizes=(8,), max_iter=2, n_importance_samples=4, random_state=0)
FITTED = {"net_", "likelihood_", "n_features_in_", "n_iter_", "loss_curve_", "validation_scores_", "best_validation_score_"}

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_no_fitted_attribute_is_computed_on_access(Estimator):
    properties = [
        name for name in dir(Estimator)
        if name.endswith("_") and not name.startswith("_")
        and isinstance(inspect.getattr_static(Estimator, name), property)
    ]
    assert properties == []


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_fit_and_load_set_the_fitted_attributes(Estimator, tmp_path):
    X = np.random.default_rng(0).normal(size=(60, 3))
    est = Estimator(**FAST).fit(X)
    assert FITTED <= vars(est).keys()
    # 'auto', resolved: without early stopping (too few rows), the density estimator's mixture.
    likelihood = "gaussian_mixture" if Estimator is VAEDensityEstimator else "gaussian"
    assert vars(est)["likelihood_"] == est.net_.module_.arguments["likelihood"] == likelihood
    est.save(tmp_path / "model.safetensors")
    loaded = load(tmp_path / "model.safetensors")
    assert FITTED <= vars(loaded).keys()
    assert vars(loaded)["likelihood_"] == likelihood


def test_likelihood_is_the_one_the_fit_kept():
    X = np.random.default_rng(0).normal(size=(60, 3))
    est = VAEDensityEstimator(**FAST, early_stopping=False, likelihood="gaussian").fit(X)
    assert vars(est)["likelihood_"] == "gaussian"
    est.set_params(likelihood="bernoulli").fit(X > 0)
    assert vars(est)["likelihood_"] == "bernoulli"
