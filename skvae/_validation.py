"""Reading X: the one entry point through which every public method of the estimators takes its rows."""

import numpy as np
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._data import check_in_range, check_support
from ._likelihoods import LIKELIHOODS
from ._sklearn_compat import _check_feature_names, _check_n_features, is_scalar_nan
from ._tabular import TableSchema


class _ReadsRows:
    """The data-reading half of ``_BaseVAE``: X in, float rows as the model reads them out.

    A subclass says what differs through ``_input_options`` (the value that
    marks a missing entry, whether X is copied) and ``_model_rows`` (the
    columns the model reads, and what fit learns from all of them).
    """

    def _validate_input(self, X, *, reset, all_columns=False):
        """X as float rows, NaN where an entry is missing: the one entry point.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Rows as the user passes them.
        reset : bool
            True in a fit from scratch: the table's schema, ``n_features_in_``
            and ``feature_names_in_`` are learnt from X. False: X is checked
            against them, the estimator must be fitted, and the model's rows
            against the model (its support, a range it can score).
        all_columns : bool, default=False
            Also return the rows of every column, those the model leaves out
            included (``_model_rows``).

        Returns
        -------
        rows : ndarray of shape (n_samples, n_model_columns)
            The rows the model reads; ``(all, rows)`` with ``all_columns``.
        """
        if not reset:
            check_is_fitted(self)
        options = self._input_options()
        missing_values = options.get("missing_values", np.nan)
        nan_marks = is_scalar_nan(missing_values)
        X = self._read_table(
            X, reset=reset, ensure_all_finite="allow-nan" if nan_marks else True, copy=options.get("copy", False)
        )
        if not nan_marks:
            table = self._schema()
            if table is not None and not table.plain:
                raise ValueError(
                    "A table with categorical or integer columns marks its missing entries as pandas "
                    f"does (NaN, None, pd.NA); set missing_values=np.nan, got {missing_values!r}."
                )
            X[X == missing_values] = np.nan
        rows = self._model_rows(X, reset=reset)
        if not reset:
            self._check_fitted_data(rows)
        return (X, rows) if all_columns else rows

    def _input_options(self):
        """What differs in reading X: ``missing_values`` (besides NaN; X is then copied) and ``copy``."""
        return {}

    def _model_rows(self, X, *, reset):
        """The columns of X the model reads (all of them here); at fit, what a subclass learns from X."""
        return X

    def _read_table(self, X, *, reset, ensure_all_finite, copy):
        """X as float rows: a mixed table's codes (``_tabular``), or ``validate_data``'s array.

        At fit (``reset``) the table's ``TableSchema`` is inferred and kept in
        ``_table``: None for an array without ``categorical_features``, whose
        path is unchanged.
        """
        if reset:
            self._table = TableSchema.infer(X, self.categorical_features, type(self).__name__)
        table = self._schema()
        if table is None or table.plain:
            return validate_data(
                self, X, dtype=[np.float64, np.float32], ensure_all_finite=ensure_all_finite, reset=reset, copy=copy
            )
        _check_feature_names(self, X, reset=reset)
        _check_n_features(self, X, reset=reset)
        codes = table.encode(
            X, handle_unknown="error" if reset else self.handle_unknown, where="fit" if reset else "transform"
        )
        return check_array(codes, dtype=np.float64, ensure_all_finite="allow-nan")

    def _schema(self):
        """The fitted table's ``TableSchema``, or None (fitted on an array without categories)."""
        return getattr(self, "_table", None)

    def _model_table(self):
        """The schema of the columns the model reads (a subclass may drop some)."""
        return self._schema()

    def _as_table(self, codes, index=None):
        """Model output (codes) as the user's table: a DataFrame when fitted on one, else the array."""
        table = self._model_table()
        return codes if table is None else table.decode(codes, index)

    def _check_fitted_data(self, X):
        """Checks of X against the fitted model: its support, and a range it can score."""
        module = self.net_.module_
        likelihood = module.arguments["likelihood"]
        check_support(X, likelihood, LIKELIHOODS[likelihood].support, *module.data_map.bounds())
        check_in_range(module, X, self.net_.device)
