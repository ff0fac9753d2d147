"""
==============================================
Synthesising a census table with mixed columns
==============================================

:class:`skvae.VAEDensityEstimator` is fitted on the UCI Adult census table as it
is read (integer, categorical and missing entries) and asked for as many new
rows. The plots compare real and synthetic marginals of one integer column
(``age``) and one categorical column (``education``), and one pair trend: the
share of incomes above 50K by education, which the model has to learn from
the dependence between two categorical columns.

The table is read from the project's data folder (``tabular/adult.csv``, found
through ``SKVAE_DATA_DIR`` or next to the project root). Without it, a small
synthetic table of the same kinds of columns stands in.
"""

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from skvae import VAEDensityEstimator


def load_table(data_dir, n_rows=4000):
    """Adult (a random subsample, for a short fit), or a stand-in with the same column kinds."""
    path = data_dir / "tabular" / "adult.csv"
    if path.exists():
        table = pd.read_csv(path, skipinitialspace=True, na_values="?")
        return table.sample(n_rows, random_state=0).reset_index(drop=True)
    rng = np.random.default_rng(0)
    level = rng.choice(4, size=n_rows, p=[0.4, 0.3, 0.2, 0.1])
    return pd.DataFrame({
        "age": (25 + 8 * level + rng.normal(0, 6, n_rows)).round().astype(np.int64),
        "education": pd.Categorical(np.array(["HS-grad", "Some-college", "Bachelors", "Masters"])[level]),
        "income": np.where(rng.uniform(size=n_rows) < 0.1 + 0.2 * level, ">50K", "<=50K"),
    })


root = Path(__file__).resolve().parents[3] if "__file__" in globals() else Path.cwd()
data_dir = Path(os.environ.get("SKVAE_DATA_DIR", root.parent / "shared" / "data"))
real = load_table(data_dir)
print(real.dtypes.value_counts().to_string())

# At most 100 epochs (the default allows 200) keeps the example to about a minute.
model = VAEDensityEstimator(max_iter=100, random_state=0).fit(real)
synthetic = model.sample(len(real), random_state=0)
# The same columns, dtypes and category sets as the table that was read.
assert (synthetic.dtypes == real.dtypes).all()
print(f"held-in score {model.score(real):.2f} nats per row, {model.n_iter_} epochs")

fig, axes = plt.subplots(1, 3, figsize=(13, 4))
bins = np.arange(real["age"].min(), real["age"].max() + 2, 2)
axes[0].hist([real["age"], synthetic["age"]], bins=bins, density=True, label=["real", "synthetic"])
axes[0].set(title="age (integer column)", xlabel="age")
axes[0].legend()

order = real["education"].value_counts().index
shares = pd.DataFrame({
    "real": real["education"].value_counts(normalize=True),
    "synthetic": synthetic["education"].value_counts(normalize=True),
}).reindex(order).fillna(0.0)
shares.plot.barh(ax=axes[1])
axes[1].set(title="education (categorical column)", xlabel="share of rows")
axes[1].invert_yaxis()

trend = pd.DataFrame({
    name: frame.groupby("education", observed=True)["income"].apply(lambda s: (s == ">50K").mean())
    for name, frame in [("real", real), ("synthetic", synthetic)]
}).reindex(order)
trend.plot.barh(ax=axes[2])
axes[2].set(title="share of income >50K by education", xlabel="share")
axes[2].invert_yaxis()
fig.tight_layout()
plt.show()
