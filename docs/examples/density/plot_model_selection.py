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
dimensions mapped linearly into ten features, plus noise: a Gaussian), so the
test rows carry their true ``log p(x)`` and the plot shows how far each
fitted model is from the best possible score. The latent size chosen by
cross-validation on the training rows alone is compared with the best one on
the test rows.
"""

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import multivariate_normal
from sklearn.model_selection import GridSearchCV

from skvae import VAEDensityEstimator

# Ten features from two latent dimensions, z ~ N(0, I) and x = z W + noise:
# x is Gaussian with covariance W^T W + 0.1 I, so every row's log p(x) is exact.
rng = np.random.default_rng(0)
W = rng.normal(size=(2, 10))
source = multivariate_normal(np.zeros(10), W.T @ W + 0.1 * np.eye(10))
X = source.rvs(1500 + 2000, random_state=0)
X_train, X_test = X[:1500], X[1500:]
truth = source.logpdf(X_test).mean()

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
