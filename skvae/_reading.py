"""How an estimator reads the user's rows and gives model output back in the user's form.

``_ReadingMixin`` holds the methods that turn X (an array or a pandas
DataFrame of mixed columns) into the float rows the model takes, checked
against what was seen in fit, and the model's output back into a table.
"""

import numpy as np
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._data import check_in_range, check_support
from ._likelihoods import LIKELIHOODS
from ._sklearn_compat import _check_feature_names, _check_n_features
from ._tabular import TableSchema


class _ReadingMixin:
    """Reading of the rows an estimator is given; a base of ``_BaseVAE``.

    A subclass may read fewer columns into the model (``_validate_rows``,
    ``_model_table``), as the imputer does.
    """

    def _validate_rows(self, X, *, reset):
        """X as the model takes it: float rows, NaN where an entry is missing."""
        return self._read_table(X, reset=reset)

    def _read_table(self, X, *, reset, ensure_all_finite="allow-nan", copy=False):
        """X as float rows: a mixed table's codes (``_tabular``), or ``validate_data``'s array.

        At fit (``reset``) the table's schema is inferred and kept in
        ``_table``: None for an array without ``categorical_features``, whose
        path is unchanged.
        """
        if reset:
            table = TableSchema.infer(X, self.categorical_features, type(self).__name__)
            self._table = None if table is None else table.to_dict()
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
        table = getattr(self, "_table", None)
        return None if table is None else TableSchema(**table)

    def _model_table(self):
        """The schema of the columns the model reads (a subclass may drop some)."""
        return self._schema()

    def _as_table(self, codes, index=None):
        """Model output (codes) as the user's table: a DataFrame when fitted on one, else the array."""
        table = self._model_table()
        return codes if table is None else table.decode(codes, index)

    def _validate_fitted(self, X):
        check_is_fitted(self)
        X = self._validate_rows(X, reset=False)
        self._check_fitted_data(X)
        return X

    def _check_fitted_data(self, X):
        """Checks of X against the fitted model: its support, and a range it can score."""
        module = self.net_.module_
        likelihood = module.arguments["likelihood"]
        check_support(X, likelihood, LIKELIHOODS[likelihood].support, *module.data_map.bounds())
        check_in_range(module, X, self.net_.device)

