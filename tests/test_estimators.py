"""Behaviour of VAETransformer and VAEDensityEstimator as scikit-learn estimators."""

import os
import pickle
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score, cross_validate, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback, LRScheduler

from skvae import VAEDensityEstimator, VAETransformer
from skvae._rows import ModelSpaceRows

FAST = dict(n_components=2, hidden_layer_sizes=(16,), max_iter=5, n_importance_samples=8)
ESTIMATORS = [VAEDensityEstimator, VAETransformer]

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(150, 2))
    return np.tanh(Z @ rng.normal(size=(2, 6))) + 0.1 * rng.normal(size=(150, 6))


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_methods_return_documented_shapes_and_types(Estimator, X):
    est = Estimator(random_state=0, **FAST).fit(X)
    scores = est.score_samples(X)
    assert scores.shape == (len(X),) and scores.dtype == np.float64
    assert np.all(np.isfinite(scores))
    assert est.score(X) == pytest.approx(scores.mean(), rel=1e-12)
    assert isinstance(est.score(X), float)
    samples = est.sample(7, random_state=0)
    assert samples.shape == (7, X.shape[1]) and samples.dtype == np.float64
    assert est.n_iter_ == 5 and len(est.loss_curve_) == 5


def test_transformer_round_trip_shapes_and_dtypes(X):
    vt = VAETransformer(random_state=0, **FAST)
    Z = vt.fit_transform(X)
    assert Z.shape == (len(X), 2)
    np.testing.assert_array_equal(Z, vt.transform(X))
    X_hat = vt.inverse_transform(Z)
    assert X_hat.shape == X.shape
    Z32 = vt.transform(X.astype(np.float32))
    assert Z32.dtype == np.float32
    np.testing.assert_allclose(Z32, Z, atol=1e-5)
    assert list(vt.get_feature_names_out()) == ["vaetransformer0", "vaetransformer1"]


def test_inverse_transform_rejects_wrong_latent_width(X):
    vt = VAETransformer(random_state=0, **FAST).fit(X)
    with pytest.raises(ValueError, match="n_components=2"):
        vt.inverse_transform(np.zeros((3, 5)))


def test_reconstruction_beats_the_mean_on_structured_data(X):
    vt = VAETransformer(n_components=2, hidden_layer_sizes=(32,), max_iter=150, random_state=0).fit(X)
    mse = np.mean((vt.inverse_transform(vt.transform(X)) - X) ** 2)
    assert mse < 0.3 * np.mean((X - X.mean(0)) ** 2)


def test_set_output_pandas_names_latent_columns(X):
    pd = pytest.importorskip("pandas")
    vt = VAETransformer(random_state=0, **FAST).set_output(transform="pandas")
    Z = vt.fit_transform(pd.DataFrame(X, columns=[f"f{i}" for i in range(6)]))
    assert isinstance(Z, pd.DataFrame)
    assert list(Z.columns) == ["vaetransformer0", "vaetransformer1"]
    assert list(vt.feature_names_in_) == [f"f{i}" for i in range(6)]


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_same_random_state_gives_identical_results(Estimator, X):
    a = Estimator(random_state=3, **FAST).fit(X)
    b = Estimator(random_state=3, **FAST).fit(X)
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))
    np.testing.assert_array_equal(a.sample(5, random_state=1), b.sample(5, random_state=1))
    assert a.loss_curve_ == b.loss_curve_
    c = Estimator(random_state=4, **FAST).fit(X)
    assert not np.array_equal(a.score_samples(X), c.score_samples(X))


def test_scores_repeat_and_do_not_depend_on_other_rows(X):
    de = VAEDensityEstimator(random_state=0, **FAST).fit(X)
    full = de.score_samples(X)
    np.testing.assert_array_equal(full, de.score_samples(X))
    # Equal up to float32 rounding: BLAS may sum a row's products in another
    # order depending on its position in a tile.
    order = np.random.default_rng(1).permutation(len(X))
    np.testing.assert_allclose(de.score_samples(X[order]), full[order], rtol=1e-6)


@pytest.mark.parametrize("bound", ["iwae", "elbo"])
def test_scores_of_contiguous_blocks_equal_the_whole_exactly(bound, X):
    # What chunked scoring (dask's map_blocks) relies on.
    de = VAEDensityEstimator(random_state=0, bound=bound, **FAST).fit(X)
    full = de.score_samples(X)
    cuts = [0, 1, 17, 20, 53, 101, 117, 150]
    blocks = [de.score_samples(X[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
    np.testing.assert_array_equal(np.concatenate(blocks), full)
    np.testing.assert_allclose(de.score_samples(X[17:18]), full[17:18], rtol=1e-6)


def test_training_and_scoring_leave_global_random_states_alone(X):
    np.random.seed(123)
    torch.manual_seed(123)
    np_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    de = VAEDensityEstimator(random_state=0, **FAST).fit(X)
    de.score_samples(X)
    de.sample(3, random_state=0)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_pickle_and_joblib_round_trips_give_identical_outputs(dump, X, tmp_path):
    vt = VAETransformer(random_state=0, **FAST).fit(X)
    if dump == "pickle":
        loaded = pickle.loads(pickle.dumps(vt))
    else:
        joblib.dump(vt, tmp_path / "model.joblib")
        loaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(loaded.transform(X), vt.transform(X))
    np.testing.assert_array_equal(loaded.score_samples(X), vt.score_samples(X))
    np.testing.assert_array_equal(loaded.sample(4, random_state=2), vt.sample(4, random_state=2))


def test_iwae_is_at_least_the_elbo_on_average(X):
    de = VAEDensityEstimator(random_state=0, **{**FAST, "max_iter": 30}).fit(X)
    de.set_params(n_importance_samples=64)
    iwae = de.set_params(bound="iwae").score(X)
    elbo = de.set_params(bound="elbo").score(X)
    assert iwae > elbo


def test_unfitted_estimator_raises_not_fitted(X):
    for method in ("score_samples", "score", "transform"):
        with pytest.raises(NotFittedError):
            getattr(VAETransformer(), method)(X)
    with pytest.raises(NotFittedError):
        VAEDensityEstimator().sample(2)


@pytest.mark.parametrize("n_samples, error, match", [
    (0, ValueError, "at least one sample"),
    (-1, ValueError, "at least one sample"),
    (2.5, TypeError, "integer"),
])
def test_sample_rejects_bad_counts(n_samples, error, match, X):
    de = VAEDensityEstimator(random_state=0, **FAST).fit(X)
    with pytest.raises(error, match=match):
        de.sample(n_samples)


def test_pipeline_with_classifier_on_latent_features():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    clf = make_pipeline(
        StandardScaler(), VAETransformer(n_components=5, max_iter=30, random_state=0), LogisticRegression()
    )
    accuracy = clf.fit(X_train, y_train).score(X_test, y_test)
    assert accuracy > 0.8
    # The pipeline is the chain of its steps, fitted one after the other.
    scaler = StandardScaler().fit(X_train)
    vt = VAETransformer(n_components=5, max_iter=30, random_state=0).fit(scaler.transform(X_train))
    logistic = LogisticRegression().fit(vt.transform(scaler.transform(X_train)), y_train)
    np.testing.assert_array_equal(clf.predict(X_test), logistic.predict(vt.transform(scaler.transform(X_test))))


def test_grid_search_in_parallel_selects_by_held_out_likelihood(X):
    search = GridSearchCV(
        VAEDensityEstimator(random_state=0, **FAST),
        {"n_components": [1, 2], "beta": [0.5, 1.0]},
        cv=3,
        n_jobs=2,
    ).fit(X)
    serial = GridSearchCV(
        VAEDensityEstimator(random_state=0, **FAST), {"n_components": [1, 2], "beta": [0.5, 1.0]}, cv=3
    ).fit(X)
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"], rtol=1e-6
    )
    # The score of a candidate is its held-out mean log-likelihood, and the best is the highest.
    first = serial.cv_results_["params"][0]
    held_out = [
        VAEDensityEstimator(random_state=0, **{**FAST, **first}).fit(X[train]).score(X[test])
        for train, test in KFold(3).split(X)
    ]
    assert serial.cv_results_["mean_test_score"][0] == pytest.approx(np.mean(held_out), rel=1e-12)
    best = int(np.argmax(serial.cv_results_["mean_test_score"]))
    assert search.best_params_ == serial.best_params_ == serial.cv_results_["params"][best]


class _RecordThreads(Callback):
    def on_train_begin(self, net, **kwargs):
        self.n_threads_ = torch.get_num_threads()


def test_parallel_workers_train_on_their_share_of_the_cores(X):
    # loky starts workers with OMP_NUM_THREADS = cpu_count // n_jobs (unless the
    # variable is set already), and torch sizes its thread pool from it.
    est = VAEDensityEstimator(callbacks=[("threads", _RecordThreads())], random_state=0, **FAST)
    result = cross_validate(est, X, cv=2, n_jobs=2, return_estimator=True)
    expected = int(os.environ.get("OMP_NUM_THREADS", max(joblib.cpu_count() // 2, 1)))
    for fitted in result["estimator"]:
        assert dict(fitted.net_.callbacks_)["threads"].n_threads_ == expected


def test_cross_val_score_uses_mean_log_likelihood(X):
    est = VAEDensityEstimator(random_state=0, **FAST)
    scores = cross_val_score(est, X, cv=3)
    expected = [
        VAEDensityEstimator(random_state=0, **FAST).fit(X[train]).score_samples(X[test]).mean()
        for train, test in KFold(3).split(X)
    ]
    np.testing.assert_allclose(scores, expected, rtol=1e-12)


def test_fewer_rows_than_batch_size_and_one_feature():
    X = np.random.default_rng(0).normal(size=(5, 1))
    de = VAEDensityEstimator(random_state=0, **FAST).fit(X)
    assert de.net_.batch_size == 5
    assert np.all(np.isfinite(de.score_samples(X)))
    with pytest.warns(UserWarning, match="clipped"):
        VAEDensityEstimator(batch_size=64, random_state=0, **FAST).fit(X)


def test_early_stopping_records_validation_scores_and_stops(X):
    de = VAEDensityEstimator(
        n_components=2, hidden_layer_sizes=(16,), max_iter=500, early_stopping=True,
        n_iter_no_change=3, random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        de.fit(X)
    assert de.n_iter_ < 500
    assert len(de.validation_scores_) == de.n_iter_
    assert de.best_validation_score_ == max(de.validation_scores_)
    # The best epoch's weights are restored: the best score is at least
    # n_iter_no_change epochs before the end.
    assert np.argmax(de.validation_scores_) <= de.n_iter_ - 1 - 3


def test_auto_early_stopping_depends_on_held_out_rows(X):
    small = VAEDensityEstimator(random_state=0, **FAST).fit(X)  # 15 held-out rows: off
    assert small.validation_scores_ is None
    big = VAEDensityEstimator(random_state=0, **FAST).fit(np.vstack([X, X]))
    assert len(big.validation_scores_) == big.n_iter_


def test_max_iter_without_convergence_warns(X):
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(5\)"):
        VAEDensityEstimator(random_state=0, **FAST).fit(X)


def test_warm_start_continues_training(X):
    de = VAEDensityEstimator(random_state=0, warm_start=True, **FAST).fit(X)
    net = de.net_
    de.fit(X)
    assert de.net_ is net
    assert de.n_iter_ == 10 and len(de.loss_curve_) == 10
    cold = VAEDensityEstimator(random_state=0, **FAST).fit(X).fit(X)
    assert cold.n_iter_ == 5


def test_partial_fit_runs_one_epoch_per_call(X):
    de = VAEDensityEstimator(random_state=0, **FAST)
    for chunk in np.array_split(X, 3):
        de.partial_fit(chunk)
    assert de.n_iter_ == 3
    assert de.validation_scores_ is None
    with pytest.raises(ValueError, match="X has 2 features"):
        de.partial_fit(X[:, :2])
    with pytest.raises(ValueError, match="early_stopping=True"):
        VAEDensityEstimator(early_stopping=True).partial_fit(X)


def test_verbose_prints_the_loss_table(X, capsys):
    VAEDensityEstimator(verbose=1, random_state=0, **FAST).fit(X)
    out = capsys.readouterr()
    assert "train_loss" in out.out
    VAEDensityEstimator(verbose=0, random_state=0, **FAST).fit(X)
    assert capsys.readouterr().out == ""


class _CountEpochs(Callback):
    def initialize(self):
        self.epochs_ = 0
        return self

    def on_epoch_end(self, net, **kwargs):
        self.epochs_ += 1


def test_user_callbacks_run_on_copies(X):
    counter = _CountEpochs()
    scheduler = LRScheduler(policy="StepLR", step_size=1, gamma=0.5)
    de = VAEDensityEstimator(callbacks=[counter, ("lr", scheduler)], random_state=0, **FAST).fit(X)
    assert not hasattr(counter, "epochs_")
    used = [cb for name, cb in de.net_.callbacks_ if isinstance(cb, _CountEpochs)]
    assert used[0].epochs_ == 5
    assert de.net_.optimizer_.param_groups[0]["lr"] == pytest.approx(de.learning_rate_init * 0.5**5)
    with pytest.raises(TypeError, match="skorch callbacks"):
        VAEDensityEstimator(callbacks=["not a callback"], **FAST).fit(X)


def test_device_resolution(X):
    de = VAEDensityEstimator(device="auto", random_state=0, **FAST).fit(X)
    assert de.net_.device == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            VAEDensityEstimator(device="cuda", **FAST).fit(X)


def test_invalid_parameters_raise_at_fit_not_construction(X):
    est = VAEDensityEstimator(n_components=0, likelihood="poisson")
    with pytest.raises(ValueError, match="The 'likelihood' parameter"):
        est.fit(X)
    with pytest.raises(ValueError, match="The .hidden_layer_sizes. parameter"):
        VAEDensityEstimator(hidden_layer_sizes=(8, 0)).fit(X)


def test_memory_mapped_input_within_one_window_trains_identically(X, tmp_path, monkeypatch):
    # A memmap is streamed in blocks (tests/test_streaming.py); rows that fit
    # one window, without a validation split, are shuffled as in memory.
    X = np.vstack([X, X[::-1]])
    np.save(tmp_path / "X.npy", X)
    X_disk = np.load(tmp_path / "X.npy", mmap_mode="r")
    params = dict(random_state=0, early_stopping=False, **FAST)
    in_memory = VAEDensityEstimator(**params).fit(X)

    def no_copy(*args, **kwargs):
        raise AssertionError("a memory-mapped X was copied into memory")

    monkeypatch.setattr(ModelSpaceRows, "from_data", no_copy)
    from_disk = VAEDensityEstimator(**params).fit(X_disk)
    assert from_disk.loss_curve_ == in_memory.loss_curve_ and len(from_disk.loss_curve_) == FAST["max_iter"]
    np.testing.assert_array_equal(from_disk.score_samples(X), in_memory.score_samples(X))


@pytest.mark.parametrize("Estimator, draws", [(VAEDensityEstimator, 4), (VAETransformer, 1)])
def test_auto_training_draws_are_the_estimators_own(X, Estimator, draws):
    est = Estimator(random_state=0, **FAST).fit(X)
    assert est.n_training_importance_samples == "auto" and est.net_.n_draws == draws
    assert Estimator(n_training_importance_samples=2, random_state=0, **FAST).fit(X).net_.n_draws == 2
