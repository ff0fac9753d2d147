"""The bound functions against closed forms and against each other."""

import math

import pytest
import torch
from torch.distributions import Independent, Normal, kl_divergence

from skvae._bounds import chunked_bound, elbo, iwae_bound, log_importance_weights


def test_gaussian_kl_matches_closed_form():
    gen = torch.Generator().manual_seed(0)
    loc = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    scale = torch.rand(5, 3, generator=gen, dtype=torch.float64) + 0.1
    qz = Independent(Normal(loc, scale), 1)
    pz = Independent(Normal(torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)), 1)
    closed = 0.5 * (loc**2 + scale**2 - torch.log(scale**2) - 1).sum(-1)
    torch.testing.assert_close(kl_divergence(qz, pz), closed)


def test_iwae_with_one_draw_is_the_log_weight_and_grows_with_draws():
    log_w = torch.tensor([[-3.0, 0.5], [-1.0, 0.2], [-2.0, 2.0]])
    torch.testing.assert_close(iwae_bound(log_w[:1]), log_w[0])
    expected = torch.log(torch.exp(log_w).mean(0))
    torch.testing.assert_close(iwae_bound(log_w), expected)
    # Jensen: log mean w >= mean log w.
    assert torch.all(iwae_bound(log_w) >= log_w.mean(0))


def test_chunked_bound_equals_the_unchunked_bound():
    log_w = torch.randn(100, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 30
    whole = iwae_bound(log_w)
    chunked = chunked_bound(log_w.split(13), n_draws=100, bound="iwae")
    torch.testing.assert_close(chunked, whole)
    kl = torch.rand(7, dtype=torch.float64)
    chunked_elbo = chunked_bound(log_w.split(9), n_draws=100, bound="elbo", kl=kl)
    torch.testing.assert_close(chunked_elbo, elbo(log_w.mean(0), kl))


def test_log_weights_of_the_exact_posterior_are_constant():
    # Model: z ~ N(0, 1), y | z ~ N(z, 1). Then p(y) = N(0, 2) and the posterior
    # is N(y / 2, 1 / 2); with q equal to it, every log weight equals log p(y).
    y = torch.tensor([[0.3], [-1.2]], dtype=torch.float64)
    qz = Independent(Normal(y / 2, torch.full_like(y, math.sqrt(0.5))), 1)
    z = qz.sample((50,))
    pz = Independent(Normal(torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)), 1)
    px = Independent(Normal(z, torch.ones_like(z)), 1)
    log_w = log_importance_weights(y, z, qz=qz, pz=pz, px=px)
    exact = Normal(0.0, math.sqrt(2.0)).log_prob(y[:, 0].float()).double()
    torch.testing.assert_close(log_w, exact.expand(50, 2), atol=1e-6, rtol=0)
    assert iwae_bound(log_w) == pytest.approx(exact, abs=1e-6)
