"""Decoder likelihoods: a name maps to a builder of a torch Distribution.

Each builder takes the decoder's output for ``n_features`` features and returns
an ``Independent`` distribution whose event is one row, so ``log_prob`` sums over
features and gives one number per row.
"""

from typing import Callable, NamedTuple

import torch.nn.functional as F
from torch.distributions import Bernoulli, ContinuousBernoulli, Independent, Normal

# Lower bound on the Gaussian decoder's standard deviation, in the model's
# standardised units (THEORY.md, "Model"): without it the likelihood of a
# point the decoder reproduces exactly grows without bound.
MIN_SCALE = 1e-3


def _gaussian(loc, raw_scale):
    scale = F.softplus(raw_scale) + MIN_SCALE
    return Independent(Normal(loc, scale, validate_args=False), 1)


def _bernoulli(logits, raw_scale=None):
    return Independent(Bernoulli(logits=logits, validate_args=False), 1)


def _continuous_bernoulli(logits, raw_scale=None):
    return Independent(ContinuousBernoulli(logits=logits, validate_args=False), 1)


class Likelihood(NamedTuple):
    """How to turn decoder output into p(y|z), and the support it needs."""

    build: Callable
    has_scale: bool
    support: str  # "real", "binary" or "unit_interval"


LIKELIHOODS = {
    "gaussian": Likelihood(_gaussian, has_scale=True, support="real"),
    "bernoulli": Likelihood(_bernoulli, has_scale=False, support="binary"),
    "continuous_bernoulli": Likelihood(
        _continuous_bernoulli, has_scale=False, support="unit_interval"
    ),
}
