"""
=============================================
Anomaly scores of normal and anomalous rows
=============================================

:class:`skvae.VAEOutlierDetector` learns the density of the training rows
(anomalies included, without labels) and scores new rows by their estimated
log-density log p(x): the lower, the more abnormal. This example follows the
protocol of the shared anomaly-detection benchmark on the ``stamps`` dataset
(forged stamps among genuine ones): a stratified 70/30 split, scaling fitted on
the training part, then a histogram of the test rows' ``decision_function``
(``score_samples - offset_``) for normal and anomalous rows, with the AUROC of
the detector and of :class:`~sklearn.ensemble.IsolationForest`.

The data is read from ``$SKVAE_DATA_DIR/ad/stamps.npz`` (default
``../shared/data``, relative to the working directory). When it is absent, the
example falls back to synthetic data: points near a curved 2-D manifold in 6
dimensions, with 5% planted anomalies scattered off it.
"""

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import precision_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from skvae import VAEOutlierDetector


def load_data():
    """The stamps dataset if present, else planted anomalies near a manifold."""
    path = Path(os.environ.get("SKVAE_DATA_DIR", "../shared/data")) / "ad" / "stamps.npz"
    if path.exists():
        data = np.load(path)
        return data["X"], data["y"], "stamps"
    rng = np.random.default_rng(0)
    z = rng.normal(size=(1000, 2))
    X = np.tanh(z @ rng.normal(size=(2, 6))) + 0.05 * rng.normal(size=(1000, 6))
    y = np.zeros(1000, dtype=int)
    y[:50] = 1
    X[:50] = rng.uniform(-1.5, 1.5, size=(50, 6))
    return X, y, "synthetic (stamps.npz not found)"


X, y, name = load_data()
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0
)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

detector = VAEOutlierDetector(random_state=0).fit(X_train)
decision = detector.decision_function(X_test)
forest = IsolationForest(random_state=0).fit(X_train)
auroc = roc_auc_score(y_test, -decision)
auroc_forest = roc_auc_score(y_test, -forest.decision_function(X_test))
print(f"{name}: AUROC VAEOutlierDetector {auroc:.3f}, IsolationForest {auroc_forest:.3f}")
# contamination='auto' assumes no rate: offset_ splits the training scores into
# the two groups that are most apart (Otsu's threshold).
flagged = detector.predict(X_test) == -1
print(
    f"flagged on the test part: {flagged.mean():.1%} (anomalies: {y_test.mean():.1%}); "
    f"precision {precision_score(y_test, flagged):.2f}, recall {recall_score(y_test, flagged):.2f}"
)

# %%
# Scores of normal and anomalous test rows. Rows left of the dashed line
# (negative decision function) are predicted as outliers.
bins = np.linspace(np.percentile(decision, 1), decision.max(), 40)
fig, ax = plt.subplots(figsize=(7, 4))
ax.hist(decision[y_test == 0], bins=bins, alpha=0.6, density=True, label="normal")
ax.hist(decision[y_test == 1], bins=bins, alpha=0.6, density=True, label="anomaly")
ax.axvline(0, color="k", linestyle="--", label="offset_ (contamination='auto')")
ax.set_xlabel("decision_function = log p(x) - offset_ (nats)")
ax.set_ylabel("density of rows")
ax.set_title(f"{name}: AUROC {auroc:.3f}")
ax.legend()
fig.tight_layout()
plt.show()
