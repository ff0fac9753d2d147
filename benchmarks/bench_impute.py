"""Imputation of values missing completely at random, VAEImputer against scikit-learn's imputers.

The protocol of the MIWAE paper (Mattei and Frellsen, 2019): standardise each
dataset with its full mean and SD; remove entries uniformly at random (MCAR) at
each rate and seed; impute, and report the RMSE on the removed entries in
standardised units (mean and SD over seeds). Two settings: ``same`` fits and
imputes the same incomplete matrix, as the papers do; ``split`` fits on a random
70% and imputes the other 30%. A third table is the accuracy of a
``LogisticRegression`` after each imputer, in a pipeline, on breast cancer with
5-fold cross-validation.

Peers: ``SimpleImputer(strategy="mean")``, ``KNNImputer()``,
``IterativeImputer()`` (BayesianRidge), ``IterativeImputer(ExtraTreesRegressor
(n_estimators=100))`` (missForest as the MIWAE paper ran it), and, when the
``hyperimpute`` package is installed, its ``miwae``, ``gain`` and ``missforest``
plugins. Every method runs with its defaults.

Usage::

    PYTHONPATH=. python benchmarks/bench_impute.py --data-dir ../shared/data
    PYTHONPATH=. python benchmarks/bench_impute.py --datasets iris wine --rates 0.5 --seeds 0 1
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae import VAEImputer

BUNDLED = {"breast": load_breast_cancer, "iris": load_iris, "wine": load_wine, "diabetes": load_diabetes}
# The larger sets of the anomaly suite (labels dropped).
ANOMALY_SETS = ["fault", "magic.gamma", "spambase", "waveform", "wilt", "yeast"]


def datasets(data_dir, names, max_rows):
    """name -> standardised feature matrix, at most ``max_rows`` rows (a seeded subsample)."""
    out = {}
    for name in names:
        if name in BUNDLED:
            X = BUNDLED[name]().data
        else:
            path = Path(data_dir) / "ad" / f"{name}.npz"
            if not path.exists():
                print(f"{name}: skipped, {path} not found")
                continue
            X = np.load(path)["X"]
        if len(X) > max_rows:
            X = X[np.sort(np.random.default_rng(0).choice(len(X), max_rows, replace=False))]
        X = X[:, X.std(axis=0) > 0]
        out[name] = (X - X.mean(axis=0)) / X.std(axis=0)
    return out


def imputers(seed, methods=None):
    """name -> unfitted imputer."""
    found = {
        "VAEImputer": lambda: VAEImputer(random_state=seed),
        "mean": lambda: SimpleImputer(strategy="mean"),
        "KNN": lambda: KNNImputer(),
        "IterativeImputer": lambda: IterativeImputer(random_state=seed),
        "missForest": lambda: IterativeImputer(ExtraTreesRegressor(n_estimators=100, random_state=seed), random_state=seed),
    }
    found |= _hyperimpute(seed)
    if methods is not None:
        unknown = set(methods) - set(found)
        if unknown:
            raise ValueError(f"Unknown methods {sorted(unknown)}; choose from {sorted(found)}.")
        found = {name: found[name] for name in methods}
    return {name: make() for name, make in found.items()}


def _hyperimpute(seed):
    try:
        from hyperimpute.plugins.imputers import Imputers
    except ImportError:
        return {}
    plugins = Imputers()
    return {f"hyperimpute {name}": (lambda name=name: _Plugin(plugins, name, seed)) for name in ("miwae", "gain", "missforest")}


class _Plugin:
    """A hyperimpute plugin behind fit/transform on numpy arrays."""

    def __init__(self, plugins, name, seed):
        self.model = plugins.get(name, random_state=seed)

    def fit(self, X):
        import pandas as pd

        self.model.fit(pd.DataFrame(X))
        return self

    def transform(self, X):
        import pandas as pd

        return np.asarray(self.model.transform(pd.DataFrame(X)), dtype=float)


def mcar(X, rate, seed):
    """X with a fraction ``rate`` of its entries removed uniformly at random (NaN), and the mask."""
    removed = np.random.default_rng(seed).uniform(size=X.shape) < rate
    # Keep one entry of each row and column, as every imputer needs one.
    removed[np.all(removed, axis=1), 0] = False
    X_missing = X.copy()
    X_missing[removed] = np.nan
    return X_missing, removed & ~np.isnan(X)


def run_one(imputer, X, rate, seed, setting):
    """RMSE on the removed entries and fit + impute seconds, for one mask."""
    X_missing, removed = mcar(X, rate, seed)
    if setting == "same":
        fit_rows = test_rows = np.arange(len(X))
    else:
        order = np.random.default_rng(seed).permutation(len(X))
        fit_rows, test_rows = order[: int(0.7 * len(X))], order[int(0.7 * len(X)):]
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imputer.fit(X_missing[fit_rows])
        filled = imputer.transform(X_missing[test_rows])
    seconds = time.perf_counter() - start
    mask = removed[test_rows]
    error = filled[mask] - X[test_rows][mask]
    return float(np.mean(error**2)), seconds


def downstream(seeds, rate, methods):
    """Accuracy of LogisticRegression after each imputer on breast cancer, 5-fold CV, per seed."""
    data = load_breast_cancer()
    X, y = (data.data - data.data.mean(0)) / data.data.std(0), data.target
    out = {}
    for seed in seeds:
        X_missing, _ = mcar(X, rate, seed)
        for name, imputer in imputers(seed, methods).items():
            pipe = make_pipeline(imputer, StandardScaler(), LogisticRegression(max_iter=1000))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out.setdefault(name, []).append(cross_val_score(pipe, X_missing, y, cv=5).mean())
    return out


def _cell(values):
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def table(results, names):
    """Markdown: rows are datasets, cells 'mean ± SD' of the RMSE; then the mean, ranks and time."""
    lines = ["| dataset | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for dataset, res in results.items():
        lines.append(f"| {dataset} | " + " | ".join(_cell(res[m]["rmse"]) for m in names) + " |")
    means = {m: np.mean([np.mean(r[m]["rmse"]) for r in results.values()]) for m in names}
    lines.append("| **mean RMSE** | " + " | ".join(f"**{means[m]:.3f}**" for m in names) + " |")
    ranks = np.mean([_ranks([np.mean(r[m]["rmse"]) for m in names]) for r in results.values()], axis=0)
    lines.append("| avg rank | " + " | ".join(f"{r:.2f}" for r in ranks) + " |")
    seconds = {m: sum(sum(r[m]["seconds"]) for r in results.values()) for m in names}
    lines.append("| fit + impute (s) | " + " | ".join(f"{seconds[m]:.1f}" for m in names) + " |")
    return "\n".join(lines)


def _ranks(values):
    order = np.argsort(np.argsort(values))
    return order + 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--datasets", nargs="+", default=[*BUNDLED, *ANOMALY_SETS])
    parser.add_argument("--rates", nargs="+", type=float, default=[0.2, 0.5])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--settings", nargs="+", default=["same", "split"], choices=["same", "split"])
    parser.add_argument("--methods", nargs="+", default=None)
    parser.add_argument("--max-rows", type=int, default=2000, help="subsample larger sets to this many rows")
    parser.add_argument("--no-downstream", action="store_true")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    data = datasets(args.data_dir, args.datasets, args.max_rows)
    names = list(imputers(0, args.methods))
    for setting in args.settings:
        for rate in args.rates:
            results = {}
            for dataset, X in data.items():
                res = results.setdefault(dataset, {m: {"rmse": [], "mse": [], "seconds": []} for m in names})
                for seed in args.seeds:
                    for name, imputer in imputers(seed, args.methods).items():
                        mse, seconds = run_one(imputer, X, rate, seed, setting)
                        res[name]["rmse"].append(np.sqrt(mse))
                        res[name]["mse"].append(mse)
                        res[name]["seconds"].append(seconds)
                print(f"{setting} {rate:.0%} {dataset} ({X.shape[0]} x {X.shape[1]}): "
                      f"done ({time.perf_counter() - start:.0f} s)", flush=True)
            print(f"\n### RMSE on removed entries, {rate:.0%} MCAR, {setting}\n")
            print(table(results, names), flush=True)
            if "breast" in results:
                cells = " | ".join(_cell(results["breast"][m]["mse"]) for m in names)
                print(f"| breast, MSE | {cells} |")
            print(flush=True)
    if not args.no_downstream:
        for rate in args.rates:
            accuracy = downstream(args.seeds, rate, args.methods)
            print(f"\n### breast cancer, {rate:.0%} MCAR: LogisticRegression accuracy after imputing (5-fold CV)\n")
            print("| imputer | accuracy |\n|---|---:|")
            for name, values in accuracy.items():
                print(f"| {name} | {_cell(values)} |")
    print(f"\nseeds {args.seeds}; total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
