"""VAETransformer: a nonlinear, probabilistic analogue of PCA."""

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted

from . import _inference
from ._base import _BaseVAE
from ._docstrings import compose
from ._module import MAX_LATENT_LOC
from ._persistence import register


@register
class VAETransformer(_BaseVAE, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    __doc__ = compose(
        """Variational autoencoder as a scikit-learn transformer.

    ``transform`` maps rows to the mean of the encoder's posterior q(z|x), a
    nonlinear counterpart of PCA's scores; ``inverse_transform`` maps latent
    rows back through the decoder's mean. The model also estimates densities
    (``score_samples``, ``score``) and draws new rows (``sample``), like
    :class:`VAEDensityEstimator`, with which it shares one model and one fit.

{parameters}

    See Also
    --------
    VAEDensityEstimator : The same model, presented as a density estimator.
    sklearn.decomposition.PCA : The linear, non-probabilistic counterpart.

    Notes
    -----
    ``transform`` and ``inverse_transform`` are deterministic: the means of
    q(z|x) and of p(x|z), with no draw. ``likelihood='auto'`` is one
    Gaussian per feature, which leaves the latent code to explain the
    data's structure; the mixture decoder scores higher but can call more
    of each row noise, which makes worse features.

{score_notes}

{references}

    Examples
    --------
    >>> import numpy as np
    >>> from skvae import VAETransformer
    >>> X = np.random.default_rng(0).normal(size=(200, 5))
    >>> vt = VAETransformer(n_components=2, hidden_layer_sizes=(16,), max_iter=5,
    ...                     random_state=0)
    >>> vt.fit_transform(X).shape
    (200, 2)
    >>> vt.inverse_transform(vt.transform(X[:3])).shape
    (3, 5)
    """,
        _BaseVAE._parameters,
    )

    def transform(self, X):
        """Map X to the posterior mean of z, shape (n_samples, n_components).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Rows to encode (in the space of the training data).

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
            Posterior means E[z|x], of X's float dtype.
        """
        X = self._validate_input(X, reset=False)
        Z = _inference.posterior_mean(self.net_.module_, X, device=self.net_.device)
        return Z.astype(X.dtype, copy=False)

    def inverse_transform(self, X):
        """Map latent rows back to data space through the decoder's mean.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Latent rows, e.g. the output of :meth:`transform`.

        Returns
        -------
        X_original : ndarray or DataFrame of shape (n_samples, n_features)
            Decoder means E[x|z] in data space (through ``bounds`` or the
            power transform, by quadrature over the decoder's
            distribution). Fitted on a pandas DataFrame, a DataFrame of its
            columns and dtypes: integer columns rounded, and each
            categorical column its most probable level.
        """
        check_is_fitted(self)
        Z = check_array(X, dtype=[np.float64, np.float32])
        n_components = self.net_.module_.n_components
        if Z.shape[1] != n_components:
            raise ValueError(
                f"X has {Z.shape[1]} features, but inverse_transform is expecting "
                f"n_components={n_components} features as input."
            )
        if np.abs(Z).max() > MAX_LATENT_LOC:
            raise ValueError(
                f"inverse_transform expects latent values in [-{MAX_LATENT_LOC:g}, "
                f"{MAX_LATENT_LOC:g}], the range of transform (the prior has next to no "
                f"mass beyond); X has values up to {np.abs(Z).max():.3g}."
            )
        X = _inference.decoder_mean(self.net_.module_, Z, device=self.net_.device)
        if self._schema() is not None:
            return self._as_table(X)
        if np.abs(X).max(initial=0) > np.finfo(Z.dtype).max:
            raise ValueError(
                f"The decoder's means reach {np.abs(X).max():.3g}, beyond the range of X's dtype "
                f"{Z.dtype}; pass X as float64."
            )
        return X.astype(Z.dtype, copy=False)

    @property
    def _n_features_out(self):
        return self.net_.module_.n_components

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
