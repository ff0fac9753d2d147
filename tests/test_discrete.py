"""Real columns with frequent values (``discrete_features``): a mass on each frequent value, a density elsewhere."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch.distributions import Normal

from skvae import VAEDensityEstimator, VAEImputer, VAEOutlierDetector, VAETransformer
from skvae._layout import TableLayout
from skvae._likelihoods import TableRows
from skvae._tabular import frequent_values, repeated_value_columns, repeats_values

FAST = dict(hidden_layer_sizes=(32,), n_components=2, max_iter=15, n_importance_samples=20, random_state=0)


def _spiky(n=400, seed=0):
    """Column 0: exactly 0 in half the rows, else Normal(2, 1); column 1: 0/1 stored as floats; column 2: continuous."""
    rng = np.random.default_rng(seed)
    x0 = np.where(rng.uniform(size=n) < 0.5, 0.0, rng.normal(2.0, 1.0, n))
    x1 = rng.integers(0, 2, n).astype(float)
    return np.c_[x0, x1, x0 + x1 + rng.normal(size=n)]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_a_frequent_value_is_scored_as_a_mass_and_other_values_as_a_density():
    """Scaling a discrete column by 100 leaves the score of its frequent value 0 and lowers the others' by log 100.

    The model reads standardised columns, so both fits learn the same model;
    a density changes with the units by the Jacobian, a mass does not.
    """
    X = _spiky()
    scaled = X.copy()
    scaled[:, 0] *= 100.0
    first = VAEDensityEstimator(discrete_features=[0], **FAST).fit(X).score_samples(X)
    second = VAEDensityEstimator(discrete_features=[0], **FAST).fit(scaled).score_samples(scaled)
    at_zero = X[:, 0] == 0.0
    np.testing.assert_allclose(second[at_zero], first[at_zero], atol=1e-4)
    np.testing.assert_allclose(second[~at_zero], first[~at_zero] - np.log(100.0), atol=1e-4)
    # Without discrete_features every value has a density.
    plain = VAEDensityEstimator(**FAST).fit(X).score_samples(X)
    plain_scaled = VAEDensityEstimator(**FAST).fit(scaled).score_samples(scaled)
    np.testing.assert_allclose(plain_scaled, plain - np.log(100.0), atol=1e-4)


def test_a_frequent_value_is_found_in_float32_and_float64_data_alike():
    """0.1 has no exact float32: a model fitted on either dtype scores both copies of the data the same."""
    X = _spiky()
    X[:, 0] = np.where(X[:, 0] == 0.0, 0.1, X[:, 0])
    for fitted, other in [(X, X.astype(np.float32)), (X.astype(np.float32), X)]:
        est = VAEDensityEstimator(discrete_features=[0], **FAST).fit(fitted)
        np.testing.assert_allclose(est.score_samples(other), est.score_samples(fitted), atol=1e-3)


def test_samples_take_the_frequent_values_as_often_as_the_data():
    """Drawn rows hit 0 in column 0 about half the time and take only 0 or 1 in column 1 (almost always)."""
    X = _spiky(n=800)
    est = VAEDensityEstimator(discrete_features=[True, True, False], **{**FAST, "max_iter": 40}).fit(X)
    drawn = est.sample(4000, random_state=0)
    assert abs(np.mean(drawn[:, 0] == 0.0) - np.mean(X[:, 0] == 0.0)) < 0.08
    assert np.mean(np.isin(drawn[:, 1], [0.0, 1.0])) > 0.95
    assert abs(np.mean(drawn[:, 1] == 1.0) - np.mean(X[:, 1])) < 0.08
    assert np.mean(drawn[:, 2] == 0.0) == 0.0  # a column not listed keeps a density: no repeated values
    assert est.net_.module_.layout.spike_table.shape == (2, 3)  # {0} and {0, 1}, each with the rest


def test_imputed_entries_of_a_binary_column_are_its_probability_of_one():
    """With sample_posterior=False a 0/1 column is filled with P(1 | observed) (up to the rest's tiny share): inside [0, 1]."""
    X = _spiky(n=600)
    missing = X.copy()
    holes = np.random.default_rng(1).uniform(size=X.shape) < 0.2
    holes[:, 2] = False
    missing[holes] = np.nan
    filled = VAEImputer(discrete_features=[1], **FAST).fit(missing).transform(missing)
    assert np.all((filled[holes[:, 1], 1] >= -1e-3) & (filled[holes[:, 1], 1] <= 1 + 1e-3))
    drawn = VAEImputer(discrete_features=[1], sample_posterior=True, **FAST).fit(missing).transform(missing)
    assert np.mean(np.isin(drawn[holes[:, 1], 1], [0.0, 1.0])) > 0.8


def test_the_conditional_mean_of_a_listed_column_weighs_its_frequent_values():
    """E[x|z] = sum_v pi_v v + pi_rest E_f[x] on a real column listed, as on an integer one; other columns keep E_f[x]."""
    layout = TableLayout(["real", "integer", "real"], [0, 0, 0], [[0.0, 1.0], [2.0], []]).double()
    g = torch.Generator().manual_seed(0)
    loc = torch.randn(4, 3, generator=g, dtype=torch.float64)
    logits = torch.randn(4, layout.n_logits, generator=g, dtype=torch.float64)
    means = TableRows(Normal(loc, torch.ones_like(loc)), logits, layout).data_means(loc)
    first, second = logits[:, :3].softmax(-1), logits[:, 3:].softmax(-1)  # blocks in the columns' order
    expected = torch.stack([first[:, 1] + first[:, 2] * loc[:, 0], 2.0 * second[:, 0] + second[:, 1] * loc[:, 1], loc[:, 2]], -1)
    torch.testing.assert_close(means, expected, rtol=1e-12, atol=1e-12)


def test_the_imputer_finds_the_listed_column_after_dropping_an_empty_one():
    """Column indices refer to the user's columns, not to those left after an all-missing one is dropped."""
    X = _spiky()
    with_empty = np.c_[np.full(len(X), np.nan), X]
    imputer = VAEImputer(discrete_features=[2], **FAST).fit(with_empty)
    table = imputer.net_.module_.layout.spike_table
    np.testing.assert_array_equal(table[0, :2].numpy(), [0.0, 1.0])


def test_names_select_columns_of_a_frame_and_the_model_survives_pickling():
    X = _spiky()
    frame = pd.DataFrame(X, columns=["amount", "flag", "score"])
    est = VAEOutlierDetector(discrete_features=["amount"], **FAST).fit(frame)
    assert est.net_.module_.layout.spikes.sizes == [2]
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.score_samples(frame), est.score_samples(frame))
    VAETransformer(discrete_features=[False, True, False], **FAST).fit(X).transform(X)


@pytest.mark.parametrize(
    "kwargs, X, match",
    [
        ({"discrete_features": ["flag"]}, _spiky(), "no column names"),
        ({"discrete_features": [3]}, _spiky(), r"must be in \[0, n_features - 1\]"),
        ({"discrete_features": [True, False]}, _spiky(), r"shape \(n_features,\)"),
        ({"discrete_features": [1], "likelihood": "bernoulli"}, (_spiky() > 0).astype(float), "likelihood of real values"),
        (
            {"discrete_features": ["kind"]},
            pd.DataFrame({"kind": pd.Categorical(["a", "b"] * 50), "x": np.arange(100.0)}),
            "categorical columns",
        ),
    ],
)
def test_bad_discrete_features_raise_a_value_error_naming_the_problem(kwargs, X, match):
    with pytest.raises(ValueError, match=match):
        VAEDensityEstimator(**{**FAST, **kwargs}).fit(X)


# -- discrete_features='auto' ---------------------------------------------------------


def _column(counts, continuous=0, seed=0):
    """A shuffled column holding value i counts[i] times, then `continuous` distinct draws from U(100, 200), and 3 NaN."""
    rng = np.random.default_rng(seed)
    values = np.r_[np.repeat(np.arange(len(counts), dtype=float), counts), rng.uniform(100, 200, continuous), [np.nan] * 3]
    return rng.permutation(values)


@pytest.mark.parametrize(
    "column, listed",
    [
        pytest.param(_column([300, 100]), True, id="indicator stored as floats"),
        pytest.param(_column([200], continuous=200), True, id="zeros on half the rows, an amount on the rest"),
        pytest.param(_column([199], continuous=201), False, id="zeros on just under half, an amount on the rest"),
        pytest.param(_column([12] * 32), True, id="32 codes, each frequent"),
        pytest.param(_column([12] * 33), False, id="33 codes, each frequent"),
        pytest.param(_column([12] * 30, continuous=40), True, id="frequent codes on 90% of the rows"),
        pytest.param(_column([12] * 30, continuous=41), False, id="frequent codes on under 90% of the rows"),
        pytest.param(_column([9] * 20), False, id="20 values seen 9 times each: a rounded measurement"),
        pytest.param(_column([], continuous=400), False, id="continuous"),
        pytest.param(np.full(20, np.nan), False, id="no observed entry"),
    ],
)
def test_auto_lists_a_column_nearly_all_on_few_frequent_values_or_half_on_one(column, listed):
    assert repeats_values(column) is listed


def _mixed(n=400, seed=0):
    """Zeros on 60% of the rows, 5.0 on 4% and an amount; 0/1; continuous; 8 codes; one rounded to 0.1 (about 60 values)."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(size=n)
    amount = np.where(u < 0.6, 0.0, np.where(u < 0.64, 5.0, rng.normal(2.0, 1.0, n)))
    flag = rng.integers(0, 2, n).astype(float)
    codes = rng.integers(0, 8, n).astype(float)
    rounded = np.round(rng.normal(0.0, 1.0, n), 1)
    return np.c_[amount, flag, amount + flag + rng.normal(size=n), codes, rounded]


def _spikes(est):
    """The fitted model's frequent values, a list per column that has any."""
    return [[v for v in row if not np.isnan(v)] for row in est.net_.module_.layout.spike_table.numpy().tolist()]


def test_auto_lists_the_columns_that_repeat_values_and_gives_a_mass_to_the_values_that_carry_it():
    """The spiked, binary and code columns are listed, not the continuous or rounded ones; 5.0 (4% of rows) keeps a density.

    Listing the same columns by hand gives every frequent value a mass, 5.0 too.
    """
    X = _mixed()
    auto = VAEDensityEstimator(discrete_features="auto", **FAST).fit(X)
    assert _spikes(auto) == [[0.0], [0.0, 1.0], [float(c) for c in range(8)]]
    listed = VAEDensityEstimator(discrete_features=[0, 1, 3], **FAST).fit(X)
    assert _spikes(listed) == [[0.0, 5.0], [0.0, 1.0], [float(c) for c in range(8)]]


def test_auto_lists_the_imputers_columns_after_an_empty_one_is_dropped():
    """The imputer decides on the columns observed at fit, and reads them at the right place."""
    X = _mixed()[:, :3]
    with_empty = np.c_[np.full(len(X), np.nan), X]
    auto = VAEImputer(discrete_features="auto", **FAST).fit(with_empty)
    assert _spikes(auto) == [[0.0], [0.0, 1.0]]


def test_auto_lists_only_the_real_columns_of_a_table():
    """A categorical column of few levels is not listed; an integer one keeps every frequent value, however rare."""
    X = _mixed()
    count = (X[:, 2] > 0).astype(np.int64)
    count[:12] = 2  # 3% of the rows
    frame = pd.DataFrame({
        "amount": X[:, 0], "flag": X[:, 1], "score": X[:, 2],
        "kind": pd.Categorical(np.where(X[:, 1] > 0, "a", "b")), "count": count,
    })
    auto = VAEDensityEstimator(discrete_features="auto", **FAST).fit(frame)
    assert _spikes(auto) == [[0.0], [0.0, 1.0], [0.0, 1.0, 2.0]]
    # The category's codes (0 and 1) repeat too, but it is no real column.
    codes = auto._table.encode(frame)
    assert repeated_value_columns(codes, auto._table) == [True, True, False, False, False]


def test_auto_lists_nothing_for_a_likelihood_of_other_values():
    """With a Bernoulli likelihood 'auto' is no list (an explicit list raises, above), and the model is the plain one."""
    X = (_mixed() > 0).astype(float)
    auto = VAEDensityEstimator(discrete_features="auto", likelihood="bernoulli", **FAST).fit(X)
    plain = VAEDensityEstimator(likelihood="bernoulli", **FAST).fit(X)
    np.testing.assert_array_equal(auto.score_samples(X), plain.score_samples(X))


def test_auto_reads_a_memory_mapped_array(tmp_path):
    X = _mixed()
    mapped = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float64, shape=X.shape)
    mapped[:] = X
    mapped.flush()
    auto = VAEDensityEstimator(discrete_features="auto", **FAST).fit(np.load(tmp_path / "X.npy", mmap_mode="r"))
    assert _spikes(auto) == [[0.0], [0.0, 1.0], [float(c) for c in range(8)]]


def test_auto_decides_on_evenly_spaced_rows_of_a_long_array(monkeypatch):
    """Past AUTO_MAX_ROWS rows the rule reads every k-th row: a column 0 on every 4th row is listed from every 4th row only."""
    import skvae._tabular

    rng = np.random.default_rng(0)
    column = rng.normal(size=400)
    column[::4] = 0.0  # 25% of all rows: not listed when every row is read
    X = np.c_[column, rng.normal(size=400)]
    assert repeated_value_columns(X, None) == [False, False]
    monkeypatch.setattr(skvae._tabular, "AUTO_MAX_ROWS", 100)
    assert repeated_value_columns(X, None) == [True, False]


def test_auto_counts_values_at_the_precision_the_model_matches_them():
    """0.3 and 0.1 * 3 differ in float64 but are one float32 value: together on half the rows, the column is listed."""
    rng = np.random.default_rng(0)
    column = np.r_[np.full(150, 0.3), np.full(150, 0.1 * 3), rng.normal(size=300)]
    assert repeats_values(column) and repeats_values(column.astype(np.float32))


def test_a_value_on_exactly_the_share_gets_a_mass_and_one_just_under_does_not():
    """Of 400 entries, 7.0 on 20 (5%) is kept, 8.0 on 19 (seen 10 times or more, but under 5%) is not."""
    column = np.r_[np.full(20, 7.0), np.full(19, 8.0), np.linspace(100.0, 200.0, 361)]
    assert frequent_values(column, 0.05) == [7.0]
    assert frequent_values(column) == [7.0, 8.0]
