"""
===============================================
Choosing the latent size by held-out likelihood
===============================================

``VAEDensityEstimator.score`` is the mean log-density of the rows, in nats, so
:class:`~sklearn.model_selection.GridSearchCV` can pick the number of latent
dimensions ``n_components`` as it picks the number of components of a
:class:`~sklearn.mixture.GaussianMixture`: by the likelihood of the rows each
fold holds out.

The data come from a model whose exact log-density is known (two latent
dimensions mapped through a ``tanh`` layer into ten features, plus noise):
the test rows carry their true ``log p(x)``, so the plot shows how far each
fitted model is from the best possible score. The latent size chosen by
cross-validation on the training rows alone is compared with the best one on
the test rows.
"""

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV

from skvae import VAEDensityEstimator


def load_oracle(data_dir, n_train, n_test):
    """The oracle data (exact log p(x) per test row), or, without the data folder,
    10-D data from a known linear model with a 2-D latent space, whose exact log
    p(x) is a multivariate normal's."""
    path = data_dir / "density" / "oracle_tanh_d10.npz"
    if path.exists():
        data = np.load(path)
        return data["X_train"][:n_train], data["X_test"][:n_test], data["logp_test"][:n_test]
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(0)
    W = rng.normal(size=(2, 10))
    truth = multivariate_normal(np.zeros(10), W.T @ W + 0.1 * np.eye(10))
    X = truth.rvs(n_train + n_test, random_state=0)
    return X[:n_train], X[n_train:], truth.logpdf(X[n_train:])

# The project's data folder sits next to its root; SKVAE_DATA_DIR overrides it.
root = Path(__file__).resolve().parents[3] if "__file__" in globals() else Path.cwd()
data_dir = Path(os.environ.get("SKVAE_DATA_DIR", root.parent / "shared" / "data"))
X_train, X_test, logp_test = load_oracle(data_dir, 1500, 2000)
truth = logp_test.mean()

# Smaller layers than the defaults keep the 16 fits of this example fast.
vae = VAEDensityEstimator(hidden_layer_sizes=(32, 32), max_iter=100, random_state=0)
grid = {"n_components": [1, 2, 4, 8]}
search = GridSearchCV(vae, grid, cv=3, refit=False).fit(X_train)
chosen = search.best_params_["n_components"]

held_out = [vae.set_params(n_components=k).fit(X_train).score(X_test) for k in grid["n_components"]]
best = grid["n_components"][int(np.argmax(held_out))]
print(f"chosen n_components={chosen}, held-out score {held_out[grid['n_components'].index(chosen)]:.3f}")
print(f"best n_components={best}, held-out score {max(held_out):.3f}; truth {truth:.3f}")

# %%
# Cross-validated and held-out scores against the latent size
# ------------------------------------------------------------
# The true data have two latent dimensions; one is not enough, and the extra
# dimensions of larger models cost little, because unused latent dimensions
# collapse onto the prior.

fig, ax = plt.subplots(figsize=(5, 3.5))
cv_mean, cv_std = search.cv_results_["mean_test_score"], search.cv_results_["std_test_score"]
ax.errorbar(grid["n_components"], cv_mean, yerr=cv_std, marker="o", label="3-fold CV (training rows)")
ax.plot(grid["n_components"], held_out, marker="s", label="test rows")
ax.axhline(truth, color="k", linestyle="--", label="exact log p(x), test rows")
ax.axvline(chosen, color="grey", linestyle=":", label=f"chosen: n_components={chosen}")
ax.set_xscale("log", base=2)
ax.set_xlabel("n_components")
ax.set_ylabel("mean log-likelihood (nats per row)")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
