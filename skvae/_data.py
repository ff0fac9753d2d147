"""Checks of the data against the parameters and the model, and the fitted data map.

Everything here streams through X in row blocks (``row_blocks``), so that a
memory-mapped X is never loaded whole.
"""

from numbers import Integral

import numpy as np
import torch
from sklearn.preprocessing import PowerTransformer, StandardScaler
from skorch.callbacks import Callback

from ._arrays import STREAM_ELEMENTS, row_blocks, rows_as_tensor
from ._likelihoods import LIKELIHOODS
from ._sklearn_compat import InvalidParameterError
from ._transforms import DataMap

# Rows farther than this many training standard deviations from the training
# mean are refused: beyond it the Gaussian log p(x|z) overflows float32.
MAX_STANDARDISED = 1e12
# The Yeo-Johnson exponents are fitted on evenly spaced rows of a larger X: at
# most this many, or as many as make a streaming block if more, so that a
# memory-mapped X is never read whole (QuantileTransformer subsamples too);
# the exponents' sampling error is then about 0.01.
MIN_POWER_ROWS = 10_000


def hidden_sizes(sizes, owner):
    """``hidden_layer_sizes`` as a tuple of positive ints; InvalidParameterError otherwise."""
    listed = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
    if any(not isinstance(s, Integral) or isinstance(s, bool) or s <= 0 for s in listed):
        raise InvalidParameterError(
            f"The 'hidden_layer_sizes' parameter of {owner} must be an int or a sequence of "
            f"ints in [1, inf). Got {sizes!r} instead."
        )
    return tuple(int(s) for s in listed)


def check_callbacks(callbacks, owner):
    """The user's skorch callbacks as a tuple; InvalidParameterError for anything else."""
    for item in callbacks or []:
        cb = item[1] if isinstance(item, tuple) and len(item) == 2 else item
        if not isinstance(cb, Callback) and not (isinstance(cb, type) and issubclass(cb, Callback)):
            raise InvalidParameterError(
                f"The 'callbacks' parameter of {owner} must be None or a list of skorch "
                f"callbacks or (name, callback) pairs. Got {item!r} in it."
            )
    return tuple(callbacks or ())


def check_count(value, name, *, too_small=None):
    """``value`` as an int if it is a positive integer; TypeError or ValueError (``too_small``) if not."""
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be a positive integer, got {value!r} of type {type(value).__name__}.")
    if value < 1:
        raise ValueError(too_small or f"{name} must be a positive integer, got {value}.")
    return int(value)


def check_n_samples(n_samples):
    """Refuse a number of rows to draw that is not a positive integer (``GaussianMixture.sample``'s words)."""
    too_small = f"Invalid value for 'n_samples': {n_samples}. The sampling requires at least one sample."
    return check_count(n_samples, "n_samples", too_small=too_small)


def bounds_arrays(bounds, n_features, owner, likelihood):
    """``bounds`` as two float arrays of shape (n_features,), or (None, None)."""
    if bounds is None:
        return None, None
    if LIKELIHOODS[likelihood].support != "real":
        raise InvalidParameterError(
            "bounds is only used with likelihoods of real values ('gaussian' or "
            f"'gaussian_mixture'), got likelihood={likelihood!r}; set bounds=None."
        )
    try:
        low, high = (np.asarray(b, dtype=float) for b in bounds)
        valid = np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low < high)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise InvalidParameterError(
            f"The 'bounds' parameter of {owner} must be None or a (low, high) pair of finite "
            f"numbers or arrays with low < high. Got {bounds!r} instead."
        )
    try:
        return tuple(np.broadcast_to(b, (n_features,)).copy() for b in (low, high))
    except ValueError:
        raise ValueError(
            "bounds must be a (low, high) pair of numbers or of arrays of shape "
            f"(n_features,) = ({n_features},), got {bounds!r}."
        ) from None


def column_extremes(X):
    """Each feature's smallest and largest observed value, shape (2, n_features); NaN where none is."""
    return np.stack([np.fmin.reduce(X, axis=0), np.fmax.reduce(X, axis=0)])


def has_missing(X):
    """Whether X has a NaN entry, read in blocks."""
    return any(np.isnan(block).any() for block in row_blocks(X))


def missing_counts(X):
    """The number of NaN entries of each row of X, read in blocks."""
    return np.concatenate([np.isnan(block).sum(axis=1, dtype=np.int32) for block in row_blocks(X)])


def check_observed(X):
    """Whether X has missing entries (NaN); ValueError if a feature has no observed value."""
    n_observed = sum(np.count_nonzero(~np.isnan(block), axis=0) for block in row_blocks(X))
    empty = np.flatnonzero(n_observed == 0)
    if len(X) and empty.size:
        raise ValueError(
            f"Features {empty.tolist()} of X have no observed value (all are NaN); nothing can be "
            "learnt about them. Drop them, or impute them first."
        )
    return bool(np.any(n_observed < len(X)))


def check_support(X, likelihood, support, low=None, high=None):
    """Refuse observed values outside the likelihood's support or outside the bounds (low, high)."""
    if X.size == 0:
        return
    columns = column_extremes(X)
    lo, hi = np.fmin.reduce(columns[0]), np.fmax.reduce(columns[1])
    binary = (np.isin(block, (0, 1)) | np.isnan(block) for block in row_blocks(X))
    if support == "binary" and not all(b.all() for b in binary):
        raise ValueError(
            f"likelihood={likelihood!r} requires binary data in {{0, 1}}; X has values in "
            f"[{lo:.4g}, {hi:.4g}]. Use likelihood='continuous_bernoulli' for data in "
            "[0, 1] or likelihood='gaussian' for real-valued data."
        )
    if support == "unit_interval" and (lo < 0 or hi > 1):
        raise ValueError(
            f"likelihood={likelihood!r} requires data in [0, 1]; X has values "
            f"in [{lo:.4g}, {hi:.4g}]. Scale X to [0, 1] (e.g. with MinMaxScaler) or "
            "use likelihood='gaussian'."
        )
    if low is None:
        return
    lo, hi = columns
    outside = np.flatnonzero(~((lo > low) & (hi < high)) & ~np.isnan(lo))
    if outside.size:
        j = outside[0]
        raise ValueError(
            f"X must lie strictly inside bounds; feature {j} has values in "
            f"[{lo[j]:.4g}, {hi[j]:.4g}], its bounds are "
            f"({low[j]:.4g}, {high[j]:.4g}). Widen the bounds or use bounds=None."
        )


def check_in_range(module, X, device):
    """Refuse rows that the fitted data map sends too far from the training data to score."""
    if not len(module.data_map.kinds) or X.size == 0:
        return
    # Every step is monotone per feature: each feature's extremes bound its values.
    ends = torch.from_numpy(column_extremes(X).astype(np.float64))
    with torch.inference_mode():
        ends = module.numeric_columns(ends.to(device))
        distance = module.data_map(ends)[0].nan_to_num(0.0).abs().max().item() if ends.numel() else 0.0
    if not distance <= MAX_STANDARDISED:
        raise ValueError(
            f"X has values {distance:.3g} training standard deviations from the training "
            f"mean; the model scores rows up to {MAX_STANDARDISED:.0e} away. Check that X "
            "has the units of the training data and holds no sentinel values (such as "
            "1e30 for a missing entry)."
        )


def fit_data_map(X, *, low=None, high=None, power=False):
    """The steps from data to model space for real-valued data, fitted on X.

    The logit map of ``(low, high)`` when given; with ``power``, a
    standardisation and the Yeo-Johnson map of ``YeoJohnsonTransform``;
    then a standardisation. A list for ``DataMap``.
    """
    steps = [] if low is None else [("bounds", {"low": low, "high": high})]
    if power:
        mean, scale, lo, hi = _statistics(X, steps)
        steps.append(("standardise", {"loc": mean, "scale": scale}))
        lambdas = _power_exponents(X, steps)
        steps.append(("yeo_johnson", {"lambdas": lambdas, "low": (lo - mean) / scale, "high": (hi - mean) / scale}))
    mean, scale, _, _ = _statistics(X, steps)
    return [*steps, ("standardise", {"loc": mean, "scale": scale})]


def _mapped_blocks(X, steps, rows=None):
    """Row blocks of X (or of its ``rows``) mapped by ``steps``, float64 arrays."""
    data_map = DataMap(steps, X.shape[1])
    blocks = row_blocks(X, dtype=np.float64) if rows is None else [np.asarray(X[rows], dtype=np.float64)]
    for block in blocks:
        if steps:
            with torch.inference_mode():
                block = data_map(rows_as_tensor(block))[0].numpy()
        yield block


def _statistics(X, steps):
    """Per-feature mean, scale, minimum and maximum of X mapped by ``steps``, in one pass."""
    scaler = StandardScaler()
    lo, hi = np.inf, -np.inf
    with np.errstate(over="ignore", invalid="ignore"):
        for block in _mapped_blocks(X, steps):
            scaler.partial_fit(block)  # NaN, a missing entry, is left out
            lo, hi = np.fmin(lo, np.fmin.reduce(block, axis=0)), np.fmax(hi, np.fmax.reduce(block, axis=0))
    if not (np.all(np.isfinite(scaler.mean_)) and np.all(np.isfinite(scaler.var_))):
        raise ValueError(
            f"The mean or variance of X overflows float64 (|X| reaches {np.max(np.abs(X)):.3g}); "
            "divide X by a constant first, e.g. with sklearn.preprocessing.MaxAbsScaler."
        )
    return scaler.mean_, scaler.scale_, lo, hi


def _power_exponents(X, steps):
    """Yeo-Johnson exponents fitted by maximum likelihood on X, or on evenly spaced rows of it."""
    n_rows = max(MIN_POWER_ROWS, STREAM_ELEMENTS // X.shape[1])
    rows = None if len(X) <= n_rows else np.arange(n_rows) * len(X) // n_rows
    U = np.concatenate(list(_mapped_blocks(X, steps, rows)))
    # Column by column: PowerTransformer copies what it fits.
    return np.concatenate([PowerTransformer(standardize=False).fit(U[:, [j]]).lambdas_ for j in range(U.shape[1])])
