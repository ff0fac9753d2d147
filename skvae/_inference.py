"""Inference with a fitted module, in row chunks: log p(x), posterior and decoder means, samples.

Rows (and importance draws) are chunked so that the largest activation
tensor holds about ``CHUNK_ELEMENTS`` elements: memory stays bounded for any
number of rows and draws, and chunks that stay in cache score about 1.5x
faster than 64 MB ones on CPU (``benchmarks/bench_speed.py``).
"""

import numpy as np
import torch
from torch.distributions import Independent, MixtureSameFamily

from ._arrays import rows_as_tensor
from ._bounds import log_importance_weights
from ._threads import threads_for_chunks
from ._torch_utils import seeded_torch

# Elements of the largest activation tensor inference builds at once (4 MB in float32).
CHUNK_ELEMENTS = 2**20
# BLAS computes the rows of a matrix product in tiles and may round the rows
# of a last, partial tile differently; padding every inference chunk to a
# multiple of this many rows puts every row in a full tile, so that a row's
# result does not depend on the rows computed with it, to the last bit.
TILE_ROWS = 16
# Gauss-Hermite nodes for means through a nonlinear data map (exact for
# polynomials of degree 2 * 20 - 1 in the standardised Gaussian).
_GH_NODES = 20


def log_marginal(module, X, *, n_draws, seed, bound, device, kl_penalty=0.0):
    """IWAE_K (``bound='iwae'``) or ELBO estimate of log p(x) per row of X, float64 of shape (n,).

    The K = ``n_draws`` standard normal draws come from ``seed`` and are shared
    by every row (common random numbers), so a row's score depends neither on
    the other rows scored with it nor on the chunking. ``kl_penalty``: see
    ``VAEModule.log_marginal``.
    """
    eps, refine_eps = _draws(module, n_draws, seed)
    width = _widest_layer(module)
    rows = _chunk_rows(CHUNK_ELEMENTS // (n_draws * width))
    k_chunk = max(1, CHUNK_ELEMENTS // (rows * width))
    scores = _map_rows(
        lambda x: module.log_marginal(
            x, eps, bound=bound, k_chunk=k_chunk, refine_eps=refine_eps, kl_penalty=kl_penalty
        ),
        X, rows, module, device,
    )
    return scores.astype(np.float64)


def column_log_marginals(module, X, *, n_draws, seed, bound, device):
    """Each row's log p(x_obs) and its drops when one column is hidden, from the row's own proposal.

    X is a float ndarray of validated rows. Returns arrays of shapes (n,) and (n, n_features): the estimate of
    ``log_marginal`` (the same draws), and log p(x_obs) - log p(x_obs
    without x_j), NaN where x_j is missing (``VAEModule.column_log_marginals``).
    """
    eps, refine_eps = _draws(module, n_draws, seed)
    n_features = X.shape[1]
    width = max(_widest_layer(module), n_features + 1)
    rows = _chunk_rows(CHUNK_ELEMENTS // (n_draws * width))
    k_chunk = max(1, CHUNK_ELEMENTS // (rows * width))
    scores = _map_rows(
        lambda x: module.column_log_marginals(x, eps, bound=bound, k_chunk=k_chunk, refine_eps=refine_eps),
        X, rows, module, device,
    ).astype(np.float64)
    full = scores[:, 0]
    drops = full[:, None] - scores[:, 1:]
    drops[np.isnan(X)] = np.nan
    return full, drops


def _draws(module, n_draws, seed):
    """K standard normal draws for a bound or an imputation, and K others that refine its proposal."""
    generator = torch.Generator().manual_seed(seed)
    eps = torch.randn(n_draws, module.n_components, generator=generator)
    return eps, torch.randn(n_draws, module.n_components, generator=generator)


def posterior_mean(module, X, *, device):
    """E[z | x] under the encoder, shape (n_samples, n_components)."""
    rows = _chunk_rows(CHUNK_ELEMENTS // _widest_layer(module))

    def encode(x):
        rows = module.preprocess(x)
        return module.encode(rows.y, rows.mask, capped=True).mean

    Z = _map_rows(encode, X, rows, module, device)
    return Z.reshape(len(X), module.n_components)


def used_components(module, X, *, device, min_variance):
    """How many latent dimensions the encoder uses on X: those whose E[z | x]
    varies over the rows by a variance above ``min_variance`` (at least 1).

    A dimension the data do not need collapses onto the prior: q(z|x) is
    N(0, 1) for every row, so its mean does not vary.
    """
    Z = posterior_mean(module, X, device=device).astype(np.float64)
    return max(1, int((Z.var(axis=0) > min_variance).sum()))


def decoder_mean(module, Z, *, device):
    """The mean of p(x|z) mapped to data space, float64 of shape (n_samples, n_features)."""
    rows = _chunk_rows(CHUNK_ELEMENTS // _widest_layer(module))
    X = _map_rows(lambda z: _codes(module, _data_means(module, module.decode(z.to(torch.float32)))), Z, rows, module, device)
    return X.reshape(len(Z), module.arguments["n_features"])


def _data_means(module, px):
    """E[x|z] of the numeric columns in data space, then the categorical levels' probabilities."""
    table = px.base_dist
    return table.data_means(data_space_mean(Independent(table.numeric, 1), module.data_map))


def _codes(module, means):
    """Codes from ``_data_means`` (or their average): integers rounded, the most probable levels."""
    n_numeric = module.layout.n_numeric
    return module.layout.to_codes(means[..., :n_numeric], means[..., n_numeric:])


def sample(module, n_samples, *, seed, device):
    """``n_samples`` rows drawn from the model in data space: z ~ p(z), then x ~ p(x|z)."""
    rows = _chunk_rows(CHUNK_ELEMENTS // _widest_layer(module))
    out = []
    with seeded_torch(seed, device), torch.inference_mode():
        for start in range(0, n_samples, rows):
            z = module.prior().sample((min(rows, n_samples - start),))
            out.append(module.decode(z).base_dist.draw(module.data_map).cpu())
    return torch.cat(out).numpy()


def _chunk_rows(rows):
    """``rows`` rounded down to a whole number of tiles, at least one."""
    return max(TILE_ROWS, rows // TILE_ROWS * TILE_ROWS)


def _means_width(module):
    """Floats a draw of a row takes in ``_data_means``: through a nonlinear data
    map, a quadrature node per feature (and mixture component)."""
    if set(module.data_map.kinds) <= {"standardise"}:
        return module.width
    components = module.arguments["n_mixture_components"] if module.arguments["likelihood"] == "gaussian_mixture" else 1
    return module.width * _GH_NODES * components


def _widest_layer(module):
    """Width of the module's widest layer, which sizes the chunks.

    The decoder's output is left out: the mixture likelihood's (3 numbers per
    component and feature, 960 wide on the digits) makes its chunks up to 4x
    larger than ``CHUNK_ELEMENTS``, about 15 MB, and counting it made scoring
    the digits slower (2.16 s against 1.73 s for K = 100).
    """
    arguments = module.arguments
    # A learned prior's log-density holds each draw's offsets from all its components.
    prior = arguments.get("prior_components", 0) * arguments["n_components"]
    return max(module.width, arguments["n_components"], prior, *arguments["hidden_layer_sizes"])


def _map_rows(fn, X, rows_per_chunk, module, device):
    """Apply ``fn(x_chunk) -> tensor`` to row chunks of X under inference_mode.

    The results are written into one array allocated up front: small
    per-chunk results kept alive between the large temporaries of each
    chunk would fragment the heap and grow memory with the number of rows.
    On the CPU the thread count is tuned over the chunks (``_threads``); the
    results do not depend on it.
    """
    out = None
    same_bits = module.likelihood.same_bits_any_threads
    with torch.inference_mode(), threads_for_chunks(device, same_bits=same_bits) as tuner:
        for start in range(0, len(X), rows_per_chunk):
            if tuner is not None:
                tuner.begin()
            x = rows_as_tensor(X[start : start + rows_per_chunk]).to(device)
            n = len(x)
            if n % TILE_ROWS:
                x = torch.cat([x, x[:1].expand(TILE_ROWS - n % TILE_ROWS, -1)])
            result = fn(x)[:n].cpu().numpy()
            if out is None:
                out = np.empty((len(X), *result.shape[1:]), dtype=result.dtype)
            out[start : start + n] = result
            if tuner is not None:
                tuner.end(n)
    return np.empty((0,)) if out is None else out


def impute(module, X, *, n_draws, seed, device, sample=False):
    """X with its missing entries (NaN) filled, float64; observed entries are left as they are.

    Self-normalised importance sampling with the encoder as proposal: the K =
    ``n_draws`` draws z_k ~ q(z|x_obs) get the weights w_k proportional to
    p(x_obs|z_k) p(z_k) / q(z_k|x_obs). ``sample=False`` fills the
    conditional mean E[x_miss|x_obs] = sum_k w_k E[x_miss|z_k]; ``sample=True``
    draws x_miss ~ p(x_miss|z_k) for one k drawn with probabilities w
    (sampling-importance-resampling), a draw from p(x_miss|x_obs) as K grows.
    The proposal of a model trained on complete rows is refined first
    (``_module.VAEModule.posterior``).
    """
    eps, refine_eps = _draws(module, n_draws, seed)
    width = _widest_layer(module)
    rows = _chunk_rows(CHUNK_ELEMENTS // (n_draws * width))
    # The conditional mean takes the draws in chunks, as scoring does: with
    # the least rows a chunk holds (TILE_ROWS), all K draws at once would build
    # activations of 16 x K x width, 4x CHUNK_ELEMENTS at K = 1000 and 40x at 10,000.
    # Through a nonlinear data map the means' quadrature can be the widest part.
    # A draw from p(x_miss|x_obs) (``sample``) still weighs all K draws at once.
    k_chunk = None if sample else max(1, CHUNK_ELEMENTS // (rows * max(width, _means_width(module))))
    generator = torch.Generator(device=device).manual_seed(seed + 1) if sample else None
    filled = _map_rows(
        lambda x: _impute_rows(module, x, eps, refine_eps, generator, k_chunk), X, rows, module, device
    ).reshape(X.shape)
    return np.where(np.isnan(X), filled, X)


def _impute_rows(module, x, eps, refine_eps, generator, k_chunk):
    """Imputations of one chunk of rows (see ``impute``)."""
    y, _, mask, bins = module.preprocess(x)
    qz = module.posterior(y, mask, refine_eps, k_chunk=k_chunk, bins=bins)
    if generator is None:
        # The numeric columns' conditional means, and each block's level
        # probabilities given x_obs, whose most probable level fills a hole.
        means = module.conditional_mean(y, mask, qz, eps, k_chunk, bins, means=lambda px: _data_means(module, px))
        return _codes(module, means)
    z = qz.base_dist.loc + qz.base_dist.scale * eps.to(y)[:, None, :]
    px = module.decode(z, bins)
    log_w = log_importance_weights(y, z, qz=qz, pz=module.prior(), px=px, mask=mask)
    # Normalised over each row's draws, laid out contiguously: a softmax over
    # the outer axis splits among threads in a way that changes its rounding.
    row_weights = torch.softmax(log_w.double().T.contiguous(), dim=-1)
    k = torch.multinomial(row_weights, 1, generator=generator)[:, 0]
    return px.base_dist.draw(module.data_map, generator=generator, clip=True)[k, torch.arange(len(k))]


def data_space_mean(px, data_map):
    """E[x|z] per entry in data space, float64 of px's batch shape plus the features.

    For an affine data map (standardisation alone) the mean maps through
    exactly; through a nonlinear one (the logit of ``bounds``, the power
    transform) it is E[f^-1(y)] by Gauss-Hermite quadrature for Gaussian
    (and mixture of Gaussians) decoders, exact to far below their scale.
    f^-1 holds the power transform's values within the range it was fitted
    on (``DataMap.inverse``'s ``clip``), so this is the mean of the clipped
    value: past that range the map's near-flat tangent would make it the
    mean of the extrapolation, not of the data.
    """
    if set(data_map.kinds) <= {"standardise"}:
        return data_map.inverse(px.mean)
    base = px.base_dist
    mixture = isinstance(base, MixtureSameFamily)
    normal = base.component_distribution if mixture else base
    nodes, weights = (torch.as_tensor(a, dtype=torch.float64) for a in np.polynomial.hermite.hermgauss(_GH_NODES))
    loc, scale = normal.loc.double()[..., None], normal.scale.double()[..., None]
    y = loc + np.sqrt(2.0) * scale * nodes
    # Inverse-map each node of each feature: move the feature axis last for the data map.
    dims = y.dim()
    feature_axis = dims - 3 if mixture else dims - 2
    moved = y.movedim(feature_axis, -1)
    values = data_map.inverse(moved, clip=True).movedim(-1, feature_axis)
    mean = (values * weights).sum(-1) / np.sqrt(np.pi)
    if mixture:
        mean = (base.mixture_distribution.probs.double() * mean).sum(-1)
    return mean
