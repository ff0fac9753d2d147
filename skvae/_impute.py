"""VAEImputer: missing values filled from a VAE trained on the observed entries (MIWAE)."""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.impute import MissingIndicator
from sklearn.utils.validation import check_is_fitted

from . import _inference
from ._base import _BaseVAE
from ._docstrings import compose
from ._params import Parameter, constraints, parameters, shared_arguments
from ._persistence import register
from ._sklearn_compat import MissingValues, _check_feature_names_in, is_scalar_nan

_OWN = [
    Parameter("missing_values", np.nan, [MissingValues(numeric_only=True)], "int, float or np.nan", """\
The placeholder for a missing value, as in SimpleImputer. With
``np.nan``, NaN, ``pd.NA`` and ``None`` are missing and infinity is
refused; with another value, NaN is refused too."""),
    Parameter("add_indicator", False, ["boolean"], "bool", """\
If True, a MissingIndicator is stacked onto the output: one column per
feature that had missing values at fit."""),
    Parameter("keep_empty_features", False, ["boolean"], "bool", """\
Whether a feature with no observed value at fit is kept, imputed with 0,
or dropped, as IterativeImputer does."""),
    Parameter("sample_posterior", False, ["boolean"], "bool", """\
False: each missing entry gets E[x_miss | x_obs], by importance sampling
with ``n_importance_samples`` draws. True: a draw from p(x_miss | x_obs),
so that different ``random_state`` give multiple imputations."""),
]

# Chosen by imputation RMSE on breast cancer, wine, fault and yeast (20% and
# 50% MCAR, two seeds), with at most 200 epochs; discrete_features and
# early_stopping later on the benchmark's ten data sets; see the class Notes.
_PARAMETERS = parameters(
    own=_OWN,
    n_importance_samples=1000,
    learning_rate_init=1e-3,
    max_iter=200,
    discrete_features="auto",
    early_stopping=False,
)


@register
class VAEImputer(_BaseVAE, TransformerMixin, BaseEstimator):
    __doc__ = compose(
        """Imputation of missing values with a variational autoencoder.

    Fits a VAE to the observed entries of X alone, with no prior imputation:
    a factorised decoder gives the exact likelihood of the observed entries
    given z, so the importance-weighted bound of log p(x_obs) trains the
    model (MIWAE). ``transform`` fills each missing entry from
    p(x_miss | x_obs) and returns observed entries unchanged, bit for bit.
    The API is that of :class:`~sklearn.impute.IterativeImputer`; the model
    is that of :class:`VAEDensityEstimator`, whose ``score_samples``
    (log p(x_obs)), ``score`` and ``sample`` it shares.

{parameters}

    See Also
    --------
    sklearn.impute.IterativeImputer : Round-robin regression imputation.
    sklearn.impute.KNNImputer : Imputation from the nearest rows.
    VAEDensityEstimator : The same model as a density estimator.

    Notes
    -----
    The model assumes entries are missing at random (MAR): whether an entry
    is missing may depend on the observed entries of its row, not on its own
    value. When it does (values censored above a limit, say), no method that
    sees only the data can tell, and imputations are biased towards the
    observed values.

    The defaults, chosen by imputation error, differ from the shared ones:
    one Gaussian per feature, IWAE_20 training as in MIWAE (an encoder that
    sees part of a row is less exact, and the tighter bound forgives it), a
    step of 1e-3 and 1,000 draws per imputation, and real columns that
    repeat values (codes, zeros, small counts) listed by
    ``discrete_features='auto'``, and no rows held out for early stopping
    (``early_stopping=False``: the imputer fills the rows it is fitted on,
    so it learns from all of them); a fit takes about five times as long
    (user guide, "Missing values").

{score_notes}

{references}

    Mattei, P.-A. and Frellsen, J. (2019). MIWAE: Deep Generative Modelling
    and Imputation of Incomplete Data Sets. ICML.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_iris
    >>> from skvae import VAEImputer
    >>> X = load_iris().data
    >>> X_missing = X.copy()
    >>> X_missing[::3, 2] = np.nan
    >>> imputer = VAEImputer(max_iter=5, random_state=0).fit(X_missing)
    >>> X_filled = imputer.transform(X_missing)
    >>> bool(np.isnan(X_filled).any()), X_filled.shape
    (False, (150, 4))
    """,
        _PARAMETERS,
        own_attributes="""\
indicator_ : MissingIndicator or None
    The indicator of the features that had missing values at fit, with
    ``add_indicator=True``; None otherwise.""",
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
        prior="normal",
        bounds=None,
        power_transform=False,
        categorical_features="from_dtype",
        discrete_features="auto",
        handle_unknown="error",
        beta=1.0,
        training_noise=0.0,
        n_training_importance_samples="auto",
        n_importance_samples=1000,
        bound="iwae",
        batch_size="auto",
        max_iter=200,
        learning_rate="adaptive",
        learning_rate_init=1e-3,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=20,
        ema_decay=0.99,
        tol=1e-4,
        missing_values=np.nan,
        add_indicator=False,
        keep_empty_features=False,
        sample_posterior=False,
        warm_start=False,
        random_state=None,
        device="cpu",
        verbose=0,
        callbacks=None,
    ):
        super().__init__(**shared_arguments(locals()))
        self.missing_values = missing_values
        self.add_indicator = add_indicator
        self.keep_empty_features = keep_empty_features
        self.sample_posterior = sample_posterior

    # IWAE_20 training, as MIWAE: see Notes.
    _auto_training_importance_samples = 20

    _saved_attributes = {**_BaseVAE._saved_attributes, "indicator_": "missing_indicator", "_kept": "any"}

    def transform(self, X):
        """Fill the missing entries of X; observed entries are returned unchanged.

        Parameters
        ----------
        X : {array-like, DataFrame} of shape (n_samples, n_features)
            Rows with missing entries (``missing_values``).

        Returns
        -------
        X_imputed : ndarray of shape (n_samples, n_features_out)
            X with every missing entry filled, of X's float dtype; features
            with no observed value at fit are dropped (or 0 with
            ``keep_empty_features``), and the indicator columns follow with
            ``add_indicator``.
        """
        X_all, X_kept = self._validate_input(X, reset=False, all_columns=True)
        filled = _inference.impute(
            self.net_.module_, X_kept, n_draws=self.n_importance_samples, seed=self._seed,
            device=self.net_.device, sample=self.sample_posterior,
        )
        table = self._schema()
        if table is not None and not table.plain:
            return self._filled_table(X, X_all, filled, table)
        out = np.zeros_like(X_all) if self.keep_empty_features else X_all[:, self._kept]
        out[:, self._kept if self.keep_empty_features else slice(None)] = filled
        if self.indicator_ is not None:
            out = np.hstack([out, self.indicator_.transform(X_all).astype(out.dtype)])
        return out

    def _filled_table(self, X, X_all, filled, table):
        """The imputed codes of a mixed table as a DataFrame (or array) of its fitted types.

        A column with no observed value at fit is dropped, or kept with
        ``keep_empty_features``: 0 if numeric, missing if categorical (it has
        no level to fill with).
        """
        codes = X_all.copy()
        codes[:, self._kept] = filled
        empty = np.flatnonzero(~self._kept)
        for j in empty:
            codes[:, j] = np.nan if table.kinds[j] == "categorical" else 0.0
        keep = np.ones(len(self._kept), dtype=bool) if self.keep_empty_features else self._kept
        out = table.subset(keep).decode(codes[:, keep], index=getattr(X, "index", None))
        if self.indicator_ is None:
            return out
        indicator = self.indicator_.transform(X_all)
        if not table.frame:
            return np.hstack([out, indicator.astype(out.dtype)])
        names = self.get_feature_names_out()[out.shape[1]:]
        for name, values in zip(names, indicator.T):
            out[name] = values
        return out

    def get_feature_names_out(self, input_features=None):
        """Get the names of the output features: the kept input features, then the indicator's.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input feature names; None uses ``feature_names_in_``, or
            ``x0, x1, ...`` without it.

        Returns
        -------
        feature_names_out : ndarray of str objects
            Transformed feature names.
        """
        check_is_fitted(self)
        input_features = _check_feature_names_in(self, input_features)
        names = input_features if self.keep_empty_features else input_features[self._kept]
        if self.indicator_ is None:
            return names
        return np.concatenate([names, self.indicator_.get_feature_names_out(input_features)])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = is_scalar_nan(self.missing_values)
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def _input_options(self):
        return {"missing_values": self.missing_values, "copy": True}

    def _model_rows(self, X, *, reset):
        """The features the VAE models (those observed at fit); at fit, ``_kept`` and the indicator."""
        if reset:
            self._kept = ~np.all(np.isnan(X), axis=0) if len(X) else np.ones(X.shape[1], dtype=bool)
            self.indicator_ = (
                MissingIndicator(error_on_new=False).fit(X) if self.add_indicator else None
            )
        return X[:, self._kept]

    def _discrete_mask(self, X, table, support):
        mask = super()._discrete_mask(X, table, support)
        # A list names the columns as passed; X holds those observed at fit.
        return mask if isinstance(self.discrete_features, str) else [d for d, k in zip(mask, self._kept) if k]

    def _model_table(self):
        """The schema of the features the model reads: those observed at fit."""
        table = self._schema()
        return None if table is None else table.subset(self._kept)
