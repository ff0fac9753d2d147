"""Cell-level explanations: which entries of a row are anomalous.

Planted errors in clean rows, found per cell by skvae's ``score_features``
(log p(x_j | the row's other entries)) and its cell flags, against four peers.
One run, one seed (``--seed``, 0 by default), every method with its library's
defaults.

**Data.** The shared anomaly suite (``<data-dir>/ad/*.npz``) with the split of
``shared/data/README.md``: ``train_test_split(test_size=0.3, stratify=y,
random_state=seed)``, ``StandardScaler`` fitted on the training part; every
method is fitted on the training part, anomalies included, as in
``bench_outliers.py``. And adult (``<data-dir>/tabular/adult.csv``, read by
``tabular_data.load_adult``: int64 and category columns, holes where the file
has ``?``), split 80/20 by ``tabular_data.split``. At most ``--max-rows``
training rows (4,000 by default, which caps magic.gamma's 13,314 and adult's
26,048) are kept, a random subsample; the test part keeps
its labelled inliers (every row for adult), at most ``--max-test-rows``
of them (500 by default), a random subsample.

**Planted errors.** A share ``--corrupt-share`` (one half) of those test rows
is corrupted, the other half stays clean. The corrupted rows are split equally
between the kinds (``swap`` and ``shift``; on adult also ``level``), and in
each kind a share ``--two-cell-share`` (20%) of the rows gets two corrupted
cells, the others one; the columns are drawn uniformly among the row's
eligible observed columns (missing cells are never corrupted; a row with too
few eligible columns stays clean). Values are drawn from the training rows,
so every swapped value is one the methods saw in fit:

- ``swap``: the value of another (training) row of the same column, from the
  opposite tail: if the true value is at or above the column's training
  median, a value at or below its 10th percentile, else one at or above its
  90th, and at least one training standard deviation away from the true value
  (marginally plausible, wrong for this row). Only columns whose 10th and
  90th percentiles differ are eligible (this leaves out constant columns and
  binary columns with a level under 10%; other binary columns get flipped).
- ``shift``: max + u SD (or min - u SD) of the column's training values with
  u ~ U(3, 5), the side at random; columns with no negative training value
  (adult's ages, counts and money) are shifted up only, so that the value
  stays in the column's support; integer columns are rounded. Every
  non-constant column is eligible, binary ones included (a 7 in a 0/1 column
  is an entry error any method should see).
- ``level`` (adult's categorical columns): the level of another training row,
  different from the true one (drawn in proportion to the levels' training
  frequencies).

**Methods.** Each gives every cell of a test row an anomaly score (higher =
more anomalous; missing cells get none) and a boolean flag:

- ``robust z``: |x - median| / scale per column, both from the training rows,
  scale = 1.4826 MAD (where the MAD is 0, the IQR / 1.349, then the SD).
  Categorical columns: the level's tail probability under the training
  frequencies (add-one smoothed; the mass of the levels at most as frequent
  as it), mapped to the |z| with the same two-sided Gaussian tail. Flags:
  |z| > 3.5.
- ``HGB residual`` (a cell-wise regression detector in the spirit of
  Rousseeuw and Van den Bossche's DDC): each column predicted from all the
  others by ``HistGradientBoostingRegressor`` (``HistGradientBoostingClassifier``
  for categorical columns; both with ``categorical_features="from_dtype"`` and
  missing predictors as they are), fitted on a random 80% of the training
  rows; the residual is centred and scaled by the median and robust scale
  (as above) of the residuals on the other 20%, which the model did not see;
  score |z|. Categorical columns: the predicted probability of the true
  level, mapped to |z| by the tail rule above. Flags: |z| > 3.5.
- ``IF SHAP``: ``shap.TreeExplainer`` of ``IsolationForest(random_state=seed)``;
  the score of a column is minus its SHAP value (the forest's output is the
  path length, higher = more normal). Skipped when ``shap`` is not installed.
- ``PyOD AE``: PyOD's ``AutoEncoder(random_state=seed)``; the score of a
  column is its reconstruction error |x_j - x^_j| on PyOD's own standardised
  scale. Skipped when PyOD is not installed.
- ``skvae``: ``VAEOutlierDetector(random_state=seed)``; the score is minus
  ``score_features`` in units of each column's SD, as ``explain`` ranks
  (``score_features + log(feature_scales_)``; the same as ``score_features``
  on the standardised suite, not on adult); the flags are its own cell
  flags, those of ``predict_cells``: the score below the column's
  ``cell_offsets_``, set in fit from the training rows (read from the scores
  already computed, since ``predict_cells`` would compute them again).
- ``skvae (raw)``: minus ``score_features`` as it is, in nats of each
  column's own units; the same flags. It shares skvae's fit and scores.

IF SHAP and PyOD AE read adult through a ``ColumnTransformer``: numbers as
they are with holes filled by the training median, categories one-hot
(holes filled by the most frequent training level); a column's score sums its
one-hot parts (SHAP) or is the root of their summed squared errors (AE); cells
missing in the input get no score. They have no threshold of their own: their
flags are a robust z > 3.5 of the cell score against the training rows'
scores of the same column (median and robust scale as above; one-sided,
high = anomalous). skvae reads adult's DataFrame as it is; robust z and HGB
residual read it column by column.

**Metrics**, per dataset and kind, over the corrupted rows of that kind:

- ``top-1``: share of rows whose highest-scored cell is a corrupted one;
  ``top-3``: share of rows with a corrupted cell among their three
  highest-scored cells (ties broken by a fixed random order of the cells,
  the same for every method; a method that cannot tell cells apart scores the
  chance level);
- ``AUROC``, ``AP``: ``roc_auc_score`` and ``average_precision_score`` of the
  cell scores against the truth mask, over the observed cells of those rows
  (infinite scores clipped to the largest float);
- ``precision``, ``recall``: of the flags over the same cells;
- ``clean flagged`` (per method, over all kinds): the share of the cells of the
  clean test rows that are flagged, the false-alarm rate on untouched data.

The summary averages over datasets (adult counts as one; ``level`` is adult
only). Times: ``fit`` includes everything computed on training rows (the
reference scores of the flag rules); ``explain`` is scoring and flagging the
test rows, both summed over datasets. The peers run with one OpenMP, BLAS
and torch thread (``--peer-threads``): on 2 shared cores a second thread made
PyOD's AutoEncoder and the gradient boosting 10 to 30 times slower, and their
small models gain little from it on an idle machine; skvae sets its own
threads.

About 11 minutes on 2 shared CPU cores, most of it skvae's fit and
``score_features`` (n_features + 1 row scores per row). Usage::

    pip install ".[benchmark]" shap   # PyOD and shap, for the optional peers
    PYTHONPATH=. python benchmarks/bench_explain.py --data-dir ../shared/data
    PYTHONPATH=. python benchmarks/bench_explain.py --datasets glass wine adult \\
        --max-rows 1000 --max-test-rows 200 --methods "robust z" skvae
"""

import argparse
import contextlib
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor, IsolationForest
from sklearn.impute import SimpleImputer
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tabular_data import load_adult, split as split_adult  # noqa: E402

Z_FLAG = 3.5
SUITE_KINDS = ("swap", "shift")
ADULT_KINDS = ("swap", "shift", "level")
METRICS = ("top1", "top3", "auroc", "ap", "precision", "recall")
LABELS = {"top1": "top-1", "top3": "top-3", "auroc": "AUROC", "ap": "AP", "precision": "precision", "recall": "recall"}

# ---------------------------------------------------------------- data


def _cap(df, n, rng):
    """At most ``n`` rows of ``df``, a random subsample, index reset."""
    if n is not None and len(df) > n:
        df = df.iloc[np.sort(rng.choice(len(df), n, replace=False))]
    return df.reset_index(drop=True)


def load_suite(data_dir, name, seed, max_rows, max_test_rows):
    """The suite's protocol split, scaled; training rows (anomalies included) and test inliers."""
    data = np.load(Path(data_dir) / "ad" / f"{name}.npz")
    X_train, X_test, _, y_test = train_test_split(
        data["X"], data["y"], test_size=0.3, stratify=data["y"], random_state=seed
    )
    scaler = StandardScaler().fit(X_train)
    columns = [f"x{j}" for j in range(X_train.shape[1])]
    train = pd.DataFrame(scaler.transform(X_train), columns=columns)
    test = pd.DataFrame(scaler.transform(X_test[y_test == 0]), columns=columns)
    rng = np.random.default_rng(seed)
    return _cap(train, max_rows, rng), _cap(test, max_test_rows, rng)


def load_adult_parts(data_dir, seed, max_rows, max_test_rows):
    """adult as read by ``tabular_data``, split 80/20, both parts capped."""
    train, test = split_adult(load_adult(data_dir), seed)
    rng = np.random.default_rng(seed)
    return _cap(train, max_rows, rng), _cap(test, max_test_rows, rng)


def _is_categorical(series):
    return isinstance(series.dtype, pd.CategoricalDtype)


def _eligible(train, kind):
    """Column name -> True when cells of this column can be corrupted this way."""
    out = {}
    for name in train.columns:
        column = train[name].dropna()
        if kind == "level":
            out[name] = _is_categorical(column) and column.nunique() >= 2
        elif _is_categorical(column):
            out[name] = False
        elif kind == "swap":
            low, high = np.percentile(column, [10, 90])
            out[name] = low < high
        else:
            out[name] = column.std() > 0
    return out


def _corrupt_value(train, name, value, kind, rng):
    """A corrupted value for one cell whose true value is ``value``, or None when there is none."""
    column = train[name].dropna()
    if kind == "level":
        donors = column[column != value].to_numpy()
        return rng.choice(donors) if len(donors) else None
    values = column.to_numpy(dtype=float)
    sd = values.std()
    if kind == "swap":
        low, median, high = np.percentile(values, [10, 50, 90])
        tail = values <= low if value >= median else values >= high
        donors = values[tail & (np.abs(values - value) >= sd)]
        return rng.choice(donors) if len(donors) else None
    up = values.min() >= 0 or rng.uniform() < 0.5
    shifted = values.max() + rng.uniform(3, 5) * sd if up else values.min() - rng.uniform(3, 5) * sd
    return round(shifted) if pd.api.types.is_integer_dtype(train[name].dtype) else shifted


def plant_cells(train, test, kinds, corrupt_share, two_cell_share, rng):
    """Corrupt cells of a share of ``test``'s rows (see the module docstring).

    Returns
    -------
    corrupted : pandas.DataFrame
    truth : ndarray of bool, shape (n_rows, n_columns)
        True at the corrupted cells.
    row_kind : ndarray of str
        Each row's kind, ``""`` for clean rows.
    """
    corrupted, truth = test.copy(), np.zeros(test.shape, dtype=bool)
    row_kind = np.full(len(test), "", dtype=object)
    order = rng.permutation(len(test))[: round(corrupt_share * len(test))]
    columns = list(test.columns)
    for kind, rows in zip(kinds, np.array_split(order, len(kinds)), strict=True):
        eligible = _eligible(train, kind)
        n_two = round(two_cell_share * len(rows))
        for position, row in enumerate(rows):
            wanted = 2 if position < n_two else 1
            candidates = [j for j, name in enumerate(columns) if eligible[name] and pd.notna(test.iat[row, j])]
            planted = []
            for j in rng.permutation(candidates):
                new = _corrupt_value(train, columns[j], test.iat[row, j], kind, rng)
                if new is not None:
                    planted.append((j, new))
                if len(planted) == wanted:
                    break
            if len(planted) < wanted:
                continue
            for j, new in planted:
                corrupted.iat[row, j] = new
                truth[row, j] = True
            row_kind[row] = kind
    return corrupted, truth, row_kind


# ---------------------------------------------------------------- methods


def _robust_scale(values):
    """1.4826 MAD of the finite values; the IQR / 1.349 where that is 0, then the SD, then 1."""
    values = values[np.isfinite(values)]
    mad = 1.4826 * np.median(np.abs(values - np.median(values)))
    if mad > 0:
        return mad
    iqr = np.subtract(*np.percentile(values, [75, 25])) / 1.349
    return iqr if iqr > 0 else (values.std() or 1.0)


def _tail_z(probs, true_prob):
    """|z| with the two-sided Gaussian tail of the mass of the levels no more probable than the true one."""
    tail = np.sum(np.where(probs <= true_prob[:, None] * (1 + 1e-9), probs, 0.0), axis=1)
    return stats.norm.isf(np.clip(tail, 1e-300, 1.0) / 2)


class RobustZ:
    """Univariate robust z-score per column (categories: the tail rule)."""

    name = "robust z"

    def fit(self, train):
        self.stats_ = {}
        for name in train.columns:
            column = train[name].dropna()
            if _is_categorical(column):
                counts = column.value_counts().reindex(column.cat.categories, fill_value=0) + 1
                self.stats_[name] = counts / counts.sum()
            else:
                values = column.to_numpy(dtype=float)
                self.stats_[name] = (np.median(values), _robust_scale(values))
        return self

    def explain(self, test):
        z = np.full(test.shape, np.nan)
        for j, (name, fitted) in enumerate(self.stats_.items()):
            observed = test[name].notna().to_numpy()
            column = test[name][observed]
            if isinstance(fitted, pd.Series):
                true_prob = fitted.reindex(column.astype(object)).to_numpy(dtype=float)
                z[observed, j] = _tail_z(np.tile(fitted.to_numpy(), (len(column), 1)), true_prob)
            else:
                z[observed, j] = np.abs(column.to_numpy(dtype=float) - fitted[0]) / fitted[1]
        return z, z > Z_FLAG


class CellRegression:
    """Each column predicted from the others by gradient boosting; standardised residuals."""

    name = "HGB residual"

    def __init__(self, seed):
        self.seed = seed

    def fit(self, train):
        fit_part, scale_part = train_test_split(train, test_size=0.2, random_state=self.seed)
        self.models_ = {}
        for name in train.columns:
            observed = fit_part[name].notna()
            kwargs = dict(random_state=self.seed, categorical_features="from_dtype")
            if _is_categorical(train[name]):
                model = HistGradientBoostingClassifier(**kwargs)
                model.fit(fit_part.drop(columns=name)[observed], fit_part[name][observed].astype(object))
                self.models_[name] = (model, None)
            else:
                model = HistGradientBoostingRegressor(**kwargs)
                model.fit(fit_part.drop(columns=name)[observed], fit_part[name][observed].astype(float))
                held = scale_part[scale_part[name].notna()]
                residual = held[name].to_numpy(dtype=float) - model.predict(held.drop(columns=name))
                self.models_[name] = (model, (np.median(residual), _robust_scale(residual)))
        return self

    def explain(self, test):
        z = np.full(test.shape, np.nan)
        for j, (name, (model, scale)) in enumerate(self.models_.items()):
            observed = test[name].notna().to_numpy()
            rows = test[observed]
            if scale is None:
                probs = model.predict_proba(rows.drop(columns=name))
                index = {level: k for k, level in enumerate(model.classes_)}
                where = np.array([index.get(level, -1) for level in rows[name].astype(object)])
                true_prob = np.where(where >= 0, probs[np.arange(len(rows)), np.maximum(where, 0)], 0.0)
                z[observed, j] = _tail_z(probs, true_prob)
            else:
                residual = rows[name].to_numpy(dtype=float) - model.predict(rows.drop(columns=name))
                z[observed, j] = np.abs(residual - scale[0]) / scale[1]
        return z, z > Z_FLAG


class _Encoded:
    """Numbers as they are (median-filled), categories one-hot (mode-filled); column -> its encoded indices."""

    def fit(self, train):
        numeric = [name for name in train.columns if not _is_categorical(train[name])]
        categorical = [name for name in train.columns if _is_categorical(train[name])]
        one_hot = OneHotEncoder(
            categories=[list(train[name].cat.categories) for name in categorical],
            handle_unknown="ignore", sparse_output=False,
        )
        self.encoder_ = make_column_transformer(
            (SimpleImputer(strategy="median"), numeric),
            (make_pipeline(SimpleImputer(strategy="most_frequent"), one_hot), categorical),
        ).fit(train)
        sizes = {name: 1 for name in numeric} | {name: len(train[name].cat.categories) for name in categorical}
        ends = np.cumsum([sizes[name] for name in numeric + categorical])
        starts = ends - np.array([sizes[name] for name in numeric + categorical])
        where = dict(zip(numeric + categorical, zip(starts, ends, strict=True), strict=True))
        self.groups_ = [np.arange(*where[name]) for name in train.columns]
        return self

    def transform(self, df):
        return self.encoder_.transform(df).astype(float)

    def per_column(self, values, combine, df):
        """(n, n_encoded) -> (n, n_columns) with ``combine`` over each column's parts, NaN where df is missing."""
        out = np.column_stack([combine(values[:, group]) for group in self.groups_])
        return np.where(df.isna().to_numpy(), np.nan, out)


class _ReferenceFlags:
    """Flags for scores with no threshold: robust z > 3.5 against the training rows' scores, per column."""

    def _set_reference(self, train_scores):
        self.center_ = np.nanmedian(train_scores, axis=0)
        self.scale_ = np.array([_robust_scale(column) for column in train_scores.T])

    def _flags(self, scores):
        return (scores - self.center_) / self.scale_ > Z_FLAG


class IsolationForestSHAP(_ReferenceFlags):
    """Minus the SHAP values (TreeExplainer) of IsolationForest's path length."""

    name = "IF SHAP"
    n_reference = 500

    def __init__(self, seed):
        self.seed = seed

    def fit(self, train):
        import shap

        self.encoded_ = _Encoded().fit(train)
        forest = IsolationForest(random_state=self.seed).fit(self.encoded_.transform(train))
        self.explainer_ = shap.TreeExplainer(forest)
        reference = _cap(train, self.n_reference, np.random.default_rng(self.seed))
        self._set_reference(self._scores(reference))
        return self

    def _scores(self, df):
        phi = self.explainer_.shap_values(self.encoded_.transform(df))
        return -self.encoded_.per_column(phi, lambda part: part.sum(axis=1), df)

    def explain(self, test):
        scores = self._scores(test)
        return scores, self._flags(scores)


class AutoEncoderErrors(_ReferenceFlags):
    """Per-column reconstruction error of PyOD's AutoEncoder, on its standardised scale."""

    name = "PyOD AE"

    def __init__(self, seed):
        self.seed = seed

    def fit(self, train):
        from pyod.models.auto_encoder import AutoEncoder

        self.encoded_ = _Encoded().fit(train)
        self.model_ = AutoEncoder(random_state=self.seed, verbose=0, device="cpu")
        self.model_.fit(self.encoded_.transform(train))
        self._set_reference(self._scores(train))
        return self

    def _scores(self, df):
        import torch

        model = self.model_
        scaled = (self.encoded_.transform(df) - model.X_mean) / (model.X_std + 1e-8)
        model.model.eval()
        with torch.no_grad():
            recon = model.model(torch.as_tensor(scaled, dtype=torch.float32)).numpy()
        squared = (scaled - recon) ** 2
        return self.encoded_.per_column(squared, lambda part: np.sqrt(part.sum(axis=1)), df)

    def explain(self, test):
        scores = self._scores(test)
        return scores, self._flags(scores)


class Skvae:
    """``VAEOutlierDetector``: minus ``score_features``, and its own cell flags."""

    name = "skvae"

    def __init__(self, seed):
        self.seed = seed

    def fit(self, train):
        from skvae import VAEOutlierDetector

        self.mixed_ = any(_is_categorical(train[name]) for name in train.columns)
        self.detector_ = VAEOutlierDetector(random_state=self.seed).fit(self._input(train))
        return self

    def _input(self, df):
        """The DataFrame as it is for mixed tables; the suite as a float array, as in ``bench_outliers.py``."""
        return df if self.mixed_ else df.to_numpy(dtype=float)

    def explain(self, test):
        X = self._input(test)
        log_probs = np.asarray(self.detector_.score_features(X), dtype=float)
        # predict_cells(X) is log_probs < cell_offsets_; calling it would score every row again.
        self.log_probs_ = log_probs
        ranked = log_probs + np.log(self.detector_.feature_scales_)  # explain's ranking
        return -ranked, log_probs < self.detector_.cell_offsets_


class SkvaeRaw:
    """skvae's ``score_features`` in each column's own units; skvae's flags.

    Shares the fit and the scores of a ``Skvae`` that ran before it.
    """

    name = "skvae (raw)"

    def __init__(self, skvae):
        self.skvae = skvae

    def fit(self, train):
        return self

    def explain(self, test):
        log_probs = self.skvae.log_probs_
        return -log_probs, log_probs < self.skvae.detector_.cell_offsets_


def _installed(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def methods(seed, names=None):
    """name -> unfitted method; the optional peers only when their package is installed."""
    found = {"robust z": RobustZ(), "HGB residual": CellRegression(seed)}
    if _installed("shap"):
        found["IF SHAP"] = IsolationForestSHAP(seed)
    if _installed("pyod"):
        found["PyOD AE"] = AutoEncoderErrors(seed)
    found["skvae"] = Skvae(seed)
    found["skvae (raw)"] = SkvaeRaw(found["skvae"])
    if names is None:
        return found
    unknown = set(names) - set(found)
    if unknown:
        raise ValueError(f"Unknown or unavailable methods {sorted(unknown)}; choose from {sorted(found)}.")
    if "skvae (raw)" in names and "skvae" not in names:
        names = [*names, "skvae"]
    return {name: found[name] for name in found if name in names}


# ---------------------------------------------------------------- metrics


def localisation(anomaly, truth, tiebreak, k):
    """Share of rows with a true cell among their ``k`` highest-scored cells (NaN cells last)."""
    primary = np.where(np.isnan(anomaly), -np.inf, anomaly)
    order = np.lexsort((tiebreak, -primary))[:, :k]
    return float(np.mean(np.take_along_axis(truth, order, axis=1).any(axis=1)))


def score_kind(anomaly, flags, truth, tiebreak):
    """The metrics of one method over the rows of one kind."""
    observed = ~np.isnan(anomaly)
    cells = np.nan_to_num(anomaly[observed], posinf=np.finfo(float).max, neginf=-np.finfo(float).max)
    labels, flagged = truth[observed], flags[observed]
    return {
        "top1": localisation(anomaly, truth, tiebreak, 1),
        "top3": localisation(anomaly, truth, tiebreak, 3),
        "auroc": roc_auc_score(labels, cells),
        "ap": average_precision_score(labels, cells),
        "precision": float(flagged[labels].sum() / max(flagged.sum(), 1)),
        "recall": float(flagged[labels].mean()),
    }


@contextlib.contextmanager
def _threads(n):
    """At most ``n`` OpenMP/BLAS and torch threads inside the block (no limit for None)."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(before)


def evaluate(train, test, kinds, found, args, rng):
    """method -> {kind -> metrics, "clean": flagged share, "fit_s", "explain_s"}; and the rows per kind."""
    corrupted, truth, row_kind = plant_cells(train, test, kinds, args.corrupt_share, args.two_cell_share, rng)
    tiebreak = rng.uniform(size=truth.shape)
    clean = row_kind == ""
    out = {}
    for name, method in found.items():
        start = time.perf_counter()
        with warnings.catch_warnings(), _threads(None if name == "skvae" else args.peer_threads):
            warnings.simplefilter("ignore")
            method.fit(train)
            fitted = time.perf_counter()
            anomaly, flags = method.explain(corrupted)
        explained = time.perf_counter()
        anomaly, flags = np.asarray(anomaly, dtype=float), np.asarray(flags, dtype=bool)
        flags = flags & ~np.isnan(anomaly)
        row = {"fit_s": fitted - start, "explain_s": explained - fitted}
        for kind in kinds:
            rows = row_kind == kind
            row[kind] = score_kind(anomaly[rows], flags[rows], truth[rows], tiebreak[rows])
        row["clean"] = float(flags[clean].sum() / max((~np.isnan(anomaly[clean])).sum(), 1))
        out[name] = row
    return out, {kind: int((row_kind == kind).sum()) for kind in kinds}


# ---------------------------------------------------------------- tables


def _bold_best(values, fmt):
    """Formatted values, the highest in bold."""
    best = max(values)
    return [f"**{fmt(v)}**" if v == best else fmt(v) for v in values]


def format_datasets(results, counts):
    """Rows: dataset and kind; cells: top-1 (AP), the best top-1 in bold."""
    names = list(next(iter(results.values())))
    lines = ["| dataset | kind | rows | " + " | ".join(names) + " |", "|---|---|---:|" + "---:|" * len(names)]
    for dataset, res in results.items():
        for kind, n in counts[dataset].items():
            top1 = _bold_best([res[m][kind]["top1"] for m in names], lambda v: f"{v:.2f}")
            cells = [f"{t} ({res[m][kind]['ap']:.2f})" for t, m in zip(top1, names, strict=True)]
            lines.append(f"| {dataset} | {kind} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_summary(results):
    """Mean over datasets per kind and method, the best per kind and column in bold."""
    names = list(next(iter(results.values())))
    kinds = [kind for kind in ADULT_KINDS if any(kind in r[names[0]] for r in results.values())]
    lines = [
        "| kind | datasets | method | " + " | ".join(LABELS[m] for m in METRICS) + " |",
        "|---|---:|---|" + "---:|" * len(METRICS),
    ]
    for kind in kinds:
        having = [r for r in results.values() if kind in r[names[0]]]
        means = {m: [np.mean([r[m][kind][key] for r in having]) for key in METRICS] for m in names}
        columns = [_bold_best([means[m][i] for m in names], lambda v: f"{v:.3f}") for i in range(len(METRICS))]
        for row, m in enumerate(names):
            lines.append(f"| {kind} | {len(having)} | {m} | " + " | ".join(c[row] for c in columns) + " |")
    return "\n".join(lines)


def format_times(results):
    """Fit and explain seconds summed over datasets; mean share of clean cells flagged."""
    names = list(next(iter(results.values())))
    lines = ["| method | fit (s) | explain (s) | clean cells flagged |", "|---|---:|---:|---:|"]
    for m in names:
        fit_s, explain_s = (sum(r[m][key] for r in results.values()) for key in ("fit_s", "explain_s"))
        clean = np.mean([r[m]["clean"] for r in results.values()])
        lines.append(f"| {m} | {fit_s:.1f} | {explain_s:.1f} | {clean:.4f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--datasets", nargs="+", help="suite names and/or 'adult' (default: every .npz and adult)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="+", help="method names (default: all available)")
    parser.add_argument("--max-rows", type=int, default=4000, help="cap on training rows (random subsample)")
    parser.add_argument("--max-test-rows", type=int, default=500, help="cap on test inlier rows")
    parser.add_argument("--corrupt-share", type=float, default=0.5, help="share of the test rows corrupted")
    parser.add_argument(
        "--peer-threads", type=int, default=1,
        help="OpenMP/BLAS and torch threads of the peers (skvae sets its own)",
    )
    parser.add_argument("--two-cell-share", type=float, default=0.2, help="share of corrupted rows with two cells")
    args = parser.parse_args(argv)
    names = args.datasets or [*sorted(p.stem for p in (args.data_dir / "ad").glob("*.npz")), "adult"]
    for module, peer in (("shap", "IF SHAP"), ("pyod", "PyOD AE")):
        if not _installed(module):
            print(f"note: {peer} skipped ({module} is not installed)", flush=True)
    start = time.perf_counter()
    results, counts = {}, {}
    for name in names:
        if name == "adult":
            train, test = load_adult_parts(args.data_dir, args.seed, args.max_rows, args.max_test_rows)
            kinds = ADULT_KINDS
        else:
            train, test = load_suite(args.data_dir, name, args.seed, args.max_rows, args.max_test_rows)
            kinds = SUITE_KINDS
        rng = np.random.default_rng(args.seed)
        results[name], counts[name] = evaluate(train, test, kinds, methods(args.seed, args.methods), args, rng)
        print(f"{name}: done ({time.perf_counter() - start:.0f} s)", flush=True)
    print()
    print(format_datasets(results, counts))
    print()
    print(format_summary(results))
    print()
    print(format_times(results))
    print(
        f"\nseed {args.seed}; at most {args.max_rows} training and {args.max_test_rows} test rows; "
        f"{args.corrupt_share:.0%} of test rows corrupted, {args.two_cell_share:.0%} of those in two cells; "
        f"cells: top-1 (AP); total {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
