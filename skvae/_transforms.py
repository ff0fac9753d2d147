"""Maps between data space x and the model's space y, one mechanism for every Jacobian.

Every map is elementwise and invertible, written as a ``torch.distributions``
``Transform`` from model space to data space (the direction in which a
distribution over y is pushed forward to one over x). ``DataMap`` chains them
and gives y = f(x) with log |dy/dx| per row, the term that turns a density of
y into a density of x (user guide, "What score_samples measures"):

    log p_X(x) = log p_Y(f(x)) + log |det df/dx|
"""

import torch
from torch import nn
from torch.distributions import constraints
from torch.distributions.transforms import (
    AffineTransform,
    ComposeTransform,
    SigmoidTransform,
    Transform,
)

from ._elementwise import log1p, sigmoid, softplus


class _Sigmoid(SigmoidTransform):
    """``SigmoidTransform`` whose results do not depend on torch's thread count (see ``_elementwise``)."""

    def _call(self, x):
        finfo = torch.finfo(x.dtype)
        return sigmoid(x).clamp(min=finfo.tiny, max=1.0 - finfo.eps)

    def _inverse(self, y):
        finfo = torch.finfo(y.dtype)
        y = y.clamp(min=finfo.tiny, max=1.0 - finfo.eps)
        return y.log() - log1p(-y)

    def log_abs_det_jacobian(self, x, y):
        return -softplus(-x) - softplus(x)


class YeoJohnsonTransform(Transform):
    r"""The Yeo-Johnson power map (Yeo and Johnson, 2000), continued along its tangent.

    Inside ``[low, high]`` it is Yeo-Johnson's map with exponent ``lambdas``
    (per feature, broadcast over rows), the form ``scipy.stats.yeojohnson``
    computes; beyond, the tangent line at the nearer end, so that values far
    outside the range the exponent was fitted on are neither pushed
    polynomially farther nor pulled in. Monotone increasing and smooth.

    Parameters
    ----------
    lambdas, low, high : Tensor of shape (n_features,)
        Exponents, and the range with ``low <= 0 <= high`` in practice
        (any ``low <= high`` is valid).
    clip : bool, default=False
        Hold the inverse at the ends of ``[low, high]`` instead of following
        the tangent lines. With a strongly negative exponent (a long right
        tail: -7.7 on a column of the fault data) the tangent at ``high`` is
        nearly flat, so a little model-side mass past ``f(high)`` lands
        1e11 units beyond the data; means and imputed values are taken of the
        clipped value (the forward map and the density are unchanged).
    """

    domain = constraints.real
    codomain = constraints.real
    bijective = True
    sign = +1

    def __init__(self, lambdas, low, high, cache_size=0, clip=False):
        super().__init__(cache_size=cache_size)
        self.lambdas, self.low, self.high, self.clip = lambdas, low, high, clip

    def __eq__(self, other):
        return self is other

    def _call(self, u):
        c = torch.minimum(torch.maximum(u, self.low), self.high)
        return _yeo_johnson(c, self.lambdas) + self._log_slope(c).exp() * (u - c)

    def _inverse(self, y):
        low_y, high_y = (_yeo_johnson(end, self.lambdas) for end in (self.low, self.high))
        inside = _yeo_johnson(torch.minimum(torch.maximum(y, low_y), high_y), self.lambdas, inverse=True)
        if self.clip:
            # Clamped again: near a flat end the inverse of f(high) itself rounds to inf.
            return torch.minimum(torch.maximum(inside, self.low), self.high)
        # The tails are lines through the ends: u = c + (y - f(c)) / f'(c).
        below = self.low + (y - low_y) / self._log_slope(self.low).exp()
        above = self.high + (y - high_y) / self._log_slope(self.high).exp()
        return torch.where(y < low_y, below, torch.where(y > high_y, above, inside))

    def log_abs_det_jacobian(self, u, y):
        c = torch.minimum(torch.maximum(u, self.low), self.high)
        return self._log_slope(c)

    def _log_slope(self, c):
        # d/du of Yeo-Johnson: (1 + u)^(lambda - 1) for u >= 0, (1 - u)^(1 - lambda) below.
        exponent = torch.where(c >= 0, self.lambdas - 1, 1 - self.lambdas)
        return exponent * log1p(c.abs())


def _yeo_johnson(u, lambdas, *, inverse=False):
    """Yeo-Johnson's map (or its inverse), in the numerically stable form of ``scipy.stats.yeojohnson``.

    Below 0 it is the map above 0 turned about the origin, with 2 - lambda:
    psi(u, lambda) = -psi(-u, 2 - lambda); the inverse likewise (its value
    is >= 0 exactly where u >= 0).
    """
    half = _power_1p_inverse if inverse else _power_1p
    lambdas = torch.broadcast_to(lambdas, u.shape)
    return torch.where(u >= 0, half(u.clamp(min=0), lambdas), -half(-u.clamp(max=0), 2 - lambdas))


def _power_1p(v, lambdas):
    """((1 + v)^lambda - 1) / lambda for v >= 0, log(1 + v) where lambda is 0."""
    at_zero = lambdas.abs() < torch.finfo(v.dtype).eps
    return torch.where(at_zero, log1p(v), torch.expm1(lambdas * log1p(v)) / lambdas)


def _power_1p_inverse(w, lambdas):
    """The inverse of ``_power_1p``: (1 + lambda w)^(1 / lambda) - 1, exp(w) - 1 where lambda is 0."""
    at_zero = lambdas.abs() < torch.finfo(w.dtype).eps
    return torch.where(at_zero, torch.expm1(w), torch.expm1(log1p(lambdas * w) / lambdas))


# Each step of a data map: its buffers, and the Transforms that undo it (model
# side to data side) built from them and ``clip`` (see ``DataMap.inverse``). Steps
# are listed from the data side: x -> step 0 -> step 1 ... -> y, so the chain
# y -> x runs through them backwards.
STEPS = {
    # x -> (x - loc) / scale
    "standardise": (("loc", "scale"), lambda b, clip: [AffineTransform(b["loc"], b["scale"])]),
    # x -> logit((x - low) / (high - low))
    "bounds": (
        ("low", "high"),
        lambda b, clip: [_Sigmoid(), AffineTransform(b["low"], b["high"] - b["low"])],
    ),
    # u -> Yeo-Johnson(u), tangent lines beyond [low, high]
    "yeo_johnson": (
        ("lambdas", "low", "high"),
        lambda b, clip: [YeoJohnsonTransform(b["lambdas"], b["low"], b["high"], clip=clip).inv],
    ),
}


class DataMap(nn.Module):
    """A chain of elementwise steps from data space to model space, with its buffers.

    Parameters
    ----------
    steps : list of (kind, dict or None)
        From the data side, each a key of ``STEPS`` and its arrays of shape
        (n_features,) by name; None gives placeholders of that shape, to be
        filled by ``load_state_dict`` (a model read from a file).
    n_features : int
    """

    def __init__(self, steps, n_features):
        super().__init__()
        self.kinds = [kind for kind, _ in steps]
        for i, (kind, arrays) in enumerate(steps):
            for name in STEPS[kind][0]:
                value = torch.zeros(n_features) if arrays is None else arrays[name]
                self.register_buffer(f"step{i}_{name}", torch.as_tensor(value, dtype=torch.float64))

    def config(self):
        """The steps without their arrays (JSON-ready), to rebuild the map."""
        return [[kind, None] for kind in self.kinds]

    def bounds(self):
        """The (low, high) arrays of a "bounds" step, or (None, None)."""
        if "bounds" not in self.kinds:
            return None, None
        i = self.kinds.index("bounds")
        return tuple(getattr(self, f"step{i}_{name}").cpu().numpy() for name in ("low", "high"))

    def check(self):
        """Raise ValueError unless every array is finite, scales positive and ranges ordered."""
        for i, kind in enumerate(self.kinds):
            arrays = {name: getattr(self, f"step{i}_{name}") for name in STEPS[kind][0]}
            valid = all(torch.isfinite(a).all() for a in arrays.values())
            if kind == "standardise":
                valid = valid and bool((arrays["scale"] > 0).all())
            elif kind == "bounds":
                valid = valid and bool((arrays["low"] < arrays["high"]).all())
            else:
                valid = valid and bool((arrays["low"] <= arrays["high"]).all())
            if not valid:
                raise ValueError(
                    f"The data map's step {i} ({kind!r}) has invalid arrays: they must be finite, "
                    "with positive scales and low below high."
                )

    def transform(self, clip=False):
        """The map y -> x as one ``Transform`` (see ``inverse`` for ``clip``), or None for the identity."""
        if not self.kinds:
            return None
        parts = []
        for i, kind in enumerate(self.kinds):
            names, build = STEPS[kind]
            # From the model side: the last data-side step first.
            parts = build({name: getattr(self, f"step{i}_{name}") for name in names}, clip) + parts
        return ComposeTransform(parts)

    def forward(self, x, mask=None):
        """y = f(x) (float64) and log |dy/dx| per row over the entries where ``mask`` holds."""
        transform = self.transform()
        if transform is None:
            return x, x.new_zeros(x.shape[:-1], dtype=torch.float64)
        # float64 keeps logit((x - low) / (high - low)) finite for x a few ulps
        # inside the bounds, and the Jacobian exact.
        x = x.to(torch.float64)
        y = transform.inv(x)
        return y, -_sum_entries(_log_abs_det_parts(transform, y, x), mask)

    def log_slopes(self, x):
        """log |dy/dx| of each entry of x (float64), the map's local stretch."""
        transform = self.transform()
        x = x.to(torch.float64)
        if transform is None:
            return torch.zeros_like(x)
        return -sum(_log_abs_det_parts(transform, transform.inv(x), x))

    def inverse(self, y, clip=False):
        """x = f^-1(y), float64.

        With ``clip``, a power step holds its values within the range it was
        fitted on (the training data's), where its tangent lines would carry
        them far beyond (``YeoJohnsonTransform``); for the values a model
        hands back: means, imputations, reconstructions.
        """
        transform = self.transform(clip)
        y = y.to(torch.float64)
        return y if transform is None else transform(y)


def _log_abs_det_parts(transform, y, x):
    """log |dx/dy| of each part of a ``ComposeTransform``, entry by entry, in the order of its parts."""
    ys = [y]
    for part in transform.parts[:-1]:
        ys.append(part(ys[-1]))
    ys.append(x)
    return [part.log_abs_det_jacobian(a, b).expand_as(a) for part, a, b in zip(transform.parts, ys[:-1], ys[1:])]


def _sum_entries(terms, mask):
    """Per row: the sum over parts of each part's sum over features (entries in ``mask`` only)."""
    total = None
    for term in terms:
        if mask is not None:
            term = torch.where(mask, term, 0.0)
        total = term.sum(-1) if total is None else total + term.sum(-1)
    return total
