"""Step-size schedules: the cosine budget of max_iter epochs, and the adaptive halving's patience."""

import math
import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from skorch.callbacks import Callback

from skvae import VAEDensityEstimator, VAEImputer, VAEOutlierDetector, VAETransformer

FAST = dict(n_components=2, hidden_layer_sizes=(16,), n_importance_samples=8, random_state=0)


class _StepSizes(Callback):
    """The step size each training batch is taken with."""

    def initialize(self):
        self.sizes_ = []
        return self

    def on_batch_begin(self, net, training=False, **kwargs):
        if training:
            self.sizes_.append(net.optimizer_.param_groups[0]["lr"])


def _sizes(est):
    return next(cb for _, cb in est.net_.callbacks_ if isinstance(cb, _StepSizes)).sizes_


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(300, 2))
    return np.tanh(Z @ rng.normal(size=(2, 6))) + 0.1 * rng.normal(size=(300, 6))


@pytest.mark.parametrize("early_stopping", [False, True])
def test_cosine_decays_every_batch_to_zero_over_max_iter(X, early_stopping):
    """The budget counts the training rows only (without the validation split's), so the last batch is at ~0."""
    est = VAEDensityEstimator(
        learning_rate="cosine", learning_rate_init=1e-2, max_iter=6, batch_size=32,
        early_stopping=early_stopping, n_iter_no_change=100, callbacks=[_StepSizes()], **FAST,
    ).fit(X)
    n_train = len(X) - (math.ceil(0.1 * len(X)) if early_stopping else 0)
    total = 6 * math.ceil(n_train / 32)
    sizes = np.array(_sizes(est))
    assert len(sizes) == total and est.n_iter_ == 6
    expected = 1e-2 * 0.5 * (1 + np.cos(np.pi * np.arange(total) / total))
    np.testing.assert_allclose(sizes, expected, rtol=1e-9, atol=1e-15)
    assert est.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-15)


def test_cosine_spends_its_budget_without_a_convergence_warning(X):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        VAEDensityEstimator(learning_rate="cosine", max_iter=3, **FAST).fit(X)
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\)"):
        VAEDensityEstimator(learning_rate="constant", max_iter=3, **FAST).fit(X)


def test_cosine_starts_anew_with_each_fit_and_partial_fit_keeps_the_initial_step(X):
    est = VAEDensityEstimator(
        learning_rate="cosine", learning_rate_init=1e-2, max_iter=2, batch_size=100, warm_start=True,
        callbacks=[_StepSizes()], **FAST,
    ).fit(X)
    first = _sizes(est)
    est.fit(X)  # warm start: a second budget from the initial step size
    np.testing.assert_allclose(_sizes(est), first, rtol=1e-12)
    est.partial_fit(X)
    assert _sizes(est) == [1e-2] * 3


@pytest.mark.parametrize("Estimator", [VAETransformer, VAEOutlierDetector, VAEImputer])
def test_every_estimator_takes_the_cosine_schedule(X, Estimator):
    est = Estimator(learning_rate="cosine", max_iter=2, **FAST).fit(X)
    assert est.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-15)
    # A fitted net with the schedule pickles and scores the same after loading.
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.score_samples(X), est.score_samples(X))


def _halving_patience(est):
    return dict(est.net_.callbacks_)["lr_schedule"].lr_scheduler_.patience


@pytest.fixture(scope="module")
def X_1100():
    rng = np.random.default_rng(1)
    return rng.normal(size=(1100, 3))


@pytest.mark.parametrize(
    "n_samples, early_stopping, validation_fraction, patience",
    [
        (1000, "auto", 0.1, 10),  # ceil(0.1 * 1000) = 100 rows held out
        (1000, True, 0.1, 10),
        (990, "auto", 0.1, 5),  # 99
        (1000, False, 0.1, 5),  # none
        (1100, True, 0.9, 10),  # 990
        (1100, True, 0.91, 5),  # 1,001
    ],
)
def test_density_estimator_halves_later_with_100_to_999_held_out_rows(
    X_1100, n_samples, early_stopping, validation_fraction, patience
):
    """Half the stopping patience with 100 to 999 held-out rows; a quarter with fewer, none, or 1,000 or more."""
    est = VAEDensityEstimator(
        max_iter=1, early_stopping=early_stopping, validation_fraction=validation_fraction,
        n_iter_no_change=20, **FAST,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X_1100[:n_samples])
    assert _halving_patience(est) == patience


@pytest.mark.parametrize("Estimator", [VAETransformer, VAEOutlierDetector])
def test_other_estimators_halve_after_a_quarter_of_the_stopping_patience(X_1100, Estimator):
    est = Estimator(learning_rate="adaptive", max_iter=1, early_stopping=True, n_iter_no_change=20, **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X_1100[:1000])
    assert _halving_patience(est) == 5
