"""Mixed-type tables: the kind of each column, and the codes the model reads.

The model reads one float column per table column: a real or an integer
value as it is, a categorical value as the code 0..L-1 of its level, NaN
where the entry is missing. ``TableSchema`` is fitted on the training table
(a pandas DataFrame, or an array with ``categorical_features``), turns tables
into those codes, and turns codes back into tables of the user's own types.

A column's kind (user guide, "Tabular data"):

- categorical if ``categorical_features`` lists it (indices, a boolean mask
  or names); with ``'from_dtype'``, if its dtype is pandas ``category``,
  ``bool``/``boolean``, or ``object``/string holding labels;
- integer if its dtype is an integer one (``int64``, ``Int64``, ``uint8``...);
- real otherwise (floats, and ``object`` columns holding numbers).

NumPy arrays have no dtypes per column: without ``categorical_features`` they
keep the plain path (no schema, every column real).
"""

import math
import warnings
from numbers import Integral, Real

import numpy as np

from ._column_lists import column_mask

REAL, INTEGER, CATEGORICAL = "real", "integer", "categorical"
KINDS = (REAL, INTEGER, CATEGORICAL)


# An integer column's value seen at least this many times in fit gets a
# probability of its own in the decoder, beside the interval mass of the
# numeric likelihood (``_likelihoods.TableRows``): counts, amounts and ages pile
# up on round and repeated values (adult's capital-gain: 92% zeros, then 15024,
# 7688, 7298...) that no smooth density reaches. At most this many per column,
# the most frequent.
MIN_SPIKE_COUNT = 10
MAX_SPIKES = 256


def frequent_values(column, min_share=0.0):
    """The values of a column (NaN missing) seen at least ``MIN_SPIKE_COUNT`` times, sorted; at most ``MAX_SPIKES``.

    With ``min_share``, only those that also hold that share of the observed entries.
    """
    values, counts = np.unique(column[~np.isnan(column)], return_counts=True)
    keep = (counts >= MIN_SPIKE_COUNT) & (counts >= min_share * counts.sum())
    values, counts = values[keep], counts[keep]
    if len(values) > MAX_SPIKES:
        values = np.sort(values[np.argsort(-counts, kind="stable")[:MAX_SPIKES]])
    return [float(v) for v in values]


# discrete_features='auto' lists a real column that repeats values: one whose
# frequent values are few (at most AUTO_MAX_FREQUENT) and hold nearly all of
# its observed entries (codes, indicators, small counts), or one whose most
# frequent value alone holds half of them (zeros beside an amount, a cap). A
# measurement rounded to a grid is not listed unless it is nearly all on a few
# values. Read from at most AUTO_MAX_ROWS rows, evenly spaced. A listed
# column's values that hold at least AUTO_VALUE_SHARE of its entries get a
# mass, not every frequent one: the levels of an intensity (a pixel's 0 to 16)
# or the rare amounts beside the zeros are left to the density.
AUTO_MAX_FREQUENT = 32
AUTO_FREQUENT_SHARE = 0.9
AUTO_TOP_SHARE = 0.5
AUTO_MAX_ROWS = 100_000
AUTO_VALUE_SHARE = 0.05


def repeats_values(column):
    """Whether a real column (NaN missing) repeats values in the sense of ``discrete_features='auto'``."""
    # Counted in float32, the precision at which the model matches values.
    _, counts = np.unique(column[~np.isnan(column)].astype(np.float32), return_counts=True)
    if not len(counts):
        return False
    frequent = counts[counts >= MIN_SPIKE_COUNT]
    few = len(frequent) <= AUTO_MAX_FREQUENT and frequent.sum() >= AUTO_FREQUENT_SHARE * counts.sum()
    return bool(few or counts.max() >= AUTO_TOP_SHARE * counts.sum())


def repeated_value_columns(X, table):
    """``discrete_features='auto'`` resolved over the columns of X (a table's codes, or an array): its real columns that repeat values."""
    kinds = [REAL] * X.shape[1] if table is None else table.kinds
    rows = X[:: -(-len(X) // AUTO_MAX_ROWS)] if len(X) > AUTO_MAX_ROWS else X
    return [kind == REAL and repeats_values(np.asarray(rows[:, j], dtype=np.float64)) for j, kind in enumerate(kinds)]


def model_columns(table, X, discrete=None, min_share=0.0):
    """The module's ``columns`` for a table's codes X, and the numeric columns of X that its data map reads.

    An array (``table`` None) is a table of real columns, read in place (a
    memory-mapped X is not loaded; only its ``discrete`` columns are read here,
    and ``repeated_value_columns`` reads every column of its sampled rows).
    Integer columns, and the real ones where ``discrete`` (a boolean list
    over the columns) holds, get their frequent values; the latter only
    those holding ``min_share`` of their entries.
    """
    discrete = discrete or [False] * X.shape[1]
    if table is None:
        n = X.shape[1]
        spikes = [frequent_values(np.asarray(X[:, j], dtype=np.float64), min_share) if discrete[j] else [] for j in range(n)]
        return {"kinds": [REAL] * n, "n_levels": [0] * n, "spikes": spikes}, X
    X = np.asarray(X)
    spikes = [
        frequent_values(X[:, j]) if kind == INTEGER else frequent_values(X[:, j], min_share) if discrete[j] else []
        for j, kind in enumerate(table.kinds)
    ]
    numeric = [j for j, kind in enumerate(table.kinds) if kind != CATEGORICAL]
    columns = {"kinds": table.kinds, "n_levels": table.n_levels, "spikes": spikes}
    return columns, X if len(numeric) == X.shape[1] else X[:, numeric]


def is_frame(X):
    """Whether X is a pandas DataFrame (checked without importing pandas)."""
    return type(X).__module__.split(".")[0] == "pandas" and hasattr(X, "iloc") and getattr(X, "ndim", 0) == 2


class TableSchema:
    """The columns of a fitted table: names, kinds, dtypes and levels.

    Parameters
    ----------
    columns : list of dict
        One per column: ``name``, ``kind`` (a key of ``KINDS``), ``dtype``
        (the pandas dtype's name, or None for arrays), and for categorical
        columns ``levels`` (a list of str, int, float or bool) and
        ``ordered``.
    frame : bool
        Whether the table was a pandas DataFrame (tables given back are).
    """

    def __init__(self, columns, frame):
        self.columns = [dict(column) for column in columns]
        self.frame = bool(frame)
        for column in self.columns:
            if column.get("kind") not in KINDS:
                raise ValueError(f"Unknown column kind {column.get('kind')!r} in a table schema.")
            if column["kind"] == CATEGORICAL and not isinstance(column.get("levels"), list):
                raise ValueError("A categorical column of a table schema needs a list of levels.")

    def to_dict(self):
        """JSON-ready: the ``TableSchema`` arguments (saved with the model)."""
        return {"columns": self.columns, "frame": self.frame}

    @property
    def kinds(self):
        return [column["kind"] for column in self.columns]

    @property
    def n_levels(self):
        return [len(column.get("levels", ())) for column in self.columns]

    @property
    def plain(self):
        """Whether every column is real: the model is then today's, column by column."""
        return all(kind == REAL for kind in self.kinds)

    def subset(self, keep):
        """The schema of the columns where the boolean array ``keep`` holds."""
        return TableSchema([c for c, k in zip(self.columns, keep) if k], self.frame)

    # -- reading tables ----------------------------------------------------------

    @classmethod
    def infer(cls, X, categorical_features, owner):
        """The schema of a training table, or None when X takes the plain numeric path."""
        frame = is_frame(X)
        if not frame and (categorical_features is None or isinstance(categorical_features, str)):
            return None
        if not frame:
            from sklearn.utils.validation import check_array

            X = check_array(X, dtype=None, ensure_all_finite=False)
        names = list(X.columns) if frame else list(range(X.shape[1]))
        chosen = column_mask(categorical_features, names, frame, owner)
        columns = []
        for j, name in enumerate(names):
            values = X.iloc[:, j] if frame else X[:, j]
            dtype = str(values.dtype) if frame else None
            kind = _kind(values, chosen[j], categorical_features, name)
            column = {"name": _json_name(name), "kind": kind, "dtype": dtype}
            if kind == CATEGORICAL:
                column["levels"], column["ordered"] = _levels(values, name)
            columns.append(column)
        return cls(columns, frame)

    def encode(self, X, *, handle_unknown="error", where="transform"):
        """The codes of table X, float64 of shape (n_samples, n_columns), NaN where missing.

        X has the fitted columns (checked by the caller). An unknown level
        raises a ``ValueError`` naming the column, or is read as missing with
        ``handle_unknown='ignore'`` (and a warning with ``'warn'``).
        """
        frame = is_frame(X)
        if not frame:
            from sklearn.utils.validation import check_array

            X = check_array(X, dtype=None, ensure_all_finite=False)
        codes = np.empty((len(X), len(self.columns)))
        for j, column in enumerate(self.columns):
            values = X.iloc[:, j] if frame else X[:, j]
            if column["kind"] == CATEGORICAL:
                codes[:, j] = _codes(values, column, j, handle_unknown, where)
            else:
                codes[:, j] = _numbers(values, column, j)
        return codes

    # -- giving tables back ------------------------------------------------------

    def decode(self, codes, index=None):
        """The table of codes (n_samples, n_columns): a DataFrame of the fitted dtypes, or an array.

        Integer columns are rounded to the nearest integer (and clipped to
        their dtype's range); categorical codes become their levels.
        """
        codes = np.asarray(codes, dtype=np.float64)
        if not self.frame:
            return self._decode_array(codes)
        import pandas as pd

        data = {}
        for j, column in enumerate(self.columns):
            data[j] = _column_values(codes[:, j], column, pd)
        table = pd.DataFrame(data, index=index)
        table.columns = pd.Index([column["name"] for column in self.columns])
        return table

    def _decode_array(self, codes):
        numeric = all(
            all(isinstance(v, Real) for v in column.get("levels", ()))
            for column in self.columns
        )
        out = np.empty(codes.shape, dtype=np.float64 if numeric else object)
        for j, column in enumerate(self.columns):
            a = codes[:, j]
            if column["kind"] == CATEGORICAL:
                labels = np.asarray(column["levels"] + [np.nan], dtype=object)
                out[:, j] = labels[np.where(np.isnan(a), -1, a).astype(np.intp)]
            else:
                out[:, j] = np.rint(a) if column["kind"] == INTEGER else a
        return out


# -- helpers -------------------------------------------------------------------------


def _json_name(name):
    if isinstance(name, np.generic):
        name = name.item()
    return name if isinstance(name, (str, int)) else str(name)


def discrete_mask(spec, table, n_features, owner):
    """``discrete_features`` resolved to a boolean list over the columns; a categorical column listed raises."""
    if spec is None:
        return [False] * n_features
    names = list(range(n_features)) if table is None else [column["name"] for column in table.columns]
    frame = table is not None and table.frame
    mask = column_mask(spec, names, frame, owner, parameter="discrete_features")
    kinds = [REAL] * n_features if table is None else table.kinds
    categorical = [names[j] for j in range(n_features) if mask[j] and kinds[j] == CATEGORICAL]
    if categorical:
        raise ValueError(
            f"discrete_features lists the categorical columns {categorical}; a categorical column "
            "is discrete already. List real columns only."
        )
    return mask


def _kind(values, chosen, spec, name):
    """The kind of a column: listed (``chosen``), or decided by its dtype."""
    if chosen:
        return CATEGORICAL
    dtype = values.dtype
    kind = getattr(dtype, "kind", "O")
    if type(dtype).__name__ == "CategoricalDtype":
        if chosen is None:
            return CATEGORICAL
        raise ValueError(
            f"Column {name!r} has the pandas category dtype but is not in categorical_features; "
            "list it there, or convert it to numbers."
        )
    if kind == "b":
        return CATEGORICAL if chosen is None else REAL
    if kind in "iu":
        return INTEGER
    if kind == "f":
        return REAL
    if kind in "OUS":
        present = [v for v in _as_list(values) if not _is_missing(v)]
        if all(isinstance(v, Real) and not isinstance(v, bool) for v in present):
            return REAL
        if chosen is None and isinstance(spec, str):
            return CATEGORICAL
        example = next(v for v in present if not isinstance(v, Real) or isinstance(v, bool))
        raise ValueError(
            f"Column {name!r} holds labels (such as {example!r}) but is not in categorical_features; "
            "list it there, or leave categorical_features='from_dtype'."
        )
    if kind == "c":
        raise ValueError("Complex data not supported")
    raise TypeError(
        f"Column {name!r} has dtype {dtype}, which skvae cannot model; convert it to numbers or "
        "to a pandas category."
    )


def _as_list(values):
    return values.tolist() if hasattr(values, "tolist") else list(values)


def _is_missing(value):
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, pd.NA and pd.NaT compare unequal to themselves
    except TypeError:  # pd.NA: its comparison is ambiguous
        return True


def _levels(values, name):
    """A categorical column's levels (its category set, or its sorted distinct values) and order."""
    dtype = values.dtype
    if type(dtype).__name__ == "CategoricalDtype":
        levels, ordered = _as_list(dtype.categories), bool(dtype.ordered)
    elif getattr(dtype, "kind", "O") == "b":
        levels, ordered = [False, True], False
    else:
        present = {v for v in _as_list(values) if not _is_missing(v)}
        try:
            levels = sorted(present)
        except TypeError:
            levels = sorted(present, key=lambda v: (type(v).__name__, str(v)))
        ordered = False
    levels = [v.item() if isinstance(v, np.generic) else v for v in levels]
    for v in levels:
        if not isinstance(v, (str, Integral, Real)) or (isinstance(v, float) and not math.isfinite(v)):
            raise TypeError(
                f"Column {name!r} has the level {v!r} of type {type(v).__name__}; categorical levels "
                "must be strings, integers, finite floats or booleans."
            )
    return levels, ordered


def _codes(values, column, j, handle_unknown, where):
    """Level codes of a categorical column, NaN where missing (or unknown, when so chosen)."""
    levels = column["levels"]
    dtype = values.dtype
    if type(dtype).__name__ == "CategoricalDtype" and _as_list(dtype.categories) == levels:
        codes = np.asarray(values.cat.codes, dtype=np.float64)
        return np.where(codes < 0, np.nan, codes)
    lookup = {level: i for i, level in enumerate(levels)}
    items = _as_list(values)
    missing = np.fromiter((_is_missing(v) for v in items), dtype=bool, count=len(items))
    codes = np.fromiter(
        (lookup.get(v, -1) if not m else -1 for v, m in zip(items, missing)), dtype=np.float64, count=len(items)
    )
    unknown = (codes < 0) & ~missing
    if unknown.any():
        found = sorted({str(v) for v, u in zip(items, unknown) if u})
        if handle_unknown == "error":
            raise ValueError(
                f"Found unknown categories {found[:5]} in column {column['name']!r} (index {j}) during "
                f"{where}; they were not seen in fit. Set handle_unknown='ignore' to read them as "
                "missing entries."
            )
        if handle_unknown == "warn":
            warnings.warn(
                f"Found unknown categories {found[:5]} in column {column['name']!r} (index {j}) during "
                f"{where}; they are read as missing entries.",
                UserWarning,
            )
    return np.where(codes < 0, np.nan, codes)


def _numbers(values, column, j):
    """A real or integer column as float64, NaN where missing; integers are checked to be whole."""
    if hasattr(values, "to_numpy"):
        try:
            a = values.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            a = np.asarray([np.nan if _is_missing(v) else v for v in _as_list(values)], dtype=np.float64)
    else:
        a = np.asarray([np.nan if _is_missing(v) else v for v in _as_list(values)], dtype=np.float64)
    if column["kind"] == INTEGER:
        finite = a[np.isfinite(a)]
        if np.any(finite != np.round(finite)):
            bad = finite[finite != np.round(finite)][0]
            raise ValueError(
                f"Column {column['name']!r} (index {j}) was an integer column in fit but has the value "
                f"{bad!r}; pass whole numbers, or fit on a float column to model it as real."
            )
    return a


def _column_values(a, column, pd):
    """One column of a DataFrame from its codes, in the fitted dtype."""
    dtype = column["dtype"]
    if column["kind"] == CATEGORICAL:
        levels = column["levels"]
        codes = np.where(np.isnan(a), -1, a).astype(np.intp)
        if dtype == "category":
            return pd.Categorical.from_codes(codes, categories=pd.Index(levels), ordered=column.get("ordered", False))
        labels = np.asarray(levels + [None], dtype=object)[codes]
        try:
            return pd.array(labels, dtype=dtype)
        except (TypeError, ValueError):
            return labels
    if column["kind"] == INTEGER:
        target = pd.api.types.pandas_dtype(dtype)
        info = np.iinfo(getattr(target, "numpy_dtype", target))
        rounded = np.clip(np.rint(a), info.min, info.max)
        if np.isnan(a).any():
            name = str(dtype)
            nullable = name if name[0].isupper() else ("UInt" + name[4:] if name.startswith("u") else "Int" + name[3:])
            return pd.array(np.where(np.isnan(a), None, rounded).tolist(), dtype=nullable)
        return pd.array(rounded.astype(getattr(target, "numpy_dtype", target)), dtype=target)
    return pd.array(a, dtype=dtype) if dtype is not None and dtype.startswith(("float", "Float")) else a
