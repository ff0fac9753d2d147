"""Training data as whole-batch tensors: in-memory rows, model-space rows, streamed rows.

skorch's default loader collates rows one by one; here a batch is one slice
or index of a tensor. ``Rows`` reads a tensor or array a batch at a time;
``ModelSpaceRows`` holds in-memory data mapped to the module's model space
once per fit; ``StreamedRows`` reads a memory-mapped array in contiguous
blocks and maps a shuffled window at a time, so the array is never loaded
whole. ``BatchIterator`` yields a pass over any of them, shuffled by a seeded
generator, as the net's ``get_iterator`` returns it.
"""

import math

import numpy as np
import torch

from ._arrays import rows_as_tensor


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


class StreamedRows(Rows):
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
        super().__init__(X)
        self.module, self.missing = module, missing
        self.block_rows, self.window_rows = block_rows, window_rows

    def __getitem__(self, index):
        return self._model_space(super().__getitem__(index))

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
