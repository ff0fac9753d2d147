"""
===============================================
Training curves and early stopping
===============================================

A fitted estimator keeps its training history in scikit-learn's names, as
:class:`~sklearn.neural_network.MLPRegressor` does: ``loss_curve_`` is the
training loss per epoch (the negative ELBO, in nats per sample, lower is
better), and with early stopping ``validation_scores_`` is the mean ELBO of the
held-out rows per epoch (higher is better) and ``best_validation_score_`` its
best value. Plotting them shows when the model stopped learning and whether it
began to overfit.

``early_stopping=True`` holds out ``validation_fraction`` of the rows and stops
when their ELBO has not improved by ``tol`` for ``n_iter_no_change`` epochs,
then restores the weights of the best epoch.
"""

# %%
# Fit with early stopping
# -----------------------

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from skvae import VAEDensityEstimator

max_iter = 300

digits = load_digits()
X = (digits.data + np.random.default_rng(0).uniform(size=digits.data.shape)) / 17

models = {
    "hidden_layer_sizes=(128, 128)": VAEDensityEstimator(
        bounds=(0, 1), early_stopping=True, max_iter=max_iter, random_state=0
    ),
    "hidden_layer_sizes=(512, 512)": VAEDensityEstimator(
        hidden_layer_sizes=(512, 512), bounds=(0, 1), early_stopping=True,
        max_iter=max_iter, random_state=0,
    ),
}
for name, model in models.items():
    model.fit(X)
    print(f"{name}: {model.n_iter_} epochs, best held-out ELBO "
          f"{model.best_validation_score_:.1f} nats per sample")

# %%
# Training loss and held-out ELBO per epoch
# -----------------------------------------
# Both curves are in nats per sample. The training loss is plotted as
# ``-loss_curve_`` so that both read "higher is better". The training curve is
# averaged over the epoch's minibatches while the weights move, the held-out
# one is computed at the end of the epoch. The larger network fits the training
# rows better and soon stops improving on the held-out ones: early stopping
# keeps its best epoch (the dot).
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
for ax, (name, model) in zip(axes, models.items()):
    epochs = np.arange(1, model.n_iter_ + 1)
    training = -np.asarray(model.loss_curve_)
    ax.plot(epochs, training, label="training ELBO (-loss_curve_)")
    ax.plot(epochs, model.validation_scores_,
            label="held-out ELBO (validation_scores_)")
    best = int(np.argmax(model.validation_scores_))
    ax.plot(best + 1, model.validation_scores_[best], "o", color="C1", ms=8)
    ax.set(title=name, xlabel="epoch")
    ax.grid(alpha=0.3)
axes[0].set_ylabel("nats per sample (higher is better)")
low = min(np.percentile(m.validation_scores_, 5) for m in models.values())
high = max(max(-np.asarray(m.loss_curve_)) for m in models.values())
axes[0].set_ylim(low, high + 0.05 * (high - low))
axes[0].legend(loc="lower right")
fig.tight_layout()
plt.show()
