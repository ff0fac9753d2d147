"""Scaling out with Dask: cluster search, streaming fit, chunked scoring, partial_fit.

Sections:

1. ``search``: ``GridSearchCV`` of 8 candidates (cv=2, 40 epochs each) with ``n_jobs=1`` in this
   process against the same search under ``joblib.parallel_backend("dask")`` on a
   ``LocalCluster`` of 2 single-threaded worker processes (cluster start excluded).
2. ``stream``: ``fit`` on a memmap of ``--stream-rows`` x 64 float32 (written under
   /tmp, deleted after) against ``fit`` of its first ``--memory-rows`` rows held in
   memory, one epoch each (``max_iter=1``, ``early_stopping=False``, batch size 128):
   seconds per batch of the whole ``fit`` call (checks and statistics pass included),
   and the peak growth of ``RssAnon`` (anonymous memory; the memmap's file pages are
   reclaimable cache) sampled every 10 ms in a thread.
3. ``score``: ``score_samples`` of ``--score-rows`` rows of a generated
   ``dask.array`` (blocks of 100,000 rows) with ``map_blocks`` on the 2-worker
   cluster (workers started with ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TOP_PAD_`` set, see
   the README), against
   in-memory ``score_samples`` of 1,000,000 rows in this process; the growth of this
   process's ``RssAnon`` while it scores, and the peak resident memory of each worker,
   sampled every 0.5 s. The model is fixed (8 latent dimensions, (128, 128), Gaussian
   decoder, 5 epochs) rather than the defaults, so rows/s compare across releases.
4. ``partial``: held-out score of ``partial_fit`` over 10 shuffled chunks of the
   digits training split for as many epochs as ``fit`` ran, against ``fit``.

Run from the project root (about 18 minutes on 2 CPU cores; 10,000,000 rows and the
streaming epoch take most of it)::

    PYTHONPATH=. python benchmarks/bench_scale.py
"""

import argparse
import os
import tempfile
import threading
import time
import warnings

import joblib
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split

from skvae import VAEDensityEstimator

N_FEATURES = 64


def _rss_anon_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class _PeakSampler:
    """Peak of ``measure()`` sampled every ``interval`` seconds in a thread."""

    def __init__(self, measure, interval):
        self.measure, self.interval, self.peak = measure, interval, None
        self._stop = threading.Event()

    def __enter__(self):
        self.peak = self.measure()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.interval):
            value = self.measure()
            if isinstance(value, dict):
                self.peak = {key: max(value[key], self.peak[key]) for key in value}
            else:
                self.peak = max(value, self.peak)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class _Rows(list):
    """Table rows, printed as they come (a long run cut short keeps what it measured)."""

    def append(self, row):
        super().append(row)
        print("| " + " | ".join(row) + " |", flush=True)


def _cluster():
    import dask
    from distributed import Client, LocalCluster

    # Dask's default MALLOC_TRIM_THRESHOLD_ for workers makes every large
    # tensor a fresh mmap: scoring runs 2.5x slower (see the README).
    dask.config.set({
        "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 2**25,
        "distributed.nanny.pre-spawn-environ.MALLOC_TOP_PAD_": 2**26,
    })

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    return cluster, Client(cluster)


def bench_search(client, rows):
    rng = np.random.default_rng(0)
    X = np.tanh(rng.normal(size=(4000, 4)) @ rng.normal(size=(4, 16))) + 0.1 * rng.normal(size=(4000, 16))
    grid = {"n_components": [1, 2, 4, 8], "hidden_layer_sizes": [(32,), (64, 64)]}
    model = VAEDensityEstimator(max_iter=40, early_stopping=False, n_iter_no_change=40, random_state=0)
    search = GridSearchCV(model, grid, cv=2)
    start = time.perf_counter()
    local = search.set_params(n_jobs=1).fit(X).cv_results_["mean_test_score"]
    t_local = time.perf_counter() - start
    start = time.perf_counter()
    with joblib.parallel_backend("dask"):
        remote = search.set_params(n_jobs=-1).fit(X).cv_results_["mean_test_score"]
    t_dask = time.perf_counter() - start
    diff = np.max(np.abs(remote - local) / np.abs(local))
    rows.append(("search, 8 candidates x cv=2, n_jobs=1", f"{t_local:.1f} s", ""))
    rows.append(
        ("search, dask backend, 2 workers x 1 thread", f"{t_dask:.1f} s",
         f"{t_dask / t_local:.2f}x (target <= 0.7x); max rel. diff of cv scores {diff:.1e}")
    )


def _write_memmap(path, n_rows):
    rng = np.random.default_rng(0)
    W = rng.normal(size=(8, N_FEATURES)).astype(np.float32)
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_rows, N_FEATURES))
    for start in range(0, n_rows, 200_000):
        n = min(200_000, n_rows - start)
        Z = rng.normal(size=(n, 8)).astype(np.float32)
        X[start : start + n] = np.tanh(Z @ W) + 0.1 * rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    X.flush()
    del X


def bench_stream(rows, n_rows, memory_rows):
    params = dict(max_iter=1, early_stopping=False, batch_size=128, random_state=0)
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        path = os.path.join(folder, "X.npy")
        _write_memmap(path, n_rows)
        X_disk = np.load(path, mmap_mode="r")
        X_mem = np.array(X_disk[:memory_rows])
        VAEDensityEstimator(**params).fit(X_mem[:10_000])  # first-call costs
        start = time.perf_counter()
        VAEDensityEstimator(**params).fit(X_mem)
        per_batch_mem = (time.perf_counter() - start) / np.ceil(memory_rows / 128)
        del X_mem
        baseline = _rss_anon_mb()
        with _PeakSampler(_rss_anon_mb, 0.01) as sampler:
            start = time.perf_counter()
            VAEDensityEstimator(**params).fit(X_disk)
            seconds = time.perf_counter() - start
        per_batch = seconds / np.ceil(n_rows / 128)
        del X_disk
    gb = n_rows * N_FEATURES * 4 / 1e9
    rows.append((f"fit in memory, {memory_rows:,} x 64, 1 epoch", f"{per_batch_mem * 1e3:.2f} ms/batch", ""))
    rows.append(
        (f"fit from memmap, {n_rows:,} x 64 ({gb:.2f} GB), 1 epoch",
         f"{per_batch * 1e3:.2f} ms/batch ({seconds:.0f} s)",
         f"{per_batch / per_batch_mem:.2f}x in-memory (target <= 1.3x)")
    )
    rows.append(
        ("  RssAnon growth during the memmap fit", f"{sampler.peak - baseline:.0f} MB",
         "target < 300 MB")
    )


def _worker_rss(client):
    def rss():
        import psutil

        return psutil.Process().memory_info().rss / 2**20

    return {key: float(value) for key, value in client.run(rss).items()}


def bench_score(client, rows, n_rows):
    import dask.array as da

    rng = np.random.default_rng(1)
    X_fit = np.tanh(rng.normal(size=(20_000, 8)) @ rng.normal(size=(8, N_FEATURES))).astype(np.float32)
    # A fixed, moderate model (the density defaults' 5-component mixture decoder
    # is about 25x costlier per row), so the rows/s compare across releases.
    de = VAEDensityEstimator(
        n_components=8, hidden_layer_sizes=(128, 128), activation="relu", likelihood="gaussian",
        max_iter=5, random_state=0,
    ).fit(X_fit)
    X_mem = np.tanh(rng.normal(size=(1_000_000, 8)) @ rng.normal(size=(8, N_FEATURES))).astype(np.float32)
    own_base = _rss_anon_mb()
    with _PeakSampler(_rss_anon_mb, 0.2) as own:
        start = time.perf_counter()
        de.score_samples(X_mem)
        rate_mem = len(X_mem) / (time.perf_counter() - start)
    del X_mem
    W = da.from_array(rng.normal(size=(8, N_FEATURES)).astype(np.float32))
    Z = da.random.default_rng(2).standard_normal((n_rows, 8), chunks=(100_000, 8), dtype=np.float32)
    Xd = da.tanh(Z @ W)
    scores = Xd.map_blocks(de.score_samples, drop_axis=1, dtype=np.float64)
    base = _worker_rss(client)
    with _PeakSampler(lambda: _worker_rss(client), 0.5) as sampler:
        start = time.perf_counter()
        total = float(scores.sum().compute())
        seconds = time.perf_counter() - start
    assert np.isfinite(total)
    peaks = ", ".join(f"{sampler.peak[k]:.0f} MB (start {base[k]:.0f})" for k in sorted(base))
    rows.append(
        ("score_samples in memory, 1,000,000 x 64, K=100", f"{rate_mem:,.0f} rows/s",
         f"RssAnon +{own.peak - own_base:.0f} MB during scoring")
    )
    rows.append(
        (f"score_samples, dask map_blocks, {n_rows:,} x 64, 2 workers", f"{n_rows / seconds:,.0f} rows/s",
         f"{seconds:.0f} s; peak worker RSS {peaks}")
    )


def bench_partial(rows):
    X, _ = load_digits(return_X_y=True)
    X = (X + np.random.default_rng(0).uniform(size=X.shape)) / 17
    X_train, X_test = train_test_split(X, test_size=0.3, random_state=0)
    fit = VAEDensityEstimator(bounds=(0, 1), random_state=0).fit(X_train)
    epochs = fit.n_iter_
    chunks = np.array_split(np.random.default_rng(0).permutation(X_train), 10)
    partial = VAEDensityEstimator(bounds=(0, 1), random_state=0)
    for _ in range(epochs):
        for chunk in chunks:
            partial.partial_fit(chunk)
    s_fit, s_partial = fit.score(X_test), partial.score(X_test)
    rows.append((f"digits held-out score, fit ({epochs} epochs, early stopping)", f"{s_fit:.2f} nats", ""))
    rows.append(
        (f"digits held-out score, partial_fit, {epochs} x 10 chunks", f"{s_partial:.2f} nats",
         f"{s_partial - s_fit:+.2f} nats from fit (target: above -1)")
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", default=["search", "stream", "score", "partial"])
    parser.add_argument("--stream-rows", type=int, default=4_000_000)
    parser.add_argument("--memory-rows", type=int, default=500_000)
    parser.add_argument("--score-rows", type=int, default=10_000_000)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs\n")
    rows = _Rows()
    print("| measurement | value | notes |\n|---|---|---|", flush=True)
    start = time.perf_counter()
    client = cluster = None
    if {"search", "score"} & set(args.sections):
        cluster, client = _cluster()
    try:
        if "search" in args.sections:
            bench_search(client, rows)
        if "stream" in args.sections:
            bench_stream(rows, args.stream_rows, args.memory_rows)
        if "score" in args.sections:
            bench_score(client, rows, args.score_rows)
        if "partial" in args.sections:
            bench_partial(rows)
    finally:
        if client is not None:
            client.close()
            cluster.close()
    print(f"\nRun time {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()
