"""Torch threads: tuned per fit when the count is torch's own, never changing a score's bits."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.exceptions import ConvergenceWarning

from skvae import VAEDensityEstimator, VAEImputer, VAEOutlierDetector, VAETransformer
from skvae import _threads
from skvae._threads import ThreadTuner


@pytest.fixture
def restore_threads():
    count = torch.get_num_threads()
    yield
    torch.set_num_threads(count)


class _Machine:
    """A clock whose steps take ``cost[count]`` seconds at each thread count (per row, one row a step)."""

    def __init__(self, cost):
        self.cost = cost
        self.now = 0.0

    def __call__(self):
        self.now += self.cost[torch.get_num_threads()]
        return self.now


def _run(tuner, n_steps):
    counts = []
    for _ in range(n_steps):
        tuner.begin()
        counts.append(torch.get_num_threads())
        tuner.end(1)
    return counts


def test_a_busy_machine_moves_to_fewer_threads_and_back_when_it_is_quiet(restore_threads):
    torch.set_num_threads(4)
    machine = _Machine({4: 5.0, 2: 3.0, 1: 1.0})  # a busy machine: fewer threads are faster
    tuner = ThreadTuner(4, clock=machine)
    counts = _run(tuner, 400)
    assert counts[: tuner.warmup + tuner.window] == [4] * (tuner.warmup + tuner.window)
    assert [count for _, count in tuner.counts_] == [2, 1]
    assert counts[-100:].count(1) >= 90  # settled, with a few probes of 2 threads
    machine.cost = {4: 1.0, 2: 1.5, 1: 2.5}  # the other work ends
    counts = _run(tuner, 1500)
    assert tuner.current_ == 4 and counts[-200:].count(4) >= 190


def test_a_quiet_machine_keeps_every_thread_and_probes_less_and_less(restore_threads):
    torch.set_num_threads(2)
    # One thread a little faster (by less than DOWN) is not enough to move.
    tuner = ThreadTuner(2, clock=_Machine({2: 1.0, 1: 1.0 / (0.9 * ThreadTuner.DOWN)}))
    counts = _run(tuner, 2000)
    assert tuner.counts_ == [] and tuner.current_ == 2
    probe_steps = [step for step, count in enumerate(counts) if count == 1]
    assert len(probe_steps) <= 15 * tuner.probe  # gaps double up to LAST_GAP
    assert np.mean(np.array(counts) == 1) < 0.05


def test_a_fit_on_a_busy_machine_trains_on_fewer_threads_then_restores_the_count(monkeypatch, restore_threads):
    if torch.get_num_threads() < 2:
        pytest.skip("torch has a single thread here")
    threads = torch.get_num_threads()
    monkeypatch.setattr(_threads, "_IMPORT_THREADS", threads)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    cost = {count: 1.0 for count in range(1, threads + 1)}
    cost[threads] = 4.0
    monkeypatch.setattr(_threads, "_clock", _Machine(cost))
    X = load_breast_cancer().data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = VAEDensityEstimator(max_iter=20, early_stopping=False, random_state=0).fit(X)
    tuner = dict(est.net_.callbacks_)["thread_tuning"].tuner
    assert tuner.counts_ and tuner.current_ < threads
    assert torch.get_num_threads() == threads


def test_a_count_the_user_fixed_is_left_alone(monkeypatch, restore_threads):
    X = load_breast_cancer().data
    fit = dict(max_iter=2, random_state=0)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert "thread_tuning" not in dict(VAEDensityEstimator(**fit).fit(X).net_.callbacks_)
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    torch.set_num_threads(_threads._IMPORT_THREADS + 1)  # as torch.set_num_threads or threadpoolctl would
    est = VAEDensityEstimator(**fit).fit(X)
    assert "thread_tuning" not in dict(est.net_.callbacks_)
    assert torch.get_num_threads() == _threads._IMPORT_THREADS + 1


@pytest.mark.parametrize("variable", ["OMP_NUM_THREADS", "MKL_NUM_THREADS"])
def test_either_thread_variable_fixes_the_count(variable, monkeypatch, restore_threads):
    """OMP_NUM_THREADS or MKL_NUM_THREADS alone (as joblib's and Dask's workers set them) turns tuning off."""
    monkeypatch.setattr(_threads, "_IMPORT_THREADS", torch.get_num_threads())
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    assert not _threads.user_fixed_threads()
    monkeypatch.setenv(variable, "1")
    assert _threads.user_fixed_threads()
    with _threads.threads_for_fit() as callback, _threads.threads_for_chunks("cpu") as tuner:
        assert callback is None and tuner is None
    X = load_breast_cancer().data[:100]
    est = VAEDensityEstimator(hidden_layer_sizes=(8,), max_iter=1, random_state=0).fit(X)
    assert "thread_tuning" not in dict(est.net_.callbacks_)


def _count_tuners(monkeypatch):
    made = []

    class Recording(ThreadTuner):
        def __init__(self, *args, **kwargs):
            made.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(_threads, "ThreadTuner", Recording)
    return made


def test_a_likelihood_whose_bits_depend_on_the_thread_count_is_scored_without_tuning(monkeypatch, restore_threads):
    """Torch's continuous Bernoulli rounds differently at other thread counts: scoring it keeps the count,
    so that its scores never depend on the machine's load; a Gaussian model's scoring tunes."""
    if torch.get_num_threads() < 2:
        pytest.skip("torch has a single thread here")
    X = _data("digits")[:200]
    small = dict(hidden_layer_sizes=(8,), max_iter=1, random_state=0)
    fitted = {
        likelihood: VAEDensityEstimator(likelihood=likelihood, **small).fit(X)
        for likelihood in ("continuous_bernoulli", "gaussian")
    }
    monkeypatch.setattr(_threads, "_IMPORT_THREADS", torch.get_num_threads())
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    made = _count_tuners(monkeypatch)
    with _threads.threads_for_chunks("cpu", same_bits=False) as tuner:
        assert tuner is None
    fitted["continuous_bernoulli"].score_samples(X[:40])
    assert made == []
    fitted["gaussian"].score_samples(X[:40])
    assert len(made) == 1


CASES = {
    "gaussian, elu": (VAEDensityEstimator(max_iter=2, random_state=0), "breast"),
    "mixture, logistic": (
        VAEDensityEstimator(likelihood="gaussian_mixture", activation="logistic", max_iter=2, random_state=0),
        "breast",
    ),
    "bounds, silu": (VAEDensityEstimator(bounds=(-0.01, 1.01), activation="silu", max_iter=2, random_state=0), "digits"),
    "bernoulli": (VAEDensityEstimator(likelihood="bernoulli", max_iter=2, random_state=0), "binary"),
    "detector": (VAEOutlierDetector(max_iter=2, random_state=0), "breast"),
}


def _data(name):
    if name == "breast":
        return load_breast_cancer().data
    X = load_digits().data / 16.0
    return X if name == "digits" else (X > 0.5).astype(float)


@pytest.mark.parametrize("case", CASES)
def test_scores_have_the_same_bits_at_any_thread_count(case, restore_threads):
    # Scoring tunes the thread count on a busy machine, so it must not move a bit.
    est, data = CASES[case]
    X = _data(data)
    est.fit(X)
    results = []
    for count in (1, 2, 3):
        torch.set_num_threads(count)
        results.append((est.score_samples(X), est.transform(X) if hasattr(est, "transform") else None))
    for other in results[1:]:
        np.testing.assert_array_equal(results[0][0], other[0])
        if other[1] is not None:
            np.testing.assert_array_equal(results[0][1], other[1])


def test_transform_inverse_transform_and_imputation_have_the_same_bits_at_any_thread_count(restore_threads):
    X = load_breast_cancer().data
    holes = X.copy()
    holes[np.random.default_rng(0).random(X.shape) < 0.2] = np.nan
    transformer = VAETransformer(max_iter=2, random_state=0).fit(X)
    imputer = VAEImputer(max_iter=2, random_state=0).fit(holes)
    results = []
    for count in (1, 2, 3):
        torch.set_num_threads(count)
        Z = transformer.transform(X)
        results.append((Z, transformer.inverse_transform(Z), imputer.transform(holes)))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_the_split_invariant_forms_match_torch():
    from skvae import _elementwise

    x = torch.linspace(-60, 60, 10001, dtype=torch.float64)
    # torch's softplus returns x above 20 (2e-9 off); numpy's logaddexp is exact.
    np.testing.assert_allclose(_elementwise.softplus(x), np.logaddexp(0, x.numpy()), rtol=1e-14)
    for ours, theirs in [
        (_elementwise.sigmoid, torch.sigmoid),
        (_elementwise.silu, torch.nn.functional.silu),
    ]:
        np.testing.assert_allclose(ours(x), theirs(x), rtol=1e-12, atol=1e-300)
    # ELU below 0 is exp(x) - 1, not expm1: within a unit of 1 of torch's in
    # either dtype, not relatively near 0.
    for dtype in (torch.float64, torch.float32):
        y = x.to(dtype)
        np.testing.assert_allclose(
            _elementwise.elu(y), torch.nn.functional.elu(y), rtol=1e-12, atol=torch.finfo(dtype).eps
        )
    u = torch.cat([torch.logspace(-300, 300, 1001, dtype=torch.float64), -torch.logspace(-300, -1e-9, 1001, dtype=torch.float64)])
    np.testing.assert_allclose(_elementwise.log1p(u), torch.log1p(u), rtol=1e-14)
    assert _elementwise.log1p(torch.tensor(float("inf"))) == float("inf")
    # Seeded: the draws must not depend on what ran before (near a result of 0,
    # where log(e^a + e^b) cancels, the forms differ by a few 1e-14).
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(1000, dtype=torch.float64, generator=generator) * 30 for _ in range(2))
    np.testing.assert_allclose(_elementwise.logaddexp(a, b), torch.logaddexp(a, b), rtol=1e-14)
    assert _elementwise.logaddexp(torch.tensor(-torch.inf), torch.tensor(-torch.inf)) == -torch.inf


def test_a_fit_that_ends_inside_a_probe_goes_on_at_the_chosen_count(restore_threads):
    callback = _threads.TrainingThreads(ThreadTuner(2))
    callback.active_ = True
    callback.tuner.probing_ = 1
    torch.set_num_threads(1)  # the probe's count, as a probe step leaves it
    callback.on_train_end(net=None)
    assert torch.get_num_threads() == 2 and callback.tuner.probing_ is None
