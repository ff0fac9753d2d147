"""
=============================================
New digits sampled from a VAE
=============================================

Like scikit-learn's kernel density example on the digits, which samples new
images from a :class:`~sklearn.neighbors.KernelDensity` fitted in a PCA space,
this example fits :class:`skvae.VAEDensityEstimator` to the digits and draws
new images with ``sample``.

``sample`` draws z from the prior (the density estimator's is a learned
mixture of Gaussians) and then x from the decoder's distribution p(x|z), so each
pixel carries the model's own noise. The decoder's mean for the same kind of
draw, ``inverse_transform`` of draws from N(0, I), the prior of
:class:`skvae.VAETransformer`, shows the smooth image behind the noise.
"""

# %%
# Fit the models
# --------------

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KernelDensity

from skvae import VAEDensityEstimator, VAETransformer

max_iter = 200

digits = load_digits()
# Dequantised pixels in (0, 1): see the latent-space example.
X = (digits.data + np.random.default_rng(0).uniform(size=digits.data.shape)) / 17

vae = VAEDensityEstimator(bounds=(0, 1), max_iter=max_iter, random_state=0).fit(X)
vae_samples = vae.sample(44, random_state=0)

# The model as a transformer (prior N(0, I)): decoder means of draws from that prior.
vt = VAETransformer(bounds=(0, 1), max_iter=max_iter, random_state=0).fit(X)
z = np.random.default_rng(0).standard_normal((44, vt.n_components))
vae_means = vt.inverse_transform(z)

# scikit-learn's recipe: a KernelDensity in a 15-dimensional PCA space.
pca = PCA(n_components=15, whiten=False).fit(X)
kde = GridSearchCV(KernelDensity(), {"bandwidth": np.logspace(-1.5, 0, 12)}, cv=3)
kde.fit(pca.transform(X))
kde_samples = pca.inverse_transform(kde.best_estimator_.sample(44, random_state=0))

# %%
# Real and new digits
# -------------------
rows = [
    ("Training digits", X[:44]),
    ("VAEDensityEstimator.sample", vae_samples),
    ("Decoder means of prior draws (VAETransformer.inverse_transform)", vae_means),
    ("KernelDensity in PCA space (scikit-learn's example)", kde_samples),
]
fig, axes = plt.subplots(len(rows), 1, figsize=(7, 11))
for ax, (title, images) in zip(axes, rows):
    # 4 rows of 11 images of 8 x 8 pixels, tiled with a 1-pixel gap.
    grid = np.ones((4 * 9, 11 * 9))
    for i, image in enumerate(images.reshape(-1, 8, 8)):
        r, c = divmod(i, 11)
        grid[r * 9 : r * 9 + 8, c * 9 : c * 9 + 8] = 1 - np.clip(image, 0, 1)
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=11)
    ax.set_axis_off()
fig.tight_layout()
plt.show()
