"""VAEDensityEstimator: log p(x) estimates and sampling from a VAE."""

from sklearn.base import BaseEstimator, DensityMixin

from ._base import _BaseVAE
from ._docstrings import compose
from ._params import constraints, held_out_rows, parameters, shared_arguments
from ._persistence import register

# The density estimator's own default: a learned prior (user guide, "Choosing a prior").
_PARAMETERS = parameters(prior="mixture")

# Held-out rows [from, to) for which the adaptive schedule waits half the stopping patience.
_HALVING_HELD_OUT_ROWS = (100, 1000)


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
    categorical or integer columns, it is the mixture. The prior is learned
    (``prior='mixture'``: 10 Gaussians in the latent space), so that rows in
    separate clusters, or on separate sheets of a surface, need not share
    one blob of N(0, I); the other estimators keep N(0, I). The defaults were
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
        _PARAMETERS,
    )

    _parameters = _PARAMETERS
    _parameter_constraints = constraints(_PARAMETERS)

    def __init__(
        self,
        n_components=16,
        *,
        hidden_layer_sizes=(256, 256),
        activation="elu",
        likelihood="auto",
        n_mixture_components=5,
        prior="mixture",
        bounds=None,
        power_transform=False,
        categorical_features="from_dtype",
        discrete_features=None,
        handle_unknown="error",
        beta=1.0,
        training_noise=0.0,
        n_training_importance_samples="auto",
        n_importance_samples=100,
        bound="iwae",
        batch_size="auto",
        max_iter=500,
        learning_rate="adaptive",
        learning_rate_init=2e-3,
        early_stopping="auto",
        validation_fraction=0.1,
        n_iter_no_change=20,
        ema_decay=0.99,
        tol=1e-4,
        warm_start=False,
        random_state=None,
        device="cpu",
        verbose=0,
        callbacks=None,
    ):
        super().__init__(**shared_arguments(locals()))

    # A mixture of Gaussians per feature, or one Gaussian per feature, whichever
    # scores the early-stopping rows better (see the class Notes).
    _auto_likelihoods = ("gaussian_mixture", "gaussian")
    _auto_training_importance_samples = 4

    def _halving_patience(self, n_samples, early_stopping):
        """Half the stopping patience with 100 to 999 held-out rows, a quarter otherwise.

        A held-out bound of a hundred rows or more guards the fit against
        over-fitting, so the step can stay large for longer: thin surfaces
        keep improving slowly, and a quarter of the patience, on a noisy
        bound of a few hundred rows, halves the step too soon. With fewer
        held-out rows, or none, training longer at a large step over-fits
        small data; from 1,000 held-out rows on, the epochs it would add
        cost ten times as much and the quarter already ends near the
        truth (user guide, design notes: "The adaptive schedule's patience").
        """
        held_out = held_out_rows(n_samples, self.validation_fraction) if early_stopping else 0
        share = 2 if _HALVING_HELD_OUT_ROWS[0] <= held_out < _HALVING_HELD_OUT_ROWS[1] else 4
        return max(1, self.n_iter_no_change // share)
