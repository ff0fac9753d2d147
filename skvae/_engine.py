"""Training engine: a skorch ``NeuralNet`` whose loss is the negative bound.

skorch runs the loop (history, callbacks, validation split, early stopping,
progress bar, devices). Two things are changed: batches are sliced from the
whole data at once instead of collated row by row, and training stops by a
dedicated exception rather than by ``KeyboardInterrupt``, so that a user's
Ctrl-C is never mistaken for convergence.
"""

import math

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import EarlyStopping


class StopTraining(Exception):
    """Raised by a callback to end training normally."""


class Rows(torch.utils.data.Dataset):
    """The rows of a 2-D tensor or array, read a whole batch at a time."""

    def __init__(self, X):
        self.X = X

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i]


class BatchIterator:
    """Yield ``(X_batch, None)`` batches by slicing, with a seeded shuffle per pass.

    Parameters
    ----------
    X : Tensor or ndarray of shape (n_samples, n_features)
    indices : ndarray of int or None
        Which rows of X to use (a validation split); None for all.
    batch_size : int
    shuffle : bool
    generator : torch.Generator or None
        Source of the permutations; each pass draws a new one.
    """

    def __init__(self, X, indices, *, batch_size, shuffle, generator=None):
        self.X = X
        self.indices = None if indices is None else torch.as_tensor(np.asarray(indices))
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator

    def __len__(self):
        n = len(self.X) if self.indices is None else len(self.indices)
        return math.ceil(n / self.batch_size)

    def __iter__(self):
        n = len(self.X) if self.indices is None else len(self.indices)
        if not self.shuffle and self.indices is None:
            for start in range(0, n, self.batch_size):
                yield rows_as_tensor(self.X[start : start + self.batch_size]), None
            return
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        if self.indices is not None:
            order = self.indices[order]
        for rows in order.split(self.batch_size):
            yield _take(self.X, rows), None


def rows_as_tensor(block):
    """A torch view of a block of rows; read-only numpy blocks are copied (torch needs writable)."""
    if isinstance(block, torch.Tensor):
        return block
    block = np.asarray(block)
    if not block.flags.writeable:
        block = block.copy()
    return torch.from_numpy(block)


def _take(X, rows):
    return X[rows] if isinstance(X, torch.Tensor) else rows_as_tensor(X[rows.numpy()])


class VAENet(NeuralNet):
    """skorch net for a VAE module; ``get_loss`` is the negative mean bound.

    Extra parameters
    ----------------
    beta : float
        KL weight during training. Validation always uses beta=1, so that
        ``valid_loss`` is the negative ELBO, a bound on -log p(x).
    seed : int
        Seed of the shuffling generator of the next training pass.
    """

    def __init__(self, module, *, beta=1.0, seed=0, **kwargs):
        super().__init__(module, criterion=torch.nn.Identity, **kwargs)
        self.beta = beta
        self.seed = seed

    def get_loss(self, y_pred, y_true, X=None, training=False):
        log_px, kl, log_det = y_pred
        beta = self.beta if training else 1.0
        return -(log_px - beta * kl + log_det).mean()

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
            dataset.X, indices, batch_size=self.batch_size, shuffle=training, generator=generator
        )

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """skorch's ``partial_fit``, but only ``StopTraining`` ends the loop quietly.

        skorch swallows every ``KeyboardInterrupt`` here, including the user's;
        this lets the user's interrupt propagate.
        """
        if not self.initialized_:
            self.initialize()
        self.notify("on_train_begin", X=X, y=y)
        try:
            self.fit_loop(X, y, **fit_params)
        except StopTraining:
            pass
        self.notify("on_train_end", X=X, y=y)
        return self


class StoppingRule(EarlyStopping):
    """skorch's ``EarlyStopping`` that records why it stopped and raises ``StopTraining``."""

    def on_train_begin(self, net, **kwargs):
        super().on_train_begin(net, **kwargs)
        self.stopped_ = False

    def on_epoch_end(self, net, **kwargs):
        try:
            super().on_epoch_end(net, **kwargs)
        except KeyboardInterrupt:
            # skorch's way of saying "patience ran out"; turn it into our own signal.
            self.stopped_ = True
            raise StopTraining from None
