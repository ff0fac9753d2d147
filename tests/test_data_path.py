"""The data path: fitted state built once in fit, and one entry point for reading X."""

import json

import numpy as np
import pandas as pd
import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from skvae import VAEDensityEstimator, VAEOutlierDetector, load
from skvae._persistence import _checksum
from skvae._tabular import TableSchema

FAST = dict(n_components=2, hidden_layer_sizes=(8,), max_iter=3, n_importance_samples=4, random_state=0)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _frame(n=80, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x": rng.normal(size=n),
        "k": rng.poisson(3, size=n).astype(np.int64),
        "c": pd.Categorical(rng.choice(["a", "b", "c"], size=n)),
    })


def _with_holes(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    X[rng.uniform(size=X.shape) < 0.2] = np.nan
    return X


def test_the_schema_is_built_once_in_fit():
    de = VAEDensityEstimator(**FAST).fit(_frame())
    assert isinstance(de._table, TableSchema)
    assert de._schema() is de._table and de._schema() is de._schema()
    assert VAEDensityEstimator(**FAST).fit(np.zeros((30, 2)) + np.arange(30)[:, None])._table is None


def test_a_file_holds_the_schema_as_its_arguments_and_loads_it_as_a_schema(tmp_path):
    # The file's format is that of the files saved before: the schema's
    # arguments as JSON. Loading builds the schema object again.
    frame = _frame()
    de = VAEDensityEstimator(**FAST).fit(frame)
    path = tmp_path / "model.safetensors"
    de.save(path)
    with safe_open(str(path), framework="pt") as file:
        saved = json.loads(file.metadata()["attributes"])["_table"]
    assert saved == json.loads(json.dumps(de._table.to_dict()))
    assert set(saved) == {"columns", "frame"} and saved["frame"] is True
    loaded = load(path)
    assert isinstance(loaded._table, TableSchema)
    assert loaded._table.to_dict() == de._table.to_dict()
    np.testing.assert_array_equal(loaded.score_samples(frame), de.score_samples(frame))


def test_a_file_with_a_broken_schema_is_refused(tmp_path):
    from skvae._persistence import _check_attributes

    with pytest.raises(ValueError, match="_table is not a table schema"):
        _check_attributes({"_table": {"columns": [{"kind": "odd"}], "frame": True}}, {"_table": "table_schema"})


def test_detector_reference_drops_are_computed_in_fit_and_scoring_changes_no_state(monkeypatch):
    X = _with_holes()
    od = VAEOutlierDetector(**FAST).fit(X)
    calibration = od._calibration_
    setting, full, drops = calibration
    assert setting == (od.n_importance_samples, od.bound, od.kl_penalty)
    assert full.shape == (len(od.reference_),) and drops.shape == (X.shape[1], len(od.reference_))
    before = dict(vars(od))
    expected = od.decision_function(X)

    def refuse():
        raise AssertionError("the reference rows were scored again after fit")

    monkeypatch.setattr(od, "_score_reference", refuse)
    np.testing.assert_array_equal(od.decision_function(X), expected)
    np.testing.assert_array_equal(od.predict(X), np.where(expected < 0, -1, 1))
    assert vars(od).keys() - {"_score_reference"} == before.keys()
    assert od._calibration_ is calibration


def test_detector_drops_of_another_scoring_setting_are_not_kept():
    X = _with_holes()
    od = VAEOutlierDetector(**FAST).fit(X)
    calibration = od._calibration_
    od.set_params(n_importance_samples=6)
    full, _ = od._reference_drops()
    np.testing.assert_array_equal(full, od.score_samples(od.reference_))
    assert od._calibration_ is calibration
    od.set_params(n_importance_samples=FAST["n_importance_samples"])
    assert od._reference_drops()[0] is calibration[1]


def test_detector_fitted_on_complete_rows_calibrates_rows_with_holes_without_keeping_anything():
    X = np.random.default_rng(1).normal(size=(200, 4))
    od = VAEOutlierDetector(**FAST).fit(X)
    assert od._calibration_ is None
    holes = _with_holes(40, seed=2)
    before = dict(vars(od))
    first = od.decision_function(holes)
    assert vars(od).keys() == before.keys() and od._calibration_ is None
    np.testing.assert_array_equal(od.decision_function(holes), first)
    complete = ~np.isnan(holes).any(axis=1)
    np.testing.assert_array_equal(first[complete], od.score_samples(holes[complete]) - od.offset_)


def test_a_loaded_detector_has_the_calibration_of_fit(tmp_path):
    X = _with_holes()
    od = VAEOutlierDetector(**FAST).fit(X)
    od.save(tmp_path / "model.safetensors")
    loaded = load(tmp_path / "model.safetensors")
    assert loaded._calibration_[0] == od._calibration_[0]
    np.testing.assert_array_equal(loaded._calibration_[1], od._calibration_[1])
    np.testing.assert_array_equal(loaded._calibration_[2], od._calibration_[2])
    np.testing.assert_array_equal(loaded.decision_function(X), od.decision_function(X))


def test_a_detector_file_without_the_calibration_loads_and_scores_the_same(tmp_path):
    # Files saved before the calibration was kept lack it: the loaded
    # detector computes it when rows with holes come.
    X = _with_holes()
    od = VAEOutlierDetector(**FAST).fit(X)
    path = tmp_path / "model.safetensors"
    od.save(path)
    with safe_open(str(path), framework="pt") as file:
        metadata = dict(file.metadata())
    tensors = load_file(path)
    attributes = json.loads(metadata["attributes"])
    del attributes["_calibration_"]
    metadata["attributes"] = json.dumps(attributes)
    metadata["checksum"] = _checksum(metadata, tensors)
    save_file(tensors, str(path), metadata=metadata)
    loaded = load(path)
    assert loaded._calibration_ is None
    np.testing.assert_array_equal(loaded.decision_function(X), od.decision_function(X))


@pytest.mark.parametrize("method", ["fit", "partial_fit", "score_samples", "score", "transform", "decision_function"])
def test_every_public_method_reads_x_through_the_one_entry_point(method, monkeypatch):
    from skvae import VAEImputer, VAETransformer
    from skvae._validation import _ReadsRows

    Estimator = {"transform": VAETransformer, "decision_function": VAEOutlierDetector}.get(method, VAEDensityEstimator)
    X = _with_holes(60)
    est = Estimator(**FAST).fit(X)
    calls = []
    original = _ReadsRows._validate_input

    def counted(self, X, **kwargs):
        calls.append(kwargs)
        return original(self, X, **kwargs)

    monkeypatch.setattr(_ReadsRows, "_validate_input", counted)
    getattr(est, method)(X)
    assert calls and calls[0]["reset"] == (method == "fit")
    imputer = VAEImputer(**FAST).fit(X)
    calls.clear()
    imputer.transform(X)
    assert calls == [{"reset": False, "all_columns": True}]
