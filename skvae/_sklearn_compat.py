"""The one place that imports scikit-learn's private helpers.

scikit-learn keeps its parameter-validation machinery and the fit context
private; every estimator in skvae imports them from here, so that a change in
scikit-learn is mended in one file.
"""

from sklearn.base import _fit_context
from sklearn.utils.validation import _check_feature_names, _check_feature_names_in, _check_n_features
from sklearn.utils._missing import is_scalar_nan
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    MissingValues,
    StrOptions,
    validate_parameter_constraints,
)

__all__ = [
    "Interval",
    "InvalidParameterError",
    "MissingValues",
    "StrOptions",
    "_check_feature_names",
    "_check_feature_names_in",
    "_check_n_features",
    "_fit_context",
    "is_scalar_nan",
    "validate_parameter_constraints",
]
