"""Fitting from disk without loading the data, and incremental fitting."""

import tracemalloc

import numpy as np
import pytest
import torch

from skvae import VAEDensityEstimator, VAEOutlierDetector, VAETransformer
from skvae._module import VAEModule
from skvae._rows import BatchIterator, ModelSpaceRows, StreamedRows

FAST = dict(n_components=2, hidden_layer_sizes=(16,), max_iter=3, n_importance_samples=8)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


class _RecordingArray:
    """An array that records the row slices read from it."""

    def __init__(self, X):
        self.X, self.reads = X, []

    def __len__(self):
        return len(self.X)

    def __getitem__(self, key):
        self.reads.append(key)
        return self.X[key]


def _streamed(n, indices=None, seed=0, shuffle=True):
    X = _RecordingArray(np.arange(n, dtype=np.float32)[:, None])
    rows = StreamedRows(X, VAEModule(n_features=1, n_components=1), block_rows=4, window_rows=12)
    generator = torch.Generator().manual_seed(seed)
    it = BatchIterator(rows, indices, batch_size=5, shuffle=shuffle, generator=generator)
    batches = [batch["x"][:, 0].long().tolist() for batch, _ in it]
    return X.reads, batches, len(it)


def test_streamed_pass_reads_contiguous_blocks_and_visits_each_row_once():
    reads, batches, n_batches = _streamed(50)
    assert all(isinstance(key, slice) and key.stop - key.start <= 4 for key in reads)
    assert sorted(sum(batches, [])) == list(range(50))
    assert [len(b) for b in batches] == [5] * 10 and n_batches == 10
    # Shuffled across blocks and within windows, repeatably from the seed.
    assert sum(batches, []) != list(range(50))
    assert _streamed(50)[1] == batches and _streamed(50, seed=1)[1] != batches
    assert sum(_streamed(50, shuffle=False)[1], []) == list(range(50))


def test_streamed_subset_reads_the_span_of_its_rows_in_blocks():
    indices = torch.tensor([30, 3, 17, 4, 22, 9, 40, 41, 12])
    reads, batches, _ = _streamed(50, indices)
    assert sorted(sum(batches, [])) == sorted(indices.tolist())
    assert all(isinstance(key, slice) for key in reads)
    # Sorted rows 3 4 9 12 | 17 22 30 40 | 41, four to a block.
    spans = sorted((int(key.start), int(key.stop)) for key in reads)
    assert spans == [(3, 13), (17, 41), (41, 42)]


@pytest.fixture
def X_disk(tmp_path):
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(200_000, 2)) @ rng.normal(size=(2, 16))).astype(np.float32)
    np.save(tmp_path / "X.npy", X)
    return np.load(tmp_path / "X.npy", mmap_mode="r")


@pytest.mark.slow
def test_streaming_fit_copies_no_full_array(X_disk, monkeypatch):
    def no_copy(*args, **kwargs):
        raise AssertionError("a memory-mapped X was copied into memory")

    monkeypatch.setattr(ModelSpaceRows, "from_data", no_copy)
    low, high = float(X_disk.min()) - 1, float(X_disk.max()) + 1
    est = VAEDensityEstimator(
        bounds=(low, high), early_stopping=True, batch_size=1024, random_state=0, **FAST
    )
    est.fit(X_disk[:2000])  # first calls allocate caches once
    tracemalloc.start()
    try:
        est.fit(X_disk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # numpy allocations only (torch's are not traced): checks and statistics
    # in 2 MB blocks, the validation split's row indices (24 bytes per row
    # here, a third of a row of X), and, as likelihood='auto' trains two
    # models, the first one's history (0.3 MB) while the second trains. A
    # copy of X would be X.nbytes.
    assert peak < 0.6 * X_disk.nbytes, f"{peak / 1e6:.1f} MB"
    assert np.isfinite(est.score(X_disk[:100]))


@pytest.mark.slow
def test_the_detectors_power_transform_streams_too(X_disk, monkeypatch):
    def no_copy(*args, **kwargs):
        raise AssertionError("a memory-mapped X was copied into memory")

    monkeypatch.setattr(ModelSpaceRows, "from_data", no_copy)
    od = VAEOutlierDetector(power_transform=True, batch_size=1024, random_state=0, **FAST)
    od.fit(X_disk[:2000])  # first calls allocate caches once
    tracemalloc.start()
    try:
        od.fit(X_disk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Statistics in 2 MB blocks; the exponents from 16,384 evenly spaced rows.
    assert peak < X_disk.nbytes / 2, f"{peak / 1e6:.1f} MB"
    assert "yeo_johnson" in od.net_.module_.data_map.kinds
    assert np.all(np.isfinite(od.decision_function(X_disk[:100])))


def test_streaming_fit_is_repeatable_and_learns_as_well_as_in_memory(X_disk):
    X_disk = X_disk[:20_000]
    params = dict(early_stopping=True, likelihood="gaussian", random_state=0, **FAST)
    first = VAEDensityEstimator(**params).fit(X_disk)
    again = VAEDensityEstimator(**params).fit(X_disk)
    assert first.loss_curve_ == again.loss_curve_
    assert first.validation_scores_ == again.validation_scores_
    in_memory = VAEDensityEstimator(**params).fit(np.array(X_disk))
    # Same held-out rows, another batch order: close, not equal.
    assert first.loss_curve_ != in_memory.loss_curve_
    assert first.best_validation_score_ == pytest.approx(in_memory.best_validation_score_, abs=0.3)


def test_partial_fit_keeps_scaling_weights_and_optimizer_state():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    vt = VAETransformer(random_state=0, batch_size=128, **FAST).partial_fit(X)
    module = vt.net_.module_
    shift = module.data_map.step0_loc.clone()
    vt.partial_fit(X + 5)
    assert vt.net_.module_ is module and torch.equal(module.data_map.step0_loc, shift)
    steps = {int(s["step"]) for s in vt.net_.optimizer_.state_dict()["state"].values()}
    assert steps == {2 * 2}  # 2 calls of 2 batches of 128 rows at most
    with pytest.raises(ValueError, match="X has 3 features, but VAETransformer is expecting 4"):
        vt.partial_fit(X[:, :3])
    assert vt.n_iter_ == 2
