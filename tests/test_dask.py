"""Search, fitting and scoring on a Dask cluster of two worker processes."""

import subprocess
import sys

import joblib
import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV

from skvae import VAEDensityEstimator, VAEOutlierDetector, VAETransformer

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
wrappers = pytest.importorskip("dask_ml.wrappers")

FAST = dict(n_components=2, hidden_layer_sizes=(16,), max_iter=3, n_importance_samples=8)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def client():
    # Worker processes are spawned with this process's sys.path, so the
    # package imports there as it does here.
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        yield client


# Rows of the Dask blocks of the fixture's 300 rows: none a multiple of the
# inference tile (16 rows), so each block ends in a partial tile, down to
# single rows, whose matrix products BLAS computes apart from any tile.
# Block-wise results must still equal the in-memory ones bit for bit.
BLOCKS = (75, 75, 75, 67) + (1,) * 8


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    return np.tanh(rng.normal(size=(sum(BLOCKS), 2)) @ rng.normal(size=(2, 5)))


def test_core_package_does_not_import_dask():
    code = "import skvae, sys; assert 'dask' not in sys.modules and 'distributed' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_torch_uses_one_thread_per_single_threaded_worker(client):
    threads = client.run(torch.get_num_threads)
    assert sorted(threads.values()) == [1, 1]


def test_search_on_the_cluster_equals_the_search_in_process(client, X):
    search = GridSearchCV(
        VAEDensityEstimator(random_state=0, **FAST), {"n_components": [1, 2]}, cv=2, n_jobs=1
    )
    local = search.fit(X).cv_results_
    with joblib.parallel_backend("dask"):
        remote = search.set_params(n_jobs=-1).fit(X).cv_results_
    for key in ("mean_test_score", "split0_test_score", "split1_test_score"):
        # Workers run torch with one thread, this process with all cores:
        # other summation orders, so equal to float32 rounding only.
        np.testing.assert_allclose(remote[key], local[key], rtol=1e-5)
    assert list(remote["params"]) == list(local["params"])


def test_chunked_scoring_on_the_cluster_equals_in_memory(client, X):
    de = VAEDensityEstimator(random_state=0, **FAST).fit(X)
    Xd = da.from_array(X, chunks=(BLOCKS, -1))
    scores = Xd.map_blocks(de.score_samples, drop_axis=1, dtype=np.float64).compute()
    np.testing.assert_array_equal(scores, de.score_samples(X))

    vt = VAETransformer(random_state=0, **FAST).fit(X)
    codes = wrappers.ParallelPostFit(vt).transform(Xd)
    assert isinstance(codes, da.Array)
    np.testing.assert_array_equal(codes.compute(), vt.transform(X))


def test_block_wise_scoring_of_a_dask_dataframe_equals_in_memory(client, X):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    frame["count"] = rng.poisson(3, size=len(X)).astype(np.int64)
    frame["colour"] = pd.Categorical(rng.choice(["red", "green", "blue"], size=len(X)))
    frame["label"] = np.where(X[:, 0] > 0, "up", "down").astype(object)
    frame.loc[::11, "colour"] = np.nan
    de = VAEDensityEstimator(random_state=0, **FAST).fit(frame)
    cuts = np.cumsum((0,) + BLOCKS[:-1]).tolist()
    parts = dd.from_pandas(frame, npartitions=1).repartition(divisions=cuts + [len(frame) - 1])
    assert tuple(parts.map_partitions(len).compute()) == BLOCKS
    remote = parts.map_partitions(lambda part: pd.Series(de.score_samples(part), index=part.index), meta=(None, "f8"))
    np.testing.assert_array_equal(remote.compute().to_numpy(), de.score_samples(frame))


def test_chunked_outlier_decisions_on_the_cluster_equal_in_memory(client, X):
    od = VAEOutlierDetector(random_state=0, **FAST).fit(X)
    Xd = da.from_array(X, chunks=(BLOCKS, -1))
    for method in (od.decision_function, od.score_samples, od.predict):
        blocks = Xd.map_blocks(method, drop_axis=1, dtype=np.float64).compute()
        np.testing.assert_array_equal(blocks, method(X))


def test_streaming_fit_on_a_worker_from_a_memmap(client, X, tmp_path):
    np.save(tmp_path / "X.npy", X)

    def fit_from_disk(path):
        X_disk = np.load(path, mmap_mode="r")
        return VAEDensityEstimator(random_state=0, **FAST).fit(X_disk)

    de = client.submit(fit_from_disk, str(tmp_path / "X.npy")).result()
    assert de.n_iter_ == 3
    expected = fit_from_disk(tmp_path / "X.npy").score_samples(X)
    np.testing.assert_allclose(de.score_samples(X), expected, rtol=1e-5)
