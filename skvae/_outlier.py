"""VAEOutlierDetector: anomaly detection by the log-density of a VAE."""

from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin

from ._base import _BaseVAE
from ._arrays import STREAM_ELEMENTS
from ._data import missing_counts
from ._docstrings import compose
from ._explain import _ExplainsRows, cell_thresholds, column_scores, feature_scales, reference_column_scores
from ._params import Parameter, constraints, parameters, shared_arguments
from ._persistence import register
from ._sklearn_compat import Interval, StrOptions

# Training rows kept to put the scores of incomplete rows on the scale of
# complete ones (see Notes).
_REFERENCE_ROWS = 256

_CONTAMINATION = Parameter(
    "contamination", "auto", [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
    "'auto' or float", """\
How ``offset_`` is set from the training scores. A float in (0, 0.5]:
the expected share of outliers, as in IsolationForest. ``'auto'``: Otsu's
split of the scores into the two groups most apart (lowest 1% clipped),
which flags clean rows too. ``predict_cells`` follows it per column, where
``'auto'`` is Tukey's far-out fence, Q1 - 3 IQR.""",
)

_KL_PENALTY = Parameter(
    "kl_penalty", 0.0, [Interval(Real, 0, None, closed="left")], "float", """\
Weight lambda of the latent code: ``score_samples`` is log p(x) less
lambda KL(q(z|x) || p(z)). 0 scores by the density alone; 6 suits
anomalies of another kind, not corrupted entries (see Notes). Set it
before fit: ``offset_`` comes from the training scores.""",
)

# The detector's own defaults, chosen for anomaly detection (see Notes).
_PARAMETERS = parameters(
    own=[_CONTAMINATION, _KL_PENALTY],
    n_components=8,
    hidden_layer_sizes=(128, 128),
    activation="relu",
    likelihood="gaussian",
    power_transform="auto",
    training_noise=0.05,
    n_training_importance_samples=1,
    learning_rate="constant",
    learning_rate_init=1e-3,
    max_iter=200,
    n_iter_no_change=10,
    ema_decay=0.0,
)


@register
class VAEOutlierDetector(_BaseVAE, _ExplainsRows, OutlierMixin, BaseEstimator):
    __doc__ = compose(
        """Unsupervised anomaly detection with a variational autoencoder.

    Fits a VAE to the training rows, anomalies and all, without labels, and
    scores rows by their estimated log-density (see Notes): the lower, the
    more abnormal. The API is that of
    :class:`~sklearn.ensemble.IsolationForest`: ``score_samples``,
    ``decision_function`` (negative for outliers), ``predict`` (-1 for
    outliers, +1 for inliers) and ``fit_predict``. The model is that of
    :class:`VAEDensityEstimator`, with defaults of its own and a threshold.

{parameters}

    See Also
    --------
    VAEDensityEstimator : The same model as a density estimator.
    sklearn.ensemble.IsolationForest : Isolation-based anomaly detection.
    sklearn.neighbors.LocalOutlierFactor : Local-density anomaly detection.

    Notes
    -----
    The score is a density, not a reconstruction error: log p(x) of the data
    as passed, less ``kl_penalty`` times KL(q(z|x) || p(z)), the nats of the
    row's code. Set ``kl_penalty=6`` when the anomalies are rows of another
    kind (another class or process), whose codes lie apart while the
    decoder's noise absorbs their difference; keep 0 when they are normal
    rows with corrupted entries (user guide, "Anomaly detection").

    The defaults (``power_transform='auto'``, ``training_noise=0.05``, a
    smaller model than the density estimator's, trained on the ELBO) keep
    rows that do not fit, anomalies among the training rows included, from
    dominating the fit; batches have ``min(128, n_samples)`` rows.

    Rows with missing entries score log p(x_obs), which does not compare
    across patterns; ``decision_function`` and ``predict`` map such a score s
    to ``mu + sd * (s - mu_P) / sd_P``: mu and sd are the mean and SD of the
    scores of ``reference_``, mu_P and sd_P those with the row's missing
    features hidden. Complete rows keep their score (user guide, "Missing
    values"). The reference rows' scores with one feature hidden reuse each
    row's proposal and draws: the decoder factorises over the columns, so one
    pass of the draws gives all n_features + 1 scores of a row.

{score_notes}

{references}

    An, J. and Cho, S. (2015). Variational Autoencoder based Anomaly
    Detection using Reconstruction Probability. SNU Data Mining Center.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae import VAEOutlierDetector
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(size=(200, 3)), [[6.0, -6.0, 6.0]]])
    >>> od = VAEOutlierDetector(hidden_layer_sizes=(16,), n_components=2, max_iter=20,
    ...                         contamination=0.01, random_state=0).fit(X)
    >>> od.predict(X[-2:])
    array([ 1, -1])
    >>> bool(od.decision_function(X[-1:])[0] < 0)
    True

    Which entries break the pattern of the rest of their row, and what was
    expected there:

    >>> Y = rng.normal(size=(200, 1)) @ np.ones((1, 3)) + 0.1 * rng.normal(size=(200, 3))
    >>> od = VAEOutlierDetector(hidden_layer_sizes=(16,), n_components=2, max_iter=20,
    ...                         contamination=0.01, random_state=0).fit(Y)
    >>> rows = np.array([[0.5, 0.5, -3.0], [1.0, np.nan, 1.1]])
    >>> int(np.argmin(od.score_features(rows)[0]))
    2
    >>> od.predict_cells(rows)
    array([[False, False,  True],
           [False, False, False]])
    >>> od.explain(rows, n_top=1)[["row", "rank", "column", "value"]]
       row  rank column  value
    0    0     1     x2   -3.0
    1    1     1     x0    1.0

    Flagged entries set missing and imputed (``X.mask(flags)`` for a DataFrame):

    >>> from skvae import VAEImputer
    >>> imputer = VAEImputer(max_iter=5, random_state=0).fit(Y)
    >>> Y_clean = imputer.transform(np.where(od.predict_cells(rows), np.nan, rows))
    >>> bool(np.isnan(Y_clean).any()), bool(Y_clean[0, 2] > -1)
    (False, True)
    """,
        _PARAMETERS,
        own_attributes="""\
offset_ : float
    Threshold on ``score_samples``, in nats: ``decision_function`` is
    ``score_samples - offset_``, and rows below it are outliers.

reference_ : ndarray of shape (n_reference, n_features)
    Up to 256 of the most complete training rows (see Notes).

reference_feature_scores_ : ndarray of shape (n_reference, n_features)
    The scores of ``reference_``'s entries given the rest of their row, NaN
    where missing: the scale of ``explain``'s tail probabilities. As
    ``score_features``, but each row's drops come from its own proposal and
    draws (one pass instead of n_features + 1; see Notes).

cell_offsets_ : ndarray of shape (n_features,)
    Per column, the threshold of ``predict_cells`` on ``score_features``,
    set from ``reference_feature_scores_`` (see ``contamination``; -inf for
    a column no reference row has).

feature_scales_ : ndarray of shape (n_features,)
    The SD of each real and integer column over the training rows (1 for
    categorical columns and constant ones): ``explain`` ranks entries by
    ``score_features + log(feature_scales_)``, free of the columns' units.""",
    )

    _parameters = _PARAMETERS
    _parameter_constraints = constraints(_PARAMETERS)

    def __init__(
        self,
        n_components=8,
        *,
        hidden_layer_sizes=(128, 128),
        activation="relu",
        likelihood="gaussian",
        n_mixture_components=5,
        prior="normal",
        bounds=None,
        power_transform="auto",
        categorical_features="from_dtype",
        discrete_features=None,
        handle_unknown="error",
        beta=1.0,
        training_noise=0.05,
        n_training_importance_samples=1,
        n_importance_samples=100,
        bound="iwae",
        batch_size="auto",
        max_iter=200,
        learning_rate="constant",
        learning_rate_init=1e-3,
        early_stopping="auto",
        validation_fraction=0.1,
        n_iter_no_change=10,
        ema_decay=0.0,
        tol=1e-4,
        contamination="auto",
        kl_penalty=0.0,
        warm_start=False,
        random_state=None,
        device="cpu",
        verbose=0,
        callbacks=None,
    ):
        super().__init__(**shared_arguments(locals()))
        self.contamination = contamination
        self.kl_penalty = kl_penalty

    _saved_attributes = {
        **_BaseVAE._saved_attributes, "offset_": "number", "reference_": "any", "_calibration_": "optional",
        "reference_feature_scores_": "any", "cell_offsets_": "any", "feature_scales_": "any",
    }

    def decision_function(self, X):
        """Shifted log-density, comparable across rows with missing entries; negative for outliers.

        For a complete row, ``score_samples(X) - offset_``. A row with missing
        entries is compared with rows of the same missingness pattern: its
        log p(x_obs) is placed on the scale of complete rows (see Notes).
        With ``kl_penalty`` the score is the penalised one. ``offset_`` was
        set at fit from the training rows' scores with the scoring settings
        of then: after changing ``kl_penalty`` (which moves scores by many
        nats) or ``n_importance_samples``, fit again before relying on the
        sign.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score, as for :meth:`score_samples`.

        Returns
        -------
        decision : ndarray of shape (n_samples,)
            In nats; the lower, the more abnormal; negative values are
            outliers.
        """
        return self._comparable_scores(self._validate_input(X, reset=False)) - self.offset_

    def predict(self, X):
        """Whether each row is an inlier (+1) or an outlier (-1).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to classify.

        Returns
        -------
        is_inlier : ndarray of shape (n_samples,)
            -1 where ``decision_function(X) < 0``, +1 elsewhere.
        """
        return np.where(self.decision_function(X) < 0, -1, 1)

    def _after_fit(self, X):
        """``reference_`` and ``offset_`` from the training rows (of this call's X)."""
        # The most complete rows, drawn at random among equals; X is read in
        # blocks (it may be memory-mapped) and only row-sized arrays are made.
        counts = missing_counts(X)
        n_reference = min(_REFERENCE_ROWS, len(X))
        last = np.partition(counts, n_reference - 1)[n_reference - 1]
        sure = np.flatnonzero(counts < last)
        ties = np.random.default_rng(self._seed).choice(
            np.flatnonzero(counts == last), n_reference - len(sure), replace=False
        )
        self.reference_ = np.asarray(X[np.sort(np.concatenate([sure, ties]))], dtype=np.float64)
        # The reference rows' scores of each entry given the rest (the density
        # alone), from which the cells' thresholds are set.
        full, feature_scores = reference_column_scores(self, self.reference_)
        self.reference_feature_scores_ = feature_scores
        self.cell_offsets_ = cell_thresholds(feature_scores, self._cell_threshold)
        self.feature_scales_ = feature_scales(X, self._schema())
        # The calibration of rows with missing entries, needed here when some
        # training rows have them; without kl_penalty its drops are the
        # reference rows' feature scores (hidden entries drop by 0).
        if not counts.any():
            self._calibration_ = None
        elif self.kl_penalty == 0:
            self._calibration_ = (self._scoring_setting(), full, _drop_matrix(feature_scores))
        else:
            self._calibration_ = (self._scoring_setting(), *self._score_reference())
        self.offset_ = self._threshold(self._comparable_scores(X, counts))

    def _threshold(self, scores):
        """The threshold below which ``contamination`` puts the low scores (see its description)."""
        if self.contamination != "auto":
            return float(np.percentile(scores, 100.0 * self.contamination))
        return _auto_threshold(scores)

    def _cell_threshold(self, scores):
        """A column's threshold for ``predict_cells``: as ``_threshold`` for a float ``contamination``.

        For ``'auto'``, Tukey's far-out fence Q1 - 3 IQR: clean scores have a
        long lower tail (-z^2 / 2 for a Gaussian), which Otsu's split cuts at
        a fifth of the cells; the fence flags 2.6% of Gaussian entries.
        """
        if self.contamination != "auto":
            return self._threshold(scores)
        q1, q3 = np.percentile(scores, [25, 75])
        return float(q1 - 3.0 * (q3 - q1))

    def _comparable_scores(self, X, counts=None):
        """log p(x_obs) of validated rows, those with missing entries put on the complete rows' scale.

        A row of pattern P (its missing features) scores mu + sd * (s - mu_P) / sd_P,
        where mu_P and sd_P are the mean and SD over the reference rows x' of
        log p(x') less the drops of the features in P, and mu, sd those of
        log p(x'): a standardised score within its pattern, in nats of a
        complete row. Complete rows keep their score; rows with nothing
        observed get mu.
        """
        scores = self._log_density(X)
        incomplete = np.flatnonzero(missing_counts(X) if counts is None else counts)
        if not len(incomplete):
            return scores
        full, drops = self._reference_drops()
        rows_per_block = max(1, STREAM_ELEMENTS // len(full))
        for start in range(0, len(incomplete), rows_per_block):
            rows = incomplete[start : start + rows_per_block]
            missing = np.isnan(np.asarray(X[rows]))
            within = full - missing.astype(np.float64) @ drops  # (rows, n_reference)
            spread = within.std(axis=1)
            ratio = np.divide(full.std(), spread, out=np.ones_like(spread), where=spread > 0)
            comparable = full.mean() + ratio * (scores[rows] - within.mean(axis=1))
            comparable[missing.all(axis=1)] = full.mean()
            scores[rows] = comparable
        return scores

    def _reference_drops(self):
        """log p(x') of the reference rows, and how much hiding each feature alone lowers it.

        Returns arrays of shapes (n_reference,) and (n_features, n_reference).
        Those of the scoring setting of fit (``_scoring_parameters``) were
        computed at fit (``_calibration_``) when training rows had missing
        entries; otherwise, or after ``set_params`` changed the setting, they
        are computed for each call, and nothing is kept.
        """
        calibration = self._calibration_
        if calibration is None or calibration[0] != self._scoring_setting():
            return self._score_reference()
        return calibration[1:]

    def _scoring_setting(self):
        return tuple(getattr(self, name) for name in self._scoring_parameters)

    def _score_reference(self):
        """The reference rows' scores and each feature's drops: n_features + 1 scores per row.

        A feature a reference row lacks drops by 0 (its score is unchanged).
        Without ``kl_penalty``, from each row's own proposal (``reference_column_scores``).
        """
        if self.kl_penalty == 0:
            full, drops = reference_column_scores(self, self.reference_)
        else:
            full, drops = column_scores(self._log_density, self.reference_)
        return full, _drop_matrix(drops)

    _scoring_parameters = (*_BaseVAE._scoring_parameters, "kl_penalty")

    def _kl_penalty(self):
        return self.kl_penalty

    @staticmethod
    def _auto_batch_size(n_samples):
        """``min(128, n_samples)``: see Notes."""
        return min(128, n_samples)


def _drop_matrix(drops):
    """Per-row drops (n_reference, n_features), NaN where missing, as (n_features, n_reference), 0 where missing."""
    return np.ascontiguousarray(np.where(np.isnan(drops), 0.0, drops).T)


def _auto_threshold(scores):
    """``offset_`` for ``contamination='auto'``: Otsu's split of the finite scores, the lowest 1% clipped.

    A log-density has no lower bound: one training row thousands of nats down
    would otherwise be the whole lower group and hide every other anomaly.
    Clipped at their 1st percentile, a few such rows (under 1%) weigh as the
    lowest ordinary scores do; they still lie below the threshold. Scores of
    -inf lie below it too. On the anomaly suite the clipping moved the mean F1
    of ``predict`` from 0.275 to 0.279.
    """
    finite = np.isfinite(scores)
    x = np.sort(scores if finite.all() else scores[finite]).astype(np.float64, copy=False)
    if not len(x):
        return -np.inf
    # The 1st percentile (linear interpolation, as np.percentile) of the
    # sorted scores, and the clipping in place: memory stays at one sorted copy.
    at = 0.01 * (len(x) - 1)
    low = int(at)
    floor = x[low] + (x[min(low + 1, len(x) - 1)] - x[low]) * (at - low)
    np.maximum(x, floor, out=x)
    return _two_group_threshold(x)


def _two_group_threshold(x, block=16384):
    """The threshold that splits the sorted scores ``x`` into two groups with the least variance within them.

    Otsu's method on the sorted scores: for each split into the lowest i and
    the rest, the between-group variance w0 w1 (m0 - m1)^2 (equivalently the
    least within-group variance); the threshold is halfway between the two
    scores at the best split, so that the lower group lies strictly below it.
    Equal scores give their common value, below which nothing lies. The splits
    are scanned in blocks, so that memory beyond the sorted copy stays small
    for any number of rows.
    """
    n = len(x)
    if n < 2 or x[0] == x[-1]:
        return float(x[0])
    total, low_sum = x.sum(), 0.0
    best, best_at = -np.inf, 0
    for start in range(0, n - 1, block):
        stop = min(start + block, n - 1)  # splits after rows start .. stop - 1
        low_sums = low_sum + np.cumsum(x[start:stop])
        low_sum = low_sums[-1]
        i = np.arange(start + 1, stop + 1, dtype=np.float64)
        between = (i / n) * (1 - i / n) * (low_sums / i - (total - low_sums) / (n - i)) ** 2
        # Only between distinct scores: a split inside a run of ties is not a split.
        between[x[start + 1 : stop + 1] == x[start:stop]] = -np.inf
        k = int(np.argmax(between))
        if between[k] > best:
            best, best_at = between[k], start + k
    return float((x[best_at] + x[best_at + 1]) / 2)
