"""Missing values: densities of the observed entries, and imputation against closed forms."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import multivariate_normal
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline

from skvae import VAEDensityEstimator, VAEImputer, VAEOutlierDetector, VAETransformer, load
from skvae._explain import reference_column_scores
from skvae._likelihoods import MIN_SCALE

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FAST = dict(n_components=2, hidden_layer_sizes=(16,), max_iter=5, n_importance_samples=8, random_state=0)
# A linear decoder under N(0, I), whose marginal has a closed form. The linear encoder cannot
# give each missingness pattern its own exact posterior; IWAE_20 training
# makes up for it (IWAE_4 left the fit 0.2 nats short of the truth).
LINEAR = dict(
    hidden_layer_sizes=(), likelihood="gaussian", prior="normal", n_components=2, n_training_importance_samples=20,
    random_state=0,
)


def _linear_gaussian(n_samples, seed=0, n_features=6):
    """Rows of x = z W + mu + 0.5 e, and the exact mean and covariance of x."""
    rng = np.random.default_rng(0)
    W, mu = rng.normal(size=(2, n_features)) * 2, rng.normal(size=n_features)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, 2)) @ W + mu + 0.5 * rng.normal(size=(n_samples, n_features))
    return X, mu, W.T @ W + 0.25 * np.eye(n_features)


def _remove(X, rate, seed):
    X = X.copy()
    X[np.random.default_rng(seed).uniform(size=X.shape) < rate] = np.nan
    return X


def _marginal_log_density(X, mean, cov):
    """Exact log p(x_obs) per row of a Gaussian, over each row's observed entries."""
    out = np.zeros(len(X))
    for i, row in enumerate(X):
        seen = ~np.isnan(row)
        if seen.any():
            out[i] = multivariate_normal(mean[seen], cov[np.ix_(seen, seen)]).logpdf(row[seen])
    return out


def _fitted_moments(est):
    """Mean and covariance in data space of a fitted linear-Gaussian VAE."""
    module = est.net_.module_
    with torch.no_grad():
        W = module.decoder_head.weight.double()
        s = F.softplus(module.raw_scale.double()) + MIN_SCALE
        loc, scale = module.data_map.step0_loc, module.data_map.step0_scale
        mean = loc + scale * module.decoder_head.bias.double()
        cov = scale[:, None] * (W @ W.T + torch.diag(s**2)) * scale[None, :]
    return mean.numpy(), cov.numpy()


@pytest.fixture(scope="module")
def linear_fit():
    X, mean, cov = _linear_gaussian(3000)
    de = VAEDensityEstimator(learning_rate_init=1e-2, n_iter_no_change=30, **LINEAR).fit(_remove(X[:2000], 0.3, 0))
    return de, X[2000:], mean, cov


def test_scores_of_incomplete_rows_are_log_densities_of_their_observed_entries(linear_fit):
    de, X_test, true_mean, true_cov = linear_fit
    X_missing = _remove(X_test, 0.3, 1)
    scores = de.set_params(n_importance_samples=1000).score_samples(X_missing)
    # Against the fitted model's own marginal: the estimate's error (its 90th
    # percentile was 0.07 to 0.13 over random_state 0 to 2)...
    mean, cov = _fitted_moments(de)
    error = scores - _marginal_log_density(X_missing, mean, cov)
    assert abs(np.mean(error)) < 0.05 and np.percentile(np.abs(error), 90) < 0.15
    # ...and against the law that made the data, on average.
    assert np.mean(scores - _marginal_log_density(X_missing, true_mean, true_cov)) == pytest.approx(0, abs=0.05)


def test_a_model_trained_on_complete_rows_scores_incomplete_ones_tightly():
    # The encoder never saw a hole: from a zero-filled row its posterior is a
    # poor proposal, and the bound fell several nats short of log p(x_obs)
    # before the proposal of incomplete rows was refined.
    X, _, _ = _linear_gaussian(3000)
    de = VAEDensityEstimator(learning_rate_init=1e-2, n_iter_no_change=30, **LINEAR).fit(X[:2000])
    assert not de.net_.module_.mask_input
    X_missing = _remove(X[2000:], 0.3, 1)
    X_missing = X_missing[np.isnan(X_missing).any(axis=1) & ~np.isnan(X_missing).all(axis=1)]
    mean, cov = _fitted_moments(de)
    error = de.set_params(n_importance_samples=1000).score_samples(X_missing) - _marginal_log_density(
        X_missing, mean, cov
    )
    # Refined: 0.06 nats short on average (IWAE_1000); from the zero-filled
    # encoding it was 0.8.
    assert abs(np.mean(error)) < 0.1 and np.percentile(np.abs(error), 90) < 0.2


def test_a_row_with_no_observed_entry_scores_zero_and_others_are_unaffected(linear_fit):
    de, X_test, _, _ = linear_fit
    X = np.vstack([X_test[:5], np.full((1, X_test.shape[1]), np.nan)])
    scores = de.score_samples(X)
    assert scores[-1] == 0.0
    np.testing.assert_array_equal(scores[:5], de.score_samples(X_test[:5]))


def test_missing_entries_do_not_enter_the_training_loss():
    # Rows with a missing entry train the model exactly as the rows would
    # without that feature's value: changing the values at masked places
    # (NaN in the data) changes nothing.
    X, _, _ = _linear_gaussian(200)
    X_missing = _remove(X, 0.3, 0)
    a = VAEDensityEstimator(**FAST).fit(X_missing)
    b = VAEDensityEstimator(**FAST).fit(X_missing.copy())
    assert a.loss_curve_ == b.loss_curve_
    complete = VAEDensityEstimator(**FAST).fit(X)
    assert a.loss_curve_ != complete.loss_curve_ and a.net_.module_.mask_input


def test_scaling_statistics_come_from_the_observed_values():
    X, _, _ = _linear_gaussian(500)
    X_missing = _remove(X, 0.4, 0)
    de = VAEDensityEstimator(**FAST).fit(X_missing)
    data_map = de.net_.module_.data_map
    np.testing.assert_allclose(data_map.step0_loc.numpy(), np.nanmean(X_missing, axis=0))
    np.testing.assert_allclose(data_map.step0_scale.numpy(), np.nanstd(X_missing, axis=0))


def _conditional_means(X_missing, mean, cov):
    """E[x_miss | x_obs] of a Gaussian, filled in."""
    exact = X_missing.copy()
    for row in exact:
        miss = np.isnan(row)
        if miss.any() and (~miss).any():
            gain = cov[np.ix_(miss, ~miss)] @ np.linalg.inv(cov[np.ix_(~miss, ~miss)])
            row[miss] = mean[miss] + gain @ (row[~miss] - mean[~miss])
    return exact


def test_imputed_means_match_the_gaussian_conditional_mean():
    # On linear-Gaussian data E[x_miss | x_obs] has a closed form: the
    # imputations must be close to the fitted model's, and near the law's.
    X, mean, cov = _linear_gaussian(3000)
    X_missing = _remove(X, 0.3, 0)
    imputer = VAEImputer(learning_rate_init=1e-2, n_iter_no_change=30, n_importance_samples=500, **LINEAR)
    filled = imputer.fit(X_missing[:2000]).transform(X_missing[2000:])
    holes = np.isnan(X_missing[2000:]) & ~np.all(np.isnan(X_missing[2000:]), axis=1, keepdims=True)
    # How far the entries lie from their conditional mean: the scale of the task.
    truth = _conditional_means(X_missing[2000:], mean, cov)
    spread = np.sqrt(np.mean((X[2000:][holes] - truth[holes]) ** 2))
    fitted = _conditional_means(X_missing[2000:], *_fitted_moments(imputer))
    assert np.sqrt(np.mean((filled[holes] - fitted[holes]) ** 2)) < 0.1 * spread
    assert np.sqrt(np.mean((filled[holes] - truth[holes]) ** 2)) < 0.15 * spread


def test_an_imputer_fitted_on_complete_rows_imputes_conditional_means():
    # Its encoder never saw a hole; the refined proposal still gives
    # E[x_miss | x_obs] of the fitted model: RMSE 0.08 of a spread of 0.76
    # (from the zero-filled encoding: 0.60).
    X, mean, cov = _linear_gaussian(3000)
    imputer = VAEImputer(learning_rate_init=1e-2, n_iter_no_change=30, n_importance_samples=500, **LINEAR)
    X_missing = _remove(X[2000:], 0.3, 0)
    filled = imputer.fit(X[:2000]).transform(X_missing)
    assert not imputer.net_.module_.mask_input
    holes = np.isnan(X_missing) & ~np.all(np.isnan(X_missing), axis=1, keepdims=True)
    spread = np.sqrt(np.mean((X[2000:][holes] - _conditional_means(X_missing, mean, cov)[holes]) ** 2))
    fitted = _conditional_means(X_missing, *_fitted_moments(imputer))
    assert np.sqrt(np.mean((filled[holes] - fitted[holes]) ** 2)) < 0.15 * spread


def test_posterior_samples_follow_the_conditional_distribution():
    X, mean, cov = _linear_gaussian(3000)
    X_missing = _remove(X, 0.3, 0)
    params = dict(learning_rate_init=1e-2, n_iter_no_change=30, n_importance_samples=500, **LINEAR)
    sampler = VAEImputer(sample_posterior=True, **params).fit(X_missing)
    # One row repeated: each copy gets its own draw from p(x_miss | x_obs).
    row = X[:1].copy()
    row[0, [0, 3]] = np.nan
    draws = sampler.transform(np.repeat(row, 2000, axis=0))[:, [0, 3]]
    seen, miss = np.array([1, 2, 4, 5]), np.array([0, 3])
    inverse = np.linalg.inv(cov[np.ix_(seen, seen)])
    exact_mean = mean[miss] + cov[np.ix_(miss, seen)] @ inverse @ (row[0, seen] - mean[seen])
    exact_cov = cov[np.ix_(miss, miss)] - cov[np.ix_(miss, seen)] @ inverse @ cov[np.ix_(seen, miss)]
    exact_sd = np.sqrt(np.diag(exact_cov))
    np.testing.assert_allclose(draws.mean(axis=0), exact_mean, atol=0.2 * exact_sd.max())
    np.testing.assert_allclose(draws.std(axis=0), exact_sd, rtol=0.25)
    # Imputers fitted with other random states give other imputations (multiple imputation).
    other = VAEImputer(sample_posterior=True, **{**params, "random_state": 1}).fit(X_missing)
    assert not np.array_equal(other.transform(X_missing), sampler.transform(X_missing))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_observed_entries_come_back_bit_for_bit(dtype):
    X = _remove(np.random.default_rng(0).normal(size=(80, 4)) * 1e3, 0.3, 0).astype(dtype)
    filled = VAEImputer(**FAST).fit(X).transform(X)
    assert filled.dtype == dtype and not np.isnan(filled).any()
    np.testing.assert_array_equal(filled[~np.isnan(X)], X[~np.isnan(X)])


def test_other_missing_value_markers_in_integer_data():
    X = np.random.default_rng(0).integers(0, 10, size=(60, 3))
    X[::4, 1] = -1
    imputer = VAEImputer(missing_values=-1, **FAST).fit(X)
    filled = imputer.transform(X)
    assert not np.any(filled[::4, 1] == -1)
    np.testing.assert_array_equal(filled[X != -1], X[X != -1])
    with pytest.raises(ValueError, match="Input X contains NaN"):
        imputer.transform(np.where(X == -1, np.nan, X))


@pytest.mark.parametrize("keep", [False, True])
def test_features_with_no_observed_value_at_fit(keep):
    X = np.random.default_rng(0).normal(size=(60, 3))
    X[:, 1] = np.nan
    X[::5, 2] = np.nan
    imputer = VAEImputer(keep_empty_features=keep, add_indicator=True, **FAST).fit(X)
    out = imputer.transform(X)
    names = list(imputer.get_feature_names_out())
    if keep:
        assert out.shape == (60, 5) and np.all(out[:, 1] == 0)
        assert names == ["x0", "x1", "x2", "missingindicator_x1", "missingindicator_x2"]
    else:
        assert out.shape == (60, 4)
        assert names == ["x0", "x2", "missingindicator_x1", "missingindicator_x2"]
    np.testing.assert_array_equal(out[:, -1], np.isnan(X[:, 2]))
    with pytest.raises(ValueError, match=r"Features \[1\] of X have no observed value"):
        VAEDensityEstimator(**FAST).fit(X)


def test_set_output_pipeline_and_search():
    pd = pytest.importorskip("pandas")
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    X = _remove(X[:, :8], 0.2, 0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(8)])
    imputer = VAEImputer(**FAST).set_output(transform="pandas")
    out = imputer.fit_transform(frame)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == list(frame.columns)
    pipe = make_pipeline(VAEImputer(**FAST), LogisticRegression(max_iter=500))
    assert cross_val_score(pipe, X, y, cv=3).mean() > 0.8
    search = GridSearchCV(VAEImputer(**FAST), {"n_components": [1, 2]}, cv=2).fit(X)
    best = int(np.argmax(search.cv_results_["mean_test_score"]))
    assert search.best_params_ == search.cv_results_["params"][best]


@pytest.mark.parametrize("Estimator", [VAEDensityEstimator, VAETransformer, VAEOutlierDetector, VAEImputer])
def test_memory_mapped_data_with_holes_streams_and_scores_block_by_block(Estimator, tmp_path):
    X = _remove(np.random.default_rng(0).normal(size=(300, 4)), 0.3, 0)
    np.save(tmp_path / "X.npy", X)
    X_disk = np.load(tmp_path / "X.npy", mmap_mode="r")
    est = Estimator(**FAST).fit(X_disk)
    full = est.score_samples(X)
    blocks = [est.score_samples(X_disk[a:b]) for a, b in [(0, 17), (17, 200), (200, 300)]]
    np.testing.assert_array_equal(np.concatenate(blocks), full)
    assert np.all(np.isfinite(full))


@pytest.mark.parametrize("Estimator", [VAEImputer, VAEOutlierDetector])
def test_saved_models_keep_what_missing_data_needs(Estimator, tmp_path):
    X = _remove(np.random.default_rng(0).normal(size=(100, 4)), 0.3, 0)
    X[:, 2] = np.nan
    params = {**FAST, "add_indicator": True, "keep_empty_features": True} if Estimator is VAEImputer else FAST
    est = Estimator(**params).fit(X if Estimator is VAEImputer else np.delete(X, 2, axis=1))
    data = X if Estimator is VAEImputer else np.delete(X, 2, axis=1)
    est.save(tmp_path / "model.safetensors")
    loaded = load(tmp_path / "model.safetensors")
    assert loaded.net_.module_.mask_input
    method = "transform" if Estimator is VAEImputer else "decision_function"
    np.testing.assert_array_equal(getattr(loaded, method)(data), getattr(est, method)(data))


def test_detector_scores_are_comparable_across_missingness_patterns():
    # Normal rows scored with 40% of their entries removed: their raw
    # log p(x_obs) is far higher than complete rows' (fewer terms), but the
    # decision function puts them on the complete rows' scale, so about as
    # many of them are flagged.
    X, _, _ = _linear_gaussian(3000, seed=1)
    od = VAEOutlierDetector(contamination=0.1, random_state=0, n_components=2, max_iter=30).fit(X[:2000])
    complete, incomplete = X[2000:2500], _remove(X[2500:], 0.4, 2)
    incomplete = incomplete[~np.isnan(incomplete).all(axis=1) & np.isnan(incomplete).any(axis=1)]
    raw_gap = np.median(od.score_samples(incomplete)) - np.median(od.score_samples(complete))
    gap = np.median(od.decision_function(incomplete)) - np.median(od.decision_function(complete))
    assert raw_gap > 2.0 and abs(gap) < 0.2 * raw_gap
    flagged = [np.mean(od.predict(part) == -1) for part in (complete, incomplete)]
    assert flagged[1] == pytest.approx(flagged[0], abs=0.05)
    # Complete rows keep their score; a row with nothing observed is typical.
    np.testing.assert_array_equal(od.decision_function(complete), od.score_samples(complete) - od.offset_)
    assert od.predict(np.full((1, X.shape[1]), np.nan))[0] == 1


def test_detector_finds_anomalies_among_incomplete_rows():
    X, _, _ = _linear_gaussian(2400, seed=1)
    od = VAEOutlierDetector(random_state=0, n_components=2, max_iter=30).fit(X[:2000])
    anomalies = X[2000:2200] + np.random.default_rng(3).choice([-6.0, 6.0], size=(200, X.shape[1]))
    test = _remove(np.vstack([X[2200:], anomalies]), 0.3, 4)
    labels = np.r_[np.zeros(200), np.ones(200)]
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(labels, -od.decision_function(test)) > 0.95


def test_detector_reference_rows_are_the_most_complete_training_rows():
    X, _, _ = _linear_gaussian(600)
    X = _remove(X, 0.3, 0)
    complete = ~np.isnan(X).any(axis=1)
    n_complete = int(complete.sum())
    assert 0 < n_complete < 256
    od = VAEOutlierDetector(**FAST).fit(X)
    # Every complete row first, then the rows with one missing entry.
    assert len(od.reference_) == 256
    n_missing = np.isnan(od.reference_).sum(axis=1)
    assert np.sum(n_missing == 0) == n_complete
    assert n_missing.max() <= np.sort(np.isnan(X).sum(axis=1))[255]


def test_detector_feature_drops_are_the_reference_rows_scored_without_that_feature():
    # The calibration of a pattern adds up one drop per missing feature; each
    # drop is the reference rows' score lost by hiding that feature alone,
    # and 0 where a reference row lacks the feature already.
    X = _remove(_linear_gaussian(600)[0], 0.3, 0)
    od = VAEOutlierDetector(**FAST).fit(X)
    # Each row's drops come from its own proposal and draws (one pass for all
    # features): they estimate what scoring the row without the feature does.
    full, drops = od._reference_drops()
    reference = od.reference_
    np.testing.assert_array_equal(full, od.score_samples(reference))
    np.testing.assert_array_equal(drops, np.nan_to_num(reference_column_scores(od, reference)[1].T, nan=0.0))
    for feature in range(X.shape[1]):
        hidden = reference.copy()
        hidden[:, feature] = np.nan
        difference = (drops[feature] - (full - od.score_samples(hidden)))[~np.isnan(reference[:, feature])]
        assert np.median(np.abs(difference)) < 0.1
    assert np.all(drops[np.isnan(reference).T] == 0) and np.isnan(reference).any()
    # Another scoring setting gets drops of its own.
    od.set_params(n_importance_samples=4)
    np.testing.assert_array_equal(od._reference_drops()[0], od.score_samples(reference))


def test_imputer_defaults_are_its_own_and_the_rest_shared():
    # The imputer's defaults were chosen by imputation error with these
    # values (the class Notes); every other parameter is the shared one.
    own = dict(
        n_importance_samples=1000, learning_rate_init=1e-3, max_iter=200, discrete_features="auto", early_stopping=False
    )
    params, shared = VAEImputer().get_params(), VAETransformer().get_params()  # the shared defaults
    assert {k: params[k] for k in own} == own
    assert {k: v for k, v in params.items() if k not in own and k in shared} == {
        k: v for k, v in shared.items() if k not in own and k in params
    }


@pytest.mark.parametrize("k_chunk", [1, 7, 64])
def test_conditional_means_over_chunks_of_draws_equal_one_softmax_over_all(k_chunk):
    from skvae import _inference

    X = _remove(np.random.default_rng(0).normal(size=(48, 5)), 0.3, 0)
    module = VAEImputer(**{**FAST, "likelihood": "gaussian_mixture"}).fit(X).net_.module_
    eps = torch.randn(64, module.n_components, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y, _, mask, bins = module.preprocess(torch.as_tensor(X[:32]))
        qz = module.posterior(y, mask)
        chunked = module.conditional_mean(y, mask, qz, eps, k_chunk, bins, means=lambda px: _inference._data_means(module, px))
        # The reference: every draw at once, weights normalised by one softmax per row.
        z = qz.base_dist.loc + qz.base_dist.scale * eps[:, None, :]
        px = module.decode(z, bins)
        log_w = px.base_dist.observed_log_prob(y, mask) + module.prior().log_prob(z) - qz.log_prob(z)
        weights = torch.softmax(log_w.double(), dim=0)
        reference = (weights[..., None] * _inference._data_means(module, px)).sum(0)
    torch.testing.assert_close(chunked, reference, rtol=1e-9, atol=1e-12)


def test_a_first_chunk_of_zero_weights_leaves_the_conditional_mean_to_the_later_chunks(monkeypatch):
    from skvae import _module

    X = _remove(np.random.default_rng(0).normal(size=(48, 5)), 0.3, 0)
    module = VAEImputer(**FAST).fit(X).net_.module_
    eps = torch.randn(16, module.n_components, generator=torch.Generator().manual_seed(3))
    eps = eps[torch.argsort(eps[:, 0])]  # the draws of a negative first coordinate first
    n_zero = int((eps[:, 0] < 0).sum())
    weights = _module.log_importance_weights

    def zero_below_zero(y, z, *, qz, **kwargs):
        # Weight 0 (log w = -inf) in every row for the draws of a negative first coordinate.
        first = (z[..., 0] - qz.base_dist.loc[:, 0]) / qz.base_dist.scale[:, 0]
        return torch.where(first < 0, -torch.inf, weights(y, z, qz=qz, **kwargs))

    monkeypatch.setattr(_module, "log_importance_weights", zero_below_zero)
    with torch.no_grad():
        y, _, mask, _ = module.preprocess(torch.as_tensor(X[:8]))
        qz = module.posterior(y, mask)
        z = qz.base_dist.loc + qz.base_dist.scale * eps[:, None, :]
        log_w = zero_below_zero(y, z, qz=qz, pz=module.prior(), px=module.decode(z), mask=mask)
        assert 0 < n_zero < len(eps) and torch.isinf(log_w[:n_zero]).all() and torch.isfinite(log_w[n_zero:]).all()
        whole = module.conditional_mean(y, mask, qz, eps, None)
        chunked = module.conditional_mean(y, mask, qz, eps, n_zero)  # a first chunk of weight 0 alone
    assert torch.isfinite(whole).all()
    torch.testing.assert_close(chunked, whole, rtol=1e-9, atol=1e-12)
