"""Property-based: for generated data and parameters, every method either succeeds
with finite outputs of the documented shape and dtype, or raises a ValueError
whose message is one of the documented refusals (``REFUSALS``); never another
exception, never NaN or inf.

Deterministic (``derandomize=True``) and sized to run in well under a minute.
"""

import os
import re
import tempfile
import warnings

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from skvae import VAEDensityEstimator, VAEOutlierDetector, VAETransformer, load

ESTIMATORS = [VAEDensityEstimator, VAEOutlierDetector, VAETransformer]
N_EXAMPLES = 500

LIKELIHOODS = ["gaussian", "bernoulli", "continuous_bernoulli"]
DTYPES = [np.float64, np.float32, np.int64, np.bool_]
# Data magnitudes, from tiny to near float64's limit.
SCALES = [1e-300, 1e-8, 1.0, 1e4, 1e8, 1e100, 1e200]


@st.composite
def data(draw, n_samples, n_features, likelihood):
    """An array of the given shape: in the likelihood's support, usually."""
    dtype = draw(st.sampled_from(DTYPES))
    shape = (n_samples, n_features)
    if likelihood != "gaussian" and draw(st.booleans()):
        values = draw(arrays(np.float64, shape, elements=st.sampled_from([0.0, 1.0])))
        if likelihood == "continuous_bernoulli":
            values = np.clip(values + draw(arrays(np.float64, shape, elements=st.floats(-0.5, 0.5))), 0, 1)
    else:
        heavy = draw(st.booleans())
        elements = st.floats(-1e6, 1e6) if heavy else st.floats(-10, 10, width=32)
        values = draw(arrays(np.float64, shape, elements=elements)) * draw(st.sampled_from(SCALES))
    with np.errstate(over="ignore", invalid="ignore"):
        return values.astype(dtype)


@st.composite
def problems(draw):
    """(Estimator, params, X to fit, X to score) with X's of the same width."""
    likelihood = draw(st.sampled_from(LIKELIHOODS))
    n_features = draw(st.integers(1, 4))
    X = draw(data(draw(st.integers(1, 12)), n_features, likelihood))
    X_new = draw(data(draw(st.integers(1, 5)), n_features, likelihood))
    params = dict(
        likelihood=likelihood,
        n_components=draw(st.integers(1, 3)),
        hidden_layer_sizes=draw(st.sampled_from([(), (4,), (3, 2)])),
        activation=draw(st.sampled_from(["relu", "tanh", "identity", "elu"])),
        batch_size=draw(st.sampled_from(["auto", 1, 3, 16])),
        max_iter=draw(st.integers(1, 2)),
        learning_rate_init=draw(st.sampled_from([1e-3, 1e-1, 10.0])),
        beta=draw(st.sampled_from([0.0, 0.5, 1.0, 4.0])),
        n_importance_samples=draw(st.integers(1, 4)),
        bound=draw(st.sampled_from(["iwae", "elbo"])),
        early_stopping=draw(st.sampled_from([False, True, "auto"])),
        validation_fraction=draw(st.sampled_from([0.1, 0.5, 0.9])),
        random_state=draw(st.integers(0, 3)),
    )
    if likelihood == "gaussian" and draw(st.booleans()):
        params["bounds"] = draw(st.sampled_from([(-1e3, 1e3), (-1.0, 1.0), (0.0, 1e300)]))
    return draw(st.sampled_from(ESTIMATORS)), params, X, X_new


# Why valid-looking data may be refused: each message says what to change.
REFUSALS = "|".join([
    r"requires binary data in \{0, 1\}",  # a Bernoulli likelihood on other values
    r"requires data in \[0, 1\]",
    r"must lie strictly inside bounds",
    r"overflows float64",  # a variance beyond float64
    r"training standard deviations from the training mean",  # rows too far to score
    r"Training diverged in epoch \d+: .* and no epoch ended well",  # learning_rate_init=10
    r"which leaves none to train on",  # early stopping on one row
    r"partial_fit does not support early_stopping=True",
    r"Input X contains infinity or a value too large",  # 1e200 cast to float32
    r"beyond the range of X's dtype float32",  # decoder means beyond float32
])


def _attempt(call, label=None):
    """``call()``, or None when it raises one of the documented refusals."""
    try:
        out = call()
    except (ValueError, TypeError) as exc:
        assert re.search(REFUSALS, str(exc)), f"an unexpected error: {exc!r}"
        if label:
            event(f"{label} refused: {str(exc)[:40]}")
        return None
    if label:
        event(f"{label} succeeded")
    return out


def _check_array(out, shape, dtype):
    assert out.shape == shape and out.dtype == dtype
    assert np.all(np.isfinite(out)), out


def _check_methods(est, X, params):
    n_samples, n_features = X.shape
    scores = _attempt(lambda: est.score_samples(X))
    if scores is not None:
        _check_array(scores, (n_samples,), np.float64)
    if hasattr(est, "decision_function"):
        if scores is not None:
            _check_array(est.decision_function(X), (n_samples,), np.float64)
            assert set(np.unique(est.predict(X))) <= {-1, 1}
        return
    if scores is not None:
        assert np.isfinite(est.score(X))
    samples = est.sample(3, random_state=0)
    _check_array(samples, (3, n_features), np.float64)
    if params["likelihood"] == "bernoulli":
        assert set(np.unique(samples)) <= {0.0, 1.0}
    if params["likelihood"] == "continuous_bernoulli" or "bounds" in params:
        low, high = params.get("bounds", (0.0, 1.0))
        assert np.all((samples >= low) & (samples <= high))
    if hasattr(est, "transform"):
        Z = _attempt(lambda: est.transform(X))
        if Z is not None:
            dtype = np.float32 if X.dtype == np.float32 else np.float64
            _check_array(Z, (n_samples, est.n_components), dtype)
            X_back = _attempt(lambda: est.inverse_transform(Z))
            if X_back is not None:
                _check_array(X_back, (n_samples, n_features), dtype)


@settings(
    max_examples=N_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(problems())
def test_methods_give_finite_outputs_or_clear_errors(problem):
    Estimator, params, X, X_new = problem
    est = Estimator(**params)
    with warnings.catch_warnings():
        # Convergence, clipped batch size, divergence: warnings, not failures.
        # Floating-point warnings raised by skvae's own lines are failures
        # (scikit-learn's input checks may overflow before refusing inf).
        warnings.simplefilter("ignore")
        warnings.filterwarnings("error", category=RuntimeWarning, module=r"skvae\.")
        if _attempt(lambda: est.fit(X), "fit") is None:
            return
        assert est.n_iter_ >= 1 and np.all(np.isfinite(est.loss_curve_))
        _check_methods(est, X, params)
        _check_methods(est, X_new, params)
        if _attempt(lambda: est.partial_fit(X_new), "partial_fit") is not None:
            _check_methods(est, X, params)
        with tempfile.TemporaryDirectory() as folder:
            est.save(os.path.join(folder, "model.safetensors"))
            loaded = load(os.path.join(folder, "model.safetensors"))
        if hasattr(est, "sample"):
            np.testing.assert_array_equal(loaded.sample(3, random_state=0), est.sample(3, random_state=0))
        np.testing.assert_array_equal(_attempt(lambda: loaded.score_samples(X)), _attempt(lambda: est.score_samples(X)))


def test_the_strategy_reaches_every_estimator_likelihood_and_dtype():
    seen = set()

    @settings(max_examples=60, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(problems())
    def collect(problem):
        Estimator, params, X, _ = problem
        seen.update({Estimator, params["likelihood"], X.dtype.type})

    collect()
    assert {*ESTIMATORS, *LIKELIHOODS, *DTYPES} <= seen
