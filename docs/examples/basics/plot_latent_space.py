"""
=====================================================
A 2-D latent space of the digits, next to PCA
=====================================================

:class:`skvae.VAETransformer` is a nonlinear, probabilistic counterpart of
:class:`~sklearn.decomposition.PCA`: ``transform`` returns the mean of the
encoder's posterior q(z|x), as PCA returns its scores. With two components
both can be drawn on a plane. PCA keeps the two directions of largest variance;
the VAE is free to bend its map, and separates more of the ten digits.

The pixels of ``load_digits`` are integers from 0 to 16. A continuous density
needs continuous data, so uniform noise is added and the result divided by 17
(dequantisation): values lie strictly inside (0, 1), which ``bounds=(0, 1)``
tells the model.
"""

# %%
# Data and the two maps
# ---------------------

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from skvae import VAETransformer

max_iter = 200

digits = load_digits()
X = (digits.data + np.random.default_rng(0).uniform(size=digits.data.shape)) / 17
y = digits.target

Z_pca = PCA(n_components=2).fit_transform(X)
vae = VAETransformer(n_components=2, bounds=(0, 1), max_iter=max_iter, random_state=0)
Z_vae = vae.fit_transform(X)
print(f"VAE trained for {vae.n_iter_} epochs")

# %%
# Side by side
# ------------
# Each point is one image, coloured by the digit it shows; the digit is drawn
# at the median position of its class. Neither model saw the labels.
fig, axes = plt.subplots(1, 2, figsize=(11, 5))
for ax, Z, title in [
    (axes[0], Z_pca, "PCA, 2 components"),
    (axes[1], Z_vae, "VAETransformer, n_components=2"),
]:
    ax.scatter(Z[:, 0], Z[:, 1], c=y, cmap="tab10", s=6, alpha=0.7)
    for digit in range(10):
        cx, cy = np.median(Z[y == digit], axis=0)
        ax.text(cx, cy, str(digit), fontsize=15, weight="bold", ha="center",
                va="center",
                bbox=dict(boxstyle="circle,pad=0.15", fc="white", alpha=0.8, lw=0))
    ax.set(title=title, xlabel="component 1", ylabel="component 2")
fig.suptitle("load_digits projected to two dimensions (colour = digit)")
fig.tight_layout()
plt.show()

# %%
# How well do the classes separate?
# ---------------------------------
# A k-nearest-neighbours classifier on the 2-D coordinates, cross-validated,
# measures how much of the digit identity each map keeps. (The maps were fitted
# on all rows; the labels were not used.)
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

for name, Z in [("PCA", Z_pca), ("VAE", Z_vae)]:
    accuracy = cross_val_score(KNeighborsClassifier(), Z, y, cv=5).mean()
    print(f"{name}: 5-NN accuracy on the 2-D coordinates {accuracy:.3f}")
