"""
===================================================
Latent features for a classifier in a Pipeline
===================================================

:class:`skvae.VAETransformer` is a scikit-learn transformer, so it fits in a
:class:`~sklearn.pipeline.Pipeline` in front of any classifier, exactly where
:class:`~sklearn.decomposition.PCA` would go. This example trains the same
logistic regression on the posterior means of a VAE and on PCA scores, for a
range of latent sizes, and compares their test accuracy on the digits.

The VAE is fitted without the labels (it ignores ``y``); only the logistic
regression sees them.
"""

# %%
# The two pipelines
# -----------------
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae import VAETransformer

max_iter = 200

X, y = load_digits(return_X_y=True)
# Pixels are integers 0..16: add uniform noise so that they have a density.
X = X + np.random.default_rng(0).uniform(size=X.shape)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)


def pipeline(reducer):
    """Scaled latent features, then a logistic regression."""
    return make_pipeline(reducer, StandardScaler(), LogisticRegression(max_iter=2000))


sizes = [2, 4, 8, 16]
accuracy = {"VAETransformer": [], "PCA": []}
for k in sizes:
    start = time.perf_counter()
    vae = pipeline(VAETransformer(n_components=k, max_iter=max_iter, random_state=0))
    accuracy["VAETransformer"].append(vae.fit(X_train, y_train).score(X_test, y_test))
    seconds = time.perf_counter() - start
    pca = pipeline(PCA(n_components=k, random_state=0))
    accuracy["PCA"].append(pca.fit(X_train, y_train).score(X_test, y_test))
    print(f"n_components={k:>2}: VAE {accuracy['VAETransformer'][-1]:.3f} "
          f"({seconds:.1f} s), PCA {accuracy['PCA'][-1]:.3f}")

# %%
# Test accuracy against the latent size
# -------------------------------------
# With few components the VAE's nonlinear map keeps more of what tells the
# digits apart; with many, both feed the classifier enough and the gap closes.
# A logistic regression on all 64 pixels is the dashed line.
full = pipeline("passthrough").fit(X_train, y_train).score(X_test, y_test)
fig, ax = plt.subplots(figsize=(6.5, 4.5))
for name, marker in [("VAETransformer", "o"), ("PCA", "s")]:
    ax.plot(sizes, accuracy[name], marker=marker, label=name)
ax.axhline(full, color="gray", ls="--", label="all 64 pixels")
ax.set(xscale="log", ylim=(0, 1.02), xlabel="n_components", ylabel="test accuracy",
       title="Logistic regression on latent features (digits)")
ax.set_xticks(sizes, labels=[str(k) for k in sizes])
ax.minorticks_off()
ax.legend(loc="lower right")
fig.tight_layout()
plt.show()
