"""Torch threads per fit: fewer of them when a busy machine makes them wait for each other.

Torch splits each operation among its intra-op threads and waits for all of
them at the end. When another process holds one of the cores, the thread that
shares that core runs only in the scheduler's slices, and every operation
waits for it: on 2 cores with one of them busy, fits with 2 threads were
measured 3.9 to 4.7 times slower than on a quiet machine. No fixed count is
right on both a quiet and a busy machine (2 threads make the same fits up to
1.6 times faster when both cores are free), so a fit measures.

``ThreadTuner`` times the training steps at the current count and, at fixed
steps of the fit, a few steps at a neighbouring count (half, or double up to
the count the fit started with). It moves down only when the smaller count is
clearly faster (``DOWN``), as it is under contention and not on a quiet
machine, and back up when the larger count is faster again. The probes sit at
fixed steps, so on a machine whose load does not change a fit runs the same
counts at the same steps and gives the same result every time.

The probes run real steps at the other count, so a fit's result depends on
the counts it ran (a training step's bits depend on the count, through the
order in which small matrix products are summed): on a machine whose load does
not change it is the same every time, and it differs in the last digits from a
fit with the count fixed, which can move early stopping by some epochs.
Shadow probes (timing extra forward passes, the steps left alone) were tried
and dropped: a window long enough to see the stalls (several scheduler slices)
cost a small fit 30% on a quiet machine, and they missed the contention of a
small model's backward pass. Scoring gives the same bits at any count
(``_elementwise``), so its probes change nothing.

The count is the user's to fix: with ``OMP_NUM_THREADS`` or
``MKL_NUM_THREADS`` set in the environment (as joblib's and Dask's workers
have it; setting it after torch started also works, and is the way to turn the
tuning off), or with ``torch.set_num_threads`` / ``threadpoolctl`` limits
making the count differ from the one torch had when skvae was imported,
nothing is tuned. A count set before skvae's import, or set to the value
torch had, cannot be told from torch's own. Whatever a fit changes it restores.
"""

import os
import time
from contextlib import contextmanager

import numpy as np
import torch
from skorch.callbacks import Callback

# The count torch started with (its default, or the environment's).
_IMPORT_THREADS = torch.get_num_threads()
_FIXING_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _clock():
    return time.perf_counter()


def user_fixed_threads():
    """Whether the user (or the process's launcher) has chosen torch's thread count."""
    if any(os.environ.get(name) for name in _FIXING_VARIABLES):
        return True
    return torch.get_num_threads() != _IMPORT_THREADS


@contextmanager
def _restoring(make):
    """Yield ``make(count)``, or None when the count is 1 or the user's; restore the count after a tuner."""
    start = torch.get_num_threads()
    tuner = None if start < 2 or user_fixed_threads() else make(start)
    if tuner is None:
        yield None
        return
    try:
        yield tuner
    finally:
        torch.set_num_threads(start)


def threads_for_fit():
    """A context yielding a ``TrainingThreads`` callback for one fit (None when there is nothing to tune)."""
    return _restoring(lambda count: TrainingThreads(ThreadTuner(count)))


def threads_for_chunks(device, *, same_bits=True):
    """A context yielding a ``ThreadTuner`` for one pass of inference over row chunks on ``device``, or None.

    ``same_bits`` says whether the model's results are the same at any thread
    count; a model whose are not keeps the count, so that its scores never
    depend on the machine's load.
    """
    if torch.device(device).type != "cpu" or not same_bits:
        return _restoring(lambda count: None)
    # Chunks are few and large: a probe of 2 chunks (1 timed) after 1 warm-up
    # chunk and 7 timed ones, then probes 32, 64, ... chunks apart (16 apart
    # cost a quiet machine 10% of a scoring pass).
    return _restoring(lambda count: ThreadTuner(count, warmup=1, window=7, probe=2, first_gap=32))


class ThreadTuner:
    """Pick torch's thread count by timing repeated steps (see the module's docstring).

    Call ``begin()`` before each step and ``end(n_rows)`` after it.

    Parameters
    ----------
    max_threads : int
        The most threads to use: the count when the work began.
    warmup : int, default=4
        First steps, not timed (allocations, lazy set-up).
    window : int, default=8
        Timed steps at the current count before a probe.
    probe : int, default=5
        Steps of a probe; its first (the thread pool resizing) is not counted.
    first_gap : int, default=32
        Steps between the first two probes, doubling after each up to
        ``LAST_GAP``.
    clock : callable, default=None
        Seconds, for timing steps; ``time.perf_counter`` when None.
    """

    LAST_GAP = 256
    DOWN = 1.5  # fewer threads must be this much faster per row to be chosen
    UP = 1.1  # more threads must be this much faster per row to come back

    def __init__(self, max_threads, *, warmup=4, window=8, probe=5, first_gap=32, clock=None):
        self.max_threads = max_threads
        self.warmup, self.window, self.probe, self.first_gap = warmup, window, probe, first_gap
        self.clock = _clock if clock is None else clock
        self.current_ = max_threads
        self.step_ = 0
        self.next_probe_ = warmup + window
        self.gap_ = first_gap
        self.probing_ = None  # the count under trial, during a probe
        self.probe_times_ = []
        self.times_ = []  # seconds per row at the current count since it was set
        self.last_direction_ = 1
        self.counts_ = []  # (step, count) at every change, for the record
        self._started = None

    def begin(self):
        """Set the count for the next step and start its clock."""
        if self.probing_ is None and self.step_ >= self.next_probe_:
            self.probing_ = self._candidate()
            self.probe_times_ = []
        wanted = self.current_ if self.probing_ is None else self.probing_
        if torch.get_num_threads() != wanted:
            torch.set_num_threads(wanted)
        self._started = self.clock()

    def end(self, n_rows):
        """Record the step that ``begin`` started, of ``n_rows`` rows."""
        if self._started is None:
            return
        per_row = (self.clock() - self._started) / max(1, n_rows)
        self._started = None
        self.step_ += 1
        if self.probing_ is not None:
            self.probe_times_.append(per_row)
            if len(self.probe_times_) == self.probe:
                self._decide()
        elif self.step_ > self.warmup:
            self.times_ = (self.times_ + [per_row])[-self.window :]

    def _candidate(self):
        down, up = max(1, self.current_ // 2), min(self.max_threads, self.current_ * 2)
        if self.current_ == self.max_threads:
            return down
        if self.current_ == 1:
            return up
        return up if self.last_direction_ < 0 else down

    def _decide(self):
        trial, self.probing_ = self.probing_, None
        probe = _typical(self.probe_times_[1:])
        current = _typical(self.times_) if self.times_ else np.inf
        fewer = trial < self.current_
        self.last_direction_ = -1 if fewer else 1
        if current > probe * (self.DOWN if fewer else self.UP):
            self.current_ = trial
            self.counts_.append((self.step_, trial))
            self.times_ = []
        # Probes grow rarer either way: on a quiet machine each costs steps at
        # too few threads, on a busy one each risks a stall at too many.
        self.gap_ = min(2 * self.gap_, self.LAST_GAP)
        self.next_probe_ = self.step_ + max(self.gap_, self.window)

    def __getstate__(self):
        # A saved net keeps no timings.
        state = dict(self.__dict__)
        state.update(times_=[], probe_times_=[], _started=None)
        return state


class TrainingThreads(Callback):
    """Run a ``ThreadTuner`` over the training steps of a fit on the CPU."""

    def __init__(self, tuner):
        self.tuner = tuner

    def on_train_begin(self, net, **kwargs):
        self.active_ = torch.device(net.device).type == "cpu"

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if training and self.active_:
            self.tuner.begin()

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if training and self.active_:
            self.tuner.end(_n_rows(batch))

    def on_train_end(self, net, **kwargs):
        # A fit that ends inside a probe goes on (its final scoring) at the chosen count.
        if self.active_:
            self.tuner.probing_ = None
            torch.set_num_threads(self.tuner.current_)


def _typical(times):
    """The mean of ``times`` without their largest: a stall that recurs counts, a single one does not.

    Means rather than medians, because the stalls that contention causes are
    its cost; less the largest, so that one stall of a few steps (a page
    fault, another process's burst) does not decide.
    """
    times = np.sort(times)
    return float(np.mean(times[:-1] if len(times) > 2 else times))


def _n_rows(batch):
    first = batch[0] if isinstance(batch, (tuple, list)) else batch
    if isinstance(first, dict):
        first = next(iter(first.values()))
    return len(first) if hasattr(first, "__len__") else 1
