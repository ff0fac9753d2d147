"""A family of density problems whose exact log p(x) is known ("oracles").

Every member draws z ~ N(0, I_2) and returns x = g(z) + e, e ~ N(0, sigma^2 I_D),
where g is a random two-layer map z -> h(z A + b) C with A (2 x 32), b (32) and
C (32 x D) drawn from the member's seed: A and b standard normal, C normal with
variance 1/32. The shape h is one of

- ``"tanh"``: ``tanh``, as in ``../shared/data/density/oracle_tanh_d10.npz``;
- ``"sin"``: ``sin``, a surface that folds back on itself;
- ``"softplus"``: ``log(1 + exp(u))``, a smooth ReLU;
- ``"mixture"``: two independent tanh maps g_1 and g_2, each row taking one of
  them with probability 1/2, so that the density has two sheets:
  p(x) = (p_1(x) + p_2(x)) / 2.

The map depends on (shape, D, seed) only, so members that differ in sigma or
n_train share it; the training rows of n_train=2000 are the first 2000 of
n_train=20000, and the test rows (``N_TEST``) depend on (shape, D, sigma, seed)
only, so the two sizes are scored on the same rows against the same truth.

Exact log-density: log p(x) = log sum over a grid of z of N(x; g(z), sigma^2 I)
N(z; 0, I) times the cell area, on [-6, 6]^2 (the prior mass outside is below
1e-8). The integrand is a peak of width about sigma / |g'(z)| in z, so small
sigma needs a fine grid. ``log_density`` uses two stages: a coarse midpoint grid
of ``n_coarse`` x ``n_coarse`` cells over the whole square, then every cell whose
coarse log-integrand is within ``tau`` nats of the row's maximum (and its eight
neighbours) is split into ``refine`` x ``refine`` cells. Its accuracy equals that
of a uniform grid of (n_coarse * refine)^2 points, at a small fraction of the
cost; ``check_grid`` compares it with a uniform grid twice as fine, evaluated
everywhere. ``GRIDS`` holds the (n_coarse, refine) used per sigma.

Split: a member is *held out* when its seed is 2 or its shape is ``"sin"``
(``Member.heldout``); the others form the *choosing* part. Defaults are chosen
on the choosing part and checked on the held-out part, which has new random
maps of the chosen shapes (seed 2) and a shape never seen while choosing (sin).

Command line: ``python benchmarks/oracles.py [--check-grid] [--members ...]``
prints the family, or, with ``--check-grid``, the grid check of a few members.
"""

import argparse
import fnmatch
import time
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy.ndimage import binary_dilation
from scipy.special import logsumexp

SHAPES = ("tanh", "sin", "softplus", "mixture")
N_FEATURES = (8, 16, 32)
SIGMAS = (0.02, 0.05, 0.1)
N_TRAINS = (2000, 20000)
SEEDS = (0, 1, 2)
N_HIDDEN = 32
N_TEST = 5000
HALF_WIDTH = 6.0
HELDOUT_SEEDS = (2,)
HELDOUT_SHAPES = ("sin",)
# (n_coarse, refine) per sigma: see the module docstring and check_grid.
GRIDS = {0.1: (200, 3), 0.05: (240, 5), 0.02: (300, 10)}
TAU = 40.0
_MAX_ELEMENTS = 2**22  # float64 temporaries of at most 32 MB each


class Member(NamedTuple):
    """One problem of the family; ``name`` is e.g. ``tanh-d16-s0.05-n20000-seed0``."""

    shape: str
    n_features: int
    sigma: float
    n_train: int
    seed: int

    @property
    def name(self):
        return f"{self.shape}-d{self.n_features}-s{self.sigma:g}-n{self.n_train}-seed{self.seed}"

    @property
    def heldout(self):
        return self.seed in HELDOUT_SEEDS or self.shape in HELDOUT_SHAPES


class Branch(NamedTuple):
    """The weights of one map z -> h(z A + b) C."""

    shape: str
    A: np.ndarray
    b: np.ndarray
    C: np.ndarray


def family():
    """Every member, in a fixed order (shape, D, sigma, n_train, seed)."""
    return [
        Member(shape, d, sigma, n, seed)
        for shape in SHAPES
        for d in N_FEATURES
        for sigma in SIGMAS
        for n in N_TRAINS
        for seed in SEEDS
    ]


def select(tokens):
    """Members matching any token, in family order.

    Parameters
    ----------
    tokens : list of str
        Each token is ``all``, ``choosing``, ``heldout``, a member name, or a
        shell pattern over names (``tanh-d8-*-seed0``); ``choosing:PATTERN`` and
        ``heldout:PATTERN`` restrict a pattern to one part.

    Returns
    -------
    members : list of Member
    """
    parts = {"all": lambda m: True, "choosing": lambda m: not m.heldout, "heldout": lambda m: m.heldout}
    chosen = set()
    for token in tokens:
        part, colon, pattern = token.partition(":")
        if not colon:
            part, pattern = (token, "*") if token in parts else ("all", token)
        found = [m for m in family() if parts.get(part, lambda m: False)(m) and fnmatch.fnmatchcase(m.name, pattern)]
        if not found:
            raise ValueError(f"{token!r} matches no member; names look like tanh-d16-s0.05-n20000-seed0")
        chosen.update(found)
    return [m for m in family() if m in chosen]


def branches(shape, n_features, seed):
    """The map(s) of a member: one Branch, or two for ``"mixture"``."""
    rng = np.random.default_rng([seed, SHAPES.index(shape), n_features])
    count, activation = (2, "tanh") if shape == "mixture" else (1, shape)
    return [
        Branch(
            activation,
            rng.standard_normal((2, N_HIDDEN)),
            rng.standard_normal(N_HIDDEN),
            rng.standard_normal((N_HIDDEN, n_features)) / np.sqrt(N_HIDDEN),
        )
        for _ in range(count)
    ]


def decode(z, branch):
    """g(z) of shape (n_points, n_features) for z of shape (n_points, 2)."""
    u = z @ branch.A + branch.b
    if branch.shape == "tanh":
        hidden = np.tanh(u)
    elif branch.shape == "sin":
        hidden = np.sin(u)
    else:
        hidden = np.logaddexp(0.0, u)
    return hidden @ branch.C


def sample(maps, sigma, n_samples, rng):
    """n_samples rows x = g_k(z) + e, with k uniform over the maps."""
    z = rng.standard_normal((n_samples, 2))
    k = rng.integers(len(maps), size=n_samples)
    X = np.empty((n_samples, maps[0].C.shape[1]))
    for i, branch in enumerate(maps):
        X[k == i] = decode(z[k == i], branch)
    return X + sigma * rng.standard_normal(X.shape)


def _midpoints(n, low, width):
    """n cell centres splitting [low, low + width] into equal cells."""
    return low + (np.arange(n) + 0.5) * (width / n)


def _grid(n):
    """Centres (n*n, 2) and log cell area of the n x n midpoint grid on the square."""
    centres = _midpoints(n, -HALF_WIDTH, 2 * HALF_WIDTH)
    z = np.stack(np.meshgrid(centres, centres, indexing="ij"), axis=-1).reshape(-1, 2)
    return z, 2 * np.log(2 * HALF_WIDTH / n)


def _log_prior(z):
    return -0.5 * (z**2).sum(-1) - np.log(2 * np.pi)


def _log_normal(X, G, sigma):
    """log N(x; g, sigma^2 I) for every row of X and every row of G: (n_rows, n_points).

    The expansion |x|^2 - 2 x.g + |g|^2 turns the work into one matrix product;
    in float64 its rounding error is below 1e-9 nats at the family's scales.
    """
    sq = (X**2).sum(1)[:, None] - 2 * X @ G.T + (G**2).sum(1)[None, :]
    return -0.5 * np.maximum(sq, 0.0) / sigma**2 - 0.5 * X.shape[1] * np.log(2 * np.pi * sigma**2)


def _fine_offsets(refine, cell):
    """Offsets (refine^2, 2) of the sub-cell centres from a cell's centre."""
    sub = _midpoints(refine, -cell / 2, cell)
    return np.stack(np.meshgrid(sub, sub, indexing="ij"), axis=-1).reshape(-1, 2)


def _refined(X, rows, cells, z_coarse, branch, sigma, *, refine, cell):
    """log of the integral over each selected (row, cell) pair on its fine grid: (n_pairs,)."""
    offsets = _fine_offsets(refine, cell)
    unique, inverse = np.unique(cells, return_inverse=True)
    z = (z_coarse[unique][:, None, :] + offsets).reshape(-1, 2)
    G = decode(z, branch).reshape(len(unique), refine**2, -1)
    log_w = (_log_prior(z) + 2 * np.log(cell / refine)).reshape(len(unique), -1)
    out = np.empty(len(rows))
    step = max(1, _MAX_ELEMENTS // (refine**2 * X.shape[1]))
    for start in range(0, len(rows), step):
        r, c = rows[start : start + step], inverse[start : start + step]
        sq = ((X[r][:, None, :] - G[c]) ** 2).sum(-1)
        log_n = -0.5 * sq / sigma**2 - 0.5 * X.shape[1] * np.log(2 * np.pi * sigma**2)
        out[start : start + step] = logsumexp(log_n + log_w[c], axis=1)
    return out


def _log_density_chunk(X, branch, sigma, coarse, *, refine, tau):
    """Two-stage quadrature of log p(x) under one map, for a chunk of rows."""
    z, log_area, G = coarse
    n = int(round(np.sqrt(len(z))))
    log_f = _log_normal(X, G, sigma) + _log_prior(z) + log_area
    keep = log_f >= log_f.max(1, keepdims=True) - tau
    keep = binary_dilation(keep.reshape(-1, n, n), structure=np.ones((1, 3, 3), bool)).reshape(len(X), -1)
    rest = logsumexp(np.where(keep, -np.inf, log_f), axis=1)
    rows, cells = np.nonzero(keep)
    pairs = _refined(X, rows, cells, z, branch, sigma, refine=refine, cell=2 * HALF_WIDTH / n)
    # Pairs come sorted by row and every row has at least one: reduce per row.
    starts = np.searchsorted(rows, np.arange(len(X)))
    peak = np.maximum.reduceat(pairs, starts)
    fine = np.log(np.add.reduceat(np.exp(pairs - peak[rows]), starts)) + peak
    return np.logaddexp(fine, rest)


def log_density(X, maps, sigma, *, n_coarse=None, refine=None, tau=TAU):
    """Exact log p(x) in nats of each row of X, by quadrature over the 2-D latent.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    maps : list of Branch
        The member's maps; with two, p(x) is their equal mixture.
    sigma : float
        Noise scale.
    n_coarse, refine : int, default=None
        Coarse grid cells per axis and refinement factor per axis of the
        selected cells; ``None`` takes ``GRIDS[sigma]``.
    tau : float, default=40.0
        Cells within ``tau`` nats of a row's largest coarse term (and their
        neighbours) are refined.

    Returns
    -------
    log_p : ndarray of shape (n_samples,)
    """
    default_n, default_refine = GRIDS[sigma] if sigma in GRIDS else GRIDS[min(GRIDS)]
    n_coarse, refine = n_coarse or default_n, refine or default_refine
    z, log_area = _grid(n_coarse)
    step = max(1, _MAX_ELEMENTS // len(z))
    per_map = []
    for branch in maps:
        coarse = (z, log_area, decode(z, branch))
        per_map.append(
            np.concatenate(
                [
                    _log_density_chunk(X[i : i + step], branch, sigma, coarse, refine=refine, tau=tau)
                    for i in range(0, len(X), step)
                ]
            )
        )
    return logsumexp(per_map, axis=0) - np.log(len(maps))


def log_density_observed(X, maps, sigma, **grid):
    """Exact log p(x_obs) of each row of X, whose NaN entries are missing.

    The noise is independent across features, so the marginal of the observed
    features P is the same model with the columns of C outside P dropped:
    ``log_density`` of X[:, P] under those maps, one call per pattern. A row
    with nothing observed gets 0.
    """
    observed = ~np.isnan(X)
    out = np.zeros(len(X))
    patterns, which = np.unique(observed, axis=0, return_inverse=True)
    for k, seen in enumerate(patterns):
        rows = np.flatnonzero(which.ravel() == k)
        if seen.any():
            kept = [branch._replace(C=branch.C[:, seen]) for branch in maps]
            out[rows] = log_density(X[np.ix_(rows, np.flatnonzero(seen))], kept, sigma, **grid)
    return out


def log_density_uniform(X, maps, sigma, n_grid):
    """log p(x) on a uniform n_grid x n_grid midpoint grid, evaluated everywhere (for checks)."""
    z, log_area = _grid(n_grid)
    step = max(1, _MAX_ELEMENTS // max(len(X), N_HIDDEN, X.shape[1]))
    per_map = []
    for branch in maps:
        parts = [
            logsumexp(_log_normal(X, decode(z[i : i + step], branch), sigma) + _log_prior(z[i : i + step]), axis=1)
            for i in range(0, len(z), step)
        ]
        per_map.append(logsumexp(parts, axis=0) + log_area)
    return logsumexp(per_map, axis=0) - np.log(len(maps))


@lru_cache(maxsize=8)
def _test_set(shape, n_features, sigma, seed, n_rows, cache_dir):
    """(X_test, logp_test) of the first n_rows test rows, cached in memory and in cache_dir."""
    path = None if cache_dir is None else Path(cache_dir) / f"{shape}-d{n_features}-s{sigma:g}-seed{seed}.npz"
    if path is not None and path.exists():
        saved = np.load(path)
        if len(saved["logp_test"]) >= n_rows:
            return saved["X_test"][:n_rows], saved["logp_test"][:n_rows]
    maps = branches(shape, n_features, seed)
    rng = np.random.default_rng([seed, SHAPES.index(shape), n_features, round(sigma * 1000), 2])
    X_test = sample(maps, sigma, N_TEST, rng)[:n_rows]
    logp_test = log_density(X_test, maps, sigma)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, X_test=X_test, logp_test=logp_test)
    return X_test, logp_test


def load_member(member, *, max_test_rows=None, cache_dir=None):
    """Training rows, test rows and the exact log p(x) of the test rows.

    Parameters
    ----------
    member : Member or str
        A member or its name.
    max_test_rows : int, default=None
        Keep the first rows of the ``N_TEST`` test rows (the truth is computed
        for these only).
    cache_dir : str or Path, default=None
        Folder where test rows and their truth are saved and read back
        (clear it after changing ``GRIDS`` or the maps).

    Returns
    -------
    X_train : ndarray of shape (n_train, n_features)
    X_test : ndarray of shape (n_test, n_features)
    logp_test : ndarray of shape (n_test,)
        Exact log p(x) of the test rows, nats.
    """
    member = from_name(member) if isinstance(member, str) else member
    shape, d, sigma, seed = member.shape, member.n_features, member.sigma, member.seed
    rng = np.random.default_rng([seed, SHAPES.index(shape), d, round(sigma * 1000), 1])
    X_train = sample(branches(shape, d, seed), sigma, max(N_TRAINS), rng)[: member.n_train]
    n_rows = min(N_TEST, max_test_rows or N_TEST)
    X_test, logp_test = _test_set(shape, d, sigma, seed, n_rows, None if cache_dir is None else str(cache_dir))
    return X_train, X_test.copy(), logp_test.copy()


def from_name(name):
    """The Member called ``name`` (e.g. ``tanh-d16-s0.05-n20000-seed0``)."""
    found = [m for m in family() if m.name == name]
    if not found:
        raise ValueError(f"no member is called {name!r}; names look like tanh-d16-s0.05-n20000-seed0")
    return found[0]


def check_grid(member, *, n_rows=5, factor=2.0, rng=0):
    """Print the largest |difference| between ``log_density`` and a uniform grid ``factor`` times finer.

    The reference evaluates every point of a uniform grid of
    (factor * n_coarse * refine)^2 points, so it checks both the resolution and
    the choice of refined cells. Its cost grows with that size: about 10 s on
    one core for sigma=0.02 with factor=1 (3000^2 points), four times that
    with factor=2.

    Returns
    -------
    max_diff, mean_diff : float
        In nats, over ``n_rows`` test rows.
    """
    member = from_name(member) if isinstance(member, str) else member
    maps = branches(member.shape, member.n_features, member.seed)
    X = sample(maps, member.sigma, n_rows, np.random.default_rng(rng))
    n_coarse, refine = GRIDS[member.sigma]
    start = time.perf_counter()
    ours = log_density(X, maps, member.sigma)
    seconds = time.perf_counter() - start
    n_fine = int(round(factor * n_coarse * refine))
    reference = log_density_uniform(X, maps, member.sigma, n_fine)
    diff = np.abs(ours - reference)
    print(
        f"{member.name}: grid {n_coarse}x{refine} (as {n_coarse * refine}^2) vs uniform "
        f"{n_fine}^2: max |diff| {diff.max():.2e}, mean {diff.mean():.2e} nats "
        f"over {n_rows} rows; {1000 * seconds / n_rows:.1f} s per 1000 rows",
        flush=True,
    )
    return diff.max(), diff.mean()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", nargs="+", default=["all"], help="see select()")
    parser.add_argument("--check-grid", action="store_true", help="compare with a finer uniform grid")
    parser.add_argument("--rows", type=int, default=5, help="rows per member for --check-grid")
    parser.add_argument("--factor", type=float, default=2.0, help="how much finer the reference grid is")
    args = parser.parse_args(argv)
    for member in select(args.members):
        if args.check_grid:
            check_grid(member, n_rows=args.rows, factor=args.factor)
        else:
            print(member.name, "heldout" if member.heldout else "choosing")


if __name__ == "__main__":
    main()
