"""Every use of skorch's internals, in one place: the private names and behaviours skvae relies on.

skorch runs the training loop; what skvae changes in it reaches past its
public API only here. ``CompatNet`` overrides ``NeuralNet._set_training``
(private: the module tree is walked only when the mode changes),
``run_single_epoch`` and ``get_iterator`` (with skorch's signatures, and
skorch's validation rows arriving as a ``torch.utils.data.Subset``) behind
hooks of skvae's own, ``validation_pass`` and ``iterate``, and re-implements
``partial_fit`` (``notify`` around ``fit_loop``) so that only
``StopTraining`` ends training quietly, where skorch swallows every
``KeyboardInterrupt``, the user's too. ``StoppingRule`` relies on
``EarlyStopping``'s private state (``best_epoch_``, ``best_model_weights_``)
and on its raising ``KeyboardInterrupt`` when patience runs out, which it
turns into ``StopTraining``. ``register_cuda_state`` adds to skorch's
``cuda_dependent_attributes_`` so that unpickling maps tensors kept on the
net to the CPU; and skvae's callbacks rely on ``on_batch_begin`` receiving
the very batch the training step then uses. ``tests/test_skorch_compat.py``
fails when skorch changes any of these.
"""

from contextlib import nullcontext

import torch
from skorch import NeuralNet
from skorch.callbacks import EarlyStopping

from ._torch_utils import cloned_state


class StopTraining(Exception):
    """Raised by a callback to end training normally."""


class CompatNet(NeuralNet):
    """skorch's ``NeuralNet`` with its private loop parts overridden behind skvae's own hooks.

    Subclasses define ``iterate(dataset, indices, training)`` (the batches of
    a pass) and may define ``validation_pass()`` (a context for each
    validation epoch).
    """

    def validation_pass(self):
        """The context in which a validation epoch runs (none here)."""
        return nullcontext()

    def iterate(self, dataset, indices, training):
        """The batches of one pass over the rows ``indices`` of ``dataset`` (all rows if None)."""
        raise NotImplementedError

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        if training:
            return super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)
        with self.validation_pass():
            return super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)

    def _set_training(self, training=True):
        # skorch sets the mode before every batch; walking the module tree each
        # time costs about 1% of a small model's step, so walk it only on a change.
        if self.module_.training != training:
            super()._set_training(training)

    def get_iterator(self, dataset, training=False):
        # skorch's validation split hands over its rows as a Subset.
        indices = None
        if isinstance(dataset, torch.utils.data.Subset):
            dataset, indices = dataset.dataset, dataset.indices
        return self.iterate(dataset, indices, training)

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


def register_cuda_state(net, *names):
    """Have skorch's pickling map the net's attributes ``names`` (tensors) to the CPU when CUDA is gone."""
    extra = [name for name in names if name not in net.cuda_dependent_attributes_]
    net.cuda_dependent_attributes_ = [*net.cuda_dependent_attributes_, *extra]


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

    def best_weights(self):
        """The best epoch's weights when they become the model at the end of training, else None."""
        return getattr(self, "best_model_weights_", None) if self.load_best else None
