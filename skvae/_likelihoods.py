"""Decoder likelihoods: a name maps to a builder of a torch Distribution.

Each builder takes the decoder's output, shaped ``(..., n_features,
n_params)`` with ``n_params`` outputs per feature, and returns an
``Independent`` distribution whose event is one row, so ``log_prob`` sums over
features and gives one number per row.
"""

import math
from typing import Callable, NamedTuple

import torch
from torch.distributions import (
    Bernoulli,
    Categorical,
    ContinuousBernoulli,
    Distribution,
    Independent,
    MixtureSameFamily,
    Normal,
)
from torch.distributions.utils import lazy_property

from ._elementwise import logaddexp, softplus

# Lower bound on the Gaussian decoder's standard deviation, in the model's
# standardised units (user guide, "Choosing a likelihood"): without it the likelihood of a
# point the decoder reproduces exactly grows without bound.
MIN_SCALE = 1e-3


def _gaussian(params, raw_scale):
    scale = softplus(raw_scale) + MIN_SCALE
    return Independent(Normal(params[..., 0], scale, validate_args=False), 1)


def _gaussian_mixture(params, raw_scale=None):
    # Per feature: mixture logits, means and raw scales of the components,
    # each of shape (..., n_features, n_mixture_components).
    logits, loc, raw = params.unflatten(-1, (3, -1)).unbind(-2)
    scale = softplus(raw) + MIN_SCALE
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
    # Whether log p(y|z) comes out the same to the last bit at any torch
    # thread count (torch's ContinuousBernoulli uses kernels that do not).
    same_bits_any_threads: bool = True


LIKELIHOODS = {
    "gaussian": Likelihood(_gaussian, _one, has_scale=True, support="real"),
    "gaussian_mixture": Likelihood(
        _gaussian_mixture, _three_per_component, has_scale=False, support="real"
    ),
    "bernoulli": Likelihood(_bernoulli, _one, has_scale=False, support="binary"),
    "continuous_bernoulli": Likelihood(
        _continuous_bernoulli, _one, has_scale=False, support="unit_interval", same_bits_any_threads=False
    ),
}


# Below this width (in units of a component's standard deviation) an integer's
# interval gets the midpoint rule, density times width, whose relative error
# is about width^2 (a^2 - 1) / 24 (under 1e-4 within 6 SDs); above it the
# difference of the two CDFs keeps its digits in float32.
_MIDPOINT_WIDTH = 1e-2


def log_interval_mass(loc, scale, low, log_width):
    """log P(low < Y < low + width) for Y ~ N(loc, scale), in loc's dtype, stable in both tails.

    The interval is reflected into the lower tail, where ``log_ndtr`` keeps
    its digits: log(Phi(b) - Phi(a)) = log Phi(b) + log(1 - exp(log Phi(a) - log Phi(b))).
    Its width comes as ``log_width`` (exact where the ends themselves round
    together), so b - a is exact to the last digit; a narrow interval gets
    the density at its middle times its width.
    """
    dtype = loc.dtype
    a = (low.to(dtype) - loc) / scale
    log_w = log_width.to(dtype) - torch.log(scale)
    b = a + log_w.exp()
    upper = a > 0
    a, b = torch.where(upper, -b, a), torch.where(upper, -a, b)
    log_b, log_a = torch.special.log_ndtr(b), torch.special.log_ndtr(a)
    tiny = torch.finfo(dtype).tiny
    by_cdf = log_b + torch.log((-torch.expm1(log_a - log_b)).clamp(min=tiny))
    middle = (a + b) / 2
    by_midpoint = -0.5 * middle**2 - 0.5 * math.log(2 * math.pi) + log_w
    return torch.where(log_w < math.log(_MIDPOINT_WIDTH), by_midpoint, by_cdf)


class TableRows(Distribution):
    """p(y|z) of rows of a mixed table, entry by entry (wrap it in ``Independent``).

    Model-space rows are ``[numeric | indicators]``: the numeric columns
    (real and integer) in model units, then one block of indicators per
    categorical column. ``log_prob`` gives one number per entry:

    - a real column: the numeric likelihood's log-density;
    - an integer column: the log-probability of its value k, a mass and no
      density: the numeric likelihood's probability of the interval
      (k - 1/2, k + 1/2) mapped to model space (``bins``), and for a column
      with frequent values (``TableLayout.spikes``) a mixture of that with
      a probability per frequent value:
      p(k) = pi_rest * P(interval of k) + pi_k [k frequent];
    - a block: each indicator times its level's log-probability, so that
      the block sums to log p(level) and a column's mask masks its block.

    Parameters
    ----------
    numeric : Distribution
        The numeric columns' likelihood, per entry (a ``Normal`` or a
        ``MixtureSameFamily`` of them), batch shape (..., n_numeric).
    logits : Tensor of shape (..., layout.n_logits)
        Unnormalised log-probabilities: every level of every block, then
        every frequent value (and the rest) of every integer column with
        frequent values.
    layout : TableLayout
    bins : Tensor of shape (n, n_integer, 3), or None when not scoring
        Per integer entry, its interval's lower end in model space, the index
        of its value among the frequent ones (-1 if none) and the log of the
        interval's width (``TableLayout.to_model``).
    """

    arg_constraints = {}

    def __init__(self, numeric, logits, layout, bins=None):
        self.numeric, self.logits, self.layout, self.bins = numeric, logits, layout, bins
        super().__init__(batch_shape=logits.shape[:-1] + (layout.width,), validate_args=False)

    @lazy_property
    def log_probs(self):
        """Each level's log-probability within its block, shape (..., n_indicators)."""
        return self.layout.levels.log_softmax(self.logits[..., : self.layout.n_indicators])

    @lazy_property
    def spike_log_probs(self):
        """Each frequent value's (and the rest's) log-probability within its block."""
        return self.layout.spikes.log_softmax(self.logits[..., self.layout.n_indicators :])

    def log_prob(self, value):
        layout = self.layout
        n_numeric = layout.n_numeric
        numeric = self.numeric.log_prob(value[..., :n_numeric])
        if layout.n_real_spiked:
            numeric = self._real_with_spikes(numeric, layout.real_spiked)
        if layout.n_integer:
            mass = self._integer_log_mass()
            numeric = numeric.index_copy(-1, layout.integer, mass)
        if not layout.n_indicators:
            return numeric
        return torch.cat([numeric, value[..., n_numeric:] * self.log_probs], dim=-1)

    def observed_log_prob(self, value, mask=None):
        """log p(y_obs|z) per row: ``log_prob(value)`` summed over the entries where ``mask`` holds.

        The same sum, one pass per column kind: the real columns' densities,
        the integer columns' masses, and the categorical levels'
        log-probabilities picked by their indicators.
        """
        layout = self.layout
        n_numeric = layout.n_numeric
        numeric_mask = None if mask is None else mask[..., :n_numeric]
        terms = []
        if layout.n_real:
            real = None if not layout.n_integer else layout.real_index  # None: every numeric column
            log_density = _columns(self.numeric, real).log_prob(_select(value[..., :n_numeric], real))
            if layout.n_real_spiked:
                log_density = self._real_with_spikes(log_density, layout.real_spiked_among_real)
            terms.append(_observed(log_density, numeric_mask, real).sum(-1))
        if layout.n_integer:
            terms.append(_observed(self._integer_log_mass(), numeric_mask, layout.integer).sum(-1))
        if layout.n_categorical:
            # A missing categorical entry has no indicator set, so it adds 0.
            terms.append((value[..., n_numeric:] * self.log_probs).sum(-1))
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return total

    def _integer_log_mass(self):
        """log P(k) of the integer columns, shape (..., n_integer)."""
        bins = self.bins[..., : self.layout.n_integer, :]
        low, log_width = bins[..., 0], bins[..., 2]
        numeric = _columns(self.numeric, None if not self.layout.n_real else self.layout.integer)
        if isinstance(numeric, MixtureSameFamily):
            normal = numeric.component_distribution
            per_component = log_interval_mass(normal.loc, normal.scale, low[..., None], log_width[..., None])
            mass = torch.logsumexp(numeric.mixture_distribution.logits.log_softmax(-1) + per_component, dim=-1)
        else:
            mass = log_interval_mass(numeric.loc, numeric.scale, low, log_width)
        if not self.layout.n_integer_spiked:
            return mass
        block = self.layout.spike_block
        rest, spike = self._spike_terms(block.clamp(min=0), bins[..., 1])
        return torch.where(block >= 0, logaddexp(rest + mass, spike), mass)

    def _real_with_spikes(self, log_density, at):
        """The real columns ``at`` of ``log_density`` with frequent values: log pi_v on a frequent value v, else log pi_rest + log f(x).

        A mass on the frequent values and a density elsewhere: the density of
        the column's law against counting measure on its frequent values plus
        Lebesgue measure (which gives those points no mass).
        """
        found = self.bins[..., self.layout.n_integer :, 1]
        rest, spike = self._spike_terms(self.layout.real_spike_block, found)
        mixed = torch.where(found >= 0, spike, rest + log_density.index_select(-1, at))
        batch = torch.broadcast_shapes(log_density.shape[:-1], mixed.shape[:-1])
        return log_density.expand(*batch, -1).index_copy(-1, at, mixed.expand(*batch, -1))

    def _spike_terms(self, block, found):
        """Per column of frequent-value ``block``: log pi_rest, and log pi of its value (``found``; -inf if none)."""
        spikes = self.layout.spikes
        log_probs = self.spike_log_probs
        rest = log_probs.index_select(-1, spikes.last[block])
        batch = torch.broadcast_shapes(log_probs.shape[:-1], found.shape[:-1])
        at = (spikes.offsets[block] + found.long().clamp(min=0)).expand(*batch, -1)
        spike = torch.where(found >= 0, log_probs.expand(*batch, -1).gather(-1, at), -torch.inf)
        return rest, spike

    @property
    def mean(self):
        """Model space: the numeric likelihood's mean (frequent values aside), then level probabilities."""
        if not self.layout.n_indicators:
            return self.numeric.mean
        return torch.cat([self.numeric.mean, self.log_probs.exp()], dim=-1)

    def data_means(self, numeric_mean):
        """E[x|z] in data space given the numeric likelihood's (``numeric_mean``), then level probabilities.

        An integer column with frequent values mixes its interval part's
        mean with its frequent values by their probabilities.
        """
        numeric_mean = numeric_mean.double()
        spikes = self.layout.spikes
        if spikes.n_blocks:
            flat = self.spike_log_probs.double().exp()
            rest = flat.index_select(-1, spikes.last)
            spiked = (spikes.view_padded(flat, 0.0) * self.layout.spike_table.nan_to_num(0.0)).sum(-1)
            columns = self.layout.spiked
            blended = rest * numeric_mean.index_select(-1, columns) + spiked
            numeric_mean = numeric_mean.index_copy(-1, columns, blended)
        if not self.layout.n_indicators:
            return numeric_mean
        return torch.cat([numeric_mean, self.log_probs.double().exp()], dim=-1)

    def draw(self, data_map, sample_shape=torch.Size(), generator=None, clip=False):
        """Table codes drawn from p(x|z), float64 of shape (*sample_shape, ..., n_columns); ``clip`` as ``DataMap.inverse``."""
        layout = self.layout
        numeric = data_map.inverse(draw_real(self.numeric, sample_shape, generator), clip=clip)
        spikes = layout.spikes
        if spikes.n_blocks:
            probs = self.spike_log_probs.exp().expand(*sample_shape, *self.spike_log_probs.shape)
            choice = spikes.draw(probs, generator)  # (..., n_spike_blocks); the last entry is the rest
            value = _pick(layout.spike_table, choice)  # NaN for the rest
            columns = layout.spiked
            current = numeric.index_select(-1, columns)
            numeric = numeric.index_copy(-1, columns, torch.where(torch.isnan(value), current, value))
        levels = None
        if layout.n_categorical:
            probs = self.log_probs.exp().expand(*sample_shape, *self.log_probs.shape)
            levels = layout.levels.one_hot(layout.levels.draw(probs, generator), numeric.dtype)
        return layout.to_codes(numeric, levels)


def _columns(numeric, index):
    """A Normal or a mixture of Normals (per entry) restricted to the columns ``index`` (all if None)."""
    if index is None:
        return numeric
    if isinstance(numeric, MixtureSameFamily):
        normal = numeric.component_distribution
        return MixtureSameFamily(
            Categorical(logits=numeric.mixture_distribution.logits.index_select(-2, index), validate_args=False),
            Normal(normal.loc.index_select(-2, index), normal.scale.index_select(-2, index), validate_args=False),
            validate_args=False,
        )
    return Normal(numeric.loc.index_select(-1, index), numeric.scale.index_select(-1, index), validate_args=False)


def _select(values, index):
    """The columns ``index`` of ``values`` (all of them if None)."""
    return values if index is None else values.index_select(-1, index)


def _observed(values, mask, index):
    """``values`` where the mask's columns ``index`` (all if None) hold, 0 elsewhere; ``values`` without a mask."""
    if mask is None:
        return values
    return torch.where(_select(mask, index), values, 0.0)


def _pick(table, choice):
    """``table[b, choice[..., b]]`` for every block b, shape of ``choice``."""
    blocks = torch.arange(table.shape[0], device=choice.device)
    return table[blocks, choice]


def draw_real(numeric, sample_shape=torch.Size(), generator=None):
    """Draws of the numeric likelihood (per entry), from ``generator`` when given."""
    if generator is None:
        return numeric.sample(sample_shape)
    if isinstance(numeric, (Bernoulli, ContinuousBernoulli)):
        probs = numeric.probs.expand(*sample_shape, *numeric.probs.shape)
        if isinstance(numeric, Bernoulli):
            return torch.bernoulli(probs, generator=generator)
        # The continuous Bernoulli: by its inverse CDF at a uniform draw.
        return numeric.icdf(torch.rand(probs.shape, generator=generator, device=probs.device, dtype=probs.dtype))
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
