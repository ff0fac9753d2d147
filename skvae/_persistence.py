"""A model file that loads without running code: safetensors plus JSON.

Pickle (and so joblib and ``torch.load`` without ``weights_only``) runs code
while loading, so a model file from an untrusted source is unsafe to unpickle.
``save`` writes a safetensors file instead: the module's tensors, the
per-epoch losses, and a JSON header holding the estimator's class name,
parameters and fitted attributes, the skvae version, the format version and a
SHA-256 checksum. ``load`` parses only JSON and raw tensors, builds only
skvae's own estimator classes, and checks everything before use.

The checksum detects corruption, not tampering (anyone can recompute it): the
format is safe because nothing in it can run, whoever wrote it.
"""

import hashlib
import json
import os
import warnings

import numpy as np
import safetensors
import torch
from safetensors.torch import save_file
from sklearn.impute import MissingIndicator
from sklearn.utils.validation import check_is_fitted

from ._net import build_net
from ._torch_utils import resolve_device
from ._tabular import TableSchema
from ._version import __version__

FORMAT = "skvae"
FORMAT_VERSION = "2"
_HEADER_KEYS = {
    "format", "format_version", "skvae_version", "estimator", "params", "attributes", "module", "checksum",
}
# Kinds of numpy arrays a header may hold: numbers, booleans, strings.
_ARRAY_KINDS = "fiubO"
# The estimator classes a file may build, by name (``register``).
_ESTIMATORS = {}


def register(cls):
    """Class decorator: let ``load`` build ``cls``.

    ``cls`` has a ``net_`` when fitted (set by ``_set_net``, with the fitted
    attributes read off the model), and ``_saved_attributes``: its other
    fitted attributes, which ``save`` writes, each mapped to its kind, which
    ``load`` checks: ``"count"`` (an int >= 0), ``"positive"`` (an int >= 1),
    ``"number"`` (a finite float), ``"missing_indicator"`` (a
    ``MissingIndicator``, saved by its features), ``"table_schema"`` (a
    ``TableSchema`` or None, saved by its arguments), ``"any"``, or
    ``"optional"`` (any value; None when a file lacks it, as files saved
    before it was added do).
    """
    _ESTIMATORS[cls.__name__] = cls
    return cls


def save_estimator(estimator, path):
    """Write a fitted estimator to ``path`` (see the estimators' ``save``)."""
    check_is_fitted(estimator)
    net = estimator.net_
    tensors = {f"module.{k}": v.detach().cpu().contiguous() for k, v in net.module_.state_dict().items()}
    tensors.update(_history_tensors(net.history))
    attributes = {k: v for k, v in vars(estimator).items() if k in estimator._saved_attributes}
    for name, kind in estimator._saved_attributes.items():
        if kind == "missing_indicator" and attributes.get(name) is not None:
            indicator = attributes[name]
            attributes[name] = {"features": indicator.features_, "n_features": indicator.n_features_in_}
        elif kind == "table_schema" and attributes.get(name) is not None:
            attributes[name] = attributes[name].to_dict()
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "skvae_version": __version__,
        "estimator": type(estimator).__name__,
        "params": json.dumps(_savable_params(estimator)),
        "attributes": json.dumps(_encode(attributes)),
        "module": json.dumps(net.module_.config()),
    }
    metadata["checksum"] = _checksum(metadata, tensors)
    save_file(tensors, os.fspath(path), metadata=metadata)


def load(path, *, device="cpu"):
    """Load an estimator written by ``save``, without unpickling anything.

    Parameters
    ----------
    path : str or path-like
        A file written by the ``save`` method of a skvae estimator.

    device : {'cpu', 'cuda', 'auto'} or torch.device, default='cpu'
        Where to put the model; it becomes the estimator's ``device``. A model
        saved from a GPU loads on the CPU by default.

    Returns
    -------
    estimator : VAETransformer, VAEDensityEstimator or VAEOutlierDetector
        The fitted estimator, with the parameters, fitted attributes and
        weights that were saved: its outputs equal the original's.

    Raises
    ------
    ValueError
        If the file is not a skvae model file, has an unknown format version,
        a wrong checksum, unknown or missing entries, or tensors of the wrong
        shape, dtype or with non-finite values.

    Notes
    -----
    Only JSON and raw tensors are parsed and only skvae's own estimator
    classes are built, so a file from an untrusted source cannot run code.
    The optimizer's state is not saved: ``partial_fit`` or ``fit`` with
    ``warm_start=True`` after loading continue from the saved weights with a
    fresh Adam state.

    Examples
    --------
    >>> import tempfile, os
    >>> import numpy as np
    >>> from skvae import VAEDensityEstimator, load
    >>> X = np.random.default_rng(0).normal(size=(50, 3))
    >>> de = VAEDensityEstimator(n_components=2, hidden_layer_sizes=(8,),
    ...                          max_iter=2, random_state=0).fit(X)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     de.save(os.path.join(folder, "model.safetensors"))
    ...     loaded = load(os.path.join(folder, "model.safetensors"))
    >>> bool(np.array_equal(loaded.score_samples(X), de.score_samples(X)))
    True
    """
    metadata, tensors = _read(path)
    name = metadata["estimator"]
    if name not in _ESTIMATORS:
        raise ValueError(f"The model file names estimator {name!r}, not one of {sorted(_ESTIMATORS)}.")
    estimator = _ESTIMATORS[name]()
    params = _decode(_parse_json(metadata, "params"))
    module = _parse_json(metadata, "module")
    if "prior" not in params:
        # A file written before ``prior`` existed holds an N(0, I) model,
        # whatever the estimator's default is now.
        params["prior"] = "mixture" if module.get("prior_components") else "normal"
    _check_known(set(params), set(estimator.get_params()), "parameters")
    estimator.set_params(**{**params, "device": device})
    estimator._validate_params()
    attributes = _decode(_parse_json(metadata, "attributes"))
    _check_attributes(attributes, type(estimator)._saved_attributes)
    vars(estimator).update(attributes)
    estimator._set_net(_rebuild_net(module, tensors, estimator))
    return estimator


def _check_attributes(attributes, kinds):
    """Refuse unknown, missing or mistyped fitted attributes."""
    _check_known(set(attributes), set(kinds), "fitted attributes")
    optional = {name for name, kind in kinds.items() if kind == "optional"}
    missing = set(kinds) - set(attributes) - {"feature_names_in_"} - optional
    if missing:
        raise ValueError(f"The model file lacks the fitted attributes {sorted(missing)}.")
    for name in optional - set(attributes):
        attributes[name] = None
    for name, value in attributes.items():
        kind = kinds[name]
        if kind in ("count", "positive"):
            low = int(kind == "positive")
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
                raise ValueError(f"The model file's {name} is {value!r}, not an integer >= {low}.")
        elif kind == "number" and not (isinstance(value, float) and np.isfinite(value)):
            raise ValueError(f"The model file's {name} is {value!r}, not a finite number.")
        elif kind == "missing_indicator" and value is not None:
            attributes[name] = _missing_indicator(name, value)
        elif kind == "table_schema" and value is not None:
            attributes[name] = _table_schema(name, value)


def _missing_indicator(name, saved):
    """A ``MissingIndicator`` of the saved features, fitted on a row that is missing exactly there."""
    try:
        features, n_features = np.asarray(saved["features"], dtype=int), int(saved["n_features"])
        row = np.zeros((1, n_features))
        row[0, features] = np.nan
    except (KeyError, TypeError, ValueError, IndexError):
        raise ValueError(f"The model file's {name} is {saved!r}, not a missing-value indicator.") from None
    return MissingIndicator(error_on_new=False).fit(row)


def _table_schema(name, saved):
    """The ``TableSchema`` of its saved arguments (``TableSchema.to_dict``)."""
    try:
        return TableSchema(**saved)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"The model file's {name} is not a table schema: {exc}") from None


def _read(path):
    """The header and tensors of a skvae file, checked for format and checksum."""
    try:
        with safetensors.safe_open(os.fspath(path), framework="pt", device="cpu") as file:
            metadata = file.metadata() or {}
            tensors = {key: file.get_tensor(key) for key in file.keys()}
    except safetensors.SafetensorError as exc:
        raise ValueError(f"{path} is not a skvae model file (a safetensors file): {exc}") from None
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is a safetensors file but not a skvae model file.")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has model format version {metadata.get('format_version')!r} (written by "
            f"skvae {metadata.get('skvae_version')}); this skvae reads version "
            f"{FORMAT_VERSION!r}. Load it with the skvae version that wrote it."
        )
    _check_known(set(metadata), _HEADER_KEYS, "header entries")
    if _HEADER_KEYS - set(metadata):
        raise ValueError(f"{path} lacks the header entries {sorted(_HEADER_KEYS - set(metadata))}.")
    if metadata.get("checksum") != _checksum(metadata, tensors):
        raise ValueError(f"{path} fails its checksum: the file is corrupted or was modified.")
    return metadata, tensors


def _checksum(metadata, tensors):
    """SHA-256 of the header (less the checksum) and of every tensor's name, dtype, shape, bytes."""
    digest = hashlib.sha256()
    header = {k: v for k, v in metadata.items() if k != "checksum"}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for key in sorted(tensors):
        tensor = tensors[key]
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.cpu().contiguous().numpy().tobytes())
    return f"sha256:{digest.hexdigest()}"


def _savable_params(estimator):
    """``get_params`` as JSON values; what JSON cannot hold is saved as None, with a warning."""
    params = {}
    for name, value in estimator.get_params(deep=False).items():
        try:
            params[name] = _encode(value)
        except TypeError:
            warnings.warn(
                f"{name}={value!r} cannot be written to a model file; the loaded estimator "
                f"has {name}=None. It only matters for training.",
                UserWarning,
            )
            params[name] = None
    return params


def _encode(value):
    """A JSON-ready copy of ``value``: tuples and numpy arrays are tagged, numpy scalars unwrapped."""
    if isinstance(value, dict):
        return {key: _encode(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_encode(item) for item in value]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if isinstance(value, np.ndarray) and value.dtype.kind in _ARRAY_KINDS:
        return {"__ndarray__": _encode(value.tolist()), "dtype": value.dtype.str}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, torch.device):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot encode a {type(value).__name__}")


def _decode(value):
    """Undo ``_encode``; refuse any other tagged object."""
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"__tuple__"}:
        return tuple(_decode(item) for item in value["__tuple__"])
    if set(value) == {"__ndarray__", "dtype"}:
        try:
            dtype = np.dtype(value["dtype"])
        except TypeError:
            dtype = None
        if dtype is None or dtype.kind not in _ARRAY_KINDS:
            raise ValueError(f"The model file holds an array of unsupported dtype {value['dtype']!r}.")
        return np.array(_decode(value["__ndarray__"]), dtype=dtype)
    return {key: _decode(item) for key, item in value.items()}


def _parse_json(metadata, key):
    try:
        value = json.loads(metadata[key])
    except json.JSONDecodeError as exc:
        raise ValueError(f"The model file's {key!r} entry is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"The model file's {key!r} entry is not a JSON object.")
    return value


def _check_known(found, known, what):
    unknown = found - known
    if unknown:
        raise ValueError(f"The model file has unknown {what}: {sorted(unknown)}.")


def _history_tensors(history):
    """Per-epoch training and validation losses (NaN where there was no validation)."""
    rows = [row for row in history if "train_loss" in row]
    return {
        "history.train_loss": torch.tensor([row["train_loss"] for row in rows], dtype=torch.float64),
        "history.valid_loss": torch.tensor([row.get("valid_loss", np.nan) for row in rows], dtype=torch.float64),
    }


def _rebuild_net(config, tensors, estimator):
    """A net with the saved weights and per-epoch history, checked against the architecture."""
    try:
        net = build_net(
            config,
            device=resolve_device(estimator.device),
            learning_rate_init=estimator.learning_rate_init,
            seed=estimator._seed,
        )
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError(f"The model file's module entry does not describe a skvae model: {exc!r}") from None
    expected = {f"module.{k}": v for k, v in net.module_.state_dict().items()}
    expected.update(_history_tensors([{"train_loss": 0.0}] * estimator.n_iter_))
    _check_tensors(tensors, expected)
    state = {k.removeprefix("module."): v for k, v in tensors.items() if k.startswith("module.")}
    net.module_.load_state_dict(state)
    net.module_.data_map.check()
    for epoch, (train, valid) in enumerate(zip(tensors["history.train_loss"], tensors["history.valid_loss"]), 1):
        net.history.new_epoch()
        net.history.record("epoch", epoch)
        net.history.record("train_loss", train.item())
        if not torch.isnan(valid):
            net.history.record("valid_loss", valid.item())
    return net


def _check_tensors(tensors, expected):
    """Refuse unknown, missing, misshapen, mistyped or (for weights) non-finite tensors."""
    _check_known(set(tensors), set(expected), "tensors")
    missing = set(expected) - set(tensors)
    if missing:
        raise ValueError(f"The model file lacks the tensors {sorted(missing)}.")
    for key, tensor in tensors.items():
        want = expected[key]
        if tensor.shape != want.shape or tensor.dtype != want.dtype:
            raise ValueError(
                f"Tensor {key!r} in the model file has shape {tuple(tensor.shape)} and dtype "
                f"{tensor.dtype}; the model needs shape {tuple(want.shape)} and dtype {want.dtype}."
            )
        if key.startswith("module.") and not torch.isfinite(tensor).all():
            raise ValueError(f"Tensor {key!r} in the model file has non-finite values.")
