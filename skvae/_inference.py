"""Inference with a fitted module, in row chunks: log p(x), posterior and decoder means, samples.

Rows (and importance draws) are chunked so that the largest activation
tensor holds about ``CHUNK_ELEMENTS`` elements: memory stays bounded for any
number of rows and draws, and chunks that stay in cache score about 1.5x
faster than 64 MB ones on CPU (``benchmarks/bench_speed.py``).
"""

import numpy as np
import torch

from ._arrays import rows_as_tensor
from ._engine import seeded_torch

# Elements of the largest activation tensor inference builds at once (4 MB in float32).
CHUNK_ELEMENTS = 2**20
# BLAS picks other kernels (other summation orders) for matrices of very few
# rows; padding every inference chunk to this many rows keeps each row's result
# independent of the rows computed with it, to the last bit.
MIN_CHUNK_ROWS = 16


def log_marginal(module, X, *, n_draws, seed, bound, device):
    """IWAE_K (``bound='iwae'``) or ELBO estimate of log p(x) per row of X, float64 of shape (n,).

    The K = ``n_draws`` standard normal draws come from ``seed`` and are shared
    by every row (common random numbers), so a row's score depends neither on
    the other rows scored with it nor on the chunking.
    """
    eps = torch.randn(n_draws, module.n_components, generator=torch.Generator().manual_seed(seed))
    width = _widest_layer(module)
    rows = max(MIN_CHUNK_ROWS, CHUNK_ELEMENTS // (n_draws * width))
    k_chunk = max(1, CHUNK_ELEMENTS // (rows * width))
    scores = _map_rows(
        lambda x: module.log_marginal(x, eps, bound=bound, k_chunk=k_chunk), X, rows, device
    )
    return scores.astype(np.float64)


def posterior_mean(module, X, *, device):
    """E[z | x] under the encoder, shape (n_samples, n_components)."""
    rows = max(1, CHUNK_ELEMENTS // _widest_layer(module))
    Z = _map_rows(lambda x: module.encode(module.preprocess(x)[0], capped=True).mean, X, rows, device)
    return Z.reshape(len(X), module.n_components)


def decoder_mean(module, Z, *, device):
    """The mean of p(x|z) mapped to data space, float64 of shape (n_samples, n_features)."""
    rows = max(1, CHUNK_ELEMENTS // _widest_layer(module))
    X = _map_rows(lambda z: module.postprocess(module.decode(z.to(torch.float32)).mean), Z, rows, device)
    return X.reshape(len(Z), module.arguments["n_features"])


def sample(module, n_samples, *, seed, device):
    """``n_samples`` rows drawn from the model in data space: z ~ p(z), then x ~ p(x|z)."""
    rows = max(1, CHUNK_ELEMENTS // _widest_layer(module))
    out = []
    with seeded_torch(seed, device), torch.inference_mode():
        for start in range(0, n_samples, rows):
            z = module.prior().sample((min(rows, n_samples - start),))
            out.append(module.postprocess(module.decode(z).sample()).cpu())
    return torch.cat(out).numpy()


def _widest_layer(module):
    """Width of the module's widest layer, which sizes the chunks.

    The decoder's output is left out: the mixture likelihood's (3 numbers per
    component and feature, 960 wide on the digits) makes its chunks up to 4x
    larger than ``CHUNK_ELEMENTS``, about 15 MB, and counting it made scoring
    the digits slower (2.16 s against 1.73 s for K = 100).
    """
    arguments = module.arguments
    return max(arguments["n_features"], arguments["n_components"], *arguments["hidden_layer_sizes"])


def _map_rows(fn, X, rows_per_chunk, device):
    """Apply ``fn(x_chunk) -> tensor`` to row chunks of X under inference_mode.

    The results are written into one array allocated up front: small
    per-chunk results kept alive between the large temporaries of each
    chunk would fragment the heap and grow memory with the number of rows.
    """
    out = None
    with torch.inference_mode():
        for start in range(0, len(X), rows_per_chunk):
            x = rows_as_tensor(X[start : start + rows_per_chunk]).to(device)
            n = len(x)
            if n < MIN_CHUNK_ROWS:
                x = torch.cat([x, x[:1].expand(MIN_CHUNK_ROWS - n, -1)])
            result = fn(x)[:n].cpu().numpy()
            if out is None:
                out = np.empty((len(X), *result.shape[1:]), dtype=result.dtype)
            out[start : start + n] = result
    return np.empty((0,)) if out is None else out
