"""Any array a user can make: every method gives what it gives on a C-contiguous copy."""

import numpy as np
import pytest

from skvae import VAEDensityEstimator, VAEOutlierDetector, VAETransformer

FAST = dict(n_components=2, hidden_layer_sizes=(8,), max_iter=3, n_importance_samples=4, random_state=0)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

_X = np.random.default_rng(0).normal(size=(60, 3))


def _read_only(X):
    X = X.copy()
    X.setflags(write=False)
    return X


def _column_slice(X):
    wide = np.zeros((len(X), 2 * X.shape[1]))
    wide[:, ::2] = X
    return wide[:, ::2]


def _memmap_view(X, tmp_path):
    np.save(tmp_path / "X.npy", X[::-1].copy())
    return np.load(tmp_path / "X.npy", mmap_mode="r")[::-1]


LAYOUTS = {
    "reversed": lambda X, tmp_path: X[::-1],
    "stepped": lambda X, tmp_path: np.repeat(X, 2, axis=0)[::2],
    "fortran": lambda X, tmp_path: np.asfortranarray(X),
    "column slice": lambda X, tmp_path: _column_slice(X),
    "read-only": lambda X, tmp_path: _read_only(X),
    "memmap view": _memmap_view,
}


def _outputs(est, X):
    out = {"score_samples": est.score_samples(X)}
    for method in ("transform", "decision_function", "predict"):
        if hasattr(est, method):
            out[method] = getattr(est, method)(X)
    return out


@pytest.mark.parametrize("Estimator", [VAEDensityEstimator, VAEOutlierDetector, VAETransformer])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_method_accepts_any_layout_and_gives_the_same_numbers(Estimator, layout, tmp_path):
    X = LAYOUTS[layout](_X, tmp_path)
    assert not (X.flags.c_contiguous and X.flags.writeable)
    reference = Estimator(**FAST).fit(np.array(X))
    for method, expected in _outputs(reference, np.array(X)).items():
        np.testing.assert_array_equal(_outputs(reference, X)[method], expected, err_msg=method)
    fitted = Estimator(**FAST).fit(X)
    fitted.partial_fit(X)
    if layout != "memmap view":  # a memmap is streamed in blocks: another batch order
        reference.partial_fit(np.array(X))
        np.testing.assert_array_equal(fitted.score_samples(X), reference.score_samples(X))
    assert np.all(np.isfinite(fitted.score_samples(X)))
