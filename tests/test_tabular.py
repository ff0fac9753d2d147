"""Mixed-type tables: categorical, integer and real columns, DataFrames in and out."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from torch.distributions import Categorical, MixtureSameFamily, Normal

from skvae import VAEDensityEstimator, VAEImputer, VAEOutlierDetector, VAETransformer, load
from skvae._data import fit_data_map
from skvae._layout import TableLayout
from skvae._likelihoods import TableRows
from skvae._module import VAEModule

FAST = dict(n_components=2, hidden_layer_sizes=(16,), max_iter=5, n_importance_samples=8, random_state=0)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _mixed_frame(n=120, seed=0, holes=True):
    """A table of every column kind skvae models, with holes in several of them."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    frame = pd.DataFrame({
        "height": 170 + 10 * z + rng.normal(size=n),
        "visits": rng.poisson(np.exp(1 + 0.5 * z)).astype(np.int64),
        "score": pd.array(np.round(50 + 10 * z).astype(int), dtype="Int64"),
        "small": rng.integers(0, 5, size=n).astype(np.uint8),
        "member": z + rng.normal(size=n) > 0,
        "size": pd.Categorical(
            np.where(z > 0.5, "L", np.where(z < -0.5, "S", "M")), categories=["S", "M", "L", "XL"], ordered=True
        ),
        "city": np.where(rng.uniform(size=n) < 0.5, "Oslo", "Lima").astype(object),
    })
    if holes:
        frame.loc[::7, "height"] = np.nan
        frame.loc[::5, "score"] = pd.NA
        frame.loc[::6, "city"] = None
        frame.loc[::9, "size"] = np.nan
    return frame


def _check_same_types(out, frame):
    assert list(out.columns) == list(frame.columns)
    for column in frame.columns:
        assert out[column].dtype == frame[column].dtype, column
    assert list(out["size"].cat.categories) == ["S", "M", "L", "XL"] and out["size"].cat.ordered
    assert set(out["city"].dropna()) <= {"Oslo", "Lima"}
    assert out["member"].dtype == bool


# -- the likelihood --------------------------------------------------------------------


@pytest.mark.parametrize("likelihood", ["gaussian", "gaussian_mixture"])
def test_discrete_columns_are_probability_masses_that_sum_to_one(likelihood):
    """Over all integers (and all levels) the per-entry probabilities of p(x|z) sum to 1."""
    rng = np.random.default_rng(0)
    counts = rng.poisson(3.0, size=(500, 2)).astype(float) * [1, 7]
    X = np.c_[rng.normal(size=500), counts, rng.integers(0, 3, size=500)]
    torch.manual_seed(0)
    module = VAEModule(
        4, 2, (8,), "elu", likelihood, n_mixture_components=3,
        data_map=fit_data_map(X[:, :3], power=True),
        columns={
            "kinds": ["real", "integer", "integer", "categorical"], "n_levels": [0, 0, 0, 3],
            "spikes": [[], [0.0, 2.0, 3.0, 9.0], [], []],  # frequent values of the first count
        },
    )
    z = torch.randn(3, 1, 2)
    grid = np.arange(-400, 800, dtype=float)
    for j in (1, 2):
        rows = np.tile(X[:1], (len(grid), 1))
        rows[:, j] = grid
        y, _, _, bins = module.preprocess(torch.from_numpy(rows))
        with torch.no_grad():
            per_entry = module.decode(z, bins).base_dist.log_prob(y)
        total = per_entry[..., j].double().exp().sum(-1)  # numeric columns come first in model space
        torch.testing.assert_close(total, torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-4)
    rows = np.tile(X[:1], (3, 1))
    rows[:, 3] = [0, 1, 2]
    y, _, _, bins = module.preprocess(torch.from_numpy(rows))
    with torch.no_grad():
        per_entry = module.decode(z, bins).base_dist.log_prob(y)
    levels = per_entry[..., 3:].sum(-1).double().exp().sum(-1)  # each row: its level's block
    torch.testing.assert_close(levels, torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-5)


def _per_block_log_softmax(logits, sizes):
    """Each block's log_softmax, block by block: the reference for the padded computation."""
    return torch.cat([block.log_softmax(-1) for block in logits.split(sizes, dim=-1)], dim=-1)


def test_categorical_columns_of_unequal_level_counts_each_sum_to_one():
    """A column of 2 levels beside one of 5 is a distribution over its own 2 levels, not over 5 slots."""
    from torch.distributions import Normal

    from skvae._layout import TableLayout
    from skvae._likelihoods import TableRows

    sizes = [2, 5, 1, 3]
    layout = TableLayout(["categorical", "real", "categorical", "categorical", "categorical"], [2, 0, 5, 1, 3])
    generator = torch.Generator().manual_seed(0)
    # Mostly negative logits: a padding slot that counted would take most of the mass.
    logits = 3 * torch.randn(4, 6, layout.n_logits, generator=generator, dtype=torch.float64) - 4
    numeric = Normal(torch.zeros(4, 6, 1, dtype=torch.float64), 1.0)
    rows = TableRows(numeric, logits, layout)
    # With every indicator on, the categorical entries of log_prob are the levels' log-probabilities.
    value = torch.ones(4, 6, layout.width, dtype=torch.float64)
    log_probs = rows.log_prob(value)[..., layout.n_numeric :]
    torch.testing.assert_close(log_probs, _per_block_log_softmax(logits, sizes), rtol=0, atol=1e-12)
    totals = torch.stack([block.exp().sum(-1) for block in log_probs.split(sizes, dim=-1)], dim=-1)
    torch.testing.assert_close(totals, torch.ones(4, 6, len(sizes), dtype=torch.float64), rtol=0, atol=1e-12)
    # The level a row's one-hot block picks gets its own column's log-probability.
    levels = torch.tensor([1, 3, 0, 2])
    one_hot = torch.cat([torch.zeros(1), *(torch.eye(n)[k] for n, k in zip(sizes, levels.tolist()))])
    per_entry = rows.log_prob(one_hot.to(torch.float64).expand(4, 6, -1))[..., layout.n_numeric :]
    chosen = torch.stack(
        [block[..., k] for block, k in zip(_per_block_log_softmax(logits, sizes).split(sizes, -1), levels)], -1
    )
    torch.testing.assert_close(per_entry.sum(-1), chosen.sum(-1), rtol=0, atol=1e-12)


def _column_by_column_log_prob(layout, numeric, logits, value, bins, mask, spikes, mixture, real_spikes=None):
    """log p(y_obs|z) of a table, one column at a time with nothing shared: the fused sum's reference.

    ``spikes`` and ``real_spikes``: the number of frequent values of each
    integer and each real column, in order; a real column's frequent value
    has its probability, any other value the rest's times the density.
    """
    kinds = layout.kinds
    numeric_columns = [j for j, k in enumerate(kinds) if k != "categorical"]
    n_integer = sum(kind == "integer" for kind in kinds)
    real_spikes = real_spikes or [0] * (len(numeric_columns) - n_integer)
    total = torch.zeros(value.shape[:-1], dtype=torch.float64)
    c_integer = c_real = c_real_spiked = 0
    spike_start = layout.n_indicators
    level_start = layout.n_numeric
    logit_start = 0
    for j, kind in enumerate(kinds):
        if kind == "categorical":
            n = layout.n_levels_of[j]
            block = logits[..., logit_start : logit_start + n].log_softmax(-1)
            entry = (value[..., level_start : level_start + n] * block).sum(-1)
            total += torch.where(mask[..., level_start], entry, 0.0)
            level_start, logit_start = level_start + n, logit_start + n
            continue
        c = numeric_columns.index(j)
        loc, scale = numeric["loc"][..., c, :], numeric["scale"][..., c, :]
        weights = numeric["weights"][..., c, :].log_softmax(-1)
        if kind == "real":
            entry = torch.logsumexp(weights + Normal(loc, scale).log_prob(value[..., c, None]), -1)
            if real_spikes[c_real]:
                n = real_spikes[c_real] + 1
                block = logits[..., spike_start : spike_start + n].log_softmax(-1)
                spike_start += n
                found = bins[..., n_integer + c_real_spiked, 1]
                frequent = block.gather(-1, found.long().clamp(min=0)[..., None])[..., 0]
                entry = torch.where(found >= 0, frequent, block[..., -1] + entry)
                c_real_spiked += 1
            c_real += 1
        else:
            low, found, log_width = bins[..., c_integer, 0], bins[..., c_integer, 1], bins[..., c_integer, 2]
            high = low + log_width.exp()
            per_component = torch.log(
                torch.special.ndtr((high[..., None] - loc) / scale) - torch.special.ndtr((low[..., None] - loc) / scale)
            )
            entry = torch.logsumexp(weights + per_component, -1)
            if spikes[c_integer]:
                n = spikes[c_integer] + 1
                block = logits[..., spike_start : spike_start + n].log_softmax(-1)
                spike_start += n
                frequent = block.gather(-1, found.long().clamp(min=0)[..., None])[..., 0]
                entry = torch.logaddexp(block[..., -1] + entry, torch.where(found >= 0, frequent, -torch.inf))
            c_integer += 1
        total += torch.where(mask[..., c], entry, 0.0)
    return total


@pytest.mark.parametrize("real_frequent", [False, True])
@pytest.mark.parametrize("mixture", [False, True])
@pytest.mark.parametrize("with_mask", [False, True])
def test_the_fused_table_likelihood_is_the_sum_of_its_columns(mixture, with_mask, real_frequent):
    """One pass per column kind equals the column-by-column sum, with blocks of unequal sizes.

    Mostly negative logits: a padding slot counted in a block's normaliser
    would take most of its mass, and a mass or level taken from the wrong
    column would move the sum.
    """
    kinds = ["categorical", "real", "integer", "categorical", "integer", "real", "categorical", "integer", "categorical"]
    n_levels = [2, 0, 0, 5, 0, 0, 1, 0, 3]
    frequent = [[], [], [0.0, 1.0, 5.0], [], [], [], [], [2.0], []]
    # Real columns with frequent values (discrete_features) take blocks between the integers'.
    real_spikes = [2, 4] if real_frequent else [0, 0]
    if real_frequent:
        frequent[1], frequent[5] = [-0.5, 0.0], [0.0, 0.25, 1.0, 3.0]
    layout = TableLayout(kinds, n_levels, frequent).to(torch.float64)
    spikes = [3, 0, 1]  # frequent values of the integer columns, in order
    g = torch.Generator().manual_seed(1)
    shape, n_numeric, n_components = (7, 3), layout.n_numeric, 3 if mixture else 1
    params = {
        "loc": torch.randn(*shape, n_numeric, n_components, generator=g, dtype=torch.float64),
        "scale": 0.3 + torch.rand(*shape, n_numeric, n_components, generator=g, dtype=torch.float64),
        "weights": torch.randn(*shape, n_numeric, n_components, generator=g, dtype=torch.float64)
        if mixture else torch.zeros(*shape, n_numeric, 1, dtype=torch.float64),
    }
    if mixture:
        numeric = MixtureSameFamily(Categorical(logits=params["weights"]), Normal(params["loc"], params["scale"]))
    else:
        numeric = Normal(params["loc"][..., 0], params["scale"][..., 0])
    logits = 3 * torch.randn(*shape, layout.n_logits, generator=g, dtype=torch.float64) - 4
    y = torch.randn(*shape, n_numeric, generator=g, dtype=torch.float64)
    levels = [torch.randint(0, n, shape, generator=g) for n in (2, 5, 1, 3)]
    indicators = torch.cat([torch.nn.functional.one_hot(k, n) for k, n in zip(levels, (2, 5, 1, 3))], -1)
    bins = torch.stack([
        torch.randn(*shape, 3, generator=g, dtype=torch.float64),
        torch.stack([torch.randint(-1, n, shape, generator=g) for n in (3, 0, 1)], -1).to(torch.float64),
        torch.log(0.05 + torch.rand(*shape, 3, generator=g, dtype=torch.float64)),
    ], dim=-1)
    if real_frequent:
        found = torch.stack([torch.randint(-1, n, shape, generator=g) for n in real_spikes], -1).to(torch.float64)
        bins = torch.cat([bins, torch.stack([torch.zeros_like(found), found, torch.zeros_like(found)], -1)], -2)
    value = torch.cat([y, indicators.to(torch.float64)], -1)
    mask = torch.rand(*shape, layout.width, generator=g) < 0.7 if with_mask else torch.ones(*shape, layout.width, dtype=torch.bool)
    # A categorical column is observed or missing as a whole: all its indicators 0 when missing.
    mask[..., layout.n_numeric :] = mask.index_select(-1, layout.n_numeric + layout.levels.offsets)[..., layout.levels.block]
    value[..., layout.n_numeric :] *= mask[..., layout.n_numeric :]

    rows = TableRows(numeric, logits, layout, bins)
    fused = rows.observed_log_prob(value, mask if with_mask else None)
    expected = _column_by_column_log_prob(layout, params, logits, value, bins, mask, spikes, mixture, real_spikes)
    torch.testing.assert_close(fused, expected, rtol=1e-10, atol=1e-10)
    # The per-entry path (log_prob) agrees with both.
    per_entry = torch.where(mask, rows.log_prob(value), 0.0).sum(-1)
    torch.testing.assert_close(per_entry, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("sizes", [[2, 5, 3], [4, 1], [3, 3, 7, 2]])
def test_blocks_of_unequal_sizes_normalise_pick_and_draw_within_themselves(sizes):
    """Blocks' softmax, argmax and draws see each block's own entries only (the padding is -inf, 0 mass)."""
    from skvae._layout import Blocks

    blocks = Blocks(sizes)
    generator = torch.Generator().manual_seed(1)
    logits = 2 * torch.randn(50, sum(sizes), generator=generator, dtype=torch.float64) - 6  # all below 0
    expected = _per_block_log_softmax(logits, sizes)
    torch.testing.assert_close(blocks.log_softmax(logits), expected, rtol=0, atol=1e-12)
    argmax = torch.stack([block.argmax(-1) for block in logits.split(sizes, dim=-1)], dim=-1)
    torch.testing.assert_close(blocks.argmax(logits), argmax)
    draws = blocks.draw(expected.exp(), generator=generator)
    assert torch.all(draws < torch.tensor(sizes)) and torch.all(draws >= 0)


def test_only_real_columns_have_a_jacobian():
    """log |dy/dx| of a table row counts its real columns; integers and categories add none."""
    rng = np.random.default_rng(1)
    X = np.c_[rng.normal(3, 2, size=200), rng.poisson(4, size=200), rng.integers(0, 2, size=200)].astype(float)
    module = VAEModule(
        3, 2, (), "elu", "gaussian", data_map=fit_data_map(X[:, :2]),
        columns={"kinds": ["real", "integer", "categorical"], "n_levels": [0, 0, 2]},
    )
    _, log_det, _, _ = module.preprocess(torch.from_numpy(X[:5]))
    scale = module.data_map.step0_scale.numpy()
    np.testing.assert_allclose(log_det.numpy(), np.full(5, -np.log(scale[0])))


def _independent_columns(n, seed):
    """Three independent columns of known law, and each row's exact log p(x)."""
    rng = np.random.default_rng(seed)
    probs = np.array([0.6, 0.3, 0.1])
    level = rng.choice(3, p=probs, size=n)
    count = rng.poisson(4.0, size=n)
    value = rng.normal(2.0, 0.5, size=n)
    frame = pd.DataFrame({
        "level": pd.Categorical(np.array(["a", "b", "c"])[level], categories=["a", "b", "c"]),
        "count": count.astype(np.int64), "value": value,
    })
    log_p = np.log(probs[level]) + stats.poisson.logpmf(count, 4.0) + stats.norm.logpdf(value, 2.0, 0.5)
    return frame, log_p


@pytest.fixture(scope="module")
def independent_model():
    frame, _ = _independent_columns(3000, 0)
    return VAEDensityEstimator(
        n_components=2, hidden_layer_sizes=(32,), n_importance_samples=500, random_state=0
    ).fit(frame)


def test_score_is_the_log_probability_of_the_whole_row(independent_model):
    """Masses for the categorical and integer columns plus the density of the real one, in nats."""
    frame, log_p = _independent_columns(1000, 1)
    gap = log_p.mean() - independent_model.score(frame)
    assert abs(gap) < 0.05, gap


def test_a_missing_categorical_or_integer_entry_is_summed_out(independent_model):
    """p(x_obs) with an entry missing equals the sum of p(x) over that entry's values."""
    frame, _ = _independent_columns(4, 2)
    for column, values in [("level", ["a", "b", "c"]), ("count", range(0, 40))]:
        hidden = frame.copy()
        hidden[column] = hidden[column].astype(object) if column == "level" else hidden[column].astype("Int64")
        hidden.loc[:, column] = None
        marginal = independent_model.score_samples(hidden)
        filled = []
        for value in values:
            row = frame.copy()
            row[column] = value if column == "count" else pd.Categorical([value] * 4, categories=["a", "b", "c"])
            filled.append(independent_model.score_samples(row))
        np.testing.assert_allclose(marginal, np.logaddexp.reduce(filled, axis=0), atol=0.02)


# -- tables in, tables out -------------------------------------------------------------


def test_kinds_follow_the_dtypes_and_tables_come_back_in_them():
    frame = _mixed_frame()
    vt = VAETransformer(**FAST).fit(frame)
    module = vt.net_.module_
    assert module.layout.kinds == ["real", "integer", "integer", "integer", "categorical", "categorical", "categorical"]
    assert module.layout.n_levels_of[4:] == [2, 4, 2]
    samples = vt.sample(50, random_state=0)
    _check_same_types(samples, frame)
    assert not samples.isna().to_numpy().any()
    assert samples["small"].between(0, 255).all()
    recon = vt.inverse_transform(vt.transform(frame))
    _check_same_types(recon, frame)
    assert vt.get_feature_names_out().tolist() == ["vaetransformer0", "vaetransformer1"]
    assert list(vt.feature_names_in_) == list(frame.columns)


def test_set_output_pandas_names_the_latent_columns():
    frame = _mixed_frame()
    Z = VAETransformer(**FAST).set_output(transform="pandas").fit_transform(frame)
    assert isinstance(Z, pd.DataFrame) and list(Z.columns) == ["vaetransformer0", "vaetransformer1"]
    assert Z.index.equals(frame.index)


@pytest.mark.parametrize("sample_posterior", [False, True])
def test_imputer_fills_every_kind_of_hole_and_keeps_observed_entries(sample_posterior):
    frame = _mixed_frame()
    frame.index = frame.index + 1000
    imputer = VAEImputer(**FAST, sample_posterior=sample_posterior).fit(frame)
    out = imputer.transform(frame)
    _check_same_types(out, frame)
    assert out.index.equals(frame.index)
    assert not out.isna().to_numpy().any()
    observed = frame.notna()
    for column in frame.columns:
        kept = observed[column].to_numpy()
        assert (out[column][kept].astype(object) == frame[column][kept].astype(object)).all(), column
    assert set(out["size"]) <= {"S", "M", "L", "XL"}


def test_imputer_with_indicator_on_a_table():
    frame = _mixed_frame()
    imputer = VAEImputer(**FAST, add_indicator=True).fit(frame)
    out = imputer.transform(frame)
    assert list(out.columns) == list(imputer.get_feature_names_out())
    np.testing.assert_array_equal(out["missingindicator_city"].to_numpy(), frame["city"].isna().to_numpy())


def test_detector_ranks_rows_of_a_table():
    frame = _mixed_frame(holes=False, n=400)
    detector = VAEOutlierDetector(**FAST).fit(frame)
    odd = frame.iloc[:20].copy()
    odd["height"] = 400.0
    assert detector.decision_function(odd).mean() < detector.decision_function(frame.iloc[20:40]).mean()
    assert set(np.unique(detector.predict(frame))) <= {-1, 1}


# -- categories: unknown values, how columns are chosen -----------------------------------


def test_an_unknown_category_is_an_error_naming_it_or_a_missing_entry():
    frame = _mixed_frame(holes=False)
    de = VAEDensityEstimator(**FAST).fit(frame)
    odd = frame.iloc[:3].copy()
    odd["city"] = ["Oslo", "Quito", "Lima"]
    with pytest.raises(ValueError, match=r"unknown categories \['Quito'\] in column 'city'.*handle_unknown='ignore'"):
        de.score_samples(odd)
    as_missing = odd.copy()
    as_missing.loc[1, "city"] = None
    expected = de.score_samples(as_missing)
    np.testing.assert_array_equal(de.set_params(handle_unknown="ignore").score_samples(odd), expected)
    with pytest.warns(UserWarning, match="Quito"):
        np.testing.assert_array_equal(de.set_params(handle_unknown="warn").score_samples(odd), expected)


def test_a_category_dtype_is_read_by_its_labels_not_its_codes():
    """The same levels in another category order give the same results; another set of levels of the
    same size is not mistaken for the fitted one: its new level is unknown."""
    frame = _mixed_frame(holes=False)
    frame.loc[::10, "size"] = "XL"  # every level present
    de = VAEDensityEstimator(**FAST).fit(frame)
    vt = VAETransformer(**FAST).fit(frame)
    reordered = frame.copy()
    reordered["size"] = reordered["size"].cat.reorder_categories(["XL", "L", "S", "M"])
    assert not np.array_equal(reordered["size"].cat.codes, frame["size"].cat.codes)
    np.testing.assert_array_equal(de.score_samples(reordered), de.score_samples(frame))
    np.testing.assert_array_equal(vt.transform(reordered), vt.transform(frame))
    unordered = frame.copy()
    unordered["size"] = pd.Categorical(frame["size"].astype(str), categories=["M", "S", "XL", "L"])
    np.testing.assert_array_equal(de.score_samples(unordered), de.score_samples(frame))

    renamed = frame.copy()  # four categories again, "XL" now "XXL"
    renamed["size"] = renamed["size"].cat.rename_categories({"XL": "XXL"})
    assert list(renamed["size"].cat.codes) == list(frame["size"].cat.codes)
    with pytest.raises(ValueError, match=r"unknown categories \['XXL'\] in column 'size'"):
        de.score_samples(renamed)
    with pytest.raises(ValueError, match=r"unknown categories \['XXL'\] in column 'size'"):
        vt.transform(renamed)
    as_missing = frame.copy()
    as_missing.loc[as_missing["size"] == "XL", "size"] = np.nan
    expected = de.score_samples(as_missing)
    np.testing.assert_array_equal(de.set_params(handle_unknown="ignore").score_samples(renamed), expected)
    np.testing.assert_array_equal(
        vt.set_params(handle_unknown="ignore").transform(renamed), vt.transform(as_missing)
    )


def test_an_integer_column_refuses_a_fraction_after_fit():
    frame = _mixed_frame(holes=False)
    de = VAEDensityEstimator(**FAST).fit(frame)
    odd = frame.iloc[:2].copy()
    odd["visits"] = [1.0, 2.5]
    with pytest.raises(ValueError, match="Column 'visits' .* integer column in fit but has the value .*2.5"):
        de.score_samples(odd)


def test_categorical_features_by_index_mask_or_name_give_the_same_model():
    frame = _mixed_frame(holes=False).drop(columns=["size", "member"])
    frame["city"] = (frame["city"] == "Oslo").astype(int) * 3  # labels 0 and 3, an int column
    scores = []
    for spec in ([4], [False, False, False, False, True], ["city"]):
        de = VAEDensityEstimator(**FAST, categorical_features=spec).fit(frame)
        assert de.net_.module_.layout.kinds[4] == "categorical"
        scores.append(de.score_samples(frame))
    np.testing.assert_array_equal(scores[0], scores[1])
    np.testing.assert_array_equal(scores[0], scores[2])
    # An array with categorical_features: labels come back as they were given.
    X = frame.to_numpy(dtype=float)
    de = VAEDensityEstimator(**FAST, categorical_features=[4]).fit(X)
    samples = de.sample(40, random_state=0)
    assert isinstance(samples, np.ndarray) and set(samples[:, 4]) <= {0.0, 3.0}
    assert de.net_.module_.layout.kinds == ["real"] * 4 + ["categorical"]  # an array's numbers are real


@pytest.mark.parametrize("spec, match", [
    ([True, False], r"boolean mask must have shape \(n_features,\) = \(5,\)"),
    ([7], r"integer indices must be in \[0, n_features - 1\] = \[0, 4\]"),
    (["nowhere"], r"names \['nowhere'\] that are not columns of X"),
    ([0.5], "array-like of bool, int or str"),
])
def test_bad_categorical_features_are_refused(spec, match):
    frame = _mixed_frame(holes=False).drop(columns=["size", "member"])
    with pytest.raises(ValueError, match=match):
        VAEDensityEstimator(**FAST, categorical_features=spec).fit(frame)


def test_labels_outside_categorical_features_are_refused():
    frame = _mixed_frame(holes=False)
    with pytest.raises(ValueError, match="Column 'city' holds labels .* not in categorical_features"):
        VAEDensityEstimator(**FAST, categorical_features=["size", "member"]).fit(frame)
    with pytest.raises(ValueError, match="column names, but X has no column names"):
        VAEDensityEstimator(**FAST, categorical_features=["a"]).fit(np.zeros((10, 2)))


@pytest.mark.parametrize("params, match", [
    (dict(likelihood="bernoulli"), "needs a likelihood of real values"),
    (dict(bounds=(0, 1000)), "bounds applies to tables of real columns only"),
])
def test_settings_a_table_cannot_take_are_refused(params, match):
    with pytest.raises(ValueError, match=match):
        VAEDensityEstimator(**FAST, **params).fit(_mixed_frame())


def test_numpy_input_is_a_table_of_real_columns():
    # An array of integers is not read as integer columns: an array is an all-real table.
    X = _mixed_frame(holes=False)[["height", "visits"]].to_numpy()
    de = VAEDensityEstimator(**FAST).fit(X)
    layout = de.net_.module_.layout
    assert layout.kinds == ["real", "real"] and layout.n_logits == 0 and layout.width == 2
    drawn = de.sample(50, random_state=0)
    assert isinstance(drawn, np.ndarray) and not np.all(drawn[:, 1] == np.round(drawn[:, 1]))


# -- persistence ---------------------------------------------------------------------------


def test_save_and_load_keep_the_schema(tmp_path):
    frame = _mixed_frame()
    de = VAEDensityEstimator(**FAST).fit(frame)
    de.save(tmp_path / "table.safetensors")
    loaded = load(tmp_path / "table.safetensors")
    np.testing.assert_array_equal(loaded.score_samples(frame), de.score_samples(frame))
    samples = loaded.sample(20, random_state=3)
    _check_same_types(samples, frame)
    pd.testing.assert_frame_equal(samples, de.sample(20, random_state=3))
    with pytest.raises(ValueError, match="unknown categories"):
        odd = frame.iloc[:1].copy()
        odd["city"] = "Quito"
        loaded.score_samples(odd)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded.score_samples(frame)  # feature names are known: no warning


def test_a_heavy_tailed_count_trains_where_the_power_map_flattens():
    """Amounts that are mostly 0 with a far tail: their intervals round to nothing after the power
    map in float64, and the map's slope measures them instead (no NaN gradient, finite scores)."""
    rng = np.random.default_rng(0)
    amount = np.where(rng.uniform(size=600) < 0.9, 0, np.round(np.exp(rng.normal(8, 2.5, size=600))))
    frame = pd.DataFrame({"amount": amount.astype(np.int64), "group": rng.choice(["a", "b"], size=600)})
    detector = VAEOutlierDetector(**{**FAST, "max_iter": 3}).fit(frame)
    assert np.all(np.isfinite(detector.score_samples(frame)))
    lambdas = detector.net_.module_.data_map.step1_lambdas
    assert lambdas.item() < 0  # the map does flatten this column's tail


def test_imputer_fills_a_categorical_hole_from_the_row_it_is_in():
    """A column that copies another is filled with the other's level, not the most frequent one."""
    rng = np.random.default_rng(0)
    level = rng.choice(["x", "y", "z"], size=600, p=[0.5, 0.3, 0.2])
    frame = pd.DataFrame({"a": level, "b": level, "value": rng.normal(size=600)})
    holes = rng.uniform(size=600) < 0.2
    frame.loc[holes, "b"] = None
    imputer = VAEImputer(**{**FAST, "max_iter": 60, "n_importance_samples": 50}).fit(frame)
    filled = imputer.transform(frame)
    assert (filled.loc[holes, "b"] == frame.loc[holes, "a"]).mean() > 0.95
