"""
============================================================
Imputing a table with holes: VAEImputer and IterativeImputer
============================================================

Half the entries of the breast-cancer measurements (30 features, standardised)
are removed at random. :class:`skvae.VAEImputer` learns the density of the rows
from their observed entries alone and fills each hole with its conditional
mean given the row's observed entries; :class:`~sklearn.impute.IterativeImputer`
regresses each feature on the others in turn, and ``SimpleImputer`` fills the
column mean. The plot shows imputed against true values of the removed entries,
with each imputer's mean squared error in standardised units (the mean's is
about 1).
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, SimpleImputer

from skvae import VAEImputer

X = load_breast_cancer().data
X = (X - X.mean(axis=0)) / X.std(axis=0)
rng = np.random.default_rng(0)
removed = rng.uniform(size=X.shape) < 0.5
X_missing = np.where(removed, np.nan, X)

imputers = {
    "VAEImputer": VAEImputer(random_state=0),
    "IterativeImputer": IterativeImputer(random_state=0),
    "SimpleImputer (mean)": SimpleImputer(),
}
fig, axes = plt.subplots(1, 3, figsize=(11, 3.8), sharex=True, sharey=True)
for ax, (name, imputer) in zip(axes, imputers.items()):
    filled = imputer.fit_transform(X_missing)
    mse = np.mean((filled[removed] - X[removed]) ** 2)
    ax.scatter(X[removed], filled[removed], s=2, alpha=0.3)
    ax.plot([-3, 6], [-3, 6], color="k", lw=0.8)
    ax.set(title=f"{name}\nMSE {mse:.3f}", xlabel="true value", xlim=(-3, 6), ylim=(-3, 6))
    print(f"{name:22s} MSE on removed entries: {mse:.3f}")
axes[0].set_ylabel("imputed value")
fig.tight_layout()
plt.show()
