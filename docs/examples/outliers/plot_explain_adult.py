"""
=======================================================
Finding and repairing corrupted cells of a census table
=======================================================

Errors are planted in rows of the UCI Adult census table (integer,
categorical and missing entries, read as they are): an age far outside its
range, working hours swapped in from another row, an education level
swapped for another. :class:`skvae.VAEOutlierDetector` then says which cell
of each row is wrong and what was expected there (``explain``), flags the
cells it judges anomalous (``predict_cells``), and :class:`skvae.VAEImputer`
fills the flagged cells from the rest of their row.

The score of a cell is log p(x_j | the row's other entries): how surprising the
entry is given the others, from the detector's own model (user guide,
"Explaining anomalies"). The table is read from the project's data folder
(``tabular/adult.csv``, through ``SKVAE_DATA_DIR`` or next to the project
root); without it, a synthetic table of the same kinds of columns stands in.
"""

import os
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sklearn.exceptions import ConvergenceWarning

from skvae import VAEImputer, VAEOutlierDetector

# 60 epochs keep the example to about a minute; the fits have not fully converged.
warnings.filterwarnings("ignore", category=ConvergenceWarning)

root = Path(__file__).resolve().parents[3] if "__file__" in globals() else Path.cwd()
path = Path(os.environ.get("SKVAE_DATA_DIR", root.parent / "shared" / "data")) / "tabular" / "adult.csv"
if path.exists():
    table = pd.read_csv(path, skipinitialspace=True, na_values="?").sample(4000, random_state=0)
    table = table[["age", "education", "education-num", "hours-per-week", "occupation", "sex", "income"]]
else:  # a stand-in: education drives its number, the hours and the income
    rng = np.random.default_rng(0)
    level = rng.choice(4, size=4000, p=[0.4, 0.3, 0.2, 0.1])
    table = pd.DataFrame({
        "age": (25 + 6 * level + rng.normal(0, 8, 4000)).round().astype(np.int64),
        "education": np.array(["HS-grad", "Some-college", "Bachelors", "Masters"])[level],
        "education-num": 9 + 2 * level,
        "hours-per-week": (35 + 3 * level + rng.normal(0, 8, 4000)).round().astype(np.int64),
        "income": np.where(rng.uniform(size=4000) < 0.1 + 0.2 * level, ">50K", "<=50K"),
    })
table = table.reset_index(drop=True)
train, test = table.iloc[:3000], table.iloc[3000:].copy()

# %%
# Plant one error in each of 60 test rows
# ---------------------------------------
# Twenty of each kind: ``age`` moved far out of range, ``hours-per-week``
# replaced by another row's value from the far end of its range (plausible
# for the column, wrong for the row), and ``education`` replaced by a level
# that disagrees with ``education-num``, which the row keeps.
rng = np.random.default_rng(1)
rows = rng.choice(test.index, size=60, replace=False)
truth = pd.DataFrame(False, index=test.index, columns=test.columns)
clean = test.copy()
for k, row in enumerate(rows):
    if k < 20:
        column, value = "age", test.at[row, "age"] + 90
    elif k < 40:
        hours = test.at[row, "hours-per-week"]
        column, value = "hours-per-week", 99 if hours < 40 else 2
    else:
        column = "education"
        value = rng.choice(train["education"].unique()[train["education"].unique() != test.at[row, "education"]])
    test.at[row, column] = value
    truth.at[row, column] = True

# %%
# Which cell, and what was expected
# ---------------------------------
# One fit of the detector; ``explain`` lists each row's least likely entries,
# lowest first, with the value the model expected there given the rest of
# the row. Its score is in nats, for a numeric column that of the value in
# units of the column's SD, so that columns in different units compare.
detector = VAEOutlierDetector(max_iter=60, random_state=0).fit(train)
explained = detector.explain(test.loc[rows], n_top=1)
print(explained.iloc[[0, 20, 40]].to_string(index=False))
found = explained.set_index("row")["column"] == truth.loc[rows].idxmax(axis=1)
print(f"planted cell ranked first in {found.mean():.0%} of the 60 rows")

# %%
# Flag the cells, then repair them
# --------------------------------
# ``predict_cells`` returns a mask of the table's shape: True where a cell's
# score is below its column's threshold, set at fit from training rows.
# ``DataFrame.mask`` turns flagged cells into holes, which the imputer fills
# from the rest of each row.
flags = detector.predict_cells(test)
hits = (flags & truth).to_numpy().sum()
print(f"flagged {flags.to_numpy().sum()} cells: {hits} of the 60 planted ones, "
      f"{flags.to_numpy()[~truth.to_numpy()].mean():.1%} of the clean cells")

imputer = VAEImputer(max_iter=60, random_state=0).fit(train)
repaired = imputer.transform(test.mask(flags))
for column in ["age", "hours-per-week", "education"]:
    at = truth[column] & flags[column]
    if column == "education":
        change = f"{(repaired.loc[at, column] == clean.loc[at, column]).mean():.0%} of them restored"
    else:
        before = (test.loc[at, column] - clean.loc[at, column]).abs().median()
        after = (repaired.loc[at, column] - clean.loc[at, column]).abs().median()
        change = f"median error {before:.0f} before repair, {after:.0f} after" if at.any() else "nothing to repair"
    print(f"{column}: {at.sum()} of 20 planted cells flagged; {change}")

# %%
# On Adult, the shifted ages are flagged and repaired; most swapped levels are flagged.
# The swapped hours are ranked first by ``explain`` in most of their rows but
# are rarely flagged: 2 or 99 hours a week are values the training rows hold,
# and a cell threshold set from the training rows (Tukey's fence, a few
# percent of clean cells) lets them through. A float ``contamination`` sets a
# per-column share instead.

# %%
# The scores of a few rows
# ------------------------
# A row's least likely entry stands out from its other entries; the columns
# that depend on it (``education-num`` for ``education``) may dip too, as they
# are scored given the corrupted entry.
shown = rows[[0, 20, 40]]
scores = detector.explain(test.loc[shown], n_top=test.shape[1]).pivot(index="row", columns="column", values="score")
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
for ax, row in zip(axes, shown):
    values = scores.loc[row, test.columns]
    colours = ["tab:red" if truth.at[row, c] else "tab:blue" for c in test.columns]
    ax.barh(test.columns, values, color=colours)
    ax.set(title=f"row {row}: {truth.loc[row].idxmax()} planted", xlabel="score (nats)")
axes[0].invert_yaxis()
fig.tight_layout()
plt.show()
