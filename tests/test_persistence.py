"""save/load: identical outputs, and refusal of corrupted, foreign or malicious files."""

import json
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from skorch.callbacks import LRScheduler

from skvae import VAEDensityEstimator, VAEOutlierDetector, VAETransformer, load
from skvae._persistence import _checksum

ESTIMATORS = [VAEDensityEstimator, VAETransformer]
FAST = dict(n_components=2, hidden_layer_sizes=(8,), max_iter=3, n_importance_samples=4, random_state=0)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).normal(size=(60, 3))


def _outputs(est, X):
    out = [est.score_samples(X), est.sample(5, random_state=3), np.array([est.score(X)])]
    if hasattr(est, "transform"):
        out += [est.transform(X), est.inverse_transform(est.transform(X))]
    return out


def _fitted_attributes(est):
    return {k: v for k, v in vars(est).items() if (k.endswith("_") and k != "net_") or k == "_seed"}


def _assert_same(loaded, est, X):
    assert type(loaded) is type(est)
    assert loaded.get_params() == est.get_params()
    np.testing.assert_equal(_fitted_attributes(loaded), _fitted_attributes(est))
    for left, right in zip(_outputs(loaded, X), _outputs(est, X)):
        np.testing.assert_array_equal(left, right)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("params", [
    {},
    {"bounds": (-10.0, 10.0), "hidden_layer_sizes": [8, 4]},
    {"bounds": (np.full(3, -10.0), np.full(3, 10.0)), "hidden_layer_sizes": ()},
    {"likelihood": "continuous_bernoulli", "bound": "elbo"},
    {"likelihood": "bernoulli", "early_stopping": True, "activation": "tanh"},
    {"n_components": "auto", "max_iter": 20},
    {"prior": "mixture", "bound": "elbo"},
], ids=["gaussian", "bounds", "array-bounds", "continuous_bernoulli", "bernoulli-early", "auto-components", "mixture-prior"])
def test_load_gives_identical_outputs_and_attributes(Estimator, params, X, tmp_path):
    data = {"bernoulli": X > 0, "continuous_bernoulli": 1 / (1 + np.exp(-X))}.get(params.get("likelihood"), X)
    est = Estimator(**{**FAST, **params}).fit(data)
    est.save(tmp_path / "model.safetensors")
    loaded = load(tmp_path / "model.safetensors")
    if "bounds" in params and isinstance(params["bounds"][0], np.ndarray):
        np.testing.assert_array_equal(loaded.bounds[0], params["bounds"][0])
        loaded.bounds = est.bounds  # arrays do not compare with ==
    _assert_same(loaded, est, data)
    if params.get("n_components") == "auto":
        # The model is rebuilt at the width the first fit chose, not the 16 it started from.
        assert loaded.net_.module_.n_components == loaded.n_components_ == est.n_components_ < 16


def test_feature_names_and_float32_survive(X, tmp_path):
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    vt = VAETransformer(**FAST).fit(frame)
    vt.save(tmp_path / "model.safetensors")
    loaded = load(str(tmp_path / "model.safetensors"))
    assert list(loaded.feature_names_in_) == ["a", "b", "c"]
    assert loaded.feature_names_in_.dtype == object
    np.testing.assert_array_equal(loaded.transform(frame), vt.transform(frame))
    assert loaded.transform(frame.astype(np.float32)).dtype == np.float32


def test_training_continues_after_load(X, tmp_path):
    de = VAEDensityEstimator(**FAST).fit(X)
    de.save(tmp_path / "model.safetensors")
    loaded = load(tmp_path / "model.safetensors")
    assert loaded.partial_fit(X).n_iter_ == 4
    assert loaded.set_params(warm_start=True).fit(X).n_iter_ == 7
    assert np.all(np.isfinite(loaded.score_samples(X)))


@pytest.mark.parametrize("params", [{}, {"early_stopping": True}], ids=["plain", "early-stopping"])
def test_training_after_load_keeps_the_saved_history_to_the_bit(params, X, tmp_path):
    """The per-epoch losses are saved exactly: after a later partial_fit the history of the saved
    epochs is the one of the estimator that was saved, entry for entry, as Python floats.

    The later epochs themselves differ, as ``load`` says: training goes on with a fresh Adam state.
    """
    est = VAEDensityEstimator(**{**FAST, **params}).fit(X)
    losses, scores = list(est.loss_curve_), est.validation_scores_
    est.save(tmp_path / "model.safetensors")
    loaded = load(tmp_path / "model.safetensors")
    if scores is None:
        for _ in range(2):
            loaded.partial_fit(X)
    else:  # partial_fit does not take early stopping
        loaded.set_params(warm_start=True, max_iter=2).fit(X)
    assert loaded.n_iter_ == 5 and len(loaded.loss_curve_) == 5
    assert loaded.loss_curve_[:3] == losses
    assert all(type(loss) is float for loss in loaded.loss_curve_)
    if scores is not None:
        assert loaded.validation_scores_[:3] == scores
        assert all(type(score) is float for score in loaded.validation_scores_)


def test_unsavable_parameters_are_saved_as_none_with_a_warning(X, tmp_path):
    de = VAEDensityEstimator(
        **{**FAST, "random_state": np.random.RandomState(0)},
        callbacks=[LRScheduler(policy="StepLR", step_size=1)],
    ).fit(X)
    with pytest.warns(UserWarning, match="cannot be written to a model file") as record:
        de.save(tmp_path / "model.safetensors")
    assert {str(w.message).split("=")[0] for w in record} == {"random_state", "callbacks"}
    loaded = load(tmp_path / "model.safetensors")
    assert loaded.random_state is None and loaded.callbacks is None
    np.testing.assert_array_equal(loaded.score_samples(X), de.score_samples(X))


def test_save_needs_a_fitted_estimator(tmp_path):
    with pytest.raises(NotFittedError):
        VAEDensityEstimator().save(tmp_path / "model.safetensors")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_model_saved_from_cuda_loads_on_cpu(X, tmp_path):
    de = VAEDensityEstimator(**FAST, device="cuda").fit(X)
    de.save(tmp_path / "model.safetensors")
    loaded = load(tmp_path / "model.safetensors")
    assert loaded.device == "cpu" and loaded.net_.device == "cpu"
    np.testing.assert_allclose(loaded.score_samples(X), de.score_samples(X), rtol=1e-5)


def test_a_file_naming_a_cuda_device_loads_on_cpu(X, saved):
    # What save writes from a GPU: tensors moved to the CPU, device="cuda" in the header.
    params = _header(saved, "params")
    _rewrite(saved, metadata={"params": json.dumps({**params, "device": "cuda"})})
    loaded = load(saved)
    assert loaded.device == "cpu" and loaded.net_.device == "cpu"
    reference = VAEDensityEstimator(**FAST).fit(X)
    np.testing.assert_array_equal(loaded.score_samples(X), reference.score_samples(X))


def test_load_puts_the_model_on_the_requested_device(X, tmp_path):
    de = VAEDensityEstimator(**FAST).fit(X)
    de.save(tmp_path / "model.safetensors")
    loaded = load(tmp_path / "model.safetensors", device="auto")
    assert loaded.net_.device == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            load(tmp_path / "model.safetensors", device="cuda")


@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_pickle_and_joblib_still_work_and_carry_no_training_snapshot(dump, X, tmp_path):
    est = VAETransformer(**FAST).fit(X)
    assert dict(est.net_.callbacks_)["last_good"].state_ is None
    if dump == "pickle":
        loaded = pickle.loads(pickle.dumps(est))
    else:
        joblib.dump(est, tmp_path / "model.joblib")
        loaded = joblib.load(tmp_path / "model.joblib")
    for left, right in zip(_outputs(loaded, X), _outputs(est, X)):
        np.testing.assert_array_equal(left, right)


# -- refusing bad files -------------------------------------------------------


@pytest.fixture
def saved(X, tmp_path):
    path = tmp_path / "model.safetensors"
    VAEDensityEstimator(**FAST).fit(X).save(path)
    return path


def _rewrite(path, *, metadata=None, tensors=None, checksum=True):
    """Rewrite a model file with changed header entries or tensors, by default re-checksummed."""
    with open(path, "rb") as file:
        header_size = int.from_bytes(file.read(8), "little")
        old_metadata = json.loads(file.read(header_size))["__metadata__"]
    new_metadata = {**old_metadata, **(metadata or {})}
    new_tensors = {**load_file(path), **(tensors or {})}
    new_metadata = {k: v for k, v in new_metadata.items() if v is not None}
    new_tensors = {k: v for k, v in new_tensors.items() if v is not None}
    if checksum:
        new_metadata["checksum"] = _checksum(new_metadata, new_tensors)
    save_file(new_tensors, path, metadata=new_metadata)


def _header(path, key):
    with open(path, "rb") as file:
        header_size = int.from_bytes(file.read(8), "little")
        return json.loads(json.loads(file.read(header_size))["__metadata__"][key])


BAD_FILES = {
    "wrong checksum": (dict(metadata={"skvae_version": "0.0.1"}, checksum=False), "fails its checksum"),
    "flipped weight": (dict(tensors={"module.encoder_head.bias": torch.ones(4)}, checksum=False), "fails its checksum"),
    "unknown format version": (dict(metadata={"format_version": "9", "skvae_version": "9.0"}), r"format version '9' \(written by skvae 9.0\)"),
    "earlier format version": (dict(metadata={"format_version": "1"}), r"format version '1' .* this skvae reads version '2'"),
    "not skvae": (dict(metadata={"format": "other"}), "not a skvae model file"),
    "unknown header entry": (dict(metadata={"code": "print(1)"}), r"unknown header entries: \['code'\]"),
    "missing header entry": (dict(metadata={"attributes": None}), r"lacks the header entries \['attributes'\]"),
    "foreign class": (dict(metadata={"estimator": "subprocess.Popen"}), "names estimator 'subprocess.Popen', not one of"),
    "unknown parameter": (dict(metadata={"params": json.dumps({"n_components": 2, "exec": "x"})}), r"unknown parameters: \['exec'\]"),
    "invalid parameter": (dict(metadata={"params": json.dumps({"n_components": -2})}), "The 'n_components' parameter"),
    "params not JSON": (dict(metadata={"params": "{not json"}), "'params' entry is not valid JSON"),
    "params not an object": (dict(metadata={"params": "[1, 2]"}), "'params' entry is not a JSON object"),
    "unknown attribute": (dict(metadata={"attributes": json.dumps({"__class__": "x"})}), r"unknown fitted attributes: \['__class__'\]"),
    "bad array dtype": (
        dict(metadata={"params": json.dumps({"bounds": {"__tuple__": [{"__ndarray__": [0], "dtype": "V8"}, 1]}})}),
        "unsupported dtype 'V8'",
    ),
    "unknown tensor": (dict(tensors={"module.extra": torch.zeros(2)}), r"unknown tensors: \['module.extra'\]"),
    "missing tensor": (dict(tensors={"module.encoder_head.bias": None}), r"lacks the tensors \['module.encoder_head.bias'\]"),
    "wrong shape": (dict(tensors={"module.encoder_head.bias": torch.zeros(5)}), r"'module.encoder_head.bias' .* shape \(5,\) .* needs shape \(4,\)"),
    "wrong dtype": (dict(tensors={"module.encoder_head.bias": torch.zeros(4, dtype=torch.float64)}), "needs shape .* dtype torch.float32"),
    "non-finite weight": (dict(tensors={"module.encoder_head.bias": torch.full((4,), float("nan"))}), "has non-finite values"),
    "module not JSON": (dict(metadata={"module": "{"}), "'module' entry is not valid JSON"),
    "unknown module argument": (
        dict(metadata={"module": json.dumps({"n_features": 3, "exec": "x"})}), "module entry does not describe a skvae model",
    ),
    "unknown data map step": (
        dict(metadata={"module": json.dumps({"n_features": 3, "n_components": 2, "data_map": [["eval", None]]})}),
        "module entry does not describe a skvae model",
    ),
    "zero scale": (dict(tensors={"module.data_map.step0_scale": torch.zeros(3, dtype=torch.float64)}), "step 0 .*'standardise'.* invalid arrays"),
    "short history": (dict(tensors={"history.train_loss": torch.zeros(2, dtype=torch.float64)}), "'history.train_loss' .* needs shape \\(3,\\)"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_load_refuses_bad_files(name, saved):
    change, match = BAD_FILES[name]
    _rewrite(saved, **change)
    with pytest.raises(ValueError, match=match):
        load(saved)


def test_load_refuses_missing_or_wrongly_typed_attributes(saved):
    attributes = _header(saved, "attributes")
    _rewrite(saved, metadata={"attributes": json.dumps({**attributes, "n_features_in_": "3"})})
    with pytest.raises(ValueError, match="n_features_in_ is '3', not an integer >= 1"):
        load(saved)
    del attributes["_seed"]
    _rewrite(saved, metadata={"attributes": json.dumps(attributes)})
    with pytest.raises(ValueError, match=r"lacks the fitted attributes \['_seed'\]"):
        load(saved)


@pytest.mark.parametrize(
    "params",
    [{}, {"power_transform": False, "contamination": 0.1}, {"kl_penalty": 6.0}],
    ids=["transformed", "plain", "kl_penalty"],
)
def test_an_outlier_detector_loads_with_identical_scores(params, X, tmp_path):
    data = np.exp(X)  # skewed, so that the power transform matters
    od = VAEOutlierDetector(**FAST, **params).fit(data)
    od.save(tmp_path / "model.safetensors")
    loaded = load(tmp_path / "model.safetensors")
    assert type(loaded) is VAEOutlierDetector and loaded.get_params() == od.get_params()
    np.testing.assert_equal(_fitted_attributes(loaded), _fitted_attributes(od))
    assert loaded.net_.module_.data_map.kinds == od.net_.module_.data_map.kinds
    for method in ("score_samples", "decision_function", "predict"):
        np.testing.assert_array_equal(getattr(loaded, method)(data), getattr(od, method)(data))
    np.testing.assert_array_equal(loaded.sample(5, random_state=0), od.sample(5, random_state=0))
    assert loaded.partial_fit(data).n_iter_ == od.n_iter_ + 1


@pytest.fixture
def saved_detector(X, tmp_path):
    path = tmp_path / "model.safetensors"
    VAEOutlierDetector(**FAST).fit(X).save(path)
    return path


@pytest.mark.parametrize("change, match", [
    ({"offset_": float("nan")}, "offset_ is nan, not a finite number"),
    ({"offset_": "low"}, "offset_ is 'low', not a finite number"),
    ({"offset_": "missing"}, r"lacks the fitted attributes \['offset_'\]"),
], ids=["nan offset", "text offset", "no offset"])
def test_load_refuses_a_detector_with_a_bad_offset(change, match, saved_detector):
    attributes = {**_header(saved_detector, "attributes"), **change}
    attributes = {k: v for k, v in attributes.items() if v != "missing"}
    _rewrite(saved_detector, metadata={"attributes": json.dumps(attributes)})
    with pytest.raises(ValueError, match=match):
        load(saved_detector)


@pytest.mark.parametrize("tensor, value, match", [
    ("module.data_map.step1_low", [10.0, 10.0, 10.0], "step 1 .*'yeo_johnson'.* invalid arrays"),
    ("module.data_map.step1_lambdas", [np.inf, 1.0, 1.0], "has non-finite values"),
])
def test_load_refuses_a_detector_with_a_bad_power_transform(tensor, value, match, saved_detector):
    # The Yeo-Johnson map needs finite exponents and low <= high (here high < 10).
    _rewrite(saved_detector, tensors={tensor: torch.tensor(value, dtype=torch.float64)})
    with pytest.raises(ValueError, match=match):
        load(saved_detector)


def test_load_refuses_files_that_are_not_safetensors(tmp_path):
    for name, content in [("empty", b""), ("text", b"hello"), ("huge header", (2**62).to_bytes(8, "little"))]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match="is not a skvae model file"):
            load(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "absent.safetensors")


class _Payload:
    """Unpickling this creates the file ``marker``: a stand-in for arbitrary code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_malicious_pickle_is_refused_and_never_runs(X, tmp_path):
    marker = tmp_path / "payload-ran"
    payload = pickle.dumps(_Payload(str(marker)))
    files = {
        "pickle.safetensors": payload,
        "torch.safetensors": None,  # torch.save: a zip archive holding a pickle
    }
    torch.save({"weights": _Payload(str(marker))}, tmp_path / "torch.safetensors")
    for name, content in files.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match="is not a skvae model file"):
            load(tmp_path / name)
    # A real model file carrying the payload in its header and as a tensor.
    path = tmp_path / "model.safetensors"
    VAEDensityEstimator(**FAST).fit(X).save(path)
    _rewrite(path, metadata={"params": payload.decode("latin-1")})
    with pytest.raises(ValueError, match="not valid JSON"):
        load(path)
    VAEDensityEstimator(**FAST).fit(X).save(path)
    _rewrite(path, tensors={"module.payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8)})
    with pytest.raises(ValueError, match=r"unknown tensors: \['module.payload'\]"):
        load(path)
    assert not marker.exists()
    # The payload is live: unpickling the first file does run it.
    pickle.loads(payload)
    assert marker.exists()


def test_a_file_from_before_the_prior_parameter_loads_as_the_normal_prior(X, tmp_path):
    # Such a file holds an N(0, I) model; the density estimator's default is now the mixture.
    path = tmp_path / "model.safetensors"
    de = VAEDensityEstimator(**{**FAST, "prior": "normal"}).fit(X)
    de.save(path)
    params = _header(path, "params")
    del params["prior"]
    _rewrite(path, metadata={"params": json.dumps(params)})
    loaded = load(path)
    assert loaded.prior == "normal" and VAEDensityEstimator().prior == "mixture"
    np.testing.assert_array_equal(loaded.score_samples(X), de.score_samples(X))
    refit = clone(loaded).fit(X)
    assert refit.net_.module_.prior_components == 0
