"""VAEDensityEstimator: log p(x) estimates and sampling from a VAE."""

from sklearn.base import BaseEstimator, DensityMixin

from ._base import _BaseVAE
from ._docstrings import compose
from ._persistence import register


@register
class VAEDensityEstimator(_BaseVAE, DensityMixin, BaseEstimator):
    __doc__ = compose(
        """Density estimation with a variational autoencoder.

    Fits a VAE by maximising the evidence lower bound and estimates the
    log-density of new rows with the importance-weighted bound, so
    ``score_samples`` can rank anomalies and ``score`` can compare models by
    held-out likelihood, like :class:`~sklearn.mixture.GaussianMixture` or
    :class:`~sklearn.neighbors.KernelDensity`.

{parameters}

    See Also
    --------
    VAETransformer : The same model, presented as a transformer.
    sklearn.mixture.GaussianMixture : A mixture of Gaussians.
    sklearn.neighbors.KernelDensity : Kernel density estimation.

    Notes
    -----
    ``score`` is the mean of ``score_samples`` in nats per sample (the
    GaussianMixture convention), not the sum that ``KernelDensity.score``
    returns.

{score_notes}

    With ``likelihood='auto'``, :meth:`fit` trains a mixture of Gaussians
    per feature and one Gaussian per feature and keeps the one better on the
    early-stopping rows: the mixture wins on skewed or near-discrete
    features, the single Gaussian on data near a smooth surface. Without
    early stopping (``partial_fit`` included), and for a table with
    categorical or integer columns, it is the mixture. The defaults were
    chosen by held-out likelihood (user guide, "Choosing ``n_components``
    and layers"); on about a hundred rows a tuned GaussianMixture can still
    do better.

{references}

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skvae import VAEDensityEstimator
    >>> X = load_iris().data
    >>> de = VAEDensityEstimator(n_components=2, max_iter=5, random_state=0).fit(X)
    >>> de.score_samples(X[:4]).shape
    (4,)
    >>> de.sample(3, random_state=0).shape
    (3, 4)

    A DataFrame of mixed columns comes back in its own types:

    >>> import pandas as pd
    >>> df = pd.DataFrame({{"petal": X[:, 2], "count": (X[:, 0] * 2).round().astype(int),
    ...                    "kind": pd.Categorical(load_iris().target_names[load_iris().target])}})
    >>> de = VAEDensityEstimator(n_components=2, max_iter=5, random_state=0).fit(df)
    >>> de.sample(2, random_state=0).dtypes.tolist() == df.dtypes.tolist()
    True
    """,
        _BaseVAE._parameters,
    )

    # A mixture of Gaussians per feature, or one Gaussian per feature, whichever
    # scores the early-stopping rows better (see the class Notes).
    _auto_likelihoods = ("gaussian_mixture", "gaussian")
    _auto_training_importance_samples = 4
