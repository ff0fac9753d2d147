"""Unsupervised anomaly detection on the ADBench "Classical" datasets.

Runs the protocol of ``shared/data/README.md``: for each seed, a stratified
70/30 split, ``StandardScaler`` fitted on the training part, every detector
fitted on the training part without labels (anomalies included), the test part
scored so that higher means more anomalous, then AUROC and average precision.
Prints one Markdown table: mean over seeds per dataset, the mean over datasets,
each method's average rank (1 = best) and its total fit and score time; then,
for the detectors whose ``predict`` sets its own threshold without a given
rate (``contamination='auto'``: skvae, IsolationForest, LOF), the mean
precision, recall and F1 of ``predict`` on the test part.

With ``--missing RATE``, that fraction of the entries is removed at random
(MCAR, seeded) from the test part (``--missing-in test``) or from both parts
(``--missing-in both``) after scaling; skvae's detector takes the holes as they
are, and the other scikit-learn detectors run after an ``IterativeImputer``
fitted on the training part, the pipeline a user would build
(``IterativeImputer+IsolationForest`` and so on).

Every detector runs with its library's default parameters (``--skvae-params``,
a JSON object, sets some of skvae's instead; PCA with
``n_components='mle'``, Minka's automatic choice, so that probabilistic PCA
differs from a single full Gaussian). PyOD's detectors are included when PyOD
is installed (``pip install ".[benchmark]"``).

Usage::

    PYTHONPATH=. python benchmarks/bench_outliers.py --data-dir ../shared/data/ad
    PYTHONPATH=. python benchmarks/bench_outliers.py --data-dir ../shared/data/ad \\
        --datasets glass wine --seeds 0 --methods skvae IsolationForest
    PYTHONPATH=. python benchmarks/bench_outliers.py --data-dir ../shared/data/ad \\
        --missing 0.2 --missing-in both --methods skvae IterativeImputer+IsolationForest
    PYTHONPATH=. python benchmarks/bench_outliers.py --data-dir ../shared/data/ad \\
        --skvae-params '{"kl_penalty": 6}'
"""

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import rankdata
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer
from sklearn.base import is_outlier_detector
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import train_test_split
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae import VAEOutlierDetector


def _sklearn_detectors(seed, skvae_params=None):
    """name -> unfitted detector whose ``score_samples`` is higher for normal rows."""
    return {
        "skvae": VAEOutlierDetector(random_state=seed, **(skvae_params or {})),
        "IsolationForest": IsolationForest(random_state=seed),
        "LOF": LocalOutlierFactor(novelty=True),
        "GaussianMixture": GaussianMixture(random_state=seed),
        "PPCA": PCA(n_components="mle", random_state=seed),
    }


def _pyod_detectors(seed):
    """name -> unfitted PyOD detector (``decision_function`` higher for anomalies)."""
    try:
        from pyod.models.auto_encoder import AutoEncoder
        from pyod.models.ecod import ECOD
        from pyod.models.vae import VAE
    except ImportError:
        return {}
    return {
        "PyOD VAE": VAE(random_state=seed, verbose=0, device="cpu"),
        "PyOD AE": AutoEncoder(random_state=seed, verbose=0, device="cpu"),
        "ECOD": ECOD(),
    }


def _imputed_detectors(seed):
    """name -> IterativeImputer followed by a scikit-learn detector, for data with holes."""
    return {
        f"IterativeImputer+{name}": make_pipeline(IterativeImputer(random_state=seed), det)
        for name, det in _sklearn_detectors(seed).items()
        if name != "skvae"
    }


def detectors(seed, methods=None, missing=False, skvae_params=None):
    """name -> (detector, is_pyod) for the selected methods (all when None).

    With ``missing``, skvae and the imputed pipelines (PyOD's detectors refuse NaN).
    ``skvae_params`` are set on skvae's detector (``--skvae-params``).
    """
    found = {name: (det, False) for name, det in _sklearn_detectors(seed, skvae_params).items()}
    if missing:
        found = {"skvae": found["skvae"], **{name: (det, False) for name, det in _imputed_detectors(seed).items()}}
    else:
        found |= {name: (det, True) for name, det in _pyod_detectors(seed).items()}
    if methods is None:
        return found
    unknown = set(methods) - set(found)
    if unknown:
        raise ValueError(f"Unknown methods {sorted(unknown)}; choose from {sorted(found)}.")
    return {name: found[name] for name in methods}


def split(X, y, seed):
    """The protocol's split: stratified 70/30, StandardScaler fitted on the training part."""
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=seed
    )
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_test


def run_one(detector, is_pyod, X_train, X_test):
    """Fit without labels, score the test rows (higher = more anomalous) and time both.

    Also returns the test rows ``predict`` flags (-1) for scikit-learn
    outlier detectors, whose default threshold assumes no rate; else None.
    """
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector.fit(X_train)
    fitted = time.perf_counter()
    if is_pyod:
        anomaly = detector.decision_function(X_test)
    elif hasattr(detector, "decision_function"):
        # The same ranking as score_samples on complete rows; skvae's puts
        # rows of every missingness pattern on one scale.
        anomaly = -detector.decision_function(X_test)
    else:
        anomaly = -detector.score_samples(X_test)
    # A degenerate density (PPCA on collinear features) gives log p = -inf:
    # rank such rows as the most anomalous instead of failing.
    big = np.finfo(np.float64).max
    anomaly = np.nan_to_num(anomaly, nan=np.nan, posinf=big, neginf=-big)
    scored = time.perf_counter()
    flagged = None
    if not is_pyod and is_outlier_detector(detector):
        flagged = detector.predict(X_test) == -1
    return anomaly, fitted - start, scored - fitted, flagged


def remove_entries(X, rate, seed):
    """X with a fraction ``rate`` of its entries set to NaN at random (at least one kept per row)."""
    removed = np.random.default_rng(seed).uniform(size=X.shape) < rate
    removed[removed.all(axis=1), 0] = False
    return np.where(removed, np.nan, X)


def evaluate(X, y, seeds, methods=None, missing=0.0, missing_in="test", skvae_params=None):
    """name -> dict of mean AUROC, mean AP, total fit and score seconds over the seeds."""
    out = {}
    for seed in seeds:
        X_train, X_test, y_test = split(X, y, seed)
        if missing:
            X_test = remove_entries(X_test, missing, seed)
            if missing_in == "both":
                X_train = remove_entries(X_train, missing, seed + 1000)
        found = detectors(seed, methods, missing=bool(missing), skvae_params=skvae_params)
        for name, (detector, is_pyod) in found.items():
            anomaly, fit_s, score_s, flagged = run_one(detector, is_pyod, X_train, X_test)
            row = out.setdefault(name, {"auroc": [], "ap": [], "fit_s": 0.0, "score_s": 0.0})
            row["auroc"].append(roc_auc_score(y_test, anomaly))
            row["ap"].append(average_precision_score(y_test, anomaly))
            if flagged is not None:
                for key, metric in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
                    row.setdefault(key, []).append(metric(y_test, flagged, zero_division=0))
                row.setdefault("flagged", []).append(flagged.mean())
            row["fit_s"] += fit_s
            row["score_s"] += score_s
    means = ("auroc", "ap", "precision", "recall", "f1", "flagged")
    return {
        name: {**row, **{key: float(np.mean(row[key])) for key in means if key in row}}
        for name, row in out.items()
    }


def average_ranks(results, metric):
    """Mean over datasets of each method's rank by ``metric`` (1 = best, ties averaged)."""
    names = list(next(iter(results.values())))
    ranks = [rankdata([-results[d][m][metric] for m in names]) for d in results]
    return dict(zip(names, np.mean(ranks, axis=0)))


def format_table(results):
    """One Markdown table: rows are datasets and summaries, cells 'AUROC (AP)'."""
    names = list(next(iter(results.values())))
    lines = [
        "| dataset | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for dataset, res in results.items():
        cells = [f"{res[m]['auroc']:.3f} ({res[m]['ap']:.3f})" for m in names]
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    mean = {m: [np.mean([r[m][k] for r in results.values()]) for k in ("auroc", "ap")] for m in names}
    lines.append("| **mean** | " + " | ".join(f"**{a:.3f}** ({p:.3f})" for a, p in mean.values()) + " |")
    rank_auc, rank_ap = average_ranks(results, "auroc"), average_ranks(results, "ap")
    lines.append("| avg rank | " + " | ".join(f"{rank_auc[m]:.2f} ({rank_ap[m]:.2f})" for m in names) + " |")
    for key, label in (("fit_s", "fit time (s)"), ("score_s", "score time (s)")):
        total = {m: sum(r[m][key] for r in results.values()) for m in names}
        lines.append(f"| {label} | " + " | ".join(f"{total[m]:.1f}" for m in names) + " |")
    return "\n".join(lines)


def format_predict_table(results):
    """Mean precision, recall and F1 of ``predict`` over datasets, with the share of test rows flagged."""
    names = [m for m in next(iter(results.values())) if "f1" in next(iter(results.values()))[m]]
    if not names:
        return ""
    lines = ["| predict (default threshold) | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for key, label in (("precision", "precision"), ("recall", "recall"), ("f1", "**F1**"), ("flagged", "test rows flagged")):
        cells = [f"{np.mean([r[m][key] for r in results.values()]):.3f}" for m in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    ranks = [rankdata([-r[m]["f1"] for m in names]) for r in results.values()]
    lines.append("| F1 avg rank | " + " | ".join(f"{v:.2f}" for v in np.mean(ranks, axis=0)) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/ad"))
    parser.add_argument("--datasets", nargs="+", help="dataset names (default: every .npz)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", help="method names (default: all)")
    parser.add_argument("--missing", type=float, default=0.0, help="fraction of entries removed (MCAR)")
    parser.add_argument("--missing-in", choices=["test", "both"], default="test")
    parser.add_argument(
        "--skvae-params", type=json.loads, default=None,
        help='JSON object of VAEOutlierDetector parameters for the skvae column, e.g. \'{"kl_penalty": 6}\'',
    )
    args = parser.parse_args(argv)
    names = args.datasets or sorted(p.stem for p in args.data_dir.glob("*.npz"))
    if not names:
        parser.error(f"no .npz datasets found in {args.data_dir}")
    start = time.perf_counter()
    results = {}
    for name in names:
        data = np.load(args.data_dir / f"{name}.npz")
        results[name] = evaluate(
            data["X"], data["y"], args.seeds, args.methods, args.missing, args.missing_in, args.skvae_params
        )
        print(f"{name}: done ({time.perf_counter() - start:.0f} s)", flush=True)
    print()
    print(format_table(results))
    print()
    print(format_predict_table(results))
    holes = f"; {args.missing:.0%} of entries missing in the {args.missing_in} part(s)" if args.missing else ""
    params = f"; skvae with {args.skvae_params}" if args.skvae_params else ""
    print(f"\nseeds {args.seeds}{holes}{params}; AUROC (average precision); total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
