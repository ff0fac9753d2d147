"""Training faults: divergence and interrupts leave a usable model or an unfitted one."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import Callback

from skvae import VAEDensityEstimator, VAEOutlierDetector, VAETransformer

FAST = dict(n_components=2, hidden_layer_sizes=(8,), n_importance_samples=4, random_state=0, early_stopping=False, batch_size=16)
ESTIMATORS = [VAEDensityEstimator, VAETransformer]

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).normal(size=(60, 3))


class _InterruptAt(Callback):
    """Raise KeyboardInterrupt after ``batch`` training batches of epoch ``epoch``."""

    def __init__(self, epoch, batch=2):
        self.epoch = epoch
        self.batch = batch

    def on_batch_end(self, net, training=False, **kwargs):
        if training and len(net.history) == self.epoch and len(net.history[-1]["batches"]) >= self.batch:
            raise KeyboardInterrupt


class _PoisonWeightsIn(Callback):
    """Set a weight to NaN after the first training batch of epoch ``epoch``."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_batch_end(self, net, training=False, **kwargs):
        if training and len(net.history) == self.epoch:
            with torch.no_grad():
                net.module_.decoder_head.weight[0, 0] = float("nan")


class _LearningRateAfter(Callback):
    """Set the learning rate to ``lr`` at the end of epoch ``epoch``."""

    def __init__(self, epoch, lr):
        self.epoch = epoch
        self.lr = lr

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            for group in net.optimizer_.param_groups:
                group["lr"] = self.lr


def _outputs(est, X):
    out = [est.score_samples(X), est.sample(4, random_state=0)]
    if hasattr(est, "transform"):
        out.append(est.transform(X))
    return out


def _assert_finite(est, X):
    for array in _outputs(est, X):
        assert np.all(np.isfinite(array))


def _assert_same_outputs(a, b, X):
    for left, right in zip(_outputs(a, X), _outputs(b, X)):
        np.testing.assert_array_equal(left, right)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_divergence_in_the_first_epoch_raises_and_leaves_the_estimator_unfitted(Estimator, X):
    est = Estimator(learning_rate_init=10.0, max_iter=5, **FAST)
    with pytest.raises(ValueError, match=r"diverged in epoch 1: the training loss went from .* lower learning_rate_init \(now 10\) and refit"):
        est.fit(X)
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    est.set_params(learning_rate_init=1e-3).fit(X)
    _assert_finite(est, X)


def test_divergence_names_beta_when_it_is_large(X):
    with pytest.raises(ValueError, match=r"\(now 1e\+10\) or beta \(now 1e\+30\)"):
        VAEDensityEstimator(learning_rate_init=1e10, beta=1e30, max_iter=2, **FAST).fit(X)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("fault", [_PoisonWeightsIn(4), _LearningRateAfter(3, 1e6)], ids=["NaN weights", "lr jump"])
def test_divergence_later_keeps_the_last_good_epoch_with_a_warning(Estimator, fault, X):
    est = Estimator(max_iter=6, callbacks=[fault], **FAST)
    with pytest.warns(UserWarning, match=r"diverged in epoch 4: .* keeps the 3 epochs before it"):
        est.fit(X)
    assert est.n_iter_ == 3 and np.all(np.isfinite(est.loss_curve_))
    reference = Estimator(max_iter=3, **FAST).fit(X)
    assert est.loss_curve_ == reference.loss_curve_
    _assert_same_outputs(est, reference, X)
    # Weights, optimizer state and history were all restored: continuing gives
    # exactly what continuing the reference gives.
    est.set_params(callbacks=None, warm_start=True, max_iter=2).fit(X)
    reference.set_params(warm_start=True, max_iter=2).fit(X)
    assert est.n_iter_ == 5
    _assert_same_outputs(est, reference, X)


def test_divergence_with_early_stopping_keeps_the_best_finite_epoch(X):
    X = np.vstack([X] * 4)
    est = VAEDensityEstimator(max_iter=8, callbacks=[_PoisonWeightsIn(6)], **{**FAST, "early_stopping": True})
    with pytest.warns(UserWarning, match="diverged in epoch 6"):
        est.fit(X)
    assert est.n_iter_ == 5 and len(est.validation_scores_) == 5
    assert np.all(np.isfinite(est.validation_scores_))
    _assert_finite(est, X)


def test_diverging_partial_fit_is_undone_with_a_warning(X):
    est = VAEDensityEstimator(**FAST).partial_fit(X).partial_fit(X)
    before = _outputs(est, X)
    est.set_params(callbacks=[_PoisonWeightsIn(3)])
    with pytest.warns(UserWarning, match="diverged in epoch 3: the training loss went from .* to nan"):
        est.partial_fit(X)
    assert est.n_iter_ == 2
    for left, right in zip(before, _outputs(est, X)):
        np.testing.assert_array_equal(left, right)
    assert est.set_params(callbacks=None).partial_fit(X).n_iter_ == 3
    _assert_finite(est, X)


def test_divergence_on_a_first_partial_fit_leaves_the_estimator_unfitted(X):
    est = VAEDensityEstimator(callbacks=[_PoisonWeightsIn(1)], **FAST)
    with pytest.raises(ValueError, match="diverged in epoch 1"):
        est.partial_fit(X)
    with pytest.raises(NotFittedError):
        check_is_fitted(est)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_interrupt_mid_epoch_keeps_the_completed_epochs_and_propagates(Estimator, X):
    est = Estimator(max_iter=5, callbacks=[_InterruptAt(epoch=3)], **FAST)
    with pytest.warns(UserWarning, match="stopped by KeyboardInterrupt; the model keeps the 2 completed epochs"):
        with pytest.raises(KeyboardInterrupt):
            est.fit(X)
    assert est.n_iter_ == 2 and len(est.loss_curve_) == 2 and len(est.net_.history) == 2
    reference = Estimator(max_iter=2, **FAST).fit(X)
    _assert_same_outputs(est, reference, X)
    assert dict(est.net_.callbacks_)["last_good"].state_ is None
    assert pickle.loads(pickle.dumps(est)).n_iter_ == 2
    # Training goes on from the kept epochs, by warm start or by partial_fit.
    est.set_params(callbacks=None, warm_start=True, max_iter=3).fit(X)
    reference.set_params(warm_start=True, max_iter=3).fit(X)
    _assert_same_outputs(est, reference, X)
    assert est.partial_fit(X).n_iter_ == 6


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_interrupt_in_the_first_epoch_leaves_the_estimator_unfitted(Estimator, X):
    est = Estimator(max_iter=5, **FAST).fit(X)
    est.set_params(callbacks=[_InterruptAt(epoch=1)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        with pytest.raises(KeyboardInterrupt):
            est.fit(X)  # a refit: the previous model is gone too
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    assert not hasattr(est, "n_features_in_")
    with pytest.raises(KeyboardInterrupt):
        est.partial_fit(X)
    with pytest.raises(NotFittedError):
        est.score_samples(X)
    est.set_params(callbacks=None)
    assert est.partial_fit(X).n_iter_ == 1
    _assert_finite(est, X)


def test_interrupted_partial_fit_keeps_the_previous_epochs(X):
    est = VAEDensityEstimator(**FAST).partial_fit(X)
    before = est.score_samples(X)
    est.set_params(callbacks=[_InterruptAt(epoch=2)])
    with pytest.warns(UserWarning, match="keeps the 1 completed epochs"):
        with pytest.raises(KeyboardInterrupt):
            est.partial_fit(X)
    assert est.n_iter_ == 1
    np.testing.assert_array_equal(est.score_samples(X), before)
    assert est.set_params(callbacks=None).partial_fit(X).n_iter_ == 2


def test_interrupt_with_early_stopping_keeps_the_best_epoch(X):
    X = np.vstack([X] * 4)
    params = {**FAST, "early_stopping": True}
    est = VAEDensityEstimator(max_iter=20, callbacks=[_InterruptAt(epoch=6)], **params)
    with pytest.warns(UserWarning, match="keeps the 5 completed epochs"):
        with pytest.raises(KeyboardInterrupt):
            est.fit(X)
    reference = VAEDensityEstimator(max_iter=5, **params).fit(X)
    assert est.validation_scores_ == reference.validation_scores_
    assert est.best_validation_score_ == reference.best_validation_score_
    _assert_same_outputs(est, reference, X)


class _FailAt(_InterruptAt):
    def on_batch_end(self, net, training=False, **kwargs):
        try:
            super().on_batch_end(net, training=training, **kwargs)
        except KeyboardInterrupt:
            raise RuntimeError("a callback failed") from None


def test_an_error_in_a_callback_propagates_after_undoing_the_partial_epoch(X):
    est = VAEDensityEstimator(max_iter=2, warm_start=True, **FAST).fit(X)
    before = est.score_samples(X)
    est.set_params(callbacks=[_FailAt(epoch=3)])
    with pytest.warns(UserWarning, match="stopped by RuntimeError; the model keeps the 2 completed"):
        with pytest.raises(RuntimeError, match="a callback failed"):
            est.fit(X)
    assert est.n_iter_ == 2 and len(est.net_.history) == 2
    np.testing.assert_array_equal(est.score_samples(X), before)


def test_the_detector_refuses_a_first_epoch_divergence_and_stays_unfitted(X):
    od = VAEOutlierDetector(learning_rate_init=10.0, max_iter=5, **FAST)
    with pytest.raises(ValueError, match=r"diverged in epoch 1: .* lower learning_rate_init \(now 10\)"):
        od.fit(X)
    with pytest.raises(NotFittedError):
        check_is_fitted(od)


def test_the_detector_keeps_the_last_good_epoch_after_a_later_divergence(X):
    od = VAEOutlierDetector(max_iter=6, callbacks=[_LearningRateAfter(3, 1e6)], **FAST)
    with pytest.warns(UserWarning, match="diverged in epoch 4: .* keeps the 3 epochs before it"):
        od.fit(X)
    reference = VAEOutlierDetector(max_iter=3, **FAST).fit(X)
    assert od.n_iter_ == 3 and od.offset_ == reference.offset_
    np.testing.assert_array_equal(od.decision_function(X), reference.decision_function(X))


def test_an_interrupted_detector_keeps_the_completed_epochs_and_their_offset(X):
    od = VAEOutlierDetector(max_iter=5, callbacks=[_InterruptAt(epoch=3)], **FAST)
    with pytest.warns(UserWarning, match="stopped by KeyboardInterrupt; the model keeps the 2 completed epochs"):
        with pytest.raises(KeyboardInterrupt):
            od.fit(X)
    reference = VAEOutlierDetector(max_iter=2, **FAST).fit(X)
    assert od.n_iter_ == 2 and od.offset_ == reference.offset_
    np.testing.assert_array_equal(od.decision_function(X), reference.decision_function(X))
    # An interrupt before any epoch completes leaves a refitted detector unfitted.
    od.set_params(callbacks=[_InterruptAt(epoch=1)])
    with pytest.raises(KeyboardInterrupt):
        od.fit(X)
    with pytest.raises(NotFittedError):
        check_is_fitted(od)


def test_a_failure_while_keeping_the_completed_epochs_never_hides_the_interrupt(X, monkeypatch):
    # After an interrupt the detector scores its training rows for offset_; if
    # that fails too, the user still gets their KeyboardInterrupt, and a fresh
    # detector is left unfitted rather than without a threshold.
    def broken(self, X):
        raise RuntimeError("scoring failed")

    monkeypatch.setattr(VAEOutlierDetector, "_log_density", broken)
    od = VAEOutlierDetector(max_iter=5, callbacks=[_InterruptAt(epoch=3)], **FAST)
    with pytest.warns(UserWarning, match="stopped by KeyboardInterrupt"):
        with pytest.raises(KeyboardInterrupt):
            od.fit(X)
    with pytest.raises(NotFittedError):
        check_is_fitted(od)
