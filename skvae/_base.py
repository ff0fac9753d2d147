"""_BaseVAE: what the estimators share. A fit reads as validate -> resolve -> train -> copy."""

import warnings

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import _inference
from ._data import check_n_samples, check_observed, check_support, fit_data_map, has_missing
from ._engine import TrainingOptions, summarize, train
from ._likelihoods import LIKELIHOODS
from ._net import build_net
from ._params import USED_VARIANCE, check_scoring_parameters, check_settings, constraints, parameters
from ._persistence import save_estimator
from ._sklearn_compat import _fit_context
from ._tabular import AUTO_VALUE_SHARE, discrete_mask, model_columns, repeated_value_columns
from ._threads import threads_for_fit
from ._torch_utils import resolve_device
from ._validation import _ReadsRows


class _BaseVAE(_ReadsRows):
    """Shared fit, scoring and sampling of the skvae estimators.

    A mixin listed first among an estimator's bases, so that its ``score``
    overrides ``DensityMixin``'s, with ``BaseEstimator`` right-most as
    scikit-learn requires.

    Its ``__init__`` takes the shared parameters with the shared defaults
    (``_parameters``, declared in ``_params``); an estimator whose parameters
    or defaults differ declares its own ``_parameters`` and
    ``_parameter_constraints`` and writes its own ``__init__`` to match,
    passing the shared arguments on (``shared_arguments``); a test holds
    each signature to its declaration. A subclass also says what
    its ``'auto'`` values mean (``_auto_likelihoods``,
    ``_auto_training_importance_samples``, ``_auto_batch_size``), and how
    long the adaptive schedule waits before it halves the step
    (``_halving_patience``).
    """

    _parameters = parameters()
    _parameter_constraints = constraints(_parameters)

    # Fitted attributes that save() writes, and the kind load() checks (see _persistence.register).
    _saved_attributes = {
        "n_features_in_": "positive",
        "feature_names_in_": "any",
        "n_iter_": "count",
        "loss_curve_": "any",
        "validation_scores_": "any",
        "best_validation_score_": "any",
        "_seed": "count",
        "_table": "table_schema",
    }
    # What likelihood='auto' means: the first, or, when fit holds out
    # validation rows, the one whose trained model scores them best.
    _auto_likelihoods = ("gaussian",)
    _auto_training_importance_samples = 1

    @staticmethod
    def _auto_batch_size(n_samples):
        """Batches of n/200 rows within [32, 128] (and at most n): about 200 steps per epoch."""
        return min(n_samples, max(32, min(128, n_samples // 200)))

    def _halving_patience(self, n_samples, early_stopping):
        """Epochs without improvement before ``learning_rate='adaptive'`` halves the step: a quarter of the stopping patience."""
        return max(1, self.n_iter_no_change // 4)

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
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.likelihood = likelihood
        self.n_mixture_components = n_mixture_components
        self.prior = prior
        self.bounds = bounds
        self.power_transform = power_transform
        self.categorical_features = categorical_features
        self.discrete_features = discrete_features
        self.handle_unknown = handle_unknown
        self.beta = beta
        self.training_noise = training_noise
        self.n_training_importance_samples = n_training_importance_samples
        self.n_importance_samples = n_importance_samples
        self.bound = bound
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.ema_decay = ema_decay
        self.tol = tol
        self.warm_start = warm_start
        self.random_state = random_state
        self.device = device
        self.verbose = verbose
        self.callbacks = callbacks

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the VAE to X by maximising the ELBO (or IWAE_K) with Adam.

        If the loss or the weights become non-finite (divergence), the epoch
        is undone and training stops: with a warning when an earlier epoch
        ended finite (the model keeps its weights), with a ``ValueError``
        otherwise. A ``KeyboardInterrupt`` (or an error raised by a callback)
        is never swallowed: the epoch it interrupts is undone, the model keeps
        the completed epochs (the best one with early stopping) with a
        warning, and the exception propagates. A fit from scratch that fails
        before completing an epoch leaves the estimator unfitted, never
        half-built.

        A memory-mapped X (``np.load(path, mmap_mode="r")``, a ``np.memmap``
        or a view of one) is never loaded whole: checks and the data maps'
        statistics stream through it, and training reads blocks of 1,024
        consecutive rows in a random order, shuffling the rows within windows
        of 65,536, repeatably from ``random_state``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Training data. A pandas DataFrame may mix real, integer, boolean
            and categorical columns (see ``categorical_features``).

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit(X, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Run one epoch over X, initialising the model on the first call.

        The data maps (scaling, power transform) are fitted on the first
        call's X and kept, as are the weights and the optimizer's state
        between calls. Divergence and interrupts are handled as in
        :meth:`fit`; a diverging epoch after the first call is undone with a
        warning.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            A chunk of training data.

        y : None
            Ignored.

        Returns
        -------
        self : object
            The updated estimator.
        """
        return self._fit(X, incremental=True)

    def score_samples(self, X):
        """Estimate the log-density log p(x) of each row, in nats, in data space.

        The maps the model applies internally (standardisation, the logit
        map of ``bounds``, the power transform) are accounted for by their
        log-Jacobian, so the scores are densities of X as passed; see Notes
        for the estimate (``bound``, ``n_importance_samples``) and its units.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score, in the same space as the training data.

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
            IWAE or ELBO estimate of log p(x) per row (see ``bound``); higher
            means more likely.
        """
        return self._log_density(self._validate_input(X, reset=False))

    def score(self, X, y=None):
        """Mean log-density of X, in nats per sample (higher is better).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Rows to score.

        y : None
            Ignored. This parameter exists only for compatibility with
            :class:`~sklearn.pipeline.Pipeline`.

        Returns
        -------
        score : float
            ``score_samples(X).mean()``.
        """
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples=1, random_state=None):
        """Draw new rows from the model: z ~ p(z), then x ~ p(x|z).

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to draw.

        random_state : int, RandomState instance or None, default=None
            Seeds the draws; None uses numpy's global random state, as
            ``KernelDensity.sample`` does.

        Returns
        -------
        X : ndarray or DataFrame of shape (n_samples, n_features)
            Rows in data space; fitted on a pandas DataFrame, a DataFrame
            with its columns, dtypes and category sets (integer columns
            stay integers, categorical ones hold their levels).

        Notes
        -----
        The draws are the model's, tails included: through the power
        transform, unlike means and imputations, they are not held within
        the training range (user guide, "The model").
        """
        check_is_fitted(self)
        check_n_samples(n_samples)
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
        return self._as_table(_inference.sample(self.net_.module_, n_samples, seed=seed, device=self.net_.device))

    def save(self, path):
        """Write the fitted estimator to a file that loads without unpickling.

        The file is a safetensors file: the model's tensors (weights and data
        maps) and per-epoch losses, with the parameters, fitted attributes,
        the model's architecture, skvae version and a checksum as JSON in its
        header. Read it back with :func:`skvae.load`, which is safe for files
        from untrusted sources, unlike pickle or joblib. Parameters that JSON
        cannot hold (a ``RandomState`` instance, ``callbacks``) are saved as
        None with a warning; they only matter for training.

        Parameters
        ----------
        path : str or path-like
            Where to write; an existing file is replaced. The usual suffix is
            ``.safetensors``.

        Examples
        --------
        >>> import os, tempfile
        >>> from sklearn.datasets import load_iris
        >>> from skvae import VAETransformer, load
        >>> X = load_iris().data
        >>> path = os.path.join(tempfile.mkdtemp(), "iris.safetensors")
        >>> VAETransformer(n_components=2, max_iter=3, random_state=0).fit(X).save(path)
        >>> load(path).transform(X[:2]).shape
        (2, 2)
        """
        save_estimator(self, path)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    # -- fitting -----------------------------------------------------------------

    def _fit(self, X, *, incremental):
        fresh = not (hasattr(self, "net_") and (incremental or self.warm_start))
        if fresh:
            self._discard_fit()
        try:
            # The thread count the training settles on also serves the
            # scoring that ends a fit (the detector's calibration).
            with threads_for_fit() as threads:
                self._fit_checked(X, incremental=incremental, fresh=fresh, threads=threads)
        except BaseException:
            # Bad input, divergence or an interrupt before the first epoch:
            # a fresh fit leaves the estimator unfitted, never half-built.
            if fresh and not hasattr(self, "net_"):
                self._discard_fit()
            raise
        return self

    def _fit_checked(self, X, *, incremental, fresh, threads=None):
        X = self._validate_input(X, reset=fresh)
        settings = check_settings(self, X.shape, incremental=incremental, fresh=fresh, table=self._model_table())
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        missing = check_observed(X) if fresh else has_missing(X)
        if fresh:
            self._seed = seed
        options = TrainingOptions(**settings.training, seed=seed, missing=missing, threads=threads)
        model = settings.model
        if settings.first_epochs:
            # n_components='auto': a short first fit, without the user's callbacks,
            # counts the latent dimensions the encoder uses; the fit proper
            # starts anew with that many, on the same rows and seed. The first
            # model is thrown away, and so are its warnings (max_iter, a late
            # divergence); if it fails, the fit fails and leaves no model. It
            # has the N(0, I) prior, onto which an unused dimension collapses:
            # under a learned mixture the encoder can spend every dimension on
            # choosing a component.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    first, _ = self._train(
                        X, seed, {**model, "prior_components": 0}, missing, settings.likelihoods,
                        options._replace(max_epochs=settings.first_epochs, callbacks=()),
                    )
                except BaseException:
                    self._discard_fit()
                    raise
            used = _inference.used_components(first.module_, X, device=first.device, min_variance=USED_VARIANCE)
            model = {**model, "n_components": used}
        self._copy_fitted(*self._train(X, seed, model, missing, settings.likelihoods, options), X)

    def _train(self, X, seed, model, missing, likelihoods, options):
        """Train a new net for each likelihood (or the fitted one for none) and return the best (net, summary).

        Every candidate is trained on the same rows and validated on the same
        held-out rows, with the same seed. If training fails, the best net so
        far (or the interrupted one's completed epochs) becomes the fitted
        model before the exception propagates.
        """
        candidates = likelihoods or [None]
        best = failure = None
        for likelihood in candidates:
            net = self.net_ if likelihood is None else self._new_net(X, seed, model, missing, likelihood)
            try:
                summary = train(net, X, options)
            except BaseException as exc:
                # Training that diverged before a good epoch: another candidate may still train.
                if isinstance(exc, ValueError) and len(candidates) > 1 and not len(net.history):
                    failure = failure or exc
                    continue
                if best is not None:
                    self._copy_fitted(*best, X)
                elif len(net.history):
                    self._keep_completed(net, X, options.early_stopping, fresh=likelihood is not None)
                raise
            if best is None or summary.best_validation_score > best[1].best_validation_score:
                best = net, summary
        if best is None:
            raise failure
        return best

    def _keep_completed(self, net, X, early_stopping, *, fresh):
        """After an interrupt: the completed epochs are the model; an error here never hides the interrupt."""
        try:
            self._copy_fitted(net, summarize(net, early_stopping), X)
        except Exception:
            if fresh:
                self._discard_fit()

    def _copy_fitted(self, net, summary, X):
        self._set_net(net)
        self.n_iter_ = summary.n_iter
        self.loss_curve_ = summary.loss_curve
        self.validation_scores_ = summary.validation_scores
        self.best_validation_score_ = summary.best_validation_score
        self._after_fit(X)

    def _set_net(self, net):
        """Set the fitted model, ``net_``, and what is read off it: ``likelihood_``, ``n_components_``."""
        self.net_ = net
        self.likelihood_ = net.module_.arguments["likelihood"]
        self.n_components_ = net.module_.n_components

    def _after_fit(self, X):
        """What a subclass sets from the fitted model and its training data (nothing here)."""

    def _discard_fit(self):
        """Delete every fitted attribute, so that the estimator is unfitted."""
        for name in [key for key in vars(self) if key.endswith("_") and not key.startswith("__")]:
            delattr(self, name)
        for name in self._saved_attributes:
            self.__dict__.pop(name, None)

    def _new_net(self, X, seed, model, missing, likelihood):
        """Fit the data map on X and build the net (seeded), with the ``model`` settings of ``check_settings``."""
        support = LIKELIHOODS[likelihood].support
        table = self._model_table()
        config = dict(
            n_features=X.shape[1], n_components=model["n_components"], hidden_layer_sizes=model["hidden_layer_sizes"],
            activation=self.activation, likelihood=likelihood, n_mixture_components=self.n_mixture_components,
            mask_input=missing, prior_components=model["prior_components"],
        )
        check_support(X, likelihood, support, model["low"], model["high"])
        discrete = self._discrete_mask(X, table, support)
        if any(discrete) and support != "real":
            raise ValueError(
                "discrete_features needs a likelihood of real values for the continuous part of its "
                f"columns ('auto', 'gaussian' or 'gaussian_mixture'), got likelihood={likelihood!r}."
            )
        min_share = AUTO_VALUE_SHARE if isinstance(self.discrete_features, str) else 0.0
        config["columns"], numeric = model_columns(table, X, discrete, min_share)
        if support == "real" and numeric.shape[1]:
            config["data_map"] = fit_data_map(numeric, low=model["low"], high=model["high"], power=model["power"])
        device = resolve_device(self.device)
        return build_net(config, device=device, learning_rate_init=self.learning_rate_init, seed=seed)

    def _discrete_mask(self, X, table, support):
        """``discrete_features`` over the columns the model reads: X, of schema ``table`` (None for an array).

        ``'auto'`` lists the real columns that repeat values, and none when
        the likelihood is not one of real values (``support``).
        """
        if isinstance(self.discrete_features, str):
            return repeated_value_columns(X, table) if support == "real" else [False] * X.shape[1]
        return discrete_mask(self.discrete_features, self._schema(), self.n_features_in_, type(self).__name__)

    # -- scoring -----------------------------------------------------------------

    # Parameters read at scoring time, which set_params may change after fit.
    _scoring_parameters = ("n_importance_samples", "bound")

    def _log_density(self, X):
        """``score_samples`` of rows already validated."""
        check_scoring_parameters(self)
        return _inference.log_marginal(
            self.net_.module_, X, n_draws=self.n_importance_samples, seed=self._seed,
            bound=self.bound, device=self.net_.device, kl_penalty=self._kl_penalty(),
        )

    def _kl_penalty(self):
        """Weight of KL(q(z|x) || p(z)) subtracted from the scores: none but the outlier detector's."""
        return 0.0
