"""VAEOutlierDetector's explanations: score_features, explain and predict_cells."""

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

from skvae import VAEImputer, VAEOutlierDetector, _inference, load
from skvae._explain import column_scores, log_density, reference_column_scores
from test_density import _ppca_data, _set_exact_posterior
from test_missing import _fitted_moments, _marginal_log_density

pd = pytest.importorskip("pandas")

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FAST = dict(n_components=2, hidden_layer_sizes=(32,), max_iter=40, random_state=0)


def _correlated(n_samples, seed=0):
    """Five columns driven by two latent factors, little noise: each column is predictable from the rest."""
    rng = np.random.default_rng(seed)
    W = np.array([[1.0, 1.0, 0.5, 0.0, -1.0], [0.0, 0.5, 1.0, 1.0, 0.5]])
    return rng.normal(size=(n_samples, 2)) @ W + 0.1 * rng.normal(size=(n_samples, 5))


@pytest.fixture(scope="module")
def detector():
    return VAEOutlierDetector(contamination=0.01, **FAST).fit(_correlated(600))


@pytest.fixture(scope="module")
def test_rows():
    X = _correlated(60, seed=1)
    X[::7, 1] = np.nan
    X[3, [0, 1, 2, 4]] = np.nan  # one observed entry
    return X


def test_score_features_is_the_drop_of_the_row_score_when_the_entry_is_hidden(detector, test_rows):
    scores = detector.score_features(test_rows)
    expected = np.full(test_rows.shape, np.nan)
    full = detector.score_samples(test_rows)
    for j in range(test_rows.shape[1]):
        hidden = test_rows.copy()
        hidden[:, j] = np.nan
        observed = ~np.isnan(test_rows[:, j])
        expected[observed, j] = (full - detector.score_samples(hidden))[observed]
    # The same draws, and a row's score does not depend on the rows scored with it.
    np.testing.assert_array_equal(scores, expected)


def test_score_features_ignore_kl_penalty(detector, test_rows):
    penalised = VAEOutlierDetector(contamination=0.01, kl_penalty=6.0, **FAST).fit(_correlated(600))
    np.testing.assert_array_equal(penalised.score_features(test_rows), detector.score_features(test_rows))
    np.testing.assert_array_equal(penalised.reference_feature_scores_, detector.reference_feature_scores_)
    assert not np.array_equal(penalised.score_samples(test_rows), detector.score_samples(test_rows))


def test_missing_entries_score_nan_and_a_lone_entry_scores_its_marginal(detector, test_rows):
    scores = detector.score_features(test_rows)
    np.testing.assert_array_equal(np.isnan(scores), np.isnan(test_rows))
    # Hiding the only observed entry leaves nothing: its score is log p(x_j).
    assert scores[3, 3] == detector.score_samples(test_rows[3:4])[0]


def test_the_corrupted_entry_scores_lowest(detector):
    rng = np.random.default_rng(2)
    X = _correlated(200, seed=3)
    columns = rng.integers(0, 5, len(X))
    rows = np.arange(len(X))
    shift, swap = rows < 100, rows >= 100
    X[shift, columns[shift]] += rng.choice([-4.0, 4.0], shift.sum())
    # Swaps: the value of another row, at least 2 away from the true one, within the column's range.
    donors = _correlated(2000, seed=4)
    for i in rows[swap]:
        far = donors[np.abs(donors[:, columns[i]] - X[i, columns[i]]) > 2, columns[i]]
        X[i, columns[i]] = far[0]
    lowest = np.argmin(detector.score_features(X), axis=1)
    assert (lowest == columns)[shift].mean() > 0.9
    assert (lowest == columns)[swap].mean() > 0.7  # chance: 0.2


@pytest.fixture(scope="module")
def linear_detector():
    """A linear decoder with Gaussian noise is factor analysis: log p(x_j | rest) has a closed form.

    The encoder is set to the decoder's exact posterior (of complete rows), so
    that what the tests check is the difference of two scores, not the fit.
    Returns the detector, its rows in data space, and their mean and covariance.
    """
    X = _ppca_data(400, n_features=4, n_components=1, seed=5)
    od = VAEOutlierDetector(
        n_components=1, hidden_layer_sizes=(), power_transform=False, training_noise=0.0,
        n_importance_samples=1000, max_iter=3, random_state=0,
    ).fit(X[:300])
    _set_exact_posterior(od)
    return od, X[300:340], *_fitted_moments(od)


def _exact_conditionals(rows, mean, cov):
    """log p(x_j | the row's other observed entries) of a Gaussian, NaN where x_j is missing."""
    exact = np.full(rows.shape, np.nan)
    for j in range(rows.shape[1]):
        hidden = rows.copy()
        hidden[:, j] = np.nan
        observed = ~np.isnan(rows[:, j])
        exact[observed, j] = (_marginal_log_density(rows, mean, cov) - _marginal_log_density(hidden, mean, cov))[observed]
    return exact


def test_scores_of_a_linear_gaussian_model_are_its_exact_conditionals(linear_detector):
    od, rows, mean, cov = linear_detector
    np.testing.assert_allclose(od.score_features(rows), _exact_conditionals(rows, mean, cov), rtol=0, atol=0.05)


def test_scores_are_stable_across_draws_with_the_default_draws(detector, test_rows):
    scores = detector.score_features(test_rows)
    seed = detector._seed
    try:
        detector._seed = seed + 1  # other draws, the same model
        other = detector.score_features(test_rows)
    finally:
        detector._seed = seed
    observed = ~np.isnan(scores)
    assert not np.array_equal(scores[observed], other[observed])
    # With the default 100 draws: a few hundredths of a nat for a typical
    # entry, a few tenths at most (user guide, "Explaining anomalies").
    difference = np.abs(other[observed] - scores[observed])
    assert np.median(difference) < 0.05 and difference.max() < 0.5


def test_explain_lists_the_lowest_scored_observed_entries(detector, test_rows):
    table = detector.explain(test_rows, n_top=2)
    log_probs = detector.score_features(test_rows)
    scores = log_probs + np.log(detector.feature_scales_)
    assert list(table.columns) == ["row", "rank", "column", "value", "score", "expected", "tail_probability"]
    assert len(table) == 2 * len(test_rows) - 1  # the row with one observed entry lists one
    for i, listed in table.groupby("row"):
        order = np.argsort(np.where(np.isnan(scores[i]), np.inf, scores[i]), kind="stable")
        n = min(2, int((~np.isnan(test_rows[i])).sum()))
        assert list(listed["rank"]) == list(range(1, n + 1))
        assert list(listed["column"]) == [f"x{j}" for j in order[:n]]
        np.testing.assert_array_equal(listed["score"], scores[i, order[:n]])
        np.testing.assert_array_equal(listed["value"].astype(float), test_rows[i, order[:n]])
    first = table.iloc[0]
    j = int(first["column"][1:])
    reference = detector.reference_feature_scores_[:, j]
    raw = first["score"] - np.log(detector.feature_scales_[j])
    assert first["tail_probability"] == np.mean(reference[~np.isnan(reference)] <= raw)
    assert len(detector.explain(test_rows, n_top=10)) == int((~np.isnan(test_rows)).sum())


def test_explain_ranks_columns_whatever_their_units():
    # The model standardises each column, so the same data in grams and in
    # kilograms give the same model; log p(x_j | rest) of the column in grams
    # is log(1000) lower, and the ranking must not follow it.
    X = _correlated(600)
    rows = _correlated(40, seed=5)
    rows[np.arange(40), np.arange(40) % 5] += 2.5
    kilograms = VAEOutlierDetector(**FAST).fit(X)
    grams = VAEOutlierDetector(**FAST).fit(X * [1000.0, 1, 1, 1, 1])
    np.testing.assert_allclose(grams.feature_scales_, kilograms.feature_scales_ * [1000.0, 1, 1, 1, 1], rtol=1e-9)
    np.testing.assert_allclose(kilograms.feature_scales_, np.std(X, axis=0), rtol=1e-12)
    raw = grams.score_features(rows * [1000.0, 1, 1, 1, 1])
    np.testing.assert_allclose(raw[:, 0], kilograms.score_features(rows)[:, 0] - np.log(1000.0), atol=1e-3)
    first_in_kilograms = kilograms.explain(rows, n_top=1)
    first_in_grams = grams.explain(rows * [1000.0, 1, 1, 1, 1], n_top=1)
    assert list(first_in_grams["column"]) == list(first_in_kilograms["column"])
    np.testing.assert_allclose(first_in_grams["score"], first_in_kilograms["score"], atol=1e-3)


def test_feature_scales_are_the_training_sds_of_numeric_columns(monkeypatch):
    from skvae import _arrays

    table = _mixed_table(300)
    table.loc[::7, "r"] = np.nan
    table["r"] += 1e6  # far from 0: the moments must keep their digits
    # Blocks of 40 rows: the sums must carry over between blocks.
    monkeypatch.setattr(_arrays, "STREAM_ELEMENTS", 40 * table.shape[1])
    fitted = VAEOutlierDetector(**FAST).fit(table)
    names = list(table.columns)
    expected = [1.0 if str(table[c].dtype) == "category" else np.nanstd(table[c].to_numpy(float)) for c in names]
    np.testing.assert_allclose(fitted.feature_scales_, expected, rtol=1e-9)


def test_explain_expects_the_conditional_mean(detector):
    row = _correlated(1, seed=7)
    truth = row[0, 2]
    row[0, 2] += 5.0
    first = detector.explain(row, n_top=1).iloc[0]
    assert first["column"] == "x2" and first["value"] == row[0, 2]
    hidden = row.copy()
    hidden[0, 2] = np.nan
    # The imputation machinery's conditional mean, on the row with x2 hidden.
    mean = _inference.impute(
        detector.net_.module_, hidden, n_draws=detector.n_importance_samples, seed=detector._seed,
        device=detector.net_.device,
    )[0, 2]
    assert first["expected"] == mean
    assert abs(first["expected"] - truth) < 0.5
    assert first["tail_probability"] == 0.0


def _mixed_table(n_samples, seed=0):
    rng = np.random.default_rng(seed)
    r = rng.normal(size=n_samples)
    return pd.DataFrame({
        "r": r,
        "r2": 2 * r + 0.1 * rng.normal(size=n_samples),
        "count": rng.poisson(3, size=n_samples).astype(np.int64),
        "colour": pd.Categorical(np.where(r > 0.5, "red", np.where(r < -0.5, "blue", "green"))),
    }, index=[f"id{i}" for i in range(n_samples)])


@pytest.fixture(scope="module")
def table_detector():
    frame = _mixed_table(600)
    frame.loc[frame.index[::9], "r2"] = np.nan
    frame.loc[frame.index[::13], "colour"] = np.nan
    return VAEOutlierDetector(contamination=0.01, **FAST).fit(frame)


def test_a_table_gets_frames_back_with_levels_and_expected_levels(table_detector):
    frame = _mixed_table(30, seed=1)
    frame.loc[frame.index[::4], "r2"] = np.nan
    frame.loc["id1", ["r", "r2"]] = [2.0, 4.0]
    frame.loc["id1", "colour"] = "blue"  # the level of the other end of r
    scores = table_detector.score_features(frame)
    assert isinstance(scores, pd.DataFrame)
    assert list(scores.index) == list(frame.index) and list(scores.columns) == list(frame.columns)
    np.testing.assert_array_equal(scores.isna().to_numpy(), frame.isna().to_numpy())
    table = table_detector.explain(frame, n_top=1)
    first = table[table["row"] == "id1"].iloc[0]
    assert (first["column"], first["value"], first["expected"]) == ("colour", "blue", "red")
    flags = table_detector.predict_cells(frame)
    assert isinstance(flags, pd.DataFrame) and flags.dtypes.eq(bool).all()
    assert list(flags.index) == list(frame.index) and flags.loc["id1", "colour"]
    assert not flags.to_numpy()[frame.isna().to_numpy()].any()


def test_the_cleaning_recipe_runs_on_a_table(table_detector):
    frame = _mixed_table(40, seed=2)
    frame.loc["id2", "r"] = 30.0
    flags = table_detector.predict_cells(frame)
    assert flags.loc["id2", "r"]
    imputer = VAEImputer(n_components=2, hidden_layer_sizes=(16,), max_iter=2, random_state=0).fit(_mixed_table(200))
    clean = imputer.transform(frame.mask(flags))
    assert not clean.isna().any().any() and clean.loc["id2", "r"] < 5
    assert (clean.dtypes == frame.dtypes).all()


def test_predict_cells_flags_planted_shifts_and_few_clean_cells(detector, test_rows):
    X = test_rows.copy()
    X[10, 4] = 40.0  # far outside the column's range
    flags = detector.predict_cells(X)
    assert flags.dtype == bool and flags.shape == X.shape
    assert flags[10, 4]
    assert not flags[np.isnan(X)].any()
    clean = np.ones(X.shape, dtype=bool)
    clean[10] = False
    assert flags[clean].mean() < 0.05
    np.testing.assert_array_equal(flags, detector.score_features(X) < detector.cell_offsets_)


def test_cell_offsets_follow_contamination(detector):
    reference = detector.reference_feature_scores_
    assert detector.cell_offsets_.shape == (5,)
    np.testing.assert_array_equal(detector.cell_offsets_, np.percentile(reference, 1.0, axis=0))
    auto = VAEOutlierDetector(**FAST).fit(_correlated(600))
    np.testing.assert_array_equal(auto.reference_feature_scores_, reference)
    # 'auto': Tukey's far-out fence, Q1 - 3 IQR, of each column's reference scores.
    q1, q3 = np.percentile(reference, [25, 75], axis=0)
    np.testing.assert_allclose(auto.cell_offsets_, q1 - 3 * (q3 - q1), rtol=0, atol=1e-12)


def test_auto_cell_flags_are_rare_on_clean_rows():
    # The scores of clean entries have a long lower tail (-z^2 / 2): a split into
    # two groups (Otsu's, as for rows) would flag about a fifth of the cells.
    auto = VAEOutlierDetector(**FAST).fit(_correlated(600))
    assert auto.predict_cells(_correlated(400, seed=7)).mean() < 0.04


def test_reference_feature_scores_are_the_reference_rows_scores_from_their_own_proposals(detector):
    full, drops = reference_column_scores(detector, detector.reference_)
    np.testing.assert_array_equal(detector.reference_feature_scores_, drops)
    # The full scores are score_samples' (the same draws and proposal), and
    # the drops agree with score_features', which hides each entry from the
    # proposal too, to the noise of 100 draws.
    np.testing.assert_array_equal(full, detector.score_samples(detector.reference_))
    difference = drops - detector.score_features(detector.reference_)
    assert abs(np.median(difference)) < 0.01 and np.percentile(np.abs(difference), 90) < 0.2


def test_reference_drops_of_a_linear_gaussian_model_are_its_exact_conditionals(linear_detector):
    od, rows, mean, cov = linear_detector
    rows = rows.copy()
    rows[::5, 2] = np.nan
    rows[1, [0, 1, 2]] = np.nan  # one observed entry: hiding it leaves log p = 0
    exact = _exact_conditionals(rows, mean, cov)
    full, drops = reference_column_scores(od, rows)
    # The exact posterior of complete rows makes their IWAE exact; a row with
    # holes has a refined proposal, close to its exact posterior.
    complete = ~np.isnan(rows).any(axis=1)
    np.testing.assert_allclose(full[complete], _marginal_log_density(rows, mean, cov)[complete], rtol=0, atol=1e-4)
    np.testing.assert_allclose(full, _marginal_log_density(rows, mean, cov), rtol=0, atol=0.05)
    np.testing.assert_array_equal(np.isnan(drops), np.isnan(rows))
    assert drops[1, 3] == full[1]
    # The row's proposal is narrower than the posterior without x_j: a bound
    # a little below the truth for some entries, exact in the limit of draws.
    error = np.abs(drops - exact)[~np.isnan(exact)]
    assert np.median(error) < 0.01 and error.max() < 0.1


def test_reference_drops_of_a_mixed_table_agree_with_scoring_each_hidden_row():
    """Every column kind's term and Jacobian: with many draws the two estimators of log p(x_obs without x_j) meet."""
    rng = np.random.default_rng(4)
    frame = _mixed_table(400)
    frame["skewed"] = np.exp(frame["r"] + 0.3 * rng.normal(size=len(frame)))  # power-transformed
    frame["rounded"] = np.round(frame["r2"]).astype(float)  # a real column with frequent values
    frame.loc[frame.index[::7], "count"] = np.nan
    od = VAEOutlierDetector(discrete_features=["rounded"], **FAST).fit(frame)
    assert "yeo_johnson" in od.net_.module_.data_map.kinds
    rows = od.reference_[:24].copy()
    rows[2, 1:] = np.nan
    od.set_params(n_importance_samples=4000)
    full, drops = reference_column_scores(od, rows)
    hidden_full, hidden_drops = column_scores(lambda x: log_density(od, x), rows)
    np.testing.assert_array_equal(full, hidden_full)
    np.testing.assert_array_equal(np.isnan(drops), np.isnan(hidden_drops))
    # The hidden rows' own proposals are the noisier estimate (0.1 to 0.2 nats
    # on a few entries at 4,000 draws); a column's wrong term or Jacobian
    # would move its every entry.
    error = np.abs(drops - hidden_drops)
    assert np.all(np.nanmedian(error, axis=0) < 0.02) and np.nanpercentile(error, 90) < 0.05
    # The module's own contract: a missing column's estimate is the row's.
    eps = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        scores = od.net_.module_.column_log_marginals(torch.as_tensor(rows), eps).numpy()
    missing = np.isnan(rows)
    assert missing.sum() >= 5
    np.testing.assert_array_equal(scores[:, 1:][missing], np.broadcast_to(scores[:, :1], rows.shape)[missing])


def test_fitted_explanations_survive_save_and_load(table_detector, tmp_path):
    table_detector.save(tmp_path / "od.safetensors")
    loaded = load(tmp_path / "od.safetensors")
    np.testing.assert_array_equal(loaded.cell_offsets_, table_detector.cell_offsets_)
    np.testing.assert_array_equal(loaded.reference_feature_scores_, table_detector.reference_feature_scores_)
    frame = _mixed_table(20, seed=3)
    pd.testing.assert_frame_equal(loaded.predict_cells(frame), table_detector.predict_cells(frame))
    pd.testing.assert_frame_equal(loaded.explain(frame), table_detector.explain(frame))


def test_dask_arrays_are_explained_block_by_block(detector, test_rows):
    da = pytest.importorskip("dask.array")
    X = np.vstack([test_rows, _correlated(240, seed=8)])
    blocks = (75, 75, 75, 67) + (1,) * 8
    Xd = da.from_array(X, chunks=(blocks, (2, 3)))
    for method, dtype in ((detector.score_features, np.float64), (detector.predict_cells, bool)):
        lazy = method(Xd)
        assert isinstance(lazy, da.Array) and lazy.chunks == (blocks, (5,)) and lazy.dtype == dtype
        np.testing.assert_array_equal(lazy.compute(scheduler="synchronous"), method(X))
    with pytest.raises(ValueError, match="expecting 5 features"):
        detector.score_features(Xd[:, :4])


@pytest.mark.parametrize("n_top, error, match", [
    (0, ValueError, "positive integer"), (-1, ValueError, "positive integer"),
    ("3", TypeError, "positive integer"), (2.0, TypeError, "positive integer"), (True, TypeError, "positive integer"),
])
def test_bad_n_top_is_refused(detector, test_rows, n_top, error, match):
    with pytest.raises(error, match=match):
        detector.explain(test_rows, n_top=n_top)


@pytest.mark.parametrize("method", ["score_features", "predict_cells", "explain"])
def test_bad_rows_are_refused_as_by_decision_function(detector, method):
    X = _correlated(5)[:, :4]
    with pytest.raises(ValueError) as expected:
        detector.decision_function(X)
    with pytest.raises(ValueError) as got:
        getattr(detector, method)(X)
    assert str(got.value) == str(expected.value)
    with pytest.raises(NotFittedError):
        getattr(VAEOutlierDetector(), method)(_correlated(5))
