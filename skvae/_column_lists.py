"""Which columns a parameter lists: ``categorical_features`` and ``discrete_features``."""

import numpy as np


def column_mask(spec, names, frame, owner, parameter="categorical_features"):
    """``categorical_features`` (or ``parameter``, read the same way) resolved to a boolean list over the columns.

    Follows ``HistGradientBoostingClassifier``: None, ``'from_dtype'`` (the
    dtypes decide, in ``_tabular._kind``), or an array-like of indices, booleans or
    column names.
    """
    n = len(names)
    if spec is None or isinstance(spec, str):
        return [None] * n  # decided by the dtype
    spec = np.asarray(spec)
    if spec.size == 0:
        return [False] * n
    if spec.dtype.kind == "b":
        if spec.shape != (n,):
            raise ValueError(
                f"{parameter} set as a boolean mask must have shape (n_features,) = ({n},), "
                f"got: {spec.shape}."
            )
        return spec.tolist()
    if spec.dtype.kind in "iu":
        if spec.min() < 0 or spec.max() >= n:
            raise ValueError(
                f"{parameter} set as integer indices must be in [0, n_features - 1] = "
                f"[0, {n - 1}], got {spec.tolist()}."
            )
        mask = [False] * n
        for j in spec.tolist():
            mask[j] = True
        return mask
    if spec.dtype.kind in "UO":
        if not frame:
            raise ValueError(
                f"{owner} got {parameter} as column names, but X has no column names; "
                "pass a pandas DataFrame, or give the columns by index or boolean mask."
            )
        unknown = [s for s in spec.tolist() if s not in names]
        if unknown:
            raise ValueError(
                f"{parameter} has names {unknown} that are not columns of X; its columns "
                f"are {list(names)}."
            )
        wanted = set(spec.tolist())
        return [name in wanted for name in names]
    options = "None, 'from_dtype', or" if parameter == "categorical_features" else "None or"
    raise ValueError(
        f"{parameter} must be {options} an array-like of bool, int or str; "
        f"got an array of dtype {spec.dtype}."
    )
