"""The numpy <-> torch boundary: any array a user can make, read as tensors in row blocks."""

import mmap

import numpy as np
import torch

# Elements of the float64 blocks in which checks and statistics stream through
# X (2 MB), so that a memory-mapped X is never loaded whole.
STREAM_ELEMENTS = 2**18


def rows_as_tensor(block):
    """A torch view of a block of rows; copied unless C-contiguous and writable.

    torch views neither read-only arrays (a memmap opened with mode "r") nor
    arrays with a negative stride (``X[::-1]``). Other layouts (Fortran order,
    stepped or column-sliced views) are copied too: torch would keep their
    strides through the data map, and matrix products of other layouts may
    round differently, so a row's result would depend on how its array was
    laid out. Blocks are small, so the copy is cheap.
    """
    if isinstance(block, torch.Tensor):
        return block
    block = np.asarray(block)
    if not (block.flags.c_contiguous and block.flags.writeable):
        block = np.array(block, order="C")
    return torch.from_numpy(block)


def row_blocks(X, *, dtype=None):
    """Consecutive row blocks of X of about ``STREAM_ELEMENTS`` elements each."""
    rows = max(1, STREAM_ELEMENTS // max(1, X.shape[1]))
    for start in range(0, len(X), rows):
        yield np.asarray(X[start : start + rows], dtype=dtype)


def is_memory_mapped(X):
    """Whether X is a np.memmap or a view of one (read from disk, not held in memory)."""
    while X is not None:
        if isinstance(X, (np.memmap, mmap.mmap)):
            return True
        X = getattr(X, "base", None)
    return False
