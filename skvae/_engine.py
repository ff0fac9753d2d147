"""Training engine: a skorch ``NeuralNet`` whose loss is the negative bound, and ``train``.

``train(net, X, options)`` is the one entry point the estimators use: it sets
the net up for one call (epochs, batches, callbacks), runs it, and returns the
summary the estimator copies into its fitted attributes; divergence and
interrupts are handled here (see ``train``).

skorch runs the loop (history, callbacks, validation split, early stopping,
progress bar, devices). What is changed makes it as fast as a hand-written
loop and keeps interrupts apart: batches are whole tensors sliced from the
data instead of rows collated one by one (in-memory data is mapped to model
space once, ``ModelSpaceRows``; a memory-mapped array is read in contiguous
blocks, a shuffled window at a time, ``StreamedRows``); per-batch mode
switches and deep copies of the best weights are avoided; and training stops
by a dedicated exception rather than by ``KeyboardInterrupt``, so that a
user's Ctrl-C is never mistaken for convergence. ``benchmarks/bench_speed.py``
measures the result.
"""

import math
import warnings
from contextlib import contextmanager
from copy import deepcopy
from typing import NamedTuple

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, LRScheduler, PrintLog, ProgressBar
from skorch.dataset import ValidSplit
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.optim.swa_utils import get_ema_multi_avg_fn

from ._arrays import is_memory_mapped, rows_as_tensor
from ._bounds import iwae_bound
from ._module import VAEModule


class StopTraining(Exception):
    """Raised by a callback to end training normally."""


class Rows(torch.utils.data.Dataset):
    """The rows of a 2-D tensor or array (a memmap too), read a whole batch at a time.

    ``rows[index]`` takes a slice or a 1-D index tensor and returns a tensor
    batch; array rows are read and converted only when their batch is asked for.
    """

    def __init__(self, X):
        self.X = X

    def __len__(self):
        return len(self.X)

    def __getitem__(self, index):
        if isinstance(self.X, torch.Tensor):
            return self.X[index]
        if isinstance(index, torch.Tensor):
            index = index.numpy()
        return rows_as_tensor(self.X[index])


class ModelSpaceRows(torch.utils.data.Dataset):
    """Rows already mapped to the module's model space, with their log-Jacobians.

    A batch is ``{"x": y, "log_det": log_det}``, with ``"mask"`` too when
    entries are missing: the keyword arguments of ``VAEModule.forward``
    (skorch passes dict batches as keywords), so the data transform runs once
    per fit instead of once per batch.

    Parameters
    ----------
    y : Tensor of shape (n_samples, n_features)
        Model-space rows, of the module's dtype.
    log_det : Tensor of shape (n_samples,)
        log |dy/dx| per row, of the same dtype.
    mask : bool Tensor of shape (n_samples, n_features) or None
        True where an entry is observed; None when all are.
    """

    def __init__(self, y, log_det, mask=None, bins=None):
        self.tensors = {"x": y, "log_det": log_det}
        if mask is not None:
            self.tensors["mask"] = mask
        if bins is not None:
            self.tensors["bins"] = bins

    @classmethod
    def from_data(cls, module, X, *, chunk_rows=65536):
        """Map the rows of X (array or tensor) to model space in chunks, on the CPU."""
        device = module.encoder_head.weight.device
        blocks = []
        with torch.no_grad():
            for start in range(0, len(X), chunk_rows):
                blocks.append(_model_space(module, rows_as_tensor(X[start : start + chunk_rows]).to(device)))
        if any("mask" in block for block in blocks):
            blocks = [_with_mask(block) for block in blocks]
        keys = ("x", "log_det", "mask", "bins")
        return cls(*(torch.cat([b[key] for b in blocks]) if key in blocks[0] else None for key in keys))

    def __len__(self):
        return len(self.tensors["x"])

    def __getitem__(self, index):
        if isinstance(index, torch.Tensor):
            # index_select gathers rows in half the time of advanced indexing.
            return {key: value.index_select(0, index) for key, value in self.tensors.items()}
        return {key: value[index] for key, value in self.tensors.items()}


def _model_space(module, x):
    """A batch dict of rows x mapped by ``module.preprocess``, on the CPU."""
    y, log_det, mask, bins = module.preprocess(x)
    batch = {"x": y.cpu(), "log_det": log_det.to(y.dtype).cpu()}
    if mask is not None:
        batch["mask"] = mask.cpu()
    if bins is not None:
        batch["bins"] = bins.cpu()
    return batch


def _with_mask(batch):
    """``batch`` with a mask, all True if it had none."""
    return batch if "mask" in batch else {**batch, "mask": torch.ones_like(batch["x"], dtype=torch.bool)}


class StreamedRows(torch.utils.data.Dataset):
    """Rows of an array read from disk (a memmap), in contiguous blocks, never all at once.

    A pass reads ``block_rows`` consecutive rows at a time and maps them to
    model space a window of ``window_rows`` rows at a time, so memory holds
    one window whatever the size of the array. Shuffled passes visit the
    blocks in a random order and shuffle the rows within each window: every
    batch mixes rows from ``window_rows // block_rows`` places in the array,
    and reads stay sequential on disk. Batches are dicts, as those of
    ``ModelSpaceRows``.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Rows read by slicing, e.g. a ``np.memmap``.
    module : VAEModule
        Its ``preprocess`` maps each window to model space.
    missing : bool, default=False
        Whether X has missing entries (NaN): every batch then has a mask.
    block_rows : int, default=1024
    window_rows : int, default=65536
    """

    def __init__(self, X, module, *, missing=False, block_rows=1024, window_rows=65536):
        self.X = X
        self.module = module
        self.missing = missing
        self.block_rows = block_rows
        self.window_rows = window_rows

    def __len__(self):
        return len(self.X)

    def __getitem__(self, index):
        if isinstance(index, torch.Tensor):
            index = index.numpy()
        return self._model_space(rows_as_tensor(self.X[index]))

    def batches(self, indices, *, batch_size, shuffle, generator):
        """Yield dict batches over the rows ``indices`` (all rows if None), block by block."""
        positions = None if indices is None else torch.sort(indices).values
        n = len(self.X) if positions is None else len(positions)
        n_blocks = math.ceil(n / self.block_rows)
        # One block is not permuted, so that data within one window is shuffled
        # exactly as in memory.
        if shuffle and n_blocks > 1:
            order = torch.randperm(n_blocks, generator=generator)
        else:
            order = torch.arange(n_blocks)
        per_window = max(1, self.window_rows // self.block_rows)
        carry = None
        for first in range(0, n_blocks, per_window):
            blocks = order[first : first + per_window].tolist()
            window = self._model_space(torch.cat([self._block(positions, b, n) for b in blocks]))
            if shuffle:
                window = _take(window, torch.randperm(len(window["x"]), generator=generator))
            if carry is not None:
                window = {key: torch.cat([carry[key], window[key]]) for key in window}
            last = first + per_window >= n_blocks
            stop = len(window["x"]) if last else len(window["x"]) // batch_size * batch_size
            for start in range(0, stop, batch_size):
                yield _take(window, slice(start, min(start + batch_size, stop)))
            carry = _take(window, slice(stop, None))

    def _block(self, positions, b, n):
        """Rows of block ``b``: one contiguous read, then the rows of ``positions`` in it."""
        lo, hi = b * self.block_rows, min((b + 1) * self.block_rows, n)
        if positions is None:
            return rows_as_tensor(self.X[lo:hi])
        wanted = positions[lo:hi].numpy()
        block = np.asarray(self.X[wanted[0] : wanted[-1] + 1])
        return torch.from_numpy(block[wanted - wanted[0]])

    def _model_space(self, x):
        device = self.module.encoder_head.weight.device
        with torch.no_grad():
            batch = _model_space(self.module, x.to(device))
        # Every batch of a pass has the same keys, so windows concatenate.
        return _with_mask(batch) if self.missing else batch


def _take(batch, index):
    return {key: value[index] for key, value in batch.items()}


class BatchIterator:
    """Yield ``(batch, None)`` by slicing a dataset, with a seeded shuffle per pass.

    Parameters
    ----------
    rows : Rows or ModelSpaceRows
        A dataset indexed by a slice or an index tensor for a whole batch.
    indices : ndarray of int or None
        Which rows to use (a validation split); None for all.
    batch_size : int
    shuffle : bool
    generator : torch.Generator or None
        Source of the permutations; each pass draws a new one.
    """

    def __init__(self, rows, indices, *, batch_size, shuffle, generator=None):
        self.rows = rows
        self.indices = None if indices is None else torch.as_tensor(np.asarray(indices))
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator

    def __len__(self):
        n = len(self.rows) if self.indices is None else len(self.indices)
        return math.ceil(n / self.batch_size)

    def __iter__(self):
        if isinstance(self.rows, StreamedRows):
            batches = self.rows.batches(
                self.indices, batch_size=self.batch_size, shuffle=self.shuffle, generator=self.generator
            )
            for batch in batches:
                yield batch, None
            return
        n = len(self.rows) if self.indices is None else len(self.indices)
        if not self.shuffle and self.indices is None:
            for start in range(0, n, self.batch_size):
                yield self.rows[start : start + self.batch_size], None
            return
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        if self.indices is not None:
            order = self.indices[order]
        for index in order.split(self.batch_size):
            yield self.rows[index], None


def adam_options(device):
    """skorch parameters choosing Adam's fused kernel where torch has it for ``device``.

    The fused kernel updates every parameter in one call, the same algorithm as
    the default per-tensor loop; on small models it saves 10-15% of a step.
    """
    kind = torch.device(device).type
    version = tuple(int(part) for part in torch.__version__.split(".")[:2])
    if kind == "cuda" or (kind == "cpu" and version >= (2, 4)):
        return {"optimizer__fused": True}
    return {}


class VAENet(NeuralNet):
    """skorch net for a VAE module; ``get_loss`` is the negative mean bound.

    Extra parameters
    ----------------
    beta : float
        KL weight during training. Validation always uses beta=1, so that
        ``valid_loss`` is the negative bound, a bound on -log p(x).
    n_draws : int
        Latent draws per row: 1 trains on the ELBO, K > 1 on IWAE_K.
    seed : int
        Seed of the shuffling generator of the next training pass.
    validation_seed : int
        Seed of the latent draws of every validation pass.
    """

    def __init__(self, module, *, beta=1.0, n_draws=1, seed=0, validation_seed=0, **kwargs):
        super().__init__(module, criterion=torch.nn.Identity, **kwargs)
        self.beta = beta
        self.n_draws = n_draws
        self.seed = seed
        self.validation_seed = validation_seed

    def infer(self, x, **fit_params):
        return super().infer(x, n_draws=self.n_draws, **fit_params)

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        if training:
            return super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)
        # The same draws for the held-out rows in every epoch (common random
        # numbers): the stopping rule and the step-size schedule then compare
        # epochs, not Monte Carlo noise, which on a few hundred rows exceeds
        # the late per-epoch gains and stops training early.
        # With weight averaging the averaged weights are validated; they stay in
        # the module until WeightAveraging.on_epoch_end, so that the stopping
        # rule keeps them as the best weights.
        averaging = dict(self.callbacks_).get("averaging")
        if averaging is not None:
            averaging.swap_in(self)
        device = torch.device(self.device)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.validation_seed)
            return super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        log_px, kl, log_det = y_pred
        beta = self.beta if training else 1.0
        # With one draw this is the ELBO, log p(y|z) - beta * KL; with K draws
        # IWAE_K (Burda et al. 2016), beta scaling log p(z) - log q(z|y).
        log_w = log_px - beta * kl
        bound = log_w[0] if len(log_w) == 1 else iwae_bound(log_w)
        return -(bound + log_det).mean()

    def _set_training(self, training=True):
        # skorch sets the mode before every batch; walking the module tree each
        # time costs about 1% of a small model's step, so walk it only on a change.
        if self.module_.training != training:
            super()._set_training(training)

    def get_dataset(self, X, y=None):
        return X if isinstance(X, torch.utils.data.Dataset) else Rows(X)

    def get_iterator(self, dataset, training=False):
        indices = None
        if isinstance(dataset, torch.utils.data.Subset):
            dataset, indices = dataset.dataset, dataset.indices
        generator = None
        if training:
            generator = torch.Generator().manual_seed(int(self.seed))
        return BatchIterator(
            dataset, indices, batch_size=self.batch_size, shuffle=training, generator=generator
        )

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """skorch's ``partial_fit``, but only ``StopTraining`` ends the loop quietly.

        skorch swallows every ``KeyboardInterrupt`` here, including the user's;
        this lets the user's interrupt (or any error) propagate. Callbacks are
        told ``on_train_end`` either way, with ``interrupted_`` set to the
        exception when there was one, so that ``LastGoodState`` first undoes
        the interrupted epoch and the others then finish from the last
        completed one.
        """
        if not self.initialized_:
            self.initialize()
        self.interrupted_ = None
        self.notify("on_train_begin", X=X, y=y)
        try:
            self.fit_loop(X, y, **fit_params)
        except StopTraining:
            pass
        except BaseException as exc:
            self.interrupted_ = exc
            raise
        finally:
            self.notify("on_train_end", X=X, y=y)
            self.interrupted_ = None
        return self


class StoppingRule(EarlyStopping):
    """skorch's ``EarlyStopping`` that records why it stopped and raises ``StopTraining``.

    The best weights are kept with ``cloned_state``: skorch deep-copies the
    state dict at every improving epoch, which is slow (see ``cloned_state``).
    """

    def on_train_begin(self, net, **kwargs):
        super().on_train_begin(net, **kwargs)
        self.stopped_ = False

    def on_epoch_end(self, net, **kwargs):
        best_epoch, load_best = self.best_epoch_, self.load_best
        self.load_best = False
        try:
            super().on_epoch_end(net, **kwargs)
        except KeyboardInterrupt:
            # skorch's way of saying "patience ran out"; turn it into our own signal.
            self.stopped_ = True
            raise StopTraining from None
        finally:
            self.load_best = load_best
        if load_best and self.best_epoch_ != best_epoch:
            self.best_model_weights_ = cloned_state(net.module_.state_dict())

    def on_train_end(self, net, **kwargs):
        # The history is empty when the first epoch diverged and was undone.
        if len(net.history):
            super().on_train_end(net, **kwargs)


class WeightAveraging(Callback):
    """An exponential moving average of the weights is the fitted model.

    After every training step the average moves towards the weights by
    ``1 - decay`` (torch's ``get_ema_multi_avg_fn``, the update of its
    ``AveragedModel``), from zero with Adam's bias correction. The average,
    not the last step's weights, is validated every epoch and is the model at
    the end of a call. Adam's last
    steps scatter the weights around a maximum of the bound; the average sits
    nearer to it, which gains held-out likelihood at no cost in steps.

    Training goes on from the raw weights: between calls (``partial_fit``,
    ``warm_start``) they are kept on the net in ``raw_state_``, and the
    average in ``averaged_state_``. Place it after the stopping rule, so that
    the rule keeps the averaged weights as the best ones.
    """

    def __init__(self, decay):
        self.decay = decay

    def on_train_begin(self, net, **kwargs):
        raw = getattr(net, "raw_state_", None)
        if raw is not None:
            net.module_.load_state_dict(raw, strict=False)
        net.raw_state_ = None
        if getattr(net, "averaged_state_", None) is None:
            weights = {name: torch.zeros_like(p.detach()) for name, p in net.module_.named_parameters()}
            net.averaged_state_ = {"weights": weights, "steps": 0}
        # Tensors that skorch's pickling maps to the CPU when CUDA is gone.
        extra = [key for key in ("averaged_state_", "raw_state_") if key not in net.cuda_dependent_attributes_]
        net.cuda_dependent_attributes_ = [*net.cuda_dependent_attributes_, *extra]
        self._update = get_ema_multi_avg_fn(self.decay)
        # The tensors of one call, listed once rather than at every step (a
        # restore replaces them, and training then stops).
        self._lists = list(net.averaged_state_["weights"].values()), list(net.module_.parameters())

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self._update(*self._lists, None)
            net.averaged_state_["steps"] += 1

    def swap_in(self, net):
        """Put the averaged weights in the module, keeping the raw ones aside."""
        state = getattr(net, "averaged_state_", None)
        if state is not None and state["steps"] and net.raw_state_ is None:
            net.raw_state_ = cloned_state(dict(net.module_.named_parameters()))
            # The average starts at zero; dividing by 1 - decay**steps (as Adam
            # corrects its moments) weighs the steps taken so far and nothing
            # else, so a short fit is not pulled towards its initial weights.
            debias = 1 - self.decay ** state["steps"]
            net.module_.load_state_dict(
                {name: w / debias for name, w in state["weights"].items()}, strict=False
            )

    def swap_out(self, net):
        """Put the raw weights back after validation."""
        if getattr(net, "raw_state_", None) is not None:
            net.module_.load_state_dict(net.raw_state_, strict=False)
            net.raw_state_ = None

    def on_epoch_end(self, net, **kwargs):
        self.swap_out(net)

    def on_train_end(self, net, **kwargs):
        # With early stopping the best averaged weights become the model (skorch
        # loads them only when the best epoch is not the last one), and the
        # next call averages afresh from them; otherwise the current average.
        stopping = dict(net.callbacks_).get("stopping")
        best = getattr(stopping, "best_model_weights_", None) if getattr(stopping, "load_best", False) else None
        if best is not None:
            net.module_.load_state_dict(best)
            net.averaged_state_ = net.raw_state_ = None
        else:
            self.swap_in(net)

    def __getstate__(self):
        return {**self.__dict__, "_update": None, "_lists": None}


class LastGoodState(Callback):
    """Undo an epoch that diverged, and training with it; keep the last good state.

    An epoch diverged when a loss or a weight is non-finite, or when the
    training loss exceeds the loss before the call by more than
    ``EXPLOSION_FACTOR`` times ``max(|loss before|, n_features)`` nats: Adam's
    normalised steps often keep a diverging fit finite but useless (a
    learning rate of 10 reaches a loss of 1e9 nats per sample, not inf).
    Both the epoch's recorded loss and the loss of its final weights on one
    fixed batch are checked, since the last step of an epoch is not in the
    former. The checks cost one forward pass of one batch per epoch, nothing
    per batch. The diverged epoch is undone (weights, optimizer state and
    history go back to the last good epoch, or to the start of the call) and
    training stops with ``StopTraining``; ``diverged_epoch_`` and ``reason_``
    then say when and why. An interrupted epoch (an exception in the loop,
    ``net.interrupted_``) is undone the same way at ``on_train_end``; place
    this callback first, so that the others finish from the restored state.
    """

    EXPLOSION_FACTOR = 1e3

    def on_train_begin(self, net, X=None, **kwargs):
        self.diverged_epoch_ = self.reason_ = None
        self.batch_ = net.get_dataset(X)[: net.batch_size]
        self.initial_loss_ = _batch_loss(net, self.batch_)
        slack = self.EXPLOSION_FACTOR * max(abs(self.initial_loss_), net.module__n_features)
        self.loss_limit_ = self.initial_loss_ + slack if math.isfinite(slack) else math.inf
        self._snapshot(net)

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        self.reason_ = self._divergence(row, net)
        if self.reason_ is None:
            self._snapshot(net)
            return
        self.diverged_epoch_ = row["epoch"]
        self.restore(net)
        raise StopTraining

    def on_train_end(self, net, **kwargs):
        if getattr(net, "interrupted_", None) is not None:
            self.restore(net)
        self.state_ = self.batch_ = None

    def restore(self, net):
        """Return ``net`` to the last snapshot and release it; no-op without one."""
        if getattr(self, "state_", None) is None:
            return
        n_epochs, module_state, optimizer_state, averaging_state = self.state_
        del net.history[n_epochs:]
        net.module_.load_state_dict(module_state)
        net.optimizer_.load_state_dict(optimizer_state)
        net.averaged_state_, net.raw_state_ = averaging_state
        self.state_ = None

    def _divergence(self, row, net):
        """Why the epoch of history ``row`` diverged, or None."""
        for loss in (row["train_loss"], _batch_loss(net, self.batch_)):
            if not loss <= self.loss_limit_:
                return (
                    f"the training loss went from {self.initial_loss_:.4g} to {loss:.4g} "
                    "nats per sample"
                )
        if not math.isfinite(row.get("valid_loss", 0.0)):
            return "the validation loss became non-finite"
        if not all(torch.isfinite(w).all() for w in net.module_.parameters()):
            return "the weights became non-finite"
        return None

    def _snapshot(self, net):
        self.state_ = (
            len(net.history),
            cloned_state(net.module_.state_dict()),
            cloned_state(net.optimizer_.state_dict()),
            # The weight average (WeightAveraging) and the raw weights set aside.
            cloned_state((getattr(net, "averaged_state_", None), getattr(net, "raw_state_", None))),
        )

    def __getstate__(self):
        # A snapshot only lives during a call to fit; never pickle one.
        return {**self.__dict__, "state_": None, "batch_": None}


def cloned_state(state):
    """A copy of a (nested) state dict with every tensor cloned.

    ``copy.deepcopy`` copies tensor storages through a slow path on CPU: 1 to
    30 ms for the 170,000 weights of a (256, 256) model and as much for its
    Adam state, up to a whole epoch on 2,000 rows, where clones take 0.1 ms.
    """
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    if isinstance(state, dict):
        return {key: cloned_state(value) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(cloned_state(value) for value in state)
    return state


def _batch_loss(net, batch):
    """The training loss of the current weights on ``batch``, leaving the RNG untouched."""
    device = torch.device(net.device)
    with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        return float(net.get_loss(net.infer(batch), None, training=True))


class TrainingNoise(Callback):
    """Adds N(0, std^2) to each training batch in model space; validation is untouched.

    The model then fits the data density convolved with a narrow Gaussian
    kernel, as a kernel density estimate does, and cannot put near-infinite
    density on single rows. Only likelihoods of real-valued data get it. The
    draws come from a generator seeded by the net's ``seed`` at the start of
    each call, so they repeat with ``random_state``. Batches are the dicts of
    ``ModelSpaceRows`` and ``StreamedRows``, fresh for each batch, so the
    data are never changed; missing entries get none.
    """

    def __init__(self, std):
        self.std = std

    def on_train_begin(self, net, **kwargs):
        self.generator_ = torch.Generator(device=net.device).manual_seed(int(net.seed))
        self.entries_ = net.module_.noise_entries()  # once per call, not per batch

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if not training:
            return
        y = batch[0]["x"]
        noise = self.std * torch.randn(y.shape, generator=self.generator_, device=y.device, dtype=y.dtype)
        if "mask" in batch[0]:
            noise = noise * batch[0]["mask"]  # missing entries stay at 0
        if self.entries_ is not None:
            noise = noise * self.entries_  # a table's real columns only
        batch[0]["x"] = y + noise


class TrainingOptions(NamedTuple):
    """What one call of ``train`` does; the estimator resolves it from its parameters."""

    max_epochs: int
    batch_size: int
    learning_rate_init: float
    adaptive: bool  # halve the step size when the monitored loss stalls
    early_stopping: bool
    validation_fraction: float
    n_iter_no_change: int
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


def build_net(module_config, *, device, learning_rate_init, seed):
    """A ``VAENet`` of a ``VAEModule`` built from ``module_config``, initialised from ``seed``."""
    net = VAENet(
        VAEModule,
        **{f"module__{key}": value for key, value in module_config.items()},
        optimizer=torch.optim.Adam,
        lr=learning_rate_init,
        device=device,
        **adam_options(device),
    )
    with seeded_torch(seed, net.device):
        net.initialize()
    return net


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
    net.max_epochs = options.max_epochs
    net.batch_size = options.batch_size
    net.beta = options.beta
    net.n_draws = options.n_draws
    net.seed = derive_seed(options.seed, len(net.history or ()), 1)
    net.validation_seed = derive_seed(options.seed, 2)
    net.verbose = options.verbose
    net.train_split = (
        ValidSplit(options.validation_fraction, stratified=False, random_state=options.seed) if early else None
    )
    # Each call starts at the initial step size (the schedule is per call).
    net.set_params(lr=options.learning_rate_init)
    net.callbacks = _callbacks(net, options)
    # skorch's PrintLog formats a table every epoch, even when it prints nothing.
    net.callbacks__print_log = PrintLog() if options.verbose else None
    net.initialize_callbacks()


def _callbacks(net, options):
    """Thread count, divergence guard, stopping rule, step-size schedule, averaging, progress, the user's, noise."""
    monitor = "valid_loss" if options.early_stopping else "train_loss"
    plateau = dict(monitor=monitor, threshold=options.tol, threshold_mode="abs")
    callbacks = [("thread_tuning", options.threads)] if options.threads is not None else []
    callbacks += [
        ("last_good", LastGoodState()),
        ("stopping", StoppingRule(patience=options.n_iter_no_change, load_best=options.early_stopping, **plateau)),
    ]
    if options.adaptive:
        # Halve the step size when the monitored loss stalls for a quarter
        # of the stopping patience, so training ends on small steps.
        patience = max(1, options.n_iter_no_change // 4)
        callbacks.append(("lr_schedule", LRScheduler(ReduceLROnPlateau, factor=0.5, patience=patience, **plateau)))
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
    elif not options.incremental and not dict(net.callbacks_)["stopping"].stopped_:
        warnings.warn(
            f"Stochastic Optimizer: Maximum iterations ({options.max_epochs}) reached and "
            "the optimization hasn't converged yet.",
            ConvergenceWarning,
        )


def summarize(net, early_stopping):
    """The ``Summary`` of the net's history over all calls."""
    epochs = [row for row in net.history if "train_loss" in row]
    scores = [-float(row["valid_loss"]) for row in epochs if "valid_loss" in row] if early_stopping else None
    return Summary(
        n_iter=len(epochs),
        loss_curve=[float(row["train_loss"]) for row in epochs],
        validation_scores=scores,
        best_validation_score=max(scores) if scores else None,
    )


@contextmanager
def seeded_torch(seed, device):
    """Seed torch's generator for ``device`` inside the block, restoring it after."""
    device = torch.device(device)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed)
        if device.type == "cuda":
            torch.cuda.manual_seed(seed)
        yield


def derive_seed(seed, *keys):
    """A new 31-bit seed from ``seed`` and integer keys (independent streams)."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0] >> 1)


def resolve_device(device):
    """``device`` with 'auto' resolved; ValueError for CUDA on a machine without it."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} but CUDA is not available on this machine; use "
            "device='cpu' or device='auto'."
        )
    return device
