"""Bad input, one table: every public estimator, every method, input -> outcome.

A new estimator joins by one line in ``ESTIMATORS``; a new method by one
entry in ``DATA_METHODS``. Errors are checked with their messages, and a
failed call must leave the estimator as it was (or unfitted, for ``fit``).
"""

from copy import deepcopy
from functools import lru_cache
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from skvae import VAEDensityEstimator, VAEImputer, VAEOutlierDetector, VAETransformer
from skvae._sklearn_compat import InvalidParameterError

ESTIMATORS = [VAEDensityEstimator, VAEImputer, VAEOutlierDetector, VAETransformer]
SAMPLERS = [Estimator for Estimator in ESTIMATORS if hasattr(Estimator, "sample")]
FAST = dict(n_components=2, hidden_layer_sizes=(8,), max_iter=2, n_importance_samples=4, random_state=0)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

_rng = np.random.default_rng(0)
X_GOOD = _rng.normal(size=(40, 3))

# Methods that take data rows, with how each is called.
DATA_METHODS = {
    "fit": lambda est, X: est.fit(X),
    "partial_fit": lambda est, X: est.partial_fit(X),
    "transform": lambda est, X: est.transform(X),
    "score_samples": lambda est, X: est.score_samples(X),
    "score": lambda est, X: est.score(X),
    "decision_function": lambda est, X: est.decision_function(X),
    "predict": lambda est, X: est.predict(X),
    "fit_predict": lambda est, X: est.fit_predict(X),
}
AFTER_FIT = ("partial_fit", "transform", "score_samples", "score", "decision_function", "predict")


@lru_cache
def _fitted(Estimator, likelihood="gaussian"):
    X = {"gaussian": X_GOOD, "bernoulli": X_GOOD > 0, "continuous_bernoulli": X_GOOD > 0}[likelihood]
    return Estimator(likelihood=likelihood, **FAST).fit(X)


def _with_nan(value):
    X = X_GOOD.copy()
    X[3, 1] = value
    return X


class Bad(NamedTuple):
    """A bad input: how to build it from good X, the error and its message."""

    make: Callable
    error: type
    match: str
    methods: tuple = tuple(DATA_METHODS)
    skip: tuple = ()  # estimators that accept it


BAD = {
    "inf": Bad(lambda: _with_nan(np.inf), ValueError, "Input X contains infinity"),
    "-inf": Bad(lambda: _with_nan(-np.inf), ValueError, "Input X contains infinity"),
    "1-D": Bad(lambda: X_GOOD[:, 0], ValueError, "Expected 2D array, got 1D array"),
    "3-D": Bad(lambda: X_GOOD[:, :, None], ValueError, "Found array with dim 3"),
    "0 rows": Bad(lambda: X_GOOD[:0], ValueError, r"Found array with 0 sample\(s\)"),
    "0 columns": Bad(lambda: X_GOOD[:, :0], ValueError, r"Found array with 0 feature\(s\)"),
    "words": Bad(lambda: np.full((40, 3), "a", dtype=object), ValueError, "could not convert string to float"),
    "complex": Bad(lambda: X_GOOD + 1j, ValueError, "Complex data not supported"),
    "sparse CSR": Bad(lambda: sp.csr_matrix(X_GOOD), TypeError, r"dense data is required. Use '\.toarray\(\)'"),
    "DataFrame, datetime column": Bad(
        lambda: pd.DataFrame({"a": X_GOOD[:, 0], "b": pd.date_range("2026-01-01", periods=40), "c": X_GOOD[:, 2]}),
        TypeError,
        "Column 'b' has dtype datetime64.*convert it to numbers or to a pandas category",
        ("fit", "fit_predict"),
    ),
    "a feature with no observed value": Bad(
        lambda: np.c_[X_GOOD[:, :2], np.full(40, np.nan)], ValueError,
        r"Features \[2\] of X have no observed value", ("fit", "fit_predict"), skip=(VAEImputer,),
    ),
    "NaN, and too few features after fit": Bad(
        lambda: _with_nan(np.nan)[:, :2], ValueError, "X has 2 features, but .* is expecting 3 features", AFTER_FIT
    ),
    "wrong n_features after fit": Bad(
        lambda: X_GOOD[:, :2], ValueError, "X has 2 features, but .* is expecting 3 features", AFTER_FIT
    ),
    "rows 1e20 SDs from the training data": Bad(
        lambda: X_GOOD * 1e20, ValueError, "training standard deviations .* sentinel", AFTER_FIT
    ),
    "values overflowing the variance (1e200)": Bad(
        lambda: np.vstack([X_GOOD, np.full((1, 3), 1e200)]), ValueError, "overflows float64.*MaxAbsScaler",
        ("fit", "fit_predict"),
    ),
}


def _cases(table):
    return [
        pytest.param(Estimator, name, method, id=f"{Estimator.__name__}-{name}-{method}")
        for Estimator in ESTIMATORS
        for name, case in table.items()
        for method in case.methods
        if hasattr(Estimator, method) and Estimator not in case.skip
    ]


def _state(est):
    return est.n_iter_, est.score_samples(X_GOOD[:5]).tolist()


@pytest.mark.parametrize("Estimator, name, method", _cases(BAD))
def test_bad_data_raises_and_leaves_the_estimator_consistent(Estimator, name, method):
    case = BAD[name]
    # fit refits a fitted copy (it must end unfitted); the others use a fitted copy.
    est = deepcopy(_fitted(Estimator))
    before = _state(est)
    with pytest.raises(case.error, match=case.match):
        DATA_METHODS[method](est, case.make())
    if method in ("fit", "fit_predict"):
        with pytest.raises(NotFittedError):
            check_is_fitted(est)
    else:
        assert _state(est) == before


LATENT_BAD = {
    "NaN": (np.array([[0.0, np.nan]]), ValueError, "Input contains NaN"),
    "inf": (np.array([[0.0, np.inf]]), ValueError, "Input contains infinity"),
    "1-D": (np.zeros(2), ValueError, "Expected 2D array"),
    "3-D": (np.zeros((2, 2, 1)), ValueError, "Found array with dim 3"),
    "0 rows": (np.zeros((0, 2)), ValueError, r"0 sample\(s\)"),
    "wrong width": (np.zeros((3, 5)), ValueError, "expecting n_components=2"),
    "beyond the prior (1e4)": (np.full((1, 2), 1e4), ValueError, r"latent values in \[-1000, 1000\]"),
    "strings": (np.full((1, 2), "a"), ValueError, "could not convert string to float"),
    "complex": (np.zeros((1, 2)) + 1j, ValueError, "Complex data not supported"),
    "sparse": (sp.csr_matrix(np.ones((2, 2))), TypeError, r"\.toarray\(\)"),
}


@pytest.mark.parametrize("name", LATENT_BAD)
def test_inverse_transform_rejects_bad_latent_rows(name):
    Z, error, match = LATENT_BAD[name]
    with pytest.raises(error, match=match):
        _fitted(VAETransformer).inverse_transform(Z)


def _cauchy():
    return np.random.default_rng(1).standard_cauchy(size=(60, 3))


# Inputs that are accepted: fit, then every method gives finite outputs.
ACCEPTED = {
    "bool array": lambda: X_GOOD > 0,
    "int array": lambda: np.round(X_GOOD * 10).astype(np.int64),
    "int8 array": lambda: np.round(X_GOOD * 10).astype(np.int8),
    "float16 array": lambda: X_GOOD.astype(np.float16),
    "float32 array": lambda: X_GOOD.astype(np.float32),
    "list of lists": lambda: X_GOOD.tolist(),
    "numeric strings (object array)": lambda: X_GOOD.astype(str).astype(object),
    "DataFrame, text column": lambda: pd.DataFrame({"a": X_GOOD[:, 0], "b": ["x", "y"] * 20, "c": X_GOOD[:, 2]}),
    "DataFrame, categorical column": lambda: pd.DataFrame(
        {"a": X_GOOD[:, 0], "b": pd.Categorical(["x", "y"] * 20), "c": X_GOOD[:, 2]}
    ),
    "DataFrame, numeric and bool": lambda: pd.DataFrame({"a": X_GOOD[:, 0], "b": X_GOOD[:, 1] > 0, "c": [1, 2] * 20}),
    "single row": lambda: X_GOOD[:1],
    "two rows": lambda: X_GOOD[:2],
    "single feature": lambda: X_GOOD[:, :1],
    "a constant column": lambda: np.c_[X_GOOD[:, :2], np.full(40, 7.0)],
    "all columns constant": lambda: np.full((40, 3), 7.0),
    "duplicated rows": lambda: np.repeat(X_GOOD[:4], 10, axis=0),
    "scale 1e6": lambda: X_GOOD * 1e6,
    "scale 1e-6": lambda: X_GOOD * 1e-6,
    "offset 1e8": lambda: X_GOOD + 1e8,
    "columns at 1e-6 and 1e6": lambda: X_GOOD * [1e-6, 1.0, 1e6],
    "values up to 1e150": lambda: np.vstack([X_GOOD, np.full((1, 3), 1e150)]),
    "subnormal values": lambda: np.vstack([X_GOOD[:5] * 5e-324, np.zeros((1, 3))]),
    "heavy tails (Cauchy)": _cauchy,
    "heavier tails (Cauchy cubed)": lambda: _cauchy() ** 3,
    "NaN entries (missing)": lambda: _with_nan(np.nan),
    "a row with no observed value": lambda: np.vstack([X_GOOD, np.full((1, 3), np.nan)]),
    "DataFrame, nullable int with NA": lambda: pd.DataFrame(
        {"a": pd.array([1, None] * 20, dtype="Int64"), "b": X_GOOD[:, 1], "c": X_GOOD[:, 2]}
    ),
    "DataFrame, None in an object column of numbers": lambda: pd.DataFrame(
        {"a": np.array([1.5, None] * 20, dtype=object), "b": X_GOOD[:, 1], "c": X_GOOD[:, 2]}
    ),
}


def _check_finite_outputs(est, X):
    n_samples, n_features = np.shape(X)
    scores = est.score_samples(X)
    assert scores.shape == (n_samples,) and scores.dtype == np.float64
    assert np.all(np.isfinite(scores))
    if hasattr(est, "score"):
        assert np.isfinite(est.score(X))
    if hasattr(est, "sample"):
        _check_finite_rows(est.sample(5, random_state=0), X, 5)
    if hasattr(est, "decision_function"):
        assert np.all(np.isfinite(est.decision_function(X)))
        assert set(np.unique(est.predict(X))) <= {-1, 1}
    if hasattr(est, "inverse_transform"):
        Z = est.transform(X)
        assert Z.shape == (n_samples, 2) and np.all(np.isfinite(Z))
        _check_finite_rows(est.inverse_transform(Z), X, n_samples)
    elif hasattr(est, "transform"):  # an imputer
        _check_finite_rows(est.transform(X), X, n_samples)


def _check_finite_rows(out, X, n_samples):
    """Rows an estimator gives back: a float array, or a DataFrame of X's columns and dtypes."""
    assert out.shape == (n_samples, np.shape(X)[1])
    if isinstance(out, pd.DataFrame):
        assert list(out.columns) == list(X.columns)
        assert not out.isna().to_numpy().any()
        assert np.all(np.isfinite(out.select_dtypes("number").to_numpy(dtype=float)))
        for column in X.columns:
            if X[column].dtype != object:  # object columns of numbers come back as floats
                assert out[column].dtype == X[column].dtype, column
    else:
        assert out.dtype.kind == "f" and np.all(np.isfinite(out))


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("name", ACCEPTED)
def test_accepted_inputs_give_a_model_with_finite_outputs(Estimator, name):
    X = ACCEPTED[name]()
    est = Estimator(**FAST).fit(X)
    assert est.n_features_in_ == np.shape(X)[1]
    _check_finite_outputs(est, X)
    est.partial_fit(X)
    _check_finite_outputs(est, X)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_float32_input_keeps_its_dtype_in_transform(Estimator):
    est = Estimator(**FAST).fit(X_GOOD.astype(np.float32))
    if hasattr(est, "transform"):
        assert est.transform(X_GOOD.astype(np.float32)).dtype == np.float32
    assert est.score_samples(X_GOOD.astype(np.float32)).dtype == np.float64


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_extreme_rows_at_scoring_time_get_finite_scores(Estimator):
    est = _fitted(Estimator)
    far = np.vstack([X_GOOD[:3] * 1e6, X_GOOD[:3] * 1e11, np.full((1, 3), 1e11)])
    scores = est.score_samples(far)
    assert np.all(np.isfinite(scores))
    assert np.all(scores < est.score_samples(X_GOOD[:3]).min())
    if hasattr(est, "inverse_transform"):
        Z = est.transform(far)
        assert np.all(np.isfinite(Z)) and np.all(np.isfinite(est.inverse_transform(Z)))


SUPPORT = {
    # likelihood, X, message
    "bernoulli, values in [0, 1]": ("bernoulli", 0.5, r"binary data in \{0, 1\}.*'continuous_bernoulli'"),
    "bernoulli, value 2": ("bernoulli", 2.0, r"binary data in \{0, 1\}.*values in \[0, 2\]"),
    "continuous_bernoulli, value 1.5": ("continuous_bernoulli", 1.5, r"data in \[0, 1\].*MinMaxScaler.*'gaussian'"),
    "continuous_bernoulli, value -0.1": ("continuous_bernoulli", -0.1, r"data in \[0, 1\].*\[-0\.1, 1\]"),
}


@pytest.mark.parametrize("Estimator, method", [
    (Estimator, method) for Estimator in ESTIMATORS for method in DATA_METHODS if hasattr(Estimator, method)
])
@pytest.mark.parametrize("name", SUPPORT)
def test_data_outside_the_likelihoods_support(Estimator, name, method):
    likelihood, value, match = SUPPORT[name]
    X = (X_GOOD > 0).astype(float)
    X[0, 0] = value
    est = deepcopy(_fitted(Estimator, likelihood))
    est.set_params(likelihood=likelihood)
    with pytest.raises(ValueError, match=match):
        DATA_METHODS[method](est, X)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_binary_and_unit_interval_data_are_accepted(Estimator):
    binary = _fitted(Estimator, "bernoulli")
    _check_finite_outputs(binary, X_GOOD > 0)
    if hasattr(binary, "sample"):
        assert set(np.unique(binary.sample(20, random_state=0))) <= {0.0, 1.0}
    unit = Estimator(likelihood="continuous_bernoulli", **FAST).fit(np.r_[np.zeros((1, 3)), np.ones((1, 3)), _rng.uniform(size=(20, 3))])
    _check_finite_outputs(unit, np.ones((2, 3)))


def test_bounds_outside_and_likelihood_mismatch():
    with pytest.raises(ValueError, match=r"strictly inside bounds; feature 1 .*\(-1, 1\)"):
        VAEDensityEstimator(bounds=(-1, 1), **FAST).fit(X_GOOD * [0.1, 10, 0.1])
    est = VAEDensityEstimator(bounds=(-10, 10), **FAST).fit(X_GOOD)
    with pytest.raises(ValueError, match="strictly inside bounds"):
        est.score_samples(X_GOOD * 20)
    with pytest.raises(ValueError, match=r"bounds must be a \(low, high\) pair .* \(3,\)"):
        VAEDensityEstimator(bounds=([0, 0], [1, 1]), **FAST).fit(X_GOOD)


INVALID_PARAMETERS = [
    ("n_components", 0), ("n_components", 1.5), ("n_components", "2"),
    ("hidden_layer_sizes", 0), ("hidden_layer_sizes", (8, 0)), ("hidden_layer_sizes", (8.5,)),
    ("hidden_layer_sizes", (True,)), ("hidden_layer_sizes", "8"),
    ("activation", "sigmoid"), ("likelihood", "poisson"),
    ("n_mixture_components", 0), ("n_mixture_components", 2.5), ("prior", "vamp"), ("prior", None),
    ("n_training_importance_samples", 0), ("n_training_importance_samples", 1.5),
    ("learning_rate", "invscaling"),
    ("bounds", (0,)), ("bounds", (0, 1, 2)), ("bounds", (1, 0)), ("bounds", (0, np.inf)), ("bounds", "ab"),
    ("bounds", ([0, 0], [1, 1, 1])),
    ("beta", -1.0), ("beta", np.nan), ("beta", np.inf),
    ("n_importance_samples", 0), ("n_importance_samples", -1), ("n_importance_samples", 2.5),
    ("bound", "kl"), ("batch_size", 0), ("batch_size", "big"), ("batch_size", 1.5),
    ("max_iter", 0), ("learning_rate_init", 0.0), ("learning_rate_init", -1.0),
    ("learning_rate_init", np.inf), ("learning_rate_init", np.nan),
    ("early_stopping", "yes"), ("early_stopping", 1), ("validation_fraction", 0.0),
    ("validation_fraction", 1.0), ("n_iter_no_change", 0), ("ema_decay", 1.0), ("ema_decay", -0.1), ("tol", -1.0), ("warm_start", "no"),
    ("random_state", "seed"), ("device", "tpu"), ("verbose", -1), ("callbacks", "cb"),
    ("callbacks", ["not a callback"]),
    ("training_noise", -0.1), ("training_noise", np.nan), ("power_transform", "yes"),
    ("contamination", 0.0), ("contamination", 0.6), ("contamination", "high"),
    ("kl_penalty", -1.0), ("kl_penalty", np.nan), ("kl_penalty", np.inf), ("kl_penalty", "high"),
    ("missing_values", "NA"), ("missing_values", [1]), ("add_indicator", "no"),
    ("keep_empty_features", 2), ("sample_posterior", "yes"),
    ("categorical_features", "auto"), ("categorical_features", 3), ("handle_unknown", "raise"),
    ("discrete_features", "all"), ("discrete_features", 3),
]


@pytest.mark.parametrize("Estimator, param, value", [
    pytest.param(Estimator, param, value, id=f"{Estimator.__name__}-{param}-{value!r}")
    for Estimator in ESTIMATORS
    for param, value in INVALID_PARAMETERS
    if param in Estimator().get_params()
])
def test_invalid_parameters_raise_at_fit_never_at_construction(Estimator, param, value):
    est = Estimator(**{**FAST, param: value})
    assert est.get_params()[param] is value
    with pytest.raises(InvalidParameterError, match=f"The '{param}' parameter of {Estimator.__name__} must be"):
        est.fit(X_GOOD)
    with pytest.raises(NotFittedError):
        check_is_fitted(est)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_every_constrained_parameter_has_an_invalid_value_in_the_table(Estimator):
    assert set(Estimator._parameter_constraints) <= {param for param, _ in INVALID_PARAMETERS}


def test_bounds_with_a_bernoulli_likelihood_is_an_invalid_combination():
    est = VAEDensityEstimator(likelihood="bernoulli", bounds=(0, 1), **FAST)
    with pytest.raises(InvalidParameterError, match="bounds is only used with likelihoods of real values"):
        est.fit(X_GOOD > 0)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("param, value", [("n_importance_samples", 0), ("n_importance_samples", -1), ("bound", "kl")])
def test_scoring_parameters_set_after_fit_are_validated(Estimator, param, value):
    est = deepcopy(_fitted(Estimator)).set_params(**{param: value})
    with pytest.raises(InvalidParameterError, match=f"The '{param}' parameter"):
        est.score_samples(X_GOOD)


@pytest.mark.parametrize("value", [-1.0, "high"])
def test_the_detectors_kl_penalty_set_after_fit_is_validated(value):
    est = deepcopy(_fitted(VAEOutlierDetector)).set_params(kl_penalty=value)
    with pytest.raises(InvalidParameterError, match="The 'kl_penalty' parameter"):
        est.score_samples(X_GOOD)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_structure_parameters_changed_after_fit_do_not_break_the_fitted_model(Estimator):
    est = deepcopy(_fitted(Estimator))
    before = est.score_samples(X_GOOD)
    est.set_params(n_components=5, hidden_layer_sizes=(3, 3), likelihood="bernoulli")
    np.testing.assert_array_equal(est.score_samples(X_GOOD), before)
    if hasattr(est, "inverse_transform"):
        assert est.transform(X_GOOD).shape == (40, 2)
        assert len(est.get_feature_names_out()) == 2


@pytest.mark.parametrize("Estimator", SAMPLERS)
@pytest.mark.parametrize("n_samples, error, match", [
    (0, ValueError, "at least one sample"),
    (-1, ValueError, "at least one sample"),
    (2.5, TypeError, "must be a positive integer"),
    ("3", TypeError, "must be a positive integer"),
    (True, TypeError, "must be a positive integer"),
])
def test_sample_rejects_bad_counts(Estimator, n_samples, error, match):
    with pytest.raises(error, match=match):
        _fitted(Estimator).sample(n_samples)


@pytest.mark.parametrize("Estimator", SAMPLERS)
def test_sample_accepts_numpy_integers(Estimator):
    assert _fitted(Estimator).sample(np.int64(3), random_state=0).shape == (3, 3)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_batch_size_larger_than_the_data_is_clipped_with_a_warning(Estimator):
    with pytest.warns(UserWarning, match="clipped"):
        est = Estimator(**{**FAST, "batch_size": 500}).fit(X_GOOD)
    assert est.net_.batch_size == len(X_GOOD)
    _check_finite_outputs(est, X_GOOD)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_early_stopping_needs_a_row_to_train_on(Estimator):
    with pytest.raises(ValueError, match="validation_fraction=0.5 of the 1 rows, which leaves none"):
        Estimator(**{**FAST, "early_stopping": True, "validation_fraction": 0.5}).fit(X_GOOD[:1])
    est = Estimator(**{**FAST, "early_stopping": True}).fit(X_GOOD[:2])
    assert len(est.validation_scores_) == est.n_iter_
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        clone(est).partial_fit(X_GOOD)
    # A numpy boolean is a boolean too.
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        clone(est).set_params(early_stopping=np.True_).partial_fit(X_GOOD)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_feature_names_must_match_those_seen_in_fit(Estimator):
    est = Estimator(**FAST).fit(pd.DataFrame(X_GOOD, columns=["a", "b", "c"]))
    with pytest.raises(ValueError, match="feature names should match"):
        est.score_samples(pd.DataFrame(X_GOOD, columns=["a", "b", "z"]))
