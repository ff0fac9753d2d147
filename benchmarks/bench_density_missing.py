"""Densities of incomplete rows: the held-out log p(x_obs) of VAEDensityEstimator against the truth.

On an oracle of ``benchmarks/oracles.py`` (exact log p(x_obs) by quadrature
over the 2-D latent, for any set of observed features) and on
``<data-dir>/density/oracle_tanh_d10.npz`` (exact log p(x) of complete rows
only), a fraction of the test entries is removed at random (MCAR, seeded). Two
models with default parameters are fitted: on the complete training rows, and
on the training rows with the same fraction removed. Each is scored on the
complete test rows and on the incomplete ones; the table gives the mean
held-out score in nats per row, and the gap to the truth where it is known.

Run from the project root (about 5 minutes on 2 CPU cores)::

    PYTHONPATH=. python benchmarks/bench_density_missing.py --data-dir ../shared/data
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from skvae import VAEDensityEstimator

sys.path.insert(0, str(Path(__file__).resolve().parent))
import oracles  # noqa: E402


def remove(X, rate, seed):
    """X with a fraction ``rate`` of its entries set to NaN at random."""
    X = X.copy()
    X[np.random.default_rng(seed).uniform(size=X.shape) < rate] = np.nan
    return X


def problems(data_dir, member, max_test_rows):
    """name -> (X_train, X_test, exact log p of complete test rows, maps and sigma or None)."""
    out = {}
    m = oracles.from_name(member)
    X_train, X_test, logp = oracles.load_member(m, max_test_rows=max_test_rows)
    out[member] = (X_train, X_test, logp, (oracles.branches(m.shape, m.n_features, m.seed), m.sigma))
    path = Path(data_dir) / "density" / "oracle_tanh_d10.npz"
    if path.exists():
        data = np.load(path)
        n = min(len(data["X_test"]), max_test_rows)
        out["oracle_tanh_d10"] = (data["X_train"], data["X_test"][:n], data["logp_test"][:n], None)
    else:
        print(f"oracle_tanh_d10: skipped, {path} not found")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--member", default="tanh-d16-s0.1-n20000-seed0")
    parser.add_argument("--rate", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-test-rows", type=int, default=2000)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = []
    for name, (X_train, X_test, logp, oracle) in problems(args.data_dir, args.member, args.max_test_rows).items():
        X_test_holes = remove(X_test, args.rate, args.seed + 1)
        truth_holes = None if oracle is None else oracles.log_density_observed(X_test_holes, *oracle)
        for trained_on, X_fit in (("complete", X_train), (f"{args.rate:.0%} missing", remove(X_train, args.rate, args.seed))):
            tic = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                de = VAEDensityEstimator(random_state=args.seed).fit(X_fit)
            fit_s = time.perf_counter() - tic
            for scored, X, truth in (("complete", X_test, logp), (f"{args.rate:.0%} missing", X_test_holes, truth_holes)):
                score = de.score(X)
                gap = "" if truth is None else f"{np.mean(truth) - score:.3f}"
                shown = "" if truth is None else f"{np.mean(truth):.3f}"
                rows.append(f"| {name} | {trained_on} | {scored} | {shown} | {score:.3f} | {gap} | {fit_s:.0f} |")
        print(f"{name}: done ({time.perf_counter() - start:.0f} s)", flush=True)
    print("\n| data | trained on | test rows | truth | VAE | gap | fit s |\n|---|---|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    print(f"\nmean held-out log p(x) or log p(x_obs), nats per row; seed {args.seed}; "
          f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
