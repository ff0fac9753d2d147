"""Elementwise functions that give the same bits at any number of torch threads.

Torch splits a large elementwise operation among its threads, and in some of
its kernels (``softplus``, ``log1p``, ``sigmoid``, ``elu``, ``logaddexp``
in torch 2.13) the elements at the end of each thread's share take a scalar code path
whose rounding differs from the vectorised one. The result of a row then
depends on the thread count, which skvae changes when a machine is busy
(``_threads``). These forms are built from operations whose result does not
depend on the split (arithmetic, ``exp``, ``expm1``, ``log``), and are as
accurate to a few units in the last place (ELU near 0: to a unit of 1, see
``elu``). ``tests/test_threads.py`` checks that scores come out the same to
the last bit with 1, 2 and 3 threads.

They apply to tensors that autograd does not track, that is at inference.
Training keeps torch's fused kernels, whose backward passes are faster (the
separate operations made a fit of the digits 18% slower): a fit's bits depend
on the thread count anyway, through the order in which a matrix product of a
small layer is summed.
"""

import torch
import torch.nn.functional as F


def softplus(x):
    """log(1 + exp(x)), without overflow; its gradient is the logistic function of x."""
    if x.requires_grad:
        return F.softplus(x)
    return x.clamp(min=0) + log1p(torch.exp(-x.abs()))


def sigmoid(x):
    """The logistic function 1 / (1 + exp(-x)), without overflow in value or gradient."""
    if x.requires_grad:
        return torch.sigmoid(x)
    e = torch.exp(-x.abs())
    return torch.where(x >= 0, 1 / (1 + e), e / (1 + e))


def elu(x):
    """ELU with alpha = 1: x for x > 0, exp(x) - 1 below.

    ``exp(x) - 1`` rather than ``expm1``: torch's vectorised ``expm1`` costs
    7 times ``exp`` on the CPU (scoring the digits took 13% longer). The two
    differ by at most a unit of 1 in the working precision (6e-8 in float32)
    near x = 0, below the rounding of the next layer's sums.
    """
    if x.requires_grad:
        return F.elu(x)
    return torch.exp(x.clamp(max=0)) - 1 + x.clamp(min=0)


def silu(x):
    """x times the logistic function of x."""
    if x.requires_grad:
        return F.silu(x)
    return x * sigmoid(x)


def log1p(u):
    """log(1 + u) accurate for small u (Goldberg's correction of the rounding of 1 + u)."""
    if u.requires_grad:
        return torch.log1p(u)
    w = 1 + u
    # Where w rounds to 1, log(1 + u) = u to working precision; elsewhere
    # log(w) * u / (w - 1) cancels the rounding error of w.
    exact = (w == 1) | torch.isinf(w)
    return torch.where(exact, torch.where(w == 1, u, w), torch.log(w) * (u / torch.where(exact, torch.ones_like(w), w - 1)))


def logaddexp(a, b):
    """log(exp(a) + exp(b)) elementwise, exact where either is -inf."""
    if a.requires_grad or b.requires_grad:
        return torch.logaddexp(a, b)
    return torch.logsumexp(torch.stack(torch.broadcast_tensors(a, b)), dim=0)
