"""
=========================================
Search, stream and score with Dask
=========================================

Three ways of outgrowing one process, each with tools scikit-learn users
already run:

* a hyperparameter search spread over a Dask cluster with joblib's ``dask``
  backend,
* a fit streamed from a memory-mapped file that is never loaded whole,
* scoring a ``dask.array`` block by block on the cluster with ``map_blocks``.

Scores are row-independent (the importance draws are shared by all rows), so
the cluster's scores match those computed in memory.
"""

import os
import tempfile

import dask
import dask.array as da
import joblib
import matplotlib.pyplot as plt
import numpy as np
from distributed import Client, LocalCluster
from sklearn.model_selection import GridSearchCV

from skvae import VAEDensityEstimator

rng = np.random.default_rng(0)
X = np.tanh(rng.normal(size=(4000, 2)) @ rng.normal(size=(2, 8))) + 0.05 * rng.normal(size=(4000, 8))
X = X.astype(np.float32)
params = dict(hidden_layer_sizes=(32,), max_iter=15, n_importance_samples=20, random_state=0)

if __name__ == "__main__":
    # A cluster of two single-threaded worker processes. Dask starts workers
    # with OMP_NUM_THREADS=1, so torch uses one thread per task;
    # The two malloc settings keep large tensors off fresh memory mappings.
    dask.config.set({
        "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 2**25,
        "distributed.nanny.pre-spawn-environ.MALLOC_TOP_PAD_": 2**26,
    })
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
    client = Client(cluster)

    # Search on the cluster: the same candidates and scores as with n_jobs=1.
    search = GridSearchCV(VAEDensityEstimator(**params), {"n_components": [1, 2, 3, 4]}, cv=2)
    with joblib.parallel_backend("dask"):
        search.fit(X)
    print("best:", search.best_params_)

    # Streaming fit: a memmap is read in contiguous blocks, shuffled by window.
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "X.npy")
        np.save(path, X)
        X_disk = np.load(path, mmap_mode="r")
        de = VAEDensityEstimator(n_components=2, **params).fit(X_disk)

        # Chunked scoring on the cluster, lazily, one block of rows per task.
        Xd = da.from_array(X_disk, chunks=(500, -1))
        scores = Xd.map_blocks(de.score_samples, drop_axis=1, dtype=np.float64).compute()
    print("largest difference from in-memory scores:", np.abs(scores - de.score_samples(X)).max())

    client.close()
    cluster.close()

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(search.cv_results_["param_n_components"].data, search.cv_results_["mean_test_score"], "o-")
    ax1.set(xlabel="n_components", ylabel="held-out log p(x), nats", title="Search on 2 workers")
    ax2.hist(scores, bins=50)
    ax2.set(xlabel="log p(x), nats", ylabel="rows", title="Scores computed on the cluster")
    fig.tight_layout()
    plt.show()
