"""Held-out log-likelihood on the oracle family: the VAE's defaults against tuned peers.

For each selected member of the family in ``oracles.py`` (densities with an
exact log p(x)), every method is fitted on the training rows and scored on
the test rows. A cell is the mean test log-density in nats per row (higher is
better, in the space of the data as drawn), the gap to the truth (mean exact
log p(x) minus the model's mean score: the error in nats per row, lower is
better) and the fit seconds. Methods:

- ``vae``: ``VAEDensityEstimator(random_state=seed)`` with its defaults;
- ``gmm``: ``GaussianMixture`` (full covariance), ``GridSearchCV`` over
  ``GMM_GRID`` (3 folds of the training rows, on ``score``);
- ``kde``: ``KernelDensity``, ``GridSearchCV`` over ``KDE_GRID``; its ``score``
  is a sum, so the test rows use the mean of ``score_samples``;
- ``nsf`` and ``maf``: zuko's neural spline and masked autoregressive flows
  (5 transforms, hidden layers (256, 256)), trained on standardised data with
  Adam (step 1e-3, batches of 256) on 90% of the training rows, stopping when
  the mean log-likelihood of the other 10% has not improved for 20 epochs and
  keeping the best epoch's weights; the log-Jacobian of the standardisation is
  added back. Only when ``zuko`` imports.

Fit seconds are the VAE's or flow's fit and each peer's whole grid search.

Run from the project root (the full family is long: see benchmarks/README.md)::

    PYTHONPATH=. python benchmarks/bench_family.py --members choosing --out family.md
    PYTHONPATH=. python benchmarks/bench_family.py --members 'heldout:tanh-d8-*' --methods vae gmm
    # a smoke run, seconds:
    PYTHONPATH=. python benchmarks/bench_family.py --members tanh-d8-s0.1-n2000-seed0 \\
        --max-train-rows 500 --max-test-rows 200 --max-iter 2
"""

import argparse
import sys
import time
import traceback
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KernelDensity

import skvae
from skvae import VAEDensityEstimator

sys.path.insert(0, str(Path(__file__).resolve().parent))
import oracles  # noqa: E402

from flows import Flow, zuko  # noqa: E402

# bench_density.py's grids, wider: more components for 20,000 rows in 32-D, and
# reg_covar down to 1e-6 because the noise variance is 4e-4 at sigma=0.02.
GMM_GRID = {"n_components": [1, 2, 4, 8, 16, 32, 64], "reg_covar": [1e-6, 1e-5, 1e-4, 1e-3, 1e-2]}
KDE_GRID = {"bandwidth": np.logspace(-2.5, 0.5, 13)}
LABELS = {"vae": "VAE", "gmm": "GMM", "kde": "KDE", "nsf": "NSF", "maf": "MAF"}


def fit_vae(X, *, seed, max_iter, n_jobs):
    """(model, note naming the likelihood kept): VAEDensityEstimator with its defaults (``max_iter`` only for smoke runs)."""
    params = {} if max_iter is None else {"max_iter": max_iter}
    model = VAEDensityEstimator(random_state=seed, **params).fit(X)
    return model, f"likelihood={model.likelihood_}"


def fit_search(estimator, grid, X, *, n_jobs):
    """(best estimator, note naming the chosen values) of a 3-fold GridSearchCV on score."""
    search = GridSearchCV(estimator, grid, cv=3, n_jobs=n_jobs).fit(X)
    note = ", ".join(f"{key}={value:.3g}" for key, value in search.best_params_.items())
    return search.best_estimator_, note


def fit_gmm(X, *, seed, max_iter, n_jobs):
    return fit_search(GaussianMixture(covariance_type="full", random_state=seed), GMM_GRID, X, n_jobs=n_jobs)


def fit_kde(X, *, seed, max_iter, n_jobs):
    return fit_search(KernelDensity(), KDE_GRID, X, n_jobs=n_jobs)


def fit_flow(kind):
    def fit(X, *, seed, max_iter, n_jobs):
        params = {} if max_iter is None else {"max_epochs": max_iter}
        model = Flow(kind, seed, **params).fit(X)
        return model, f"{model.n_epochs_} epochs"

    return fit


FITS = {"vae": fit_vae, "gmm": fit_gmm, "kde": fit_kde, "nsf": fit_flow("nsf"), "maf": fit_flow("maf")}


def run_method(method, X_train, X_test, args):
    """(mean test log-likelihood, fit seconds, note); NaN and the error's name if the fit fails."""
    start = time.perf_counter()
    try:
        model, note = FITS[method](X_train, seed=args.seed, max_iter=args.max_iter, n_jobs=args.n_jobs)
    except Exception as error:  # one failed fit should not end a long run
        traceback.print_exc()
        return np.nan, time.perf_counter() - start, f"failed: {type(error).__name__}"
    seconds = time.perf_counter() - start
    return float(np.mean(model.score_samples(X_test))), seconds, note


def run_member(member, methods, args):
    """{'truth': mean exact log p(x) of the test rows, method: (score, seconds, note)}."""
    start = time.perf_counter()
    X_train, X_test, logp = oracles.load_member(member, max_test_rows=args.max_test_rows, cache_dir=args.cache_dir)
    X_train = X_train[: args.max_train_rows]
    print(f"{member.name}: {len(X_train)} training rows, {len(X_test)} test rows "
          f"(data and truth {time.perf_counter() - start:.1f} s)", flush=True)
    result = {"truth": float(logp.mean())}
    for method in methods:
        result[method] = run_method(method, X_train, X_test, args)
        score, seconds, _ = result[method]
        print(f"  {member.name} {method}: {score:.3f} ({result['truth'] - score:.3f} gap), {seconds:.1f} s", flush=True)
    return result


def member_table(results, methods):
    """One row per member: truth, then each method's log-likelihood, gap and fit seconds."""
    head = ["member", "part", "truth"] + [f"{LABELS[m]} {col}" for m in methods for col in ("ll", "gap", "s")]
    lines = ["| " + " | ".join(head) + " | chosen |", "|---|---|" + "---:|" * (len(head) - 2) + "---|"]
    for member, result in results.items():
        cells = [member.name, "heldout" if member.heldout else "choosing", f"{result['truth']:.3f}"]
        for method in methods:
            score, seconds, _ = result[method]
            cells += [f"{score:.3f}", f"{result['truth'] - score:.3f}", f"{seconds:.1f}"]
        notes = "; ".join(f"{LABELS[m]} {result[m][2]}" for m in methods if result[m][2])
        lines.append("| " + " | ".join(cells) + f" | {notes} |")
    return "\n".join(lines)


def summary_table(results, methods):
    """Per method: mean gap on each part and overall, the worst member and the total fit seconds."""
    lines = [
        "| method | mean gap, choosing | mean gap, heldout | mean gap, all | worst member (gap) | fit s, total |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for method in methods:
        gaps = {member: result["truth"] - result[method][0] for member, result in results.items()}
        means = [_mean([g for m, g in gaps.items() if part(m)]) for part in _PARTS]
        worst = max(gaps, key=lambda m: np.nan_to_num(gaps[m], nan=np.inf))
        seconds = sum(result[method][1] for result in results.values())
        lines.append(
            f"| {LABELS[method]} | {means[0]} | {means[1]} | {means[2]} "
            f"| {worst.name} ({gaps[worst]:.3f}) | {seconds:.0f} |"
        )
    return "\n".join(lines)


_PARTS = (lambda m: not m.heldout, lambda m: m.heldout, lambda m: True)


def _mean(gaps):
    """Mean of the gaps as text; failed fits (NaN) are counted and left out."""
    if not gaps:
        return ""
    failed = int(np.isnan(gaps).sum())
    text = f"{np.nanmean(gaps):.3f}" if failed < len(gaps) else "nan"
    return text + (f" ({failed} failed)" if failed else "")


def report(results, methods, seconds):
    versions = f"torch {torch.__version__}, scikit-learn {sklearn.__version__}, skvae {skvae.__version__}"
    versions += f", zuko {zuko.__version__}" if zuko is not None else ""
    return (
        f"{date.today()}, {versions}; `{' '.join(sys.argv)}`; {len(results)} members, {seconds:.0f} s.\n\n"
        f"{member_table(results, methods)}\n\n{summary_table(results, methods)}\n"
    )


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", nargs="+", default=["choosing"], help="all, choosing, heldout, names, "
                        "shell patterns (tanh-d8-*), or PART:PATTERN (heldout:sin-*); see oracles.select")
    parser.add_argument("--methods", nargs="+", choices=list(FITS), default=None,
                        help="default: vae gmm kde, and nsf maf when zuko imports")
    parser.add_argument("--max-test-rows", type=int, default=None, help=f"default: all {oracles.N_TEST}")
    parser.add_argument("--max-train-rows", type=int, default=None, help="for smoke runs")
    parser.add_argument("--max-iter", type=int, default=None, help="epochs of the VAE and flows, for smoke runs")
    parser.add_argument("--seed", type=int, default=0, help="random_state of every method")
    parser.add_argument("--n-jobs", type=int, default=1, help="GridSearchCV n_jobs")
    parser.add_argument("--cache-dir", default=None, help="folder to save and reuse the exact test log-densities")
    parser.add_argument("--out", default=None, help="markdown file, rewritten after every member")
    args = parser.parse_args(argv)
    if args.methods is None:
        args.methods = ["vae", "gmm", "kde"] + (["nsf", "maf"] if zuko is not None else [])
    if zuko is None and {"nsf", "maf"} & set(args.methods):
        parser.error("nsf and maf need zuko: pip install zuko")
    return args


def main(argv=None):
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    members = oracles.select(args.members)
    start, results = time.perf_counter(), {}
    for member in members:
        results[member] = run_member(member, args.methods, args)
        print(f"{member.name} done at {time.perf_counter() - start:.0f} s", flush=True)
        if args.out:
            Path(args.out).write_text(report(results, args.methods, time.perf_counter() - start))
    print(report(results, args.methods, time.perf_counter() - start))


if __name__ == "__main__":
    main()
