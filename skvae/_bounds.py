"""Variational bounds on log p(x): pure functions of tensors and distributions.

The user guide's page "What score_samples measures" states the bounds and
what they estimate.
Shapes: ``(n_importance_samples, n_samples)`` for per-draw quantities,
``(n_samples,)`` for bounds.
"""

import math

import torch

from ._elementwise import logaddexp


def observed_log_prob(px, y, mask=None):
    """log p(y_obs|z) per row: the sum of the entries' log-probabilities where ``mask`` holds.

    ``px`` is an ``Independent`` distribution over rows of a factorised
    decoder, so the observed entries' likelihood is exact. Without a mask,
    every entry counts. A likelihood with its own ``observed_log_prob``
    (a mixed table's) computes the sum itself.
    """
    own = getattr(px.base_dist, "observed_log_prob", None)
    if own is not None:
        return own(y, mask)
    if mask is None:
        return px.log_prob(y)
    return torch.where(mask, px.base_dist.log_prob(y), 0.0).sum(-1)


def log_importance_weights(y, z, *, qz, pz, px, mask=None):
    """log w = log p(y_obs|z) + log p(z) - log q(z|y), shape of ``z`` minus its last axis."""
    return observed_log_prob(px, y, mask) + pz.log_prob(z) - qz.log_prob(z)


def iwae_bound(log_w, dim=0):
    """IWAE_K = log (1/K) sum_k w_k (Burda et al. 2015, eq. 8), via logsumexp."""
    return torch.logsumexp(log_w, dim=dim) - math.log(log_w.shape[dim])


def elbo(log_px, kl, beta=1.0):
    """ELBO form 1: E_q[log p(y|z)] - beta * KL(q(z|y) || p(z)), per row."""
    return log_px - beta * kl


def chunked_bound(log_w_chunks, *, n_draws, bound="iwae", kl=None):
    """Combine per-chunk log-weights into IWAE_K or the ELBO without holding all K draws.

    Parameters
    ----------
    log_w_chunks : iterable of Tensor of shape (k_i, n_samples)
        For ``bound="iwae"`` the log importance weights of ``k_i`` draws; for
        ``bound="elbo"`` the reconstruction terms log p(y|z_k).
    n_draws : int
        K, the total number of draws over all chunks.
    bound : {"iwae", "elbo"}
        Which estimate to return.
    kl : Tensor of shape (n_samples,), default=None
        The analytic KL(q(z|y) || p(z)); required for ``bound="elbo"``.

    Returns
    -------
    Tensor of shape (n_samples,)
    """
    total = None
    for chunk in log_w_chunks:
        # Reduce each row's draws contiguously: a reduction over the outer
        # axis takes another code path for the last n_samples % 32 rows, so a
        # row's value would depend on its place in the batch. In float64, so
        # that the chunking of the draws changes the sum by far less than a
        # float32 rounding.
        chunk = chunk.T.to(torch.float64).contiguous()
        if bound == "iwae":
            # A running logsumexp: log(a + b) = logaddexp(log a, log b), exact.
            part = torch.logsumexp(chunk, dim=1)
            total = part if total is None else logaddexp(total, part)
        else:
            part = chunk.sum(dim=1)
            total = part if total is None else total + part
    if bound == "iwae":
        return total - math.log(n_draws)
    return elbo(total / n_draws, kl)
