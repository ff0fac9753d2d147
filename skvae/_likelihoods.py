"""Decoder likelihoods: a name maps to a builder of a torch Distribution.

Each builder takes the decoder's output, shaped ``(..., n_features,
n_params)`` with ``n_params`` outputs per feature, and returns an
``Independent`` distribution whose event is one row, so ``log_prob`` sums over
features and gives one number per row.
"""

from typing import Callable, NamedTuple

import torch.nn.functional as F
from torch.distributions import (
    Bernoulli,
    Categorical,
    ContinuousBernoulli,
    Independent,
    MixtureSameFamily,
    Normal,
)

# Lower bound on the Gaussian decoder's standard deviation, in the model's
# standardised units (user guide, "Choosing a likelihood"): without it the likelihood of a
# point the decoder reproduces exactly grows without bound.
MIN_SCALE = 1e-3


def _gaussian(params, raw_scale):
    scale = F.softplus(raw_scale) + MIN_SCALE
    return Independent(Normal(params[..., 0], scale, validate_args=False), 1)


def _gaussian_mixture(params, raw_scale=None):
    # Per feature: mixture logits, means and raw scales of the components,
    # each of shape (..., n_features, n_mixture_components).
    logits, loc, raw = params.unflatten(-1, (3, -1)).unbind(-2)
    scale = F.softplus(raw) + MIN_SCALE
    mixture = MixtureSameFamily(
        Categorical(logits=logits, validate_args=False),
        Normal(loc, scale, validate_args=False),
        validate_args=False,
    )
    return Independent(mixture, 1)


def _bernoulli(params, raw_scale=None):
    return Independent(Bernoulli(logits=params[..., 0], validate_args=False), 1)


def _continuous_bernoulli(params, raw_scale=None):
    return Independent(ContinuousBernoulli(logits=params[..., 0], validate_args=False), 1)


def _one(n_mixture_components):
    return 1


def _three_per_component(n_mixture_components):
    # Logit, mean and raw scale of each component.
    return 3 * n_mixture_components


class Likelihood(NamedTuple):
    """How to turn decoder output into p(y|z), and the support it needs."""

    build: Callable
    n_params: Callable  # n_mixture_components -> decoder outputs per feature
    has_scale: bool  # a learned per-feature scale, shared by all rows
    support: str  # "real", "binary" or "unit_interval"


LIKELIHOODS = {
    "gaussian": Likelihood(_gaussian, _one, has_scale=True, support="real"),
    "gaussian_mixture": Likelihood(
        _gaussian_mixture, _three_per_component, has_scale=False, support="real"
    ),
    "bernoulli": Likelihood(_bernoulli, _one, has_scale=False, support="binary"),
    "continuous_bernoulli": Likelihood(
        _continuous_bernoulli, _one, has_scale=False, support="unit_interval"
    ),
}
