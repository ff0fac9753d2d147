"""Training engine: ``train``, the one entry point the estimators use to fit a net.

``train(net, X, options)`` sets the net up for one call (epochs, batches,
stopping, step-size schedule, callbacks), runs it, and returns the
``Summary`` the estimator copies into its fitted attributes; divergence and
interrupts are handled here (see ``train``). skorch runs the loop (history,
callbacks, validation split, early stopping, progress bar, devices); what is
changed makes it as fast as a hand-written loop and keeps interrupts apart:
batches are whole tensors sliced from the data (``_rows``: in-memory data is
mapped to model space once, a memory-mapped array is streamed in blocks),
per-batch mode switches and deep copies of the best weights are avoided, and
training stops by a dedicated exception rather than by ``KeyboardInterrupt``
(``_skorch_compat``), so that a user's Ctrl-C is never mistaken for
convergence. The net is in ``_net``, skvae's callbacks in ``_callbacks``;
``benchmarks/bench_speed.py`` measures the result.
"""

import math
import warnings
from copy import deepcopy
from typing import NamedTuple

from sklearn.exceptions import ConvergenceWarning
from skorch.callbacks import LRScheduler, PrintLog, ProgressBar
from skorch.dataset import ValidSplit
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau

from ._arrays import is_memory_mapped
from ._callbacks import CosineDecay, LastGoodState, TrainingNoise, WeightAveraging
from ._params import held_out_rows
from ._rows import ModelSpaceRows, StreamedRows
from ._skorch_compat import StoppingRule
from ._torch_utils import derive_seed, seeded_torch


class TrainingOptions(NamedTuple):
    """What one call of ``train`` does; the estimator resolves it from its parameters."""

    max_epochs: int
    batch_size: int
    learning_rate_init: float
    schedule: str  # 'constant', 'adaptive' (halve when the loss stalls) or 'cosine' (decay to 0 over max_epochs)
    early_stopping: bool
    validation_fraction: float
    n_iter_no_change: int
    halving_patience: int  # epochs without improvement before 'adaptive' halves the step
    tol: float
    beta: float
    n_draws: int  # 1 trains on the ELBO, K > 1 on IWAE_K
    ema_decay: float
    training_noise: float
    seed: int
    verbose: int = 0
    callbacks: tuple = ()  # the user's, copied for the call
    incremental: bool = False  # partial_fit: no warning when max_epochs ends training
    missing: bool = False  # X has missing entries (NaN)
    threads: object = None  # a TrainingThreads callback for the call, or None to leave the count alone


class Summary(NamedTuple):
    """The training history as the estimator's fitted attributes hold it."""

    n_iter: int
    loss_curve: list
    validation_scores: list
    best_validation_score: float


def train(net, X, options):
    """Run one call's epochs on X and return the ``Summary`` to copy.

    X is an in-memory array or tensor, mapped to model space once, or a
    memory-mapped array, streamed in blocks. If an epoch diverges it is
    undone and training stops: with a warning when an earlier epoch ended
    well, with a ``ValueError`` otherwise. An interrupt or error propagates
    after the epoch it interrupted is undone, with a warning when completed
    epochs are kept; ``summarize(net, ...)`` then tells what they are.
    """
    configure(net, len(X), options)
    guard = dict(net.callbacks_)["last_good"]
    if is_memory_mapped(X):
        data = StreamedRows(X, net.module_, missing=options.missing)
    else:
        data = ModelSpaceRows.from_data(net.module_, X)
    try:
        with seeded_torch(derive_seed(options.seed, len(net.history)), net.device):
            net.partial_fit(data)
    except BaseException as exc:
        if len(net.history):
            warnings.warn(
                f"Training stopped by {type(exc).__name__}; the model keeps the "
                f"{summarize(net, options.early_stopping).n_iter} completed epochs (the best "
                "one with early stopping).",
                UserWarning,
            )
        raise
    _warn_if_unfinished(net, options, guard)
    return summarize(net, options.early_stopping)


def configure(net, n_samples, options):
    """Set what may change between calls: epochs, batches, stopping, step size, callbacks."""
    early = options.early_stopping
    for name in ("max_epochs", "batch_size", "beta", "n_draws", "verbose"):
        setattr(net, name, getattr(options, name))
    net.seed = derive_seed(options.seed, len(net.history or ()), 1)
    net.validation_seed = derive_seed(options.seed, 2)
    net.train_split = (
        ValidSplit(options.validation_fraction, stratified=False, random_state=options.seed) if early else None
    )
    # Each call starts at the initial step size (the schedule is per call).
    net.set_params(lr=options.learning_rate_init)
    net.callbacks = _callbacks(net, options, _steps_per_epoch(n_samples, options))
    # skorch's PrintLog formats a table every epoch, even when it prints nothing.
    net.callbacks__print_log = PrintLog() if options.verbose else None
    net.initialize_callbacks()


def _steps_per_epoch(n_samples, options):
    """Training batches an epoch: the rows left after the validation split, in batches."""
    if options.early_stopping:
        n_samples -= held_out_rows(n_samples, options.validation_fraction)
    return math.ceil(n_samples / options.batch_size)


def _callbacks(net, options, steps_per_epoch):
    """Thread count, divergence guard, stopping rule, step-size schedule, averaging, progress, the user's, noise."""
    monitor = "valid_loss" if options.early_stopping else "train_loss"
    plateau = dict(monitor=monitor, threshold=options.tol, threshold_mode="abs")
    callbacks = [("thread_tuning", options.threads)] if options.threads is not None else []
    callbacks += [
        ("last_good", LastGoodState()),
        ("stopping", StoppingRule(patience=options.n_iter_no_change, load_best=options.early_stopping, **plateau)),
    ]
    if options.schedule == "adaptive":
        # Halve the step size when the monitored loss stalls for
        # halving_patience epochs, so training ends on small steps.
        schedule = LRScheduler(ReduceLROnPlateau, factor=0.5, patience=options.halving_patience, **plateau)
        callbacks.append(("lr_schedule", schedule))
    elif options.schedule == "cosine" and not options.incremental:
        # From the initial step size to 0 over this call's max_epochs, every
        # batch; last_epoch=-1 starts each call anew whatever the history.
        decay = CosineDecay(options.max_epochs * steps_per_epoch)
        callbacks.append(("lr_schedule", LRScheduler(LambdaLR, lr_lambda=decay, last_epoch=-1, step_every="batch")))
    if options.ema_decay > 0:
        callbacks.append(("averaging", WeightAveraging(options.ema_decay)))
    if options.verbose:
        callbacks.append(("progress_bar", ProgressBar()))
    callbacks += [deepcopy(item) for item in options.callbacks]
    if options.training_noise > 0 and net.module_.likelihood.support == "real":
        callbacks.append(("training_noise", TrainingNoise(options.training_noise)))
    return callbacks


def _warn_if_unfinished(net, options, guard):
    """Refuse a call whose first epoch diverged; warn of a later divergence or of max_epochs."""
    remedy = f"lower learning_rate_init (now {options.learning_rate_init:g})"
    remedy += f" or beta (now {options.beta:g})" if options.beta > 1 else ""
    if guard.diverged_epoch_ is not None and not len(net.history):
        raise ValueError(
            f"Training diverged in epoch {guard.diverged_epoch_}: {guard.reason_}, and no "
            f"epoch ended well; {remedy} and refit."
        )
    if guard.diverged_epoch_ is not None:
        n_iter = summarize(net, options.early_stopping).n_iter
        warnings.warn(
            f"Training diverged in epoch {guard.diverged_epoch_}: {guard.reason_}. That "
            f"epoch was undone and training stopped; the model keeps the {n_iter} "
            f"epochs before it. To train further, {remedy} and call "
            "fit with warm_start=True, or partial_fit.",
            UserWarning,
        )
    elif not options.incremental and options.schedule != "cosine" and not dict(net.callbacks_)["stopping"].stopped_:
        warnings.warn(
            f"Stochastic Optimizer: Maximum iterations ({options.max_epochs}) reached and "
            "the optimization hasn't converged yet.",
            ConvergenceWarning,
        )


def summarize(net, early_stopping):
    """The ``Summary`` of the net's history over all calls."""
    epochs = [row for row in net.history if "train_loss" in row]
    scores = [-float(row["valid_loss"]) for row in epochs if "valid_loss" in row] if early_stopping else None
    losses = [float(row["train_loss"]) for row in epochs]
    return Summary(len(epochs), losses, scores, max(scores) if scores else None)
