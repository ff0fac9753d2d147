"""Held-out log-likelihood of VAEDensityEstimator next to tuned scikit-learn density models.

Every peer is tuned in this run by ``GridSearchCV`` (3 folds of the training
part) on its ``score``: ``GaussianMixture`` (full covariance; n_components and
reg_covar), ``KernelDensity`` (bandwidth), ``PCA`` and ``FactorAnalysis``
(n_components). The VAE uses its defaults, with ``random_state`` and, for
digits, ``bounds=(0, 1)``. Every number is the mean log-density of the test
rows in nats per row (higher is better), all in the space of the data as
given. ``KernelDensity.score`` is a sum: its rows use ``score_samples``.
When the optional ``zuko`` package imports (and without ``--no-flows``),
zuko's NSF and MAF normalizing flows join as untuned peers (5 transforms of
(256, 256), early stopping on 10% of the training part; ``flows.py``), fitted
once with the first seed.

Data sets:

- digits: ``load_digits`` dequantised as ``(X + U(0, 1)) / 17`` with
  ``np.random.default_rng(0)``, ``train_test_split(test_size=0.3,
  random_state=0)``;
- oracle: ``<data-dir>/density/oracle_tanh_d10.npz``, whose test rows carry
  their exact log p(x): the table gives the gap to the truth too;
- breast cancer (30 features) and wine (13): scikit-learn's bundled real data
  sets with continuous measurements, standardised on the training part;
  neither is digits-like, and they are small (398 and 124 training rows), so
  they test the defaults where overfitting is the risk;
- two moons: 3,000 rows of ``make_moons(noise=0.1)``, a 2-D density with
  curved, thin support; a plot of the three densities is written.

Run from the project root (about 6 minutes on 2 CPU cores; the flows add about 3)::

    PYTHONPATH=. python benchmarks/bench_density.py --data-dir ../shared/data
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_wine, make_moons
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KernelDensity
from sklearn.preprocessing import StandardScaler

from skvae import VAEDensityEstimator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flows import Flow, zuko  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load_datasets(data_dir):
    """{name: (X_train, X_test, VAE parameters, exact test log-densities or None)}."""
    X = load_digits().data
    X = (X + np.random.default_rng(0).uniform(size=X.shape)) / 17
    datasets = {"digits": (*train_test_split(X, test_size=0.3, random_state=0), {"bounds": (0, 1)}, None)}
    oracle = np.load(Path(data_dir) / "density" / "oracle_tanh_d10.npz")
    datasets["oracle"] = (oracle["X_train"], oracle["X_test"], {}, oracle["logp_test"])
    for name, loader in [("breast cancer", load_breast_cancer), ("wine", load_wine)]:
        datasets[name] = (*_standardised(loader().data), {}, None)
    X, _ = make_moons(n_samples=3000, noise=0.1, random_state=0)
    datasets["two moons"] = (*train_test_split(X, test_size=0.3, random_state=0), {}, None)
    return datasets


def _standardised(X):
    X_train, X_test = train_test_split(X, test_size=0.3, random_state=0)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test)


def peers(n_features):
    """{name: (estimator, grid)} tuned by GridSearchCV on score."""
    sizes = sorted({k for k in (1, 2, 4, 8, 16, 32, 48) if k < n_features} | {n_features - 1})
    return {
        "GaussianMixture": (
            GaussianMixture(covariance_type="full", random_state=0),
            {"n_components": [1, 2, 4, 8, 16, 32], "reg_covar": [1e-6, 1e-4, 1e-3, 1e-2, 1e-1]},
        ),
        "KernelDensity": (KernelDensity(), {"bandwidth": np.logspace(-1.7, 0.3, 11)}),
        "PCA": (PCA(), {"n_components": [k for k in sizes if k >= 1]}),
        "FactorAnalysis": (FactorAnalysis(random_state=0), {"n_components": [k for k in sizes if k >= 1]}),
    }


def run_dataset(X_train, X_test, vae_params, *, seeds, flows=True):
    """{method: (mean test log-density, fit seconds, fitted model)}."""
    results = {}
    for seed in seeds:
        start = time.perf_counter()
        vae = VAEDensityEstimator(random_state=seed, **vae_params).fit(X_train)
        seconds = time.perf_counter() - start
        results[f"VAE (defaults, seed {seed})"] = (vae.score(X_test), seconds, vae)
    for name, (estimator, grid) in peers(X_train.shape[1]).items():
        start = time.perf_counter()
        search = GridSearchCV(estimator, grid, cv=3).fit(X_train)
        seconds = time.perf_counter() - start
        score = search.best_estimator_.score_samples(X_test).mean()
        results[f"{name} {_best(search)}"] = (score, seconds, search.best_estimator_)
    if flows and zuko is not None:
        for kind in ("nsf", "maf"):
            start = time.perf_counter()
            flow = Flow(kind, seeds[0]).fit(X_train)
            seconds = time.perf_counter() - start
            score = flow.score_samples(X_test).mean()
            results[f"{kind.upper()} (zuko, {flow.n_epochs_} epochs)"] = (score, seconds, flow)
    return results


def _best(search):
    return ", ".join(f"{key}={value:.3g}" for key, value in search.best_params_.items())


def plot_moons(models, X_train, path):
    """Densities of the VAE, GaussianMixture and KernelDensity on the two-moons plane."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xx, yy = np.meshgrid(np.linspace(-1.6, 2.6, 160), np.linspace(-1.1, 1.6, 110))
    grid = np.column_stack([xx.ravel(), yy.ravel()])
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.2), sharey=True)
    for ax, (name, model) in zip(axes, models.items()):
        density = np.exp(model.score_samples(grid)).reshape(xx.shape)
        ax.contourf(xx, yy, density, levels=30, cmap="viridis")
        ax.scatter(*X_train[:300].T, s=1, c="white", alpha=0.5)
        ax.set_title(name, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(all_results, truths):
    lines = [
        "| data | method | test log-likelihood (nats/row) | gap to truth | fit s |",
        "|---|---|---:|---:|---:|",
    ]
    for data, results in all_results.items():
        for method, (score, seconds, _) in sorted(results.items(), key=lambda item: -item[1][0]):
            gap = "" if truths[data] is None else f"{truths[data] - score:.3f}"
            lines.append(f"| {data} | {method} | {score:.3f} | {gap} | {seconds:.1f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out-dir", default=str(ROOT / "benchmarks"))
    parser.add_argument("--datasets", nargs="+", default=None, help="names to run (default: all)")
    parser.add_argument("--no-flows", action="store_true", help="leave out zuko's flows even when it imports")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    start = time.perf_counter()
    datasets = load_datasets(args.data_dir)
    all_results, truths = {}, {}
    for name, (X_train, X_test, vae_params, logp) in datasets.items():
        if args.datasets and name not in args.datasets:
            continue
        all_results[name] = run_dataset(X_train, X_test, vae_params, seeds=args.seeds, flows=not args.no_flows)
        truths[name] = None if logp is None else float(logp.mean())
        print(f"{name} done at {time.perf_counter() - start:.0f} s", flush=True)
        if name == "two moons":
            models = {method: model for method, (_, _, model) in all_results[name].items()}
            picked = {}
            for prefix in ("VAE", "GaussianMixture", "KernelDensity"):
                method = next(m for m in models if m.startswith(prefix))
                picked[method] = models[method]
            plot_moons(picked, X_train, Path(args.out_dir) / "density_two_moons.png")
    print(table(all_results, truths))
    print(f"\nTotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
