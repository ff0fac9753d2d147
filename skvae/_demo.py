"""Demo: density of dequantised digits, skvae next to scikit-learn's estimators.

Fits :class:`VAEDensityEstimator` on ``load_digits`` (integer pixels plus
uniform noise, scaled to [0, 1]), prints the held-out mean log-likelihood of
it and of GaussianMixture, KernelDensity and PCA fitted in the same run, and
writes PNGs of sampled digits and of a 2-D latent space.
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KernelDensity

from ._density import VAEDensityEstimator
from ._transformer import VAETransformer


def dequantised_digits(seed=0):
    """Digits pixels (0..16) plus U(0, 1) noise, divided by 17: values in (0, 1)."""
    digits = load_digits()
    noise = np.random.default_rng(seed).uniform(size=digits.data.shape)
    return (digits.data + noise) / 17, digits.target


def _mean_log_likelihood(model, X):
    # KernelDensity.score is a sum over rows; the others return a mean.
    if isinstance(getattr(model, "best_estimator_", model), KernelDensity):
        return model.score(X) / len(X)
    return model.score(X)


def _peers(max_iter, verbose):
    vae = VAEDensityEstimator(bounds=(0, 1), max_iter=max_iter, random_state=0, verbose=verbose)
    return {
        "skvae VAEDensityEstimator": vae,
        "GaussianMixture (tuned)": GridSearchCV(
            GaussianMixture(covariance_type="full", random_state=0),
            {"n_components": [1, 2, 5, 10], "reg_covar": [1e-4, 1e-3, 1e-2]},
            cv=3,
        ),
        "KernelDensity (tuned)": GridSearchCV(
            KernelDensity(), {"bandwidth": np.logspace(-2, -0.5, 12)}, cv=3
        ),
        "PCA (tuned)": GridSearchCV(PCA(), {"n_components": [5, 10, 20, 30, 40, 50, 60]}, cv=3),
    }


def _save_samples(vae, path):
    import matplotlib.pyplot as plt

    images = vae.sample(48, random_state=0).reshape(-1, 8, 8)
    fig, axes = plt.subplots(4, 12, figsize=(9, 3.2))
    for ax, image in zip(axes.ravel(), images):
        ax.imshow(image, cmap="gray_r", vmin=0, vmax=1)
        ax.set_axis_off()
    fig.suptitle("Digits sampled from VAEDensityEstimator")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _save_latent(X, y, max_iter, path):
    import matplotlib.pyplot as plt

    Z = VAETransformer(n_components=2, bounds=(0, 1), max_iter=max_iter, random_state=0).fit_transform(X)
    fig, ax = plt.subplots(figsize=(6, 5))
    points = ax.scatter(Z[:, 0], Z[:, 1], c=y, cmap="tab10", s=6)
    fig.colorbar(points, ax=ax, label="digit")
    ax.set(title="2-D latent space of VAETransformer (posterior means)", xlabel="z1", ylabel="z2")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    """Run the demo; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m skvae", description=__doc__.split("\n")[0])
    parser.add_argument("--output-dir", default="skvae-demo", help="where the PNGs go")
    parser.add_argument("--max-iter", type=int, default=200, help="VAE epochs at most")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    X, y = dequantised_digits()
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.3, random_state=0)
    print(f"load_digits, dequantised to (0, 1): {len(X_train)} training rows, {len(X_test)} test rows\n")
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        models = _peers(args.max_iter, verbose=0 if args.quiet else 1)
        for name, model in models.items():
            start = time.perf_counter()
            model.fit(X_train)
            seconds = time.perf_counter() - start
            rows.append((name, _mean_log_likelihood(model, X_test), seconds))
        print(f"\n{'model':<28}{'test log-likelihood (nats/row)':>32}{'fit (s)':>10}")
        for name, score, seconds in sorted(rows, key=lambda r: -r[1]):
            print(f"{name:<28}{score:>32.2f}{seconds:>10.1f}")

        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        try:
            import matplotlib

            matplotlib.use("Agg")
        except ImportError:
            print("\nmatplotlib is not installed: no PNGs (pip install 'skvae[demo]').")
            return 0
        _save_samples(models["skvae VAEDensityEstimator"], out / "samples.png")
        _save_latent(X_train, y_train, args.max_iter, out / "latent.png")
    print(f"\nwrote {out / 'samples.png'} and {out / 'latent.png'}")
    return 0
