"""Mixed-type tables: held-out likelihood, synthetic-data quality and planted anomalies.

skvae's part is one function, ``fit_skvae``: its defaults fitted to the
DataFrame as read (numeric, integer and categorical columns, missing entries);
with ``SKVAE_MIXED_TABLES = False`` it raises ``NotImplementedError`` and every
skvae row is skipped with a note. Data and helpers live in ``tabular_data.py``. Every table is Markdown; every split is
80/20 with ``random_state=seed``.

Sections (``--sections``):

- ``loglik``: mean held-out log p(x_obs) in nats per row (higher is better) on
  adult and on a synthetic mixed table whose exact log p(x) is known
  (``tabular_data.make_synthetic``: 3 numeric, 3 count and 3 categorical
  columns driven by a 2-D latent variable), complete and with 30% of its entries
  missing (MCAR); the exact value comes from quadrature over the latent plane,
  and its grid is checked against one 1.5 times as fine. Peers: the truth, and
  an independent-columns baseline, each column's own 1-D model tuned on a
  validation split of the training part (add-one smoothed frequencies for
  categories; for integers the best of a discretised GaussianMixture, empirical
  frequencies smoothed by it, Poisson and negative binomial; for numbers the
  best of a GaussianMixture with components by BIC and a KernelDensity with
  bandwidth by cross-validation); missing entries are skipped in fit and score.
  A second table shows each column's chosen model and its share of the score.
- ``synthetic``: synthetic adult rows from ctgan's ``TVAE`` and ``CTGAN``
  (library defaults but ``epochs``; CTGAN unless ``--skip-ctgan``) and skvae's
  ``sample``, each fitted on the training part and asked for as many rows as it
  has. The real reference is the held-out part, which no synthesizer saw; the
  row "real training rows" puts the training part itself through the same
  metrics, the ceiling a synthesizer can reach. Scores: sdmetrics'
  ``QualityReport`` (column shapes; column pair trends with sdmetrics' default
  thresholds, which average only the pairs whose real correlation exceeds 0.5
  or association exceeds 0.3; and over all pairs, thresholds 0) and
  ``LogisticDetection`` (1 - (2 AUROC - 1) of a logistic regression telling
  real from synthetic, 3-fold; 1 is best; its encoder set to ignore levels
  absent from the real part, see ``detection``), both against as many
  synthetic rows as the held-out part has; machine-learning efficacy: a
  ``HistGradientBoostingClassifier(categorical_features="from_dtype")`` trained on
  all the synthetic rows to predict ``income``, then F1 of ">50K" and AUROC on
  the held-out real part; and fit seconds. Each fitted synthesizer gives
  ``--draws`` sets of rows (5 by default; see ``synthesize``), every set is
  scored, and the table shows each score's median over the sets, then the F1
  of every set: one set's F1 varies by about 0.01 to 0.03 between draws of the
  same model, as much as the synthesizers differ.
- ``anomalies``: about 5% of adult's held-out rows are corrupted
  (``tabular_data.plant_anomalies``), a quarter each of four kinds, always by
  copying a value from another held-out row: ``education`` replaced so that
  (education, education-num) never occurs in the training part (the two encode
  the same thing); ``relationship`` replaced so that (relationship, sex,
  marital-status) never occurs in training; ``age`` and ``hours-per-week``
  replaced by a value from the opposite tail (a row at or above the training
  median gets a donor value at or below the training 10th percentile, other rows
  one at or above the 90th). Detectors are fitted on the (uncorrupted) training
  part and score the held-out part, higher = more anomalous: ``IsolationForest``
  on one-hot-encoded categories and numbers as they are, missing entries filled
  by ``SimpleImputer`` (most frequent level, median); the independent-columns
  baseline (-log p(x_obs)); skvae's ``VAEOutlierDetector`` (-score_samples).
  AUROC and average precision over all held-out rows, and AUROC of each kind
  against the normal rows.

Run from the project root; ``--max-rows`` subsamples adult (and caps the
synthetic table at 10,000 rows) for quick checks, ``--epochs`` sets TVAE's and
CTGAN's epochs (300 by default, their own), and ``--skvae-params`` (a JSON
object of ``VAEDensityEstimator`` parameters) adds an skvae row with those
set beside the defaults' in the loglik and synthetic sections
(``--detector-params`` likewise for the detector in the anomalies section).
Without skvae's rows, estimated from short timed runs (one thread, on 2 CPU
cores shared with other work):
loglik under a minute, anomalies a few seconds, synthetic about 3-5 minutes for
TVAE and 13-16 for CTGAN at 300 epochs::

    PYTHONPATH=. python benchmarks/bench_tabular.py --data-dir ../shared/data
    PYTHONPATH=. python benchmarks/bench_tabular.py --sections loglik anomalies
    PYTHONPATH=. python benchmarks/bench_tabular.py --sections synthetic --max-rows 2000 --epochs 1
    PYTHONPATH=. python benchmarks/bench_tabular.py --sections loglik synthetic \\
        --skvae-params '{"batch_size": 1024, "n_training_importance_samples": 1}'
"""

import argparse
import functools
import json
import sys
import time
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.impute import SimpleImputer
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tabular_data import (  # noqa: E402
    ANOMALY_KINDS,
    N_GRID,
    IndependentColumns,
    column_kind,
    grid_error,
    load_adult,
    make_synthetic,
    plant_anomalies,
    split,
)

SECTIONS = ("loglik", "synthetic", "anomalies")
SYNTHETIC_ROWS = 10_000
TARGET, POSITIVE = "income", ">50K"

# ---------------------------------------------------------------- skvae: the part to finish

SKVAE_MIXED_TABLES = True  # skvae fits mixed-type DataFrames (categorical, integer, real columns)


def fit_skvae(df_train, seed, detector=False, params=None):
    """Fit skvae on a mixed-type table as read (float, int64, category columns, missing entries).

    The interface assumed: ``VAEDensityEstimator(random_state=seed).fit(df)``;
    its ``score_samples(df)`` is log p(x_obs) per row in nats (log-probabilities
    for categorical and integer columns, log-densities for continuous ones) and
    ``sample(n, random_state=...)`` returns a DataFrame with the same columns,
    dtypes and category sets. ``VAEOutlierDetector`` likewise, with
    ``score_samples`` higher for normal rows.

    Parameters
    ----------
    df_train : pandas.DataFrame
    seed : int
    detector : bool
        Fit ``VAEOutlierDetector`` instead of ``VAEDensityEstimator``.
    params : dict, default=None
        Parameters set beside ``random_state`` (``--skvae-params``).

    Returns
    -------
    estimator
        Fitted.

    Raises
    ------
    NotImplementedError
        With ``SKVAE_MIXED_TABLES = False``; callers skip skvae's rows.
    """
    if not SKVAE_MIXED_TABLES:
        raise NotImplementedError("skvae does not fit mixed-type DataFrames yet")
    from skvae import VAEDensityEstimator, VAEOutlierDetector

    cls = VAEOutlierDetector if detector else VAEDensityEstimator
    return cls(random_state=seed, **(params or {})).fit(df_train)


def _with_params(name, params):
    """``name(key=value, ...)``: the row name of an estimator with ``params`` set."""
    return f"{name}({', '.join(f'{key}={value!r}' for key, value in params.items())})"


def skvae_rows(args):
    """(row name, parameters) of each skvae density row: the defaults, then ``--skvae-params`` if given."""
    rows = [("skvae VAEDensityEstimator", None)]
    if args.skvae_params:
        rows.append((_with_params("skvae VAEDensityEstimator", args.skvae_params), args.skvae_params))
    return rows


# ---------------------------------------------------------------- helpers


def timed(function, *args, **kwargs):
    """``(function(*args, **kwargs), seconds)``."""
    start = time.perf_counter()
    out = function(*args, **kwargs)
    return out, time.perf_counter() - start


def categorical_columns(df):
    """Names of the categorical columns of ``df``."""
    return [name for name in df.columns if column_kind(df[name]) == "categorical"]


def markdown(header, rows):
    """A Markdown table; numbers in ``rows`` are already formatted strings."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value, digits=3):
    return "" if value is None or np.isnan(value) else f"{value:.{digits}f}"


# ---------------------------------------------------------------- loglik


def loglik_datasets(data_dir, seed, max_rows):
    """name -> (train, test, exact test log p or None), plus the grid check of each synthetic table.

    Returns
    -------
    datasets : dict
    grid_checks : dict
        name -> largest |log p| difference between the grid and one 1.5 times finer.
    """
    adult = load_adult(data_dir, max_rows, seed)
    datasets = {"adult": (*split(adult, seed), None)}
    n_rows = min(SYNTHETIC_ROWS, max_rows or SYNTHETIC_ROWS)
    grid_checks = {}
    for name, rate in [("synthetic", 0.0), ("synthetic, 30% missing", 0.3)]:
        datasets[name] = make_synthetic(n_rows, seed, missing_rate=rate)
        grid_checks[name] = grid_error(datasets[name][1])
    return datasets, grid_checks


def run_loglik(train, test, seed, variants=(("skvae VAEDensityEstimator", None),)):
    """method -> (mean test log p(x_obs), fit seconds, fitted model), skvae's ``variants`` when available.

    Returns
    -------
    results : dict
    skipped : str or None
        Why skvae was skipped.
    """
    baseline, seconds = timed(IndependentColumns(seed).fit, train)
    results = {"independent columns (tuned 1-D)": (baseline.score(test), seconds, baseline)}
    for name, params in variants:
        try:
            model, seconds = timed(fit_skvae, train, seed, params=params)
        except NotImplementedError as err:
            return results, str(err)
        results[name] = (float(np.mean(model.score_samples(test))), seconds, model)
    return results, None


def section_loglik(args):
    """Print the held-out likelihood tables."""
    datasets, grid_checks = loglik_datasets(args.data_dir, args.seed, args.max_rows)
    rows, column_rows, notes = [], [], set()
    for name, (train, test, truth) in datasets.items():
        results, skipped = run_loglik(train, test, args.seed, skvae_rows(args))
        if skipped:
            notes.add(f"skvae skipped: {skipped}")
        if truth is not None:
            rows.append([name, "exact log p(x_obs) (truth)", _fmt(truth.mean()), "0.000", ""])
        for method, (score, seconds, _) in results.items():
            gap = "" if truth is None else _fmt(truth.mean() - score)
            rows.append([name, method, _fmt(score), gap, f"{seconds:.1f}"])
        baseline = results["independent columns (tuned 1-D)"][2]
        for column, logp in baseline.column_log_probs(test).items():
            column_rows.append([name, column, baseline.models_[column].name, _fmt(logp.mean())])
        print(f"loglik: {name} done ({len(train)} train / {len(test)} test rows)", flush=True)
    print("\n### Held-out log-likelihood (nats/row)\n")
    print(markdown(["data", "method", "test log-likelihood", "gap to truth", "fit s"], rows))
    fine = int(round(N_GRID * 1.5))
    for name, error in grid_checks.items():
        print(
            f"\nGrid check ({name}): max |log p({N_GRID}^2 grid) - log p({fine}^2 grid)| = {error:.1e} nats."
        )
    print("\n### Independent-columns baseline: chosen 1-D models\n")
    print(markdown(["data", "column", "1-D model (chosen on validation)", "test nats/row"], column_rows))
    for note in sorted(notes):
        print(f"\n{note}")


# ---------------------------------------------------------------- synthetic


def as_objects(df):
    """Categorical columns as plain objects (sdmetrics and ctgan expect them; see ``quality``)."""
    return df.astype({name: object for name in categorical_columns(df)})


def conform(sample, like):
    """``sample`` with the columns and dtypes of ``like`` (unknown levels become missing)."""
    return sample[list(like.columns)].astype(like.dtypes.to_dict()).reset_index(drop=True)


def sdmetrics_metadata(df):
    """sdmetrics single-table metadata: ``categorical`` or ``numerical`` per column."""
    categorical = set(categorical_columns(df))
    columns = {name: {"sdtype": "categorical" if name in categorical else "numerical"} for name in df.columns}
    return {"columns": columns}


def ctgan_synthesizer(kind, train, epochs, seed):
    """Fitted ctgan ``TVAE`` or ``CTGAN`` (defaults but ``epochs``), seeded by ``set_random_state``."""
    from ctgan import CTGAN, TVAE

    model = (TVAE if kind == "TVAE" else CTGAN)(epochs=epochs)
    model.set_random_state(seed)
    model.fit(as_objects(train), discrete_columns=categorical_columns(train))
    return model


def synthesize(name, train, args):
    """``(draw, fit seconds)`` for one synthesizer; ``draw(i)`` is its i-th set of rows shaped like train.

    Draw 0 is the single draw this section reported before ``--draws``: the
    training rows shuffled with ``seed``, skvae's ``sample`` with
    ``random_state=seed``, ctgan's first ``sample`` after fitting; draw i
    shuffles or samples with ``seed + i`` (ctgan: its i-th ``sample`` call).

    Raises
    ------
    NotImplementedError
        For skvae, until it fits mixed-type tables.
    """
    if name == "real training rows":
        return (lambda i: train.sample(frac=1, random_state=args.seed + i).reset_index(drop=True)), 0.0
    skvae = dict(skvae_rows(args))
    if name in skvae:
        model, seconds = timed(fit_skvae, train, args.seed, params=skvae[name])
        return (lambda i: conform(model.sample(len(train), random_state=args.seed + i), train)), seconds
    model, seconds = timed(ctgan_synthesizer, name, train, args.epochs, args.seed)
    return (lambda i: conform(model.sample(len(train)), train)), seconds


def quality(real, synthetic, metadata):
    """sdmetrics QualityReport scores: (column shapes, pair trends, pair trends over all pairs).

    Categorical columns go in as objects: with pandas' ``category`` dtype,
    levels absent from a sample enter the contingency tables as zero rows and
    sdmetrics' association check fails on those pairs.
    """
    from sdmetrics.reports import QualityReport

    scores = []
    for threshold in (True, False):
        report = QualityReport()
        if not threshold:
            report.real_correlation_threshold = report.real_association_threshold = 0
        tables = {"tables": {"adult": metadata}}
        report.generate({"adult": as_objects(real)}, {"adult": as_objects(synthetic)}, tables, verbose=False)
        scores.append(report.get_properties().set_index("Property")["Score"])
    return scores[0]["Column Shapes"], scores[0]["Column Pair Trends"], scores[1]["Column Pair Trends"]


def detection(real, synthetic, metadata, seed):
    """sdmetrics LogisticDetection, and how many synthetic rows hold a level absent from ``real``.

    Its one-hot encoder is fitted on ``real`` and, as shipped, fails on any
    other level (sdv-dev/SDMetrics#333, open); it runs here with
    ``handle_unknown="ignore"``, the fix that issue proposes (such entries
    encode as all zeros). Its 3 folds are shuffled from numpy's global state,
    seeded here and restored afterwards.
    """
    from sdmetrics.single_table import LogisticDetection

    known = [synthetic[c].isin(real[c].unique()).to_numpy() for c in categorical_columns(real)]
    encoder = functools.partial(OneHotEncoder, handle_unknown="ignore")
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        with mock.patch("sdmetrics.utils.OneHotEncoder", encoder):
            score = LogisticDetection.compute(as_objects(real), as_objects(synthetic), metadata)
    finally:
        np.random.set_state(state)
    return score, int((~np.logical_and.reduce(known)).sum())


def efficacy(train_rows, test, seed):
    """F1 of ">50K" and AUROC on ``test`` of a HistGradientBoostingClassifier trained on ``train_rows``."""
    rows = train_rows.dropna(subset=[TARGET])
    y = rows[TARGET] == POSITIVE
    if y.nunique() < 2:
        return np.nan, np.nan
    clf = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)
    clf.fit(rows.drop(columns=TARGET), y)
    proba = clf.predict_proba(test.drop(columns=TARGET))[:, list(clf.classes_).index(True)]
    y_test = test[TARGET] == POSITIVE
    return f1_score(y_test, proba >= 0.5), roc_auc_score(y_test, proba)


def section_synthetic(args):
    """Print the synthetic-data quality table for adult."""
    train, test = split(load_adult(args.data_dir, args.max_rows, args.seed), args.seed)
    metadata = sdmetrics_metadata(train)
    names = [
        "real training rows",
        "TVAE",
        *([] if args.skip_ctgan else ["CTGAN"]),
        *(name for name, _ in skvae_rows(args)),
    ]
    rows, notes, per_draw = [], [], {}
    for name in names:
        try:
            draw, seconds = synthesize(name, train, args)
        except NotImplementedError as err:
            notes.append(f"{name} skipped: {err}")
            continue
        scores, unseen = [], 0
        for i in range(args.draws):  # in order: ctgan's draws follow its generator's state
            synthetic = draw(i)
            compared = synthetic.iloc[: len(test)]
            detect, n_unseen = detection(test, compared, metadata, args.seed)
            scores.append([*quality(test, compared, metadata), detect, *efficacy(synthetic, test, args.seed)])
            unseen = max(unseen, n_unseen)
        scores = np.asarray(scores, dtype=float)
        if np.isnan(scores[:, -1]).any():
            notes.append(f"{name}: no F1 or AUROC in some draws, their rows hold a single {TARGET} class.")
        fit_s = "" if name == "real training rows" else f"{seconds:.1f}"
        rows.append([name, *(_fmt(v) for v in np.nanmedian(scores, axis=0)), fit_s])
        per_draw[name] = scores
        if unseen:
            notes.append(
                f"{name}: up to {unseen} of {len(compared)} rows of a draw hold a level "
                "absent from the held-out part."
            )
        print(f"synthetic: {name} done", flush=True)
    header = [
        "synthesizer",
        "column shapes",
        "pair trends",
        "pair trends, all pairs",
        "LogisticDetection",
        f"F1 {POSITIVE}",
        "AUROC",
        "fit s",
    ]
    print(
        f"\n### Synthetic adult ({len(train)} training rows, {len(test)} held out; epochs={args.epochs}; "
        f"each score the median over {args.draws} draws)\n"
    )
    print(markdown(header, rows))
    if args.draws > 1:
        print(f"\nF1 {POSITIVE} of each draw (draw 0 first):\n")
        f1_rows = [[name, *(_fmt(v) for v in scores[:, -2])] for name, scores in per_draw.items()]
        print(markdown(["synthesizer", *map(str, range(args.draws))], f1_rows))
    for note in notes:
        print(f"\n{note}")


# ---------------------------------------------------------------- anomalies


def one_hot_isolation_forest(df, seed):
    """IsolationForest on one-hot categories and numbers as they are; missing entries imputed."""
    categorical = categorical_columns(df)
    numeric = [name for name in df.columns if name not in categorical]
    encode = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore"))
    prepare = make_column_transformer((encode, categorical), (SimpleImputer(strategy="median"), numeric))
    return make_pipeline(prepare, IsolationForest(random_state=seed))


def anomaly_detectors(seed, detector_params=None):
    """name -> function(train) returning a fitted detector, ``score_samples`` higher for normal rows.

    With ``detector_params`` (``--detector-params``), one more skvae row with them set.
    """
    found = {
        "IsolationForest (one-hot)": lambda train: one_hot_isolation_forest(train, seed).fit(train),
        "independent columns (-log p)": lambda train: IndependentColumns(seed).fit(train),
        "skvae VAEOutlierDetector": lambda train: fit_skvae(train, seed, detector=True),
    }
    if detector_params:
        found[_with_params("skvae VAEOutlierDetector", detector_params)] = lambda train: fit_skvae(
            train, seed, detector=True, params=detector_params
        )
    return found


def section_anomalies(args):
    """Print AUROC and AP of each detector on adult with planted anomalies."""
    train, test = split(load_adult(args.data_dir, args.max_rows, args.seed), args.seed)
    corrupted, labels, kinds = plant_anomalies(train, test, rate=0.05, seed=args.seed)
    rows, notes = [], []
    for name, fit in anomaly_detectors(args.seed, args.detector_params).items():
        try:
            detector, seconds = timed(fit, train)
        except NotImplementedError as err:
            notes.append(f"{name} skipped: {err}")
            continue
        anomaly = -detector.score_samples(corrupted)
        per_kind = []
        for kind in ANOMALY_KINDS:
            rows_kind = (kinds == kind) | (labels == 0)
            per_kind.append(_fmt(roc_auc_score(labels[rows_kind], anomaly[rows_kind])))
        auroc, ap = roc_auc_score(labels, anomaly), average_precision_score(labels, anomaly)
        rows.append([name, _fmt(auroc), _fmt(ap), *per_kind, f"{seconds:.1f}"])
    header = ["detector", "AUROC", "AP", *[f"AUROC {kind}" for kind in ANOMALY_KINDS], "fit s"]
    print(
        f"\n### Planted anomalies in adult ({labels.sum()} of {len(test)} held-out rows; AP of chance "
        f"{labels.mean():.3f})\n"
    )
    print(markdown(header, rows))
    for note in notes:
        print(f"\n{note}")


# ---------------------------------------------------------------- main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=300, help="TVAE and CTGAN epochs (their default: 300)")
    parser.add_argument(
        "--max-rows", type=int, default=None, help="subsample adult and cap the synthetic table"
    )
    parser.add_argument(
        "--draws",
        type=int,
        default=5,  # F1 of one draw moves by up to 0.03 on adult, as much as TVAE and skvae differ
        help="synthetic sets drawn from each fitted synthesizer; each score is the median over them",
    )
    parser.add_argument("--skip-ctgan", action="store_true", help="leave CTGAN out of the synthetic section")
    parser.add_argument(
        "--skvae-params",
        type=json.loads,
        default=None,
        help="JSON object of VAEDensityEstimator parameters: one more skvae row, beside the defaults', "
        "in the loglik and synthetic sections",
    )
    parser.add_argument(
        "--detector-params",
        type=json.loads,
        default=None,
        help="JSON object of VAEOutlierDetector parameters: one more skvae row in the anomalies section",
    )
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")  # sdmetrics/pandas FutureWarnings, mixture ConvergenceWarnings
    start = time.perf_counter()
    sections = {"loglik": section_loglik, "synthetic": section_synthetic, "anomalies": section_anomalies}
    for name in SECTIONS:
        if name in args.sections:
            section_start = time.perf_counter()
            sections[name](args)
            print(f"\n({name}: {time.perf_counter() - section_start:.0f} s)\n", flush=True)
    print(f"Total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
