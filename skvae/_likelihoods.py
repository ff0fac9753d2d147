"""Decoder likelihoods: a name maps to a builder of a torch Distribution.

Each builder takes the decoder's output, shaped ``(..., n_features,
n_params)`` with ``n_params`` outputs per feature, and returns an
``Independent`` distribution whose event is one row, so ``log_prob`` sums over
features and gives one number per row.
"""

import math
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch.distributions import (
    Bernoulli,
    Categorical,
    ContinuousBernoulli,
    Distribution,
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


# Below this width (in units of a component's standard deviation) an integer's
# interval gets the midpoint rule, density times width: the difference of two
# CDFs would lose its digits, and the rule's error is below 1e-12 relative.
_MIDPOINT_WIDTH = 1e-6


def log_interval_mass(loc, scale, low, high):
    """log P(low < Y < high) for Y ~ N(loc, scale), float64, stable in both tails.

    The interval is reflected into the lower tail, where ``log_ndtr`` keeps
    its digits: log(Phi(b) - Phi(a)) = log Phi(b) + log(1 - exp(log Phi(a) - log Phi(b))).
    """
    loc, scale = loc.double(), scale.double()
    a, b = (low - loc) / scale, (high - loc) / scale
    upper = a > 0
    a, b = torch.where(upper, -b, a), torch.where(upper, -a, b)
    log_b, log_a = torch.special.log_ndtr(b), torch.special.log_ndtr(a)
    tiny = torch.finfo(torch.float64).tiny
    by_cdf = log_b + torch.log((-torch.expm1(log_a - log_b)).clamp(min=tiny))
    middle = (a + b) / 2
    by_midpoint = -0.5 * middle**2 - 0.5 * math.log(2 * math.pi) + torch.log(b - a)
    return torch.where(b - a < _MIDPOINT_WIDTH, by_midpoint, by_cdf)


class TableRows(Distribution):
    """p(y|z) of rows of a mixed table, entry by entry (wrap it in ``Independent``).

    Model-space rows are ``[numeric | one-hot]``: the numeric columns (real
    and integer) in model units, then one block of indicators per
    categorical column. ``log_prob`` gives one number per entry: the
    numeric likelihood's log-density for real columns; for integer columns
    the log-probability of the integer's interval, from ``bins`` (the
    interval's ends (x - 1/2, x + 1/2) mapped to model space, float64 of
    shape (n, n_integer, 2)), a probability mass and no density; and for a
    block, each indicator times its level's log-probability, so that a
    block sums to log p(level) and the mask of a column masks its block.

    Parameters
    ----------
    numeric : Distribution
        The numeric columns' likelihood, per entry (a ``Normal`` or a
        ``MixtureSameFamily`` of them), batch shape (..., n_numeric).
    logits : Tensor of shape (..., n_indicators)
        Unnormalised log-probabilities of every level of every block.
    layout : TableLayout
    bins : Tensor of shape (n, n_integer, 2), or None when not scoring
    """

    arg_constraints = {}

    def __init__(self, numeric, logits, layout, bins=None):
        self.numeric, self.layout, self.bins = numeric, layout, bins
        self.log_probs = layout.block_log_softmax(logits)
        super().__init__(batch_shape=logits.shape[:-1] + (layout.width,), validate_args=False)

    def log_prob(self, value):
        layout = self.layout
        n_numeric = layout.n_numeric
        numeric = self.numeric.log_prob(value[..., :n_numeric])
        if layout.n_integer:
            mass = self._integer_log_mass().to(numeric.dtype)
            numeric = numeric.index_copy(-1, layout.integer, mass)
        return torch.cat([numeric, value[..., n_numeric:] * self.log_probs], dim=-1)

    def _integer_log_mass(self):
        """log P(integer) of the integer columns, float64 of shape (..., n_integer)."""
        low, high = self.bins[..., 0], self.bins[..., 1]
        index = self.layout.integer
        if isinstance(self.numeric, MixtureSameFamily):
            normal = self.numeric.component_distribution
            loc, scale = normal.loc.index_select(-2, index), normal.scale.index_select(-2, index)
            weights = self.numeric.mixture_distribution.logits.index_select(-2, index).double()
            per_component = log_interval_mass(loc, scale, low[..., None], high[..., None])
            return torch.logsumexp(weights.log_softmax(-1) + per_component, dim=-1)
        loc, scale = self.numeric.loc.index_select(-1, index), self.numeric.scale.index_select(-1, index)
        return log_interval_mass(loc, scale, low, high)

    @property
    def mean(self):
        """Per entry: the numeric columns' mean in model units, then every level's probability."""
        return torch.cat([self.numeric.mean, self.log_probs.exp()], dim=-1)

    def sample(self, sample_shape=torch.Size(), generator=None):
        """Rows in model space: numeric draws, and one indicator set per block."""
        with torch.no_grad():
            numeric = _draw(self.numeric, sample_shape, generator)
            probs = self.log_probs.exp().expand(*sample_shape, *self.log_probs.shape)
            levels = self.layout.draw_levels(probs, generator)
            return torch.cat([numeric, self.layout.indicators(levels, numeric.dtype)], dim=-1)


def _draw(numeric, sample_shape, generator):
    """Draws of a Normal or a mixture of Normals, from ``generator`` when given."""
    if generator is None:
        return numeric.sample(sample_shape)
    if isinstance(numeric, MixtureSameFamily):
        probs = numeric.mixture_distribution.probs.expand(*sample_shape, *numeric.mixture_distribution.probs.shape)
        c = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator).reshape(probs.shape[:-1])
        normal = numeric.component_distribution
        loc = normal.loc.expand(*sample_shape, *normal.loc.shape).gather(-1, c[..., None])[..., 0]
        scale = normal.scale.expand(*sample_shape, *normal.scale.shape).gather(-1, c[..., None])[..., 0]
    else:
        loc = numeric.loc.expand(*sample_shape, *numeric.loc.shape)
        scale = numeric.scale.expand_as(loc)
    return loc + scale * torch.randn(loc.shape, generator=generator, device=loc.device, dtype=loc.dtype)
