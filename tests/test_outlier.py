"""Behaviour of VAEOutlierDetector as an unsupervised anomaly detector."""

import ast
import copy
import inspect
import re

import numpy as np
import pytest
import torch
from sklearn.base import clone, is_outlier_detector
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae import VAEDensityEstimator, VAEImputer, VAEOutlierDetector, VAETransformer
from skvae._callbacks import TrainingNoise
from skvae._transforms import YeoJohnsonTransform

FAST = dict(n_components=2, hidden_layer_sizes=(16,), max_iter=10, n_importance_samples=8)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _planted(n_normal=300, n_anomalies=15, seed=0):
    """Rows near a curved 2-D manifold in 6-D, then anomalies scattered off it (y=1)."""
    weights = np.random.default_rng(0).normal(size=(2, 6))  # the same manifold for every seed
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n_normal, 2))
    normal = np.tanh(z @ weights) + 0.05 * rng.normal(size=(n_normal, 6))
    anomalies = rng.uniform(-2, 2, size=(n_anomalies, 6))
    X = np.vstack([normal, anomalies])
    y = np.r_[np.zeros(n_normal, dtype=int), np.ones(n_anomalies, dtype=int)]
    return X, y


@pytest.fixture(scope="module")
def X():
    return _planted()[0]


@pytest.fixture(scope="module")
def fitted(X):
    return VAEOutlierDetector(random_state=0, **FAST).fit(X)


def test_is_an_outlier_detector_with_documented_outputs(fitted, X):
    assert is_outlier_detector(fitted)
    scores = fitted.score_samples(X)
    assert scores.shape == (len(X),) and scores.dtype == np.float64
    assert np.all(np.isfinite(scores))
    assert isinstance(fitted.offset_, float)
    assert set(np.unique(fitted.predict(X))) == {-1, 1}


def test_decision_function_is_score_minus_offset_and_predict_follows_its_sign(fitted, X):
    scores, decision = fitted.score_samples(X), fitted.decision_function(X)
    np.testing.assert_allclose(decision, scores - fitted.offset_)
    np.testing.assert_array_equal(fitted.predict(X), np.where(decision < 0, -1, 1))


def _tightest_split(scores):
    """By brute force: the midpoint of the split of sorted scores with the least within-group sum of squares."""
    x = np.sort(scores)
    cost = [np.sum((x[:i] - x[:i].mean()) ** 2) + np.sum((x[i:] - x[i:].mean()) ** 2) for i in range(1, len(x))]
    i = int(np.argmin(cost)) + 1
    return (x[i - 1] + x[i]) / 2


def test_auto_offset_splits_the_training_scores_into_the_two_tightest_groups(fitted, X):
    assert fitted.offset_ == pytest.approx(_tightest_split(fitted.score_samples(X)))


def test_auto_flags_the_planted_anomalies_and_few_normal_rows():
    X, y = _planted(n_normal=400, n_anomalies=40, seed=1)
    flagged = VAEOutlierDetector(random_state=0, **FAST).fit_predict(X) == -1
    # 82% and 0% here; some uniform draws land near the manifold.
    assert flagged[y == 1].mean() >= 0.75
    assert flagged[y == 0].mean() <= 0.05


@pytest.mark.parametrize("contamination", [0.01, 0.05, 0.2, 0.5])
def test_contamination_sets_the_proportion_flagged_on_training_data(contamination, X):
    od = VAEOutlierDetector(contamination=contamination, random_state=0, **FAST)
    n_flagged = np.sum(od.fit_predict(X) == -1)
    assert abs(n_flagged - contamination * len(X)) <= 1
    assert od.offset_ == pytest.approx(np.percentile(od.score_samples(X), 100 * contamination))


def test_same_random_state_gives_identical_detectors(X):
    a = VAEOutlierDetector(random_state=3, **FAST).fit(X)
    b = clone(a).fit(X)
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))
    assert a.offset_ == b.offset_
    c = VAEOutlierDetector(random_state=4, **FAST).fit(X)
    assert not np.array_equal(a.score_samples(X), c.score_samples(X))


def test_works_inside_a_pipeline(X):
    pipe = make_pipeline(StandardScaler(), VAEOutlierDetector(random_state=0, **FAST))
    labels = pipe.fit_predict(X * 100 + 5)
    assert labels.shape == (len(X),) and set(np.unique(labels)) <= {-1, 1}
    np.testing.assert_array_equal(pipe.predict(X * 100 + 5), labels)
    scaler = StandardScaler().fit(X * 100 + 5)
    by_hand = VAEOutlierDetector(random_state=0, **FAST).fit(scaler.transform(X * 100 + 5))
    np.testing.assert_array_equal(
        pipe.decision_function(X[:3] * 100 + 5), by_hand.decision_function(scaler.transform(X[:3] * 100 + 5))
    )


def test_planted_anomalies_are_found():
    X, y = _planted(n_normal=400, n_anomalies=20, seed=1)
    od = VAEOutlierDetector(
        n_components=2, hidden_layer_sizes=(32,), max_iter=100, n_importance_samples=16,
        random_state=0,
    ).fit(X)
    assert roc_auc_score(y, -od.score_samples(X)) > 0.95
    X_new, y_new = _planted(n_normal=200, n_anomalies=20, seed=2)
    assert roc_auc_score(y_new, -od.decision_function(X_new)) > 0.95


def test_without_noise_and_transform_it_is_the_density_estimator(X):
    params = dict(random_state=0, **FAST)
    # The detector's defaults, not the density estimator's, for what FAST leaves unset.
    vae_defaults = {k: v for k, v in VAEOutlierDetector().get_params().items() if k in VAEDensityEstimator().get_params()}
    vae_defaults["batch_size"] = min(128, len(X))  # the detector's 'auto'
    vae_defaults.update(training_noise=0.0, power_transform=False)
    plain = VAEDensityEstimator(**{**vae_defaults, **params}).fit(X)
    od = VAEOutlierDetector(training_noise=0.0, power_transform=False, kl_penalty=0.0, **params).fit(X)
    np.testing.assert_array_equal(od.score_samples(X), plain.score_samples(X))
    smoothed = VAEOutlierDetector(training_noise=0.3, power_transform=False, kl_penalty=0.0, **params).fit(X)
    assert not np.array_equal(smoothed.score_samples(X), plain.score_samples(X))


@pytest.mark.parametrize("params", [
    dict(bounds=(-3.0, 3.0)),
    dict(likelihood="continuous_bernoulli"),
])
def test_training_noise_keeps_other_spaces_valid(params, X):
    data = (X - X.min()) / (X.max() - X.min() + 1e-3) if "likelihood" in params else X
    od = VAEOutlierDetector(training_noise=0.5, random_state=0, **FAST, **params).fit(data)
    assert np.all(np.isfinite(od.loss_curve_))
    assert np.all(np.isfinite(od.score_samples(data)))


def test_kl_penalty_subtracts_the_codes_kl_from_the_log_density(fitted, X):
    # kl_penalty=0 (the default) scores by the log-density alone; a penalty
    # subtracts kl_penalty times the closed-form KL(q(z|x) || p(z)) of each
    # row's code.
    penalised = copy.deepcopy(fitted).set_params(kl_penalty=6.0)
    module = fitted.net_.module_
    with torch.no_grad():
        rows = module.preprocess(torch.as_tensor(X[:20]))
        qz = module.encode(rows.y, rows.mask, capped=True)
        kl = torch.distributions.kl_divergence(qz, module.prior()).double().numpy()
    assert fitted.kl_penalty == 0.0 and np.all(kl > 0)
    np.testing.assert_allclose(
        penalised.score_samples(X[:20]), fitted.score_samples(X[:20]) - 6.0 * kl, rtol=1e-6, atol=1e-4
    )
    # The ELBO, which holds the KL once already, counts it 1 + kl_penalty times.
    elbo = copy.deepcopy(fitted).set_params(bound="elbo")
    np.testing.assert_allclose(
        elbo.set_params(kl_penalty=6.0).score_samples(X[:20]),
        elbo.set_params(kl_penalty=0.0).score_samples(X[:20]) - 6.0 * kl, rtol=1e-6, atol=1e-4,
    )
    # A row with nothing observed scores 0, the log-probability of the sure event, penalty or not.
    assert penalised.score_samples(np.full((1, X.shape[1]), np.nan))[0] == 0.0


def test_kl_penalty_set_after_fit_rescores_rows_with_missing_entries(X):
    # Training does not depend on kl_penalty, so two fits differ only in how
    # they score; the reference rows' scores behind incomplete rows follow a
    # change of kl_penalty after fit.
    with_holes = X[:10].copy()
    with_holes[::2, 1] = np.nan
    penalised = VAEOutlierDetector(kl_penalty=6.0, random_state=0, **FAST).fit(X)
    plain = VAEOutlierDetector(random_state=0, **FAST).fit(X)
    before = penalised.decision_function(with_holes) + penalised.offset_
    penalised.set_params(kl_penalty=0.0)
    after = penalised.decision_function(with_holes) + penalised.offset_
    np.testing.assert_allclose(after, plain.decision_function(with_holes) + plain.offset_, rtol=1e-9)
    assert not np.allclose(before, after)


def test_partial_fit_updates_the_offset_from_the_chunk(X):
    od = VAEOutlierDetector(contamination=0.1, random_state=0, **FAST)
    od.partial_fit(X[:150])
    first = od.offset_
    od.partial_fit(X[150:])
    assert od.n_iter_ == 2 and od.offset_ != first
    assert od.offset_ == pytest.approx(np.percentile(od.score_samples(X[150:]), 10))


def test_power_transform_scores_are_log_densities_in_data_space(X):
    # The log-Jacobian of every internal map is added back: rescaling the
    # data by a shifts every score by -n_features * log(a), as for a density.
    od = VAEOutlierDetector(random_state=0, **FAST).fit(X)
    assert "yeo_johnson" in od.net_.module_.data_map.kinds
    scaled = clone(od).fit(3.0 * X)
    np.testing.assert_allclose(
        scaled.score_samples(3.0 * X), od.score_samples(X) - X.shape[1] * np.log(3.0), atol=1e-4
    )


def test_power_transformed_density_integrates_to_one_on_skewed_data():
    # Log-normal data: the fitted Yeo-Johnson exponent is far from 1 (about
    # -0.5), so the map's Jacobian is far from the identity's; without it (or
    # with its sign swapped) the density would integrate to far from 1.
    X = np.exp(np.random.default_rng(0).normal(size=(2000, 1)))
    # kl_penalty=0: the score is then the log-density itself.
    od = VAEOutlierDetector(n_components=1, hidden_layer_sizes=(16,), max_iter=30, random_state=0,
                            n_importance_samples=64, kl_penalty=0.0).fit(X)
    lambdas = od.net_.module_.data_map.step1_lambdas
    assert abs(float(lambdas[0]) - 1) > 1
    grid = np.linspace(1e-3, 200, 400_001)[:, None]
    assert np.trapezoid(np.exp(od.score_samples(grid)), grid[:, 0]) == pytest.approx(1, abs=0.03)


def test_power_transform_continues_linearly_beyond_the_training_range():
    X = np.exp(np.random.default_rng(0).normal(size=(500, 2)))
    od = VAEOutlierDetector(power_transform=True, random_state=0, **FAST).fit(X)
    data_map = od.net_.module_.data_map
    far = torch.tensor([[X[:, 0].max() + t, 1.0] for t in (10.0, 20.0, 30.0)], dtype=torch.float64)
    y, log_det = data_map(far)
    # Equal steps in x beyond the range give equal steps in y, and a constant Jacobian.
    np.testing.assert_allclose(np.diff(y[:, 0].numpy(), n=2), 0, atol=1e-9)
    np.testing.assert_allclose(np.diff(log_det.numpy()), 0, atol=1e-12)
    # Far rows are scored, in a range the model can handle.
    assert np.all(np.isfinite(od.score_samples(far.numpy())))


def test_the_clipped_inverse_holds_values_at_the_ends_and_leaves_the_density_alone():
    # A flat upper end (exponent -8): past f(high) the tangent's inverse runs far beyond the data.
    lambdas, low, high = (torch.tensor([v], dtype=torch.float64) for v in (-8.0, -0.5, 20.0))
    free, clipped = YeoJohnsonTransform(lambdas, low, high), YeoJohnsonTransform(lambdas, low, high, clip=True)
    u = torch.tensor([[-3.0], [-0.5], [0.0], [5.0], [20.0], [40.0]], dtype=torch.float64)
    y = free(u)
    torch.testing.assert_close(clipped(u), y)
    torch.testing.assert_close(clipped.log_abs_det_jacobian(u, y), free.log_abs_det_jacobian(u, y))
    inside = slice(1, 5)
    torch.testing.assert_close(clipped.inv(y[inside]), u[inside], rtol=1e-5, atol=1e-9)
    past = y[-1:] + torch.tensor([[1e-3]], dtype=torch.float64)
    assert free.inv(past).item() > 1e6
    # At the ends to round-off: the flat end's inverse is that sensitive.
    assert clipped.inv(past).item() == pytest.approx(20.0, rel=1e-5)
    assert clipped.inv(y[:1] - 1.0).item() == pytest.approx(-0.5, rel=1e-9)


def _long_right_tail(seed=0, n=600):
    """A column exp(2 z) tied to a normal z, its largest value 5x farther: its exponent is about -14."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    X = np.column_stack([z, np.exp(2.0 * z + 0.3 * rng.normal(size=n)), rng.normal(size=n)])
    X[np.argmax(X[:, 1]), 1] *= 5
    return X


def _handed_back(kind, X):
    settings = dict(n_components=2, hidden_layer_sizes=(16,), max_iter=20, n_importance_samples=50, random_state=0)
    if kind in ("imputed means", "imputed draws"):
        holes = np.random.default_rng(1).uniform(size=X.shape) < 0.2
        holes[:, 0] = False
        X_missing = np.where(holes, np.nan, X)
        imputer = VAEImputer(power_transform=True, sample_posterior=kind == "imputed draws", **settings)
        return imputer.fit(X_missing).transform(X_missing)[holes.any(axis=1)]
    if kind == "reconstructions":
        transformer = VAETransformer(power_transform=True, **settings).fit(X)
        return transformer.inverse_transform(transformer.transform(X))
    explained = VAEOutlierDetector(**settings).fit(X).explain(X[:100], n_top=3)
    expected = np.full((len(explained), X.shape[1]), np.nan)
    columns = explained["column"].str[1:].astype(int).to_numpy()
    expected[np.arange(len(columns)), columns] = explained["expected"].astype(float)
    return expected


@pytest.mark.parametrize("kind", ["imputed means", "imputed draws", "reconstructions", "expected values"])
def test_values_handed_back_through_a_flat_power_map_stay_within_the_training_range(kind):
    # Through the flat upper end of the power map the model's little mass past the
    # data's largest value maps 1e17 to 1e19 units beyond it when followed along
    # the tangent; means, imputations and reconstructions are held within the range
    # the map was fitted on (to round-off: the ends pass through the standardisation).
    X = _long_right_tail()
    values = _handed_back(kind, X)
    for j in range(X.shape[1]):
        column = values[:, j][~np.isnan(values[:, j])]
        assert len(column) and np.all(np.isfinite(column))
        if j == 1:
            low, high = X[:, j].min(), X[:, j].max()
            assert column.min() >= low - 1e-9 * abs(low) and column.max() <= high * (1 + 1e-9)


@pytest.mark.parametrize("params, on", [
    (dict(likelihood="continuous_bernoulli"), False),
    (dict(bounds=(-3.0, 3.0)), False),
    (dict(likelihood="gaussian_mixture"), True),
    (dict(power_transform=True, bounds=(-3.0, 3.0)), True),
    (dict(power_transform=np.False_), False),
])
def test_what_power_transform_auto_means(params, on, X):
    data = (X - X.min()) / (X.max() - X.min() + 1e-3) if "likelihood" in params and "bernoulli" in params["likelihood"] else X
    od = VAEOutlierDetector(random_state=0, **{**FAST, **params}).fit(data)
    assert ("yeo_johnson" in od.net_.module_.data_map.kinds) is on


def test_power_transform_needs_a_likelihood_of_real_values(X):
    data = (X - X.min()) / (X.max() - X.min() + 1e-3)
    with pytest.raises(ValueError, match="power_transform=True requires a likelihood of real values"):
        VAEOutlierDetector(power_transform=True, likelihood="continuous_bernoulli", **FAST).fit(data)


def test_likelihood_auto_is_the_detectors_gaussian_with_elbo_training(X):
    auto = VAEOutlierDetector(likelihood="auto", n_training_importance_samples="auto", random_state=0, **FAST).fit(X)
    explicit = VAEOutlierDetector(likelihood="gaussian", n_training_importance_samples=1, random_state=0, **FAST).fit(X)
    assert auto.net_.module_.arguments["likelihood"] == "gaussian" and auto.net_.n_draws == 1
    assert "yeo_johnson" in auto.net_.module_.data_map.kinds
    np.testing.assert_array_equal(auto.score_samples(X), explicit.score_samples(X))


def test_feature_names_are_kept_and_checked(X):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    od = VAEOutlierDetector(random_state=0, **FAST).fit(frame)
    assert list(od.feature_names_in_) == list(frame.columns)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        od.score_samples(X)


def test_warm_start_continues_the_same_model_with_new_settings(X):
    od = VAEOutlierDetector(warm_start=True, random_state=0, **FAST).fit(X)
    net, module = od.net_, od.net_.module_
    od.set_params(max_iter=3).fit(X)
    assert od.net_ is net and od.net_.module_ is module
    assert od.n_iter_ == 13


# The detector's own defaults, chosen for anomaly detection; the others are
# the shared ones, and must not follow changes made for density estimation.
DETECTOR_DEFAULTS = dict(
    n_components=8, hidden_layer_sizes=(128, 128), activation="relu", likelihood="gaussian",
    power_transform="auto", training_noise=0.05, n_training_importance_samples=1,
    learning_rate="constant", learning_rate_init=1e-3, max_iter=200, n_iter_no_change=10, ema_decay=0.0,
    contamination="auto", kl_penalty=0.0,
)


def test_defaults_are_the_detectors_own_and_reach_the_model(X):
    params, shared = VAEOutlierDetector().get_params(), VAETransformer().get_params()  # the shared defaults
    assert set(params) == set(shared) | {"contamination", "kl_penalty"}
    assert {k: params[k] for k in DETECTOR_DEFAULTS} == DETECTOR_DEFAULTS
    assert {k: params[k] for k in params if k not in DETECTOR_DEFAULTS} == {
        k: shared[k] for k in shared if k not in DETECTOR_DEFAULTS
    }
    od = VAEOutlierDetector(max_iter=1, random_state=0).fit(X)
    config = od.net_.module_.arguments
    assert (config["n_components"], config["hidden_layer_sizes"], config["activation"]) == (8, [128, 128], "relu")
    assert od.net_.optimizer_.param_groups[0]["lr"] == 1e-3
    callbacks = dict(od.net_.callbacks_)
    assert callbacks["training_noise"].std == 0.05 and "averaging" not in callbacks
    # batch_size='auto' is the detector's own rule, min(128, n_samples).
    assert od.net_.batch_size == min(128, len(X))
    assert VAEOutlierDetector(max_iter=1, batch_size=20).fit(X).net_.batch_size == 20


@pytest.mark.parametrize("Estimator", [VAEOutlierDetector, VAEDensityEstimator, VAETransformer])
def test_documented_defaults_match_the_signature(Estimator):
    documented = dict(re.findall(r"^    (\w+) : .*?default=(.+)$", Estimator.__doc__, flags=re.M))
    signature = inspect.signature(Estimator).parameters
    assert set(documented) == set(signature)
    for name, parameter in signature.items():
        assert ast.literal_eval(documented[name]) == parameter.default, name


def _noise(cb, net, batch, training=True):
    cb.on_train_begin(net)
    cb.on_batch_begin(net, batch=batch, training=training)
    return batch


def test_training_noise_shifts_training_batches_only_and_repeatably(fitted, X):
    y = torch.as_tensor(X[:64], dtype=torch.float32)
    cb = TrainingNoise(0.5)

    def batch():
        return ({"x": y.clone(), "log_det": torch.zeros(64)}, None)

    assert torch.equal(_noise(cb, fitted.net_, batch(), training=False)[0]["x"], y)
    first, second = (_noise(cb, fitted.net_, batch())[0]["x"] for _ in range(2))
    assert torch.equal(first, second)
    assert float((first - y).std()) == pytest.approx(0.5, rel=0.2)


def test_a_memory_mapped_training_set_gets_the_noise_too(X, tmp_path):
    data = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float64, shape=X.shape)
    data[:] = X
    params = dict(power_transform=False, random_state=0, **FAST)
    plain = VAEOutlierDetector(training_noise=0.0, **params).fit(data)
    noisy = VAEOutlierDetector(**params).fit(data)
    assert np.all(np.isfinite(noisy.score_samples(X)))
    assert not np.array_equal(noisy.score_samples(X), plain.score_samples(X))
    np.testing.assert_array_equal(data, X)


def test_auto_threshold_is_not_taken_by_one_extreme_row_or_infinite_scores():
    from skvae._outlier import _auto_threshold

    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal(-10, 1, 1000), rng.normal(-60, 3, 20)]
    assert np.sum(scores < _auto_threshold(scores)) == 20
    # Without the clipping, the -1e5 row alone made the lower group.
    for extreme in (-1e5, -np.inf):
        with_extreme = np.r_[scores, extreme]
        threshold = _auto_threshold(with_extreme)
        assert np.isfinite(threshold) and np.sum(with_extreme < threshold) == 21


def _otsu_in_one_pass(x):
    """Otsu's threshold of sorted x, every split at once: the reference for the block-wise scan."""
    n = len(x)
    i = np.arange(1, n)
    low = np.cumsum(x)[:-1]
    between = (i / n) * (1 - i / n) * (low / i - (x.sum() - low) / (n - i)) ** 2
    between[x[1:] == x[:-1]] = -np.inf  # no split inside a run of ties
    k = int(np.argmax(between))
    return (x[k] + x[k + 1]) / 2


@pytest.mark.parametrize("rounding", [None, 0.5])
def test_two_group_threshold_over_many_blocks_equals_the_one_pass_split(rounding):
    """More rows than one block of the scan (16384): the running sum carries over from block to block."""
    from skvae._outlier import _two_group_threshold

    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal(-10, 1, 30_000), rng.normal(-60, 3, 300)]
    if rounding:  # runs of ties across the blocks' edges; sums of halves are exact
        scores = np.round(scores / rounding) * rounding
    x = np.sort(scores)
    threshold = _two_group_threshold(x)
    assert threshold == _otsu_in_one_pass(x)
    assert np.sum(scores < threshold) == 300
    for block in (7, 1000, 16_384, len(x)):  # the split does not depend on the blocks
        assert _two_group_threshold(x, block=block) == threshold


def test_auto_threshold_of_more_rows_than_one_block_flags_the_lower_group():
    from skvae._outlier import _auto_threshold

    rng = np.random.default_rng(1)
    scores = rng.permutation(np.r_[rng.normal(-10, 1, 40_000), rng.normal(-40, 2, 500)])
    assert np.sum(scores < _auto_threshold(scores)) == 500
