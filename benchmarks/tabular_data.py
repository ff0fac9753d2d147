"""Mixed-type tables for ``bench_tabular.py``: data, an independent-columns baseline, anomalies.

Three parts:

- **adult**: ``load_adult`` reads ``<data-dir>/tabular/adult.csv`` as the data
  README says (``skipinitialspace=True, na_values="?"``); integer columns stay
  ``int64``, text columns become ``category`` with the levels of the whole
  file, so that a split never meets a level outside its column's category set.
- **a synthetic mixed table with an exact log p(x)** (``make_synthetic``):
  z ~ N(0, I_2) and h(z) = tanh(z A + b) with a fixed random A (2 x 16) and
  b (16) drawn from ``np.random.default_rng(MAP_SEED)``; given z the columns are
  independent:

  - ``num_0``, ``num_1``, ``num_2`` (float64): N(h W_j + c_j, sigma_j^2) with
    sigma = 0.2, 0.3, 0.5, W_j ~ N(0, 0.5^2) per entry, c_j ~ N(0, 1);
  - ``count_poisson`` (int64): Poisson with log rate 1.5 + h w;
  - ``count_negbin`` (int64): negative binomial, mean exp(1.0 + h w), shape r = 3;
  - ``count_sparse`` (int64): negative binomial, mean exp(-1.5 + h w), shape
    r = 0.3: about 83% zeros and a long tail;
  - ``cat_2``, ``cat_3``, ``cat_6`` (category, 2, 3 and 6 levels named
    ``"a"``, ``"b"``, ...): softmax of the logits h W_k, W_k ~ N(0, 0.5^2).

  The count weights w are N(0, 0.25^2) per entry. The exact log p(x) of a row is
  log of the integral over z of N(z; 0, I) times the product of its columns'
  densities (numbers) and probabilities (counts, categories), computed on a
  uniform midpoint grid of ``N_GRID`` x ``N_GRID`` cells over
  [-``HALF_WIDTH``, ``HALF_WIDTH``]^2 (the prior mass outside is below 1e-8);
  ``grid_error`` compares it with a grid 1.5 times as fine. With missing
  entries the product runs over the observed columns only, which is
  log p(x_obs). The missing variant removes each entry independently with
  probability 0.3 (MCAR); its count columns become pandas' nullable ``Int64``
  so that they stay integer columns.
- **helpers**: ``IndependentColumns`` (each column's own tuned 1-D model) and
  ``plant_anomalies`` (rows of adult corrupted in four documented ways).
"""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, special, stats
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KernelDensity

# ---------------------------------------------------------------- adult


def load_adult(data_dir, max_rows=None, seed=0):
    """The adult table with ``int64`` and ``category`` columns.

    Parameters
    ----------
    data_dir : str or Path
        Folder holding ``tabular/adult.csv``.
    max_rows : int, optional
        Keep a random subsample of this many rows (``random_state=seed``).
    seed : int
        Seed of the subsample.

    Returns
    -------
    pandas.DataFrame
        32,561 rows (or ``max_rows``), 15 columns; ``?`` read as missing.
    """
    df = pd.read_csv(Path(data_dir) / "tabular" / "adult.csv", skipinitialspace=True, na_values="?")
    for column in df.select_dtypes(object).columns:
        df[column] = df[column].astype(pd.CategoricalDtype(sorted(df[column].dropna().unique())))
    if max_rows is not None and len(df) > max_rows:
        df = df.sample(max_rows, random_state=seed)
    return df.reset_index(drop=True)


def split(df, seed, test_size=0.2):
    """Random train/test split of the rows, indices reset.

    Parameters
    ----------
    df : pandas.DataFrame
    seed : int
    test_size : float

    Returns
    -------
    train, test : pandas.DataFrame
    """
    train, test = train_test_split(df, test_size=test_size, random_state=seed)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def categories(series):
    """The category set of a categorical column (sorted values when it has no dtype categories)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return list(series.cat.categories)
    return sorted(series.dropna().unique())


def column_kind(series):
    """``"categorical"``, ``"integer"`` or ``"continuous"``, from the dtype of ``series``."""
    if isinstance(series.dtype, pd.CategoricalDtype) or series.dtype in (bool, object):
        return "categorical"
    if pd.api.types.is_integer_dtype(series.dtype):
        return "integer"
    return "continuous"


# ---------------------------------------------------------------- synthetic table

MAP_SEED = 20261124
N_HIDDEN = 16
NUMERIC_NOISE = {"num_0": 0.2, "num_1": 0.3, "num_2": 0.5}
# name: (family, negative binomial shape r or None for Poisson, log-mean offset)
COUNTS = {
    "count_poisson": ("poisson", None, 1.5),
    "count_negbin": ("negbin", 3.0, 1.0),
    "count_sparse": ("negbin", 0.3, -1.5),
}
LEVELS = {"cat_2": 2, "cat_3": 3, "cat_6": 6}
N_GRID = 240
HALF_WIDTH = 6.0


def synthetic_maps():
    """The fixed random maps of the synthetic table (drawn from ``MAP_SEED``).

    Returns
    -------
    dict
        ``A`` (2, 16), ``b`` (16,), and per column its weights and offsets.
    """
    rng = np.random.default_rng(MAP_SEED)
    maps = {"A": rng.normal(0, 1.5, (2, N_HIDDEN)), "b": rng.normal(0, 1, N_HIDDEN)}
    for name in NUMERIC_NOISE:
        maps[name] = (rng.normal(0, 0.5, N_HIDDEN), rng.normal(0, 1))
    for name, (_, _, offset) in COUNTS.items():
        maps[name] = (rng.normal(0, 0.25, N_HIDDEN), offset)
    for name, k in LEVELS.items():
        maps[name] = rng.normal(0, 0.5, (N_HIDDEN, k))
    return maps


def column_parameters(maps, z):
    """Each column's parameters given z: numeric means, log count means, level log-probabilities.

    Parameters
    ----------
    maps : dict
        From ``synthetic_maps``.
    z : ndarray of shape (n, 2)

    Returns
    -------
    dict
        name -> array of shape (n,) (numeric, counts) or (n, levels) (categories).
    """
    h = np.tanh(z @ maps["A"] + maps["b"])
    params = {}
    for name in [*NUMERIC_NOISE, *COUNTS]:
        weights, offset = maps[name]
        params[name] = h @ weights + offset
    for name in LEVELS:
        params[name] = special.log_softmax(h @ maps[name], axis=1)
    return params


def _draw(name, param, rng):
    """One column's values given its parameters at each row's z."""
    if name in NUMERIC_NOISE:
        return param + NUMERIC_NOISE[name] * rng.standard_normal(len(param))
    if name in COUNTS:
        family, r, _ = COUNTS[name]
        mean = np.exp(param)
        return rng.poisson(mean) if family == "poisson" else rng.negative_binomial(r, r / (r + mean))
    u = rng.uniform(size=(len(param), 1))
    return (np.cumsum(np.exp(param), axis=1) < u).sum(axis=1).clip(max=param.shape[1] - 1)


def sample_synthetic(n_rows, rng, maps=None):
    """Rows of the synthetic table.

    Parameters
    ----------
    n_rows : int
    rng : numpy.random.Generator
    maps : dict, optional
        From ``synthetic_maps`` (built when None).

    Returns
    -------
    pandas.DataFrame
        float64, int64 and category columns, no missing entries.
    """
    maps = synthetic_maps() if maps is None else maps
    params = column_parameters(maps, rng.standard_normal((n_rows, 2)))
    columns = {}
    for name, param in params.items():
        values = _draw(name, param, rng)
        if name in LEVELS:
            levels = [chr(ord("a") + i) for i in range(LEVELS[name])]
            values = pd.Categorical.from_codes(values, categories=levels)
        columns[name] = values
    return pd.DataFrame(columns).astype({name: "int64" for name in COUNTS})


def mcar(df, rate, rng):
    """Remove each entry independently with probability ``rate``.

    Integer columns become pandas' nullable ``Int64``, so they stay integers.

    Parameters
    ----------
    df : pandas.DataFrame
    rate : float
    rng : numpy.random.Generator

    Returns
    -------
    pandas.DataFrame
    """
    out = df.copy()
    for column in out.columns:
        if column_kind(out[column]) == "integer":
            out[column] = out[column].astype("Int64")
        out.loc[rng.uniform(size=len(out)) < rate, column] = None
    return out


def _column_log_lik(name, values, param):
    """log p(value | z) of one column, rows x grid points; 0 where the value is missing."""
    observed = ~np.isnan(values)
    x = np.where(observed, values, 0.0)[:, None]
    if name in NUMERIC_NOISE:
        sigma = NUMERIC_NOISE[name]
        out = -0.5 * ((x - param) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
    elif name in LEVELS:
        out = param[:, np.where(observed, values, 0).astype(int)].T
    elif COUNTS[name][0] == "poisson":
        out = x * param - np.exp(param) - special.gammaln(x + 1)
    else:
        r = COUNTS[name][1]
        log_r_mu = np.logaddexp(np.log(r), param)
        out = special.gammaln(x + r) - special.gammaln(r) - special.gammaln(x + 1)
        out = out + r * (np.log(r) - log_r_mu) + x * (param - log_r_mu)
    return np.where(observed[:, None], out, 0.0)


def _as_float(df):
    """Column name -> float array (category codes for categories), NaN where missing."""
    out = {}
    for name in df.columns:
        column = df[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes = column.cat.codes.to_numpy().astype(float)
            out[name] = np.where(codes < 0, np.nan, codes)
        else:
            out[name] = column.to_numpy(dtype=float, na_value=np.nan)
    return out


def exact_log_prob(df, n_grid=N_GRID, half_width=HALF_WIDTH, maps=None):
    """Exact log p(x_obs) of each row of the synthetic table, in nats, by quadrature over z.

    Parameters
    ----------
    df : pandas.DataFrame
        Rows of the synthetic table (missing entries allowed).
    n_grid : int
        Midpoint cells per latent axis.
    half_width : float
        The grid covers [-half_width, half_width]^2.
    maps : dict, optional

    Returns
    -------
    ndarray of shape (n_rows,)
    """
    maps = synthetic_maps() if maps is None else maps
    axis = -half_width + (np.arange(n_grid) + 0.5) * (2 * half_width / n_grid)
    z = np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)
    log_weight = stats.norm.logpdf(z).sum(axis=1) + 2 * np.log(2 * half_width / n_grid)
    params = column_parameters(maps, z)
    values = _as_float(df)
    chunk = max(1, 2**21 // len(z))
    out = np.empty(len(df))
    for start in range(0, len(df), chunk):
        rows = slice(start, start + chunk)
        total = sum(_column_log_lik(name, values[name][rows], params[name]) for name in df.columns)
        out[rows] = special.logsumexp(total + log_weight, axis=1)
    return out


def grid_error(df, n_grid=N_GRID, factor=1.5):
    """Largest |difference| of ``exact_log_prob`` between the grid and one ``factor`` times finer.

    Parameters
    ----------
    df : pandas.DataFrame
    n_grid : int
    factor : float

    Returns
    -------
    float
        In nats; the grid is accurate to about this much.
    """
    coarse = exact_log_prob(df, n_grid)
    fine = exact_log_prob(df, int(round(n_grid * factor)))
    return float(np.max(np.abs(coarse - fine)))


def make_synthetic(n_rows=10_000, seed=0, missing_rate=0.0, test_size=0.2):
    """The synthetic mixed table, split, with the exact log p(x_obs) of the test rows.

    The rows depend on (n_rows, seed) only; the missing entries come from a
    separate stream, so the variant with holes has the same rows as the
    complete one.

    Parameters
    ----------
    n_rows : int
        Rows in all (train + test).
    seed : int
    missing_rate : float
        Probability that an entry is removed (MCAR).
    test_size : float

    Returns
    -------
    train, test : pandas.DataFrame
    log_p_test : ndarray
        Exact log p(x_obs) of each test row, nats.
    """
    df = sample_synthetic(n_rows, np.random.default_rng(seed))
    if missing_rate > 0:
        df = mcar(df, missing_rate, np.random.default_rng([seed, 1]))
    n_test = int(round(test_size * n_rows))
    train, test = df.iloc[n_test:].reset_index(drop=True), df.iloc[:n_test].reset_index(drop=True)
    return train, test, exact_log_prob(test)


# ---------------------------------------------------------------- 1-D models


def _log_interval(mean, std, low, high):
    """log(Phi((high - mean) / std) - Phi((low - mean) / std)), stable in both tails."""
    a, b = (low - mean) / std, (high - mean) / std
    flip = a > 0
    a, b = np.where(flip, -b, a), np.where(flip, -a, b)
    log_b, log_a = special.log_ndtr(b), special.log_ndtr(a)
    return log_b + np.log1p(-np.exp(np.minimum(log_a - log_b, 0.0)))


class Frequencies:
    """Category frequencies with add-one smoothing over the column's category set."""

    def fit(self, x, categories):
        counts = pd.Series(pd.Categorical(x, categories=categories)).value_counts(sort=False)
        self.log_p_ = dict(
            zip(categories, np.log((counts.to_numpy() + 1) / (len(x) + len(categories))), strict=True)
        )
        self.name = "frequencies (add-one)"
        return self

    def log_prob(self, x):
        return np.array([self.log_p_[value] for value in x])


_MIXTURES = {}


def _bic_mixture(t, max_components, seed):
    """1-D GaussianMixture with the number of components chosen by BIC (cached per data)."""
    key = (hashlib.sha1(t.tobytes()).hexdigest(), max_components, seed)
    if key not in _MIXTURES:
        t = t.reshape(-1, 1)
        fits = [GaussianMixture(k, random_state=seed).fit(t) for k in range(1, max_components + 1)]
        if len(_MIXTURES) > 16:
            _MIXTURES.clear()
        _MIXTURES[key] = min(fits, key=lambda gm: gm.bic(t))
    return _MIXTURES[key]


class Mixture:
    """Continuous density: 1-D GaussianMixture, components by BIC."""

    def __init__(self, max_components=8, seed=0):
        self.max_components, self.seed = max_components, seed

    def fit(self, x):
        self.gm_ = _bic_mixture(x, self.max_components, self.seed)
        self.name = f"GaussianMixture (k={self.gm_.n_components}, BIC)"
        return self

    def log_prob(self, x):
        return self.gm_.score_samples(x.reshape(-1, 1))


class Kernel:
    """Continuous density: KernelDensity, bandwidth by 3-fold cross-validation.

    ``rtol=1e-4`` (densities within a relative 1e-4, i.e. 1e-4 nats) keeps
    the tree search fast on tens of thousands of rows.
    """

    def fit(self, x):
        scott = 1.06 * x.std() * len(x) ** -0.2 + 1e-12
        grid = {"bandwidth": scott * 2.0 ** np.arange(-3, 2)}
        search = GridSearchCV(KernelDensity(rtol=1e-4), grid, cv=3)
        self.kde_ = search.fit(x.reshape(-1, 1)).best_estimator_
        self.name = f"KernelDensity (bandwidth={self.kde_.bandwidth:.3g}, CV)"
        return self

    def log_prob(self, x):
        return self.kde_.score_samples(x.reshape(-1, 1))


class DiscretisedMixture:
    """Integer mass: a GaussianMixture density integrated over [x - 1/2, x + 1/2].

    The mixture (components by BIC) lives on t = log(x + 1) when the training
    values are non-negative (skewed counts, money), else on x.
    """

    def __init__(self, max_components=8, seed=0):
        self.max_components, self.seed = max_components, seed

    def _t(self, x):
        return np.log(np.maximum(x + 1.0, 1e-300)) if self.log_scale_ else x

    def fit(self, x):
        self.log_scale_ = x.min() >= 0
        self.gm_ = _bic_mixture(self._t(x.astype(float)), self.max_components, self.seed)
        scale = "log(x+1)" if self.log_scale_ else "x"
        self.name = f"discretised GaussianMixture on {scale} (k={self.gm_.n_components})"
        return self

    def log_prob(self, x):
        gm = self.gm_
        low, high = self._t(x[:, None] - 0.5), self._t(x[:, None] + 0.5)
        std = np.sqrt(gm.covariances_.reshape(1, -1))
        per = _log_interval(gm.means_.reshape(1, -1), std, low, high) + np.log(gm.weights_)
        return np.maximum(special.logsumexp(per, axis=1), np.log(1e-300))


class SmoothedEmpirical:
    """Integer mass: empirical frequencies mixed with weight w with a ``DiscretisedMixture``."""

    def __init__(self, weight, seed=0):
        self.weight, self.seed = weight, seed

    def fit(self, x):
        values, counts = np.unique(x, return_counts=True)
        self.freq_ = dict(zip(values.tolist(), counts / len(x), strict=True))
        self.smooth_ = DiscretisedMixture(seed=self.seed).fit(x)
        self.name = f"empirical + {self.weight:g} x discretised GaussianMixture"
        return self

    def log_prob(self, x):
        freq = np.array([self.freq_.get(value, 0.0) for value in x.tolist()])
        return np.log((1 - self.weight) * freq + self.weight * np.exp(self.smooth_.log_prob(x)))


class Poisson:
    """Integer mass: Poisson with the sample mean."""

    def fit(self, x):
        self.mean_ = max(x.mean(), 1e-6)
        self.name = f"Poisson (mean={self.mean_:.3g})"
        return self

    def log_prob(self, x):
        return np.maximum(stats.poisson.logpmf(x, self.mean_), np.log(1e-300))


class NegativeBinomial:
    """Integer mass: negative binomial by maximum likelihood (mean = sample mean, shape searched)."""

    def fit(self, x):
        self.mean_ = max(x.mean(), 1e-6)

        def loss(log_r):
            r = np.exp(log_r)
            return -stats.nbinom.logpmf(x, r, r / (r + self.mean_)).sum()

        self.r_ = float(np.exp(optimize.minimize_scalar(loss, bounds=(-7, 12), method="bounded").x))
        self.name = f"negative binomial (mean={self.mean_:.3g}, r={self.r_:.3g})"
        return self

    def log_prob(self, x):
        logp = stats.nbinom.logpmf(x, self.r_, self.r_ / (self.r_ + self.mean_))
        return np.maximum(logp, np.log(1e-300))


def _candidates(kind, seed):
    """Factories of the 1-D models tried for a column of this kind."""
    if kind == "continuous":
        return [lambda: Mixture(seed=seed), Kernel]
    nonneg = [Poisson, NegativeBinomial]
    smoothed = [lambda w=w: SmoothedEmpirical(w, seed=seed) for w in (0.01, 0.1, 0.5)]
    return [lambda: DiscretisedMixture(seed=seed), *smoothed, *nonneg]


def tuned_column_model(x, kind, seed, categories=None):
    """The best 1-D model of one column's observed values, chosen on a validation split.

    Categorical columns get ``Frequencies``. Otherwise every candidate of
    ``_candidates`` is fitted on 80% of ``x`` and scored on the other 20%; the
    best by mean held-out log-likelihood is refitted on all of ``x``. Poisson
    and negative binomial are tried only for non-negative integers.

    Parameters
    ----------
    x : ndarray
        Observed values (no missing).
    kind : {"categorical", "integer", "continuous"}
    seed : int
    categories : list, optional
        The category set, for categorical columns.

    Returns
    -------
    model
        Fitted, with ``log_prob(x)`` and a ``name``.
    """
    if kind == "categorical":
        return Frequencies().fit(x, categories)
    factories = _candidates(kind, seed)
    if kind == "integer" and x.min() < 0:
        factories = factories[:-2]
    fit_part, val_part = train_test_split(x, test_size=0.2, random_state=seed)
    scores = [np.mean(factory().fit(fit_part).log_prob(val_part)) for factory in factories]
    return factories[int(np.argmax(scores))]().fit(x)


class IndependentColumns:
    """Product of per-column 1-D models (``tuned_column_model``); missing entries are skipped.

    Parameters
    ----------
    seed : int
        Seed of the validation splits and mixtures.
    """

    def __init__(self, seed=0):
        self.seed = seed

    def fit(self, df):
        _MIXTURES.clear()  # the cache serves one fit; a refit is timed in full
        self.models_ = {}
        for name in df.columns:
            column = df[name].dropna()
            kind = column_kind(column)
            levels = categories(df[name]) if kind == "categorical" else None
            values = column.to_numpy() if kind == "categorical" else column.to_numpy(dtype=float)
            self.models_[name] = tuned_column_model(values, kind, self.seed, levels)
        return self

    def column_log_probs(self, df):
        """Column name -> per-row log-probability or log-density (0 where missing)."""
        out = {}
        for name, model in self.models_.items():
            observed = df[name].notna().to_numpy()
            logp = np.zeros(len(df))
            column = df[name][observed]
            categorical = isinstance(model, Frequencies)
            logp[observed] = model.log_prob(
                column.to_numpy() if categorical else column.to_numpy(dtype=float)
            )
            out[name] = logp
        return out

    def score_samples(self, df):
        """log p(x_obs) per row, nats: the sum over observed columns."""
        return np.sum(list(self.column_log_probs(df).values()), axis=0)

    def score(self, df):
        """Mean of ``score_samples``."""
        return float(np.mean(self.score_samples(df)))


# ---------------------------------------------------------------- planted anomalies

ANOMALY_KINDS = ("education", "relationship", "age", "hours-per-week")
# categorical swaps: column -> the columns it must stay consistent with
SWAP_CONTEXT = {"education": ["education-num"], "relationship": ["sex", "marital-status"]}


def _seen(train, columns):
    """Set of value tuples of ``columns`` that occur together in the training rows."""
    return set(train[columns].dropna().astype(object).itertuples(index=False, name=None))


def _swap_donors(test, row, column, seen):
    """Rows of ``test`` whose ``column`` value would give ``row`` a combination never seen in training."""
    context = tuple(test.loc[row, SWAP_CONTEXT[column]])
    eligible = [value for value in test[column].dropna().unique() if (value, *context) not in seen]
    return np.flatnonzero(test[column].isin(eligible).to_numpy())


def _tail_donors(test, train, row, column):
    """Rows of ``test`` whose ``column`` lies in the training tail opposite to ``row``'s value."""
    low, median, high = np.percentile(train[column], [10, 50, 90])
    values = test[column].to_numpy()
    return np.flatnonzero(values <= low) if values[row] >= median else np.flatnonzero(values >= high)


def plant_anomalies(train, test, rate=0.05, seed=0):
    """Corrupt a fraction of adult's test rows by moving values in from other test rows.

    ``rate * len(test)`` rows are corrupted, a quarter of them of each kind:

    - ``education``: the row takes the ``education`` of another test row such
      that (education, education-num) never occurs in the training rows;
    - ``relationship``: the row takes the ``relationship`` of another test row
      such that (relationship, sex, marital-status) never occurs in training
      (a male "Wife", a never-married "Husband", ...);
    - ``age``, ``hours-per-week``: the row takes the value of another test row
      from the opposite tail: if its own value is at or above the training
      median, a donor value at or below the training 10th percentile, else one
      at or above the 90th.

    Each kind walks through the test rows in a random order, skips rows already
    corrupted and rows with no donor, and draws the donor uniformly among the
    eligible rows. Donor values are read from the uncorrupted test part, so every
    planted value is a real value of that column.

    Parameters
    ----------
    train, test : pandas.DataFrame
        adult's parts; ``test`` is not modified.
    rate : float
    seed : int

    Returns
    -------
    corrupted : pandas.DataFrame
    labels : ndarray of int
        1 for corrupted rows.
    kinds : ndarray of str
        The kind of each corrupted row, ``""`` elsewhere.
    """
    rng = np.random.default_rng(seed)
    corrupted, kinds = test.copy(), np.full(len(test), "", dtype=object)
    n_per_kind = np.diff(np.linspace(0, round(rate * len(test)), len(ANOMALY_KINDS) + 1).round().astype(int))
    seen = {column: _seen(train, [column, *context]) for column, context in SWAP_CONTEXT.items()}
    for kind, n in zip(ANOMALY_KINDS, n_per_kind, strict=True):
        done = 0
        for row in rng.permutation(len(test)):
            if done == n:
                break
            if kinds[row]:
                continue
            if kind in SWAP_CONTEXT:
                donors = _swap_donors(test, row, kind, seen[kind])
            else:
                donors = _tail_donors(test, train, row, kind)
            if len(donors) == 0:
                continue
            corrupted.loc[row, kind] = test.loc[rng.choice(donors), kind]
            kinds[row], done = kind, done + 1
    return corrupted, (kinds != "").astype(int), kinds
