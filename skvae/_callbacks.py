"""skvae's own training callbacks: weight averaging, the divergence guard, training noise.

``train`` places them around skorch's loop: ``LastGoodState`` undoes an
epoch that diverged or was interrupted and keeps the last good state,
``WeightAveraging`` makes an exponential moving average of the weights the
fitted model, and ``TrainingNoise`` adds Gaussian noise to each training
batch in model space. The stopping rule, which subclasses skorch's
``EarlyStopping``, is in ``_skorch_compat`` with skorch's other internals.
"""

import math

import torch
from skorch.callbacks import Callback
from torch.optim.swa_utils import get_ema_multi_avg_fn

from ._skorch_compat import StoppingRule, StopTraining, register_cuda_state
from ._torch_utils import cloned_state, forked_rng


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
        register_cuda_state(net, "averaged_state_", "raw_state_")
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
        best = stopping.best_weights() if isinstance(stopping, StoppingRule) else None
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


def _batch_loss(net, batch):
    """The training loss of the current weights on ``batch``, leaving the RNG untouched."""
    with torch.no_grad(), forked_rng(net.device):
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


class CosineDecay:
    """Step-size factor of a cosine decay over ``total_steps`` batches: 1 at the start, 0 at the end and after.

    For ``torch.optim.lr_scheduler.LambdaLR``, stepped every batch (a class,
    not a lambda, so that a fitted net pickles).
    """

    def __init__(self, total_steps):
        self.total_steps = max(1, int(total_steps))

    def __call__(self, step):
        return 0.5 * (1.0 + math.cos(math.pi * min(step, self.total_steps) / self.total_steps))
