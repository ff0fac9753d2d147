"""Why a row is anomalous: the detector's score of each entry given the rest of its row.

With a decoder that factorises over the columns, log p(x_obs) - log p(x_obs
without column j) = log p(x_j | the row's other observed entries): the
surprise of entry j given the others, in nats. Both terms are the detector's
scores, computed with the same draws (common random numbers), so that their
difference is not noise.
"""


import numpy as np
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from . import _inference
from ._arrays import STREAM_ELEMENTS, row_blocks
from ._data import check_count
from ._params import check_scoring_parameters
from ._sklearn_compat import _check_feature_names_in
from ._tabular import CATEGORICAL, is_frame


def column_scores(score, X):
    """Each row's score, and for each observed entry how much hiding it alone lowers the score.

    ``score`` maps validated rows to their scores. Returns arrays of shapes
    (n_samples,) and (n_samples, n_features), the latter NaN where X is
    missing. The rows and their copies with one entry hidden are scored
    together, n_features + 1 scores per row at most, in blocks of about
    ``STREAM_ELEMENTS`` elements; a row's score depends neither on the rows
    scored with it nor on the blocks.
    """
    n_samples, n_features = X.shape
    full = np.empty(n_samples)
    drops = np.full((n_samples, n_features), np.nan)
    per_block = max(1, STREAM_ELEMENTS // ((n_features + 1) * n_features))
    for start in range(0, n_samples, per_block):
        block = np.asarray(X[start : start + per_block], dtype=np.float64)
        rows, columns = np.nonzero(~np.isnan(block))
        hidden = block[rows]
        hidden[np.arange(len(rows)), columns] = np.nan
        scores = score(np.concatenate([block, hidden]))
        full[start : start + len(block)] = scores[: len(block)]
        drops[start + rows, columns] = scores[rows] - scores[len(block) :]
    return full, drops


def log_density(estimator, X):
    """log p(x_obs) of validated rows with the estimator's draws, without ``kl_penalty``."""
    check_scoring_parameters(estimator)
    module, device = estimator.net_.module_, estimator.net_.device
    return _inference.log_marginal(
        module, X, n_draws=estimator.n_importance_samples, seed=estimator._seed, bound=estimator.bound, device=device
    )


def reference_column_scores(estimator, X):
    """``column_scores`` of ``log_density`` for the detector's reference rows, from each row's own proposal.

    The same full scores as ``log_density``; each drop log p(x_j | the rest)
    is estimated from the row's proposal and draws instead of from the
    proposal of the row without x_j: one pass of the draws per row instead of
    n_features + 1 (``VAEModule.column_log_marginals``). On clean rows the
    two agree (median difference 0.00 nats); ``score_features`` keeps the
    hidden row's own proposal, which an anomalous x_j cannot pull.
    """
    check_scoring_parameters(estimator)
    module, device = estimator.net_.module_, estimator.net_.device
    return _inference.column_log_marginals(
        module, np.asarray(X, dtype=np.float64), n_draws=estimator.n_importance_samples, seed=estimator._seed,
        bound=estimator.bound, device=device,
    )


def cell_thresholds(reference_scores, threshold):
    """Per column, ``threshold`` (a function of 1-D scores) of the reference rows' observed scores; -inf if none."""
    thresholds = np.full(reference_scores.shape[1], -np.inf)
    for j, column in enumerate(reference_scores.T):
        observed = column[~np.isnan(column)]
        if len(observed):
            thresholds[j] = threshold(observed)
    return thresholds


def feature_scales(X, table):
    """The SD of each numeric column of X over its observed entries; 1 for categorical or constant columns.

    X (validated rows, possibly memory-mapped) is read in blocks of about
    ``STREAM_ELEMENTS`` elements by scikit-learn's incremental
    ``StandardScaler``, which leaves missing entries out.
    """
    scaler = StandardScaler()
    with np.errstate(invalid="ignore"):
        for block in row_blocks(X, dtype=np.float64):
            scaler.partial_fit(block)
    scales = scaler.scale_.copy()
    if table is not None and not table.plain:
        scales[[kind == CATEGORICAL for kind in table.kinds]] = 1.0
    return np.where(np.isfinite(scales) & (scales > 0), scales, 1.0)


class _ExplainsRows:
    """``score_features``, ``explain`` and ``predict_cells`` of ``VAEOutlierDetector``.

    A mixin of the detector: it reads rows through ``_validate_input`` and
    uses the fitted ``reference_feature_scores_`` and ``cell_offsets_``.
    """

    def score_features(self, X):
        """Score each entry given the rest of its row: log p(x_ij | row i's other observed entries).

        Entry (i, j) is ``log p(x_i,obs) - log p(x_i,obs without x_ij)``
        with the same draws for both, in nats: a log-probability for
        categorical and integer columns, a log-density in data space for
        real ones. The lower, the more surprising the entry. It is the
        density alone: ``kl_penalty`` does not enter. A row costs
        n_features + 1 scores.

        Parameters
        ----------
        X : {array-like, DataFrame, dask array} of shape (n_samples, n_features)
            Rows to explain, as for :meth:`decision_function`.

        Returns
        -------
        scores : ndarray, DataFrame or dask array of shape (n_samples, n_features)
            NaN where the entry is missing. A DataFrame (X's index and
            columns) for a DataFrame; for a dask array, a dask array scored
            block by block (X's row blocks, one block of columns).
        """
        if _is_dask_array(X):
            return self._block_wise(X, self.score_features, np.float64)
        scores = self._feature_scores(self._validate_input(X, reset=False))
        return _like(X, scores)

    def predict_cells(self, X):
        """Flag the entries judged anomalous given the rest of their row.

        An entry is flagged where its :meth:`score_features` lies below its
        column's ``cell_offsets_``, set at fit from the reference rows as
        ``contamination`` sets ``offset_``. Missing entries are never
        flagged.

        Parameters
        ----------
        X : {array-like, DataFrame, dask array} of shape (n_samples, n_features)
            Rows to check, as for :meth:`decision_function`.

        Returns
        -------
        flags : ndarray, DataFrame or dask array of bool, of shape (n_samples, n_features)
            True for an anomalous entry; of X's type, as for
            :meth:`score_features`.

        Notes
        -----
        A boolean mask, not the -1/+1 of :meth:`predict`: it is what
        ``X.mask(flags)`` and ``np.where`` take, so that flagged entries can
        be set missing and imputed (user guide, "Explaining anomalies").
        """
        if _is_dask_array(X):
            return self._block_wise(X, self.predict_cells, bool)
        scores = self._feature_scores(self._validate_input(X, reset=False))
        return _like(X, scores < self.cell_offsets_)

    def explain(self, X, n_top=3):
        """The entries that make each row anomalous, with the values expected there.

        Lists, for each row, its ``n_top`` lowest-scored observed entries,
        lowest first, by :meth:`score_features` in units of each column's
        SD (``score_features + log(feature_scales_)``): a log-density
        depends on the column's units (a column in grams would score
        log(1000) nats below the same column in kilograms), a log-probability
        does not, and the ranking should not either.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Rows to explain, as for :meth:`decision_function`.

        n_top : int, default=3
            How many entries to list per row (all of them if fewer).

        Returns
        -------
        explanation : DataFrame
            One row per input row and rank, with columns ``row`` (X's index
            label for a DataFrame, the position otherwise), ``rank`` (1 for
            the lowest score), ``column`` (X's column name, or ``x0``,
            ``x1``... for an array fitted without names), ``value`` (the
            entry, a level for a categorical column), ``score`` (the
            ranking's score, nats: a log-probability for a categorical
            column, the log-density or mass of the value in units of the
            column's SD otherwise),
            ``expected`` (E[x_j | the row's other entries]: rounded for an
            integer column, the most probable level for a categorical one)
            and ``tail_probability`` (the share of the reference rows whose
            score for that column is at most this one). Missing entries are
            never listed.
        """
        check_is_fitted(self)
        n_top = check_count(n_top, "n_top")
        pd = _pandas()
        rows = self._validate_input(X, reset=False)
        log_probs = self._feature_scores(rows)
        # In units of each column's SD: nats of one column then compare with
        # those of a column measured in other units (a log-density depends on them).
        scores = log_probs + np.log(self.feature_scales_)
        n_samples, n_features = scores.shape
        k = min(n_top, n_features)
        order = np.argsort(np.where(np.isnan(scores), np.inf, scores), axis=1, kind="stable")[:, :k]
        i, j = np.repeat(np.arange(n_samples), k), order.ravel()
        rank = np.tile(np.arange(1, k + 1), n_samples)
        listed = ~np.isnan(scores[i, j])
        i, j, rank = i[listed], j[listed], rank[listed]
        frame = is_frame(X)
        names = np.asarray(list(X.columns) if frame else _check_feature_names_in(self, None), dtype=object)
        return pd.DataFrame({
            "row": np.asarray(X.index)[i] if frame else i,
            "rank": rank,
            "column": names[j],
            "value": self._given_values(X, rows)[i, j],
            "score": scores[i, j],
            "expected": self._expected(rows, i, j),
            "tail_probability": self._tail_probabilities(log_probs[i, j], j),
        })

    # -- helpers ---------------------------------------------------------------------

    def _feature_scores(self, rows):
        """``score_features`` of validated rows, an ndarray."""
        return column_scores(lambda x: log_density(self, x), rows)[1]

    def _block_wise(self, X, method, dtype):
        """``method`` applied to each row block of the dask array X, lazily."""
        check_is_fitted(self)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[-1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        return X.rechunk({1: -1}).map_blocks(method, dtype=dtype, chunks=(X.chunks[0], (X.shape[1],)))

    def _tail_probabilities(self, scores, columns):
        """The share of the reference rows scoring at most ``scores[k]`` in ``columns[k]``; NaN if none scored."""
        out = np.full(len(scores), np.nan)
        for j in np.unique(columns):
            reference = self.reference_feature_scores_[:, j]
            reference = np.sort(reference[~np.isnan(reference)])
            at = columns == j
            if len(reference):
                out[at] = np.searchsorted(reference, scores[at], side="right") / len(reference)
        return out

    def _expected(self, rows, i, j):
        """E[x_j | row i's other entries] for each pair (i[k], j[k]), as ``VAEImputer`` fills a hole."""
        hidden = rows[i]
        hidden[np.arange(len(i)), j] = np.nan
        filled = _inference.impute(
            self.net_.module_, hidden, n_draws=self.n_importance_samples, seed=self._seed, device=self.net_.device
        )[np.arange(len(i)), j]
        table = self._schema()
        if table is None or table.plain:
            return filled
        expected = np.empty(len(i), dtype=object)
        for k, (code, column) in enumerate(zip(filled, j)):
            kind = table.columns[column]["kind"]
            expected[k] = table.columns[column]["levels"][int(code)] if kind == CATEGORICAL else code
        return expected

    def _given_values(self, X, rows):
        """X's entries as given (levels of categorical columns), or the validated rows for plain arrays."""
        table = self._schema()
        if is_frame(X):
            return X.to_numpy(dtype=object)
        if table is None or table.plain:
            return rows
        return np.asarray(X, dtype=object)




def _pandas():
    try:
        import pandas
    except ImportError:  # pragma: no cover - pandas is a test dependency
        raise ImportError("explain returns a pandas DataFrame: install pandas (pip install pandas).") from None
    return pandas


def _like(X, values):
    """``values`` (n_samples, n_features) as a DataFrame with X's index and columns when X is one."""
    if not is_frame(X):
        return values
    return _pandas().DataFrame(values, index=X.index, columns=X.columns)


def _is_dask_array(X):
    """Whether X is a dask array (checked without importing dask)."""
    return type(X).__module__.split(".")[0] == "dask" and hasattr(X, "map_blocks") and hasattr(X, "chunks")
