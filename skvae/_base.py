"""_BaseVAE: parameters, fit/partial_fit plumbing and the numpy <-> torch boundary."""

import math
import mmap
import warnings
from contextlib import contextmanager
from copy import deepcopy
from numbers import Integral, Real

import numpy as np
import torch
from scipy.special import logit
from skorch.callbacks import Callback, LRScheduler, PrintLog, ProgressBar
from torch.optim.lr_scheduler import ReduceLROnPlateau
from skorch.dataset import ValidSplit
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ._engine import (
    LastGoodState,
    ModelSpaceRows,
    StoppingRule,
    StreamedRows,
    VAENet,
    WeightAveraging,
    adam_options,
    rows_as_tensor,
)
from ._likelihoods import LIKELIHOODS
from ._module import ACTIVATIONS, VAEModule
from ._persistence import save_estimator
from ._sklearn_compat import (
    Interval,
    InvalidParameterError,
    StrOptions,
    _fit_context,
    validate_parameter_constraints,
)

# Elements of the largest activation tensor inference builds at once (4 MB in
# float32); rows and importance draws are chunked to stay under it. Chunks that
# stay in cache score ~1.5x faster than 64 MB ones on CPU (benchmarks/bench_speed.py).
_CHUNK_ELEMENTS = 2**20
# BLAS picks other kernels (other summation orders) for matrices of very few
# rows; padding every inference chunk to this many rows keeps each row's result
# independent of the rows computed with it, to the last bit.
_MIN_CHUNK_ROWS = 16
# Elements of the float64 blocks in which fit's checks and statistics stream
# through X (2 MB), so that a memory-mapped X is never loaded whole.
_STREAM_ELEMENTS = 2**18
# Early stopping with early_stopping='auto' needs this many held-out rows.
_MIN_VALIDATION_ROWS = 20
# Rows farther than this many training standard deviations from the training
# mean are refused: beyond it the Gaussian log p(x|z) overflows float32.
_MAX_STANDARDISED = 1e12
# Parameters read at scoring time, which set_params may change after fit.
_SCORING_PARAMETERS = ("n_importance_samples", "bound")


@contextmanager
def _seeded_torch(seed, device):
    """Seed torch's generator for ``device`` inside the block, restoring it after."""
    device = torch.device(device)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed)
        if device.type == "cuda":
            torch.cuda.manual_seed(seed)
        yield


def _derive_seed(seed, *keys):
    """A new 31-bit seed from ``seed`` and integer keys (independent streams)."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0] >> 1)


class _BaseVAE:
    """Shared parameters and fit plumbing of the skvae estimators.

    A mixin placed before scikit-learn's mixins (whose ``score`` it overrides)
    and before ``BaseEstimator``, which stays right-most.
    """

    # Fitted attributes that save() writes besides the net (a subclass adds its own).
    _saved_attributes = (
        "n_features_in_",
        "feature_names_in_",
        "n_iter_",
        "loss_curve_",
        "validation_scores_",
        "best_validation_score_",
        "_seed",
    )

    # What likelihood='auto' means: a per-sample Gaussian mean and one scale per
    # feature, so that the latent code has to explain the rows (features for a
    # downstream model); the density estimator overrides it.
    _auto_likelihood = "gaussian"
    _auto_training_importance_samples = 1

    _parameter_constraints = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "likelihood": [StrOptions({"auto", *LIKELIHOODS})],
        "n_mixture_components": [Interval(Integral, 1, None, closed="left")],
        "bounds": [None, tuple, list],
        "beta": [Interval(Real, 0, None, closed="left")],
        "n_training_importance_samples": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "n_importance_samples": [Interval(Integral, 1, None, closed="left")],
        "bound": [StrOptions({"iwae", "elbo"})],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "ema_decay": [Interval(Real, 0, 1, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "device": [StrOptions({"cpu", "cuda", "auto"}), torch.device],
        "verbose": ["verbose"],
        "callbacks": [None, list],
    }

    def __init__(
        self,
        n_components=16,
        *,
        hidden_layer_sizes=(256, 256),
        activation="elu",
        likelihood="auto",
        n_mixture_components=5,
        bounds=None,
        beta=1.0,
        n_training_importance_samples="auto",
        n_importance_samples=100,
        bound="iwae",
        batch_size="auto",
        max_iter=200,
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
        self.bounds = bounds
        self.beta = beta
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
        or a view of one) is never loaded whole: checks and the scaling
        statistics stream through it, and training reads blocks of 1,024
        consecutive rows in a random order, shuffling the rows within windows
        of 65,536, repeatably from ``random_state``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.

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

        The data scaling is computed from the first call's X and kept, as
        are the weights and the optimizer's state between calls.
        Divergence and interrupts are handled as in :meth:`fit`; a diverging
        epoch after the first call is undone with a warning.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A chunk of training data.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : object
            The updated estimator.
        """
        return self._fit(X, incremental=True)

    def score_samples(self, X):
        """Estimate the log-density log p(x) of each row, in nats, in data space.

        The scaling the model applies internally (standardisation, the logit
        map of ``bounds``) is accounted for by its log-Jacobian, so the
        scores are densities of X as passed; see Notes for the estimate
        (``bound``, ``n_importance_samples``) and its units.

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
        X = self._validate_X(X)
        # Scoring parameters may be changed after fit (set_params), so fit's
        # validation does not cover them.
        validate_parameter_constraints(
            {key: self._parameter_constraints[key] for key in _SCORING_PARAMETERS},
            {key: getattr(self, key) for key in _SCORING_PARAMETERS},
            caller_name=type(self).__name__,
        )
        module = self.net_.module_
        K = self.n_importance_samples
        eps = torch.randn(
            K, module.n_components, generator=torch.Generator().manual_seed(self._seed)
        )
        width = self._widest_layer()
        rows = max(_MIN_CHUNK_ROWS, _CHUNK_ELEMENTS // (K * width))
        k_chunk = max(1, _CHUNK_ELEMENTS // (rows * width))

        def log_marginal(x):
            return module.log_marginal(x, eps, bound=self.bound, k_chunk=k_chunk)

        return self._map_rows(log_marginal, X, rows_per_chunk=rows).astype(np.float64)

    def score(self, X, y=None):
        """Mean log-density of X, in nats per sample (higher is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to score.

        y : Ignored
            Not used, present for API consistency by convention.

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
        X : ndarray of shape (n_samples, n_features)
            Rows in data space.
        """
        check_is_fitted(self)
        if not isinstance(n_samples, Integral) or isinstance(n_samples, bool):
            raise TypeError(f"n_samples must be an integer, got {type(n_samples).__name__}.")
        if n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples}. "
                "The sampling requires at least one sample."
            )
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
        module, device = self.net_.module_, self.net_.device
        rows = max(1, _CHUNK_ELEMENTS // self._widest_layer())
        out = []
        with _seeded_torch(seed, device), torch.inference_mode():
            for start in range(0, n_samples, rows):
                n = min(rows, n_samples - start)
                z = module.prior().sample((n,))
                out.append(module.postprocess(module.decode(z).sample()).cpu())
        return torch.cat(out).numpy()

    def save(self, path):
        """Write the fitted estimator to a file that loads without unpickling.

        The file is a safetensors file: the model's tensors and per-epoch
        losses, with the parameters, fitted attributes, skvae version and a
        checksum as JSON in its header. Read it back with :func:`skvae.load`,
        which is safe for files from untrusted sources, unlike pickle or
        joblib. Parameters that JSON cannot hold (a ``RandomState`` instance,
        ``callbacks``) are saved as None with a warning; they only matter for
        training.

        Parameters
        ----------
        path : str or path-like
            Where to write; an existing file is replaced. The usual suffix is
            ``.safetensors``.

        Examples
        --------
        >>> import tempfile, os
        >>> import numpy as np
        >>> from skvae import VAETransformer, load
        >>> X = np.random.default_rng(0).normal(size=(50, 3))
        >>> vt = VAETransformer(n_components=2, hidden_layer_sizes=(8,), max_iter=2,
        ...                     random_state=0).fit(X)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     vt.save(os.path.join(folder, "vt.safetensors"))
        ...     loaded = load(os.path.join(folder, "vt.safetensors"))
        >>> bool(np.array_equal(loaded.transform(X), vt.transform(X)))
        True
        """
        save_estimator(self, path)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags

    # -- fitting -----------------------------------------------------------------

    def _fit(self, X, *, incremental):
        fresh = not (hasattr(self, "net_") and (incremental or self.warm_start))
        if fresh:
            self._discard_fit()
        try:
            self._fit_net(X, incremental=incremental, fresh=fresh)
        except BaseException:
            # Bad input, divergence or an interrupt before the first epoch:
            # a fresh fit leaves the estimator unfitted, never half-built.
            if fresh and not hasattr(self, "net_"):
                self._discard_fit()
            raise
        return self

    def _fit_net(self, X, *, incremental, fresh):
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=fresh)
        if incremental and self.early_stopping is True:
            raise ValueError("partial_fit does not support early_stopping=True.")
        if fresh:
            self._check_data(X)
        else:
            self._check_fitted_data(X)
        early = self._use_early_stopping(len(X), incremental)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        if fresh:
            net = self._make_net(X, seed)
            self._seed = seed
        else:
            net = self.net_
        epochs = 1 if incremental else self.max_iter
        self._configure_net(net, len(X), early=early, epochs=epochs, seed=seed)
        net.initialize_callbacks()
        self._train(net, X, early=early, seed=seed)
        self.net_ = net
        self._record_history(early)
        callbacks = dict(net.callbacks_)
        guard = callbacks["last_good"]
        if guard.diverged_epoch_ is not None:
            warnings.warn(
                f"Training diverged in epoch {guard.diverged_epoch_}: {guard.reason_}. That "
                f"epoch was undone and training stopped; the model keeps the {self.n_iter_} "
                f"epochs before it. To train further, {self._divergence_remedy()} and call "
                "fit with warm_start=True, or partial_fit.",
                UserWarning,
            )
        elif not incremental and not callbacks["stopping"].stopped_:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and "
                "the optimization hasn't converged yet.",
                ConvergenceWarning,
            )

    def _train(self, net, X, *, early, seed):
        """Run the epochs; undo a diverged or interrupted one (see ``fit``)."""
        guard = dict(net.callbacks_)["last_good"]
        try:
            with _seeded_torch(_derive_seed(seed, len(net.history)), net.device):
                net.partial_fit(self._training_data(X, net.module_))
        except BaseException as exc:
            # An interrupt, or an error in a callback or on the device: never
            # swallowed, but the partial epoch is undone first.
            self._keep_completed_epochs(net, early, cause=type(exc).__name__)
            raise
        if guard.diverged_epoch_ is not None and not len(net.history):
            raise ValueError(
                f"Training diverged in epoch {guard.diverged_epoch_}: {guard.reason_}, and no "
                f"epoch ended well; {self._divergence_remedy()} and refit."
            )

    def _divergence_remedy(self):
        remedy = f"lower learning_rate_init (now {self.learning_rate_init:g})"
        return remedy + (f" or beta (now {self.beta:g})" if self.beta > 1 else "")

    def _keep_completed_epochs(self, net, early, *, cause):
        """After an interrupt or error: keep the completed epochs, if any, with a warning."""
        callbacks = dict(net.callbacks_)
        callbacks["last_good"].restore(net)
        if not len(net.history):
            return
        rule = callbacks["stopping"]
        if early and getattr(rule, "best_model_weights_", None) is not None:
            rule.on_train_end(net)
        if "averaging" in callbacks:
            callbacks["averaging"].on_train_end(net)
        self.net_ = net
        self._record_history(early)
        warnings.warn(
            f"Training stopped by {cause}; the model keeps the {self.n_iter_} completed "
            "epochs (the best one with early stopping).",
            UserWarning,
        )

    def _discard_fit(self):
        """Delete every fitted attribute, so that the estimator is unfitted."""
        for name in [key for key in vars(self) if key.endswith("_") and not key.startswith("__")]:
            delattr(self, name)
        self.__dict__.pop("_seed", None)

    def _make_net(self, X, seed):
        """Build and initialise (seeded) a net whose module sees X's scaling."""
        scaling = {}
        if LIKELIHOODS[self._likelihood()].support == "real":
            low, high = self._bounds_arrays(X.shape[1])
            shift, scale = _data_statistics(X, low, high)
            scaling = dict(shift=shift, scale=scale, low=low, high=high)
        return self._build_net(X.shape[1], scaling, seed=seed)

    def _build_net(self, n_features, scaling, *, seed):
        """A net for these parameters, initialised from ``seed``; ``scaling`` holds its buffers."""
        device = _resolve_device(self.device)
        net = VAENet(
            VAEModule,
            module__n_features=n_features,
            module__n_components=self.n_components,
            module__hidden_layer_sizes=self._hidden_sizes(),
            module__activation=self.activation,
            module__likelihood=self._likelihood(),
            module__n_mixture_components=self.n_mixture_components,
            **{f"module__{k}": v for k, v in scaling.items()},
            optimizer=torch.optim.Adam,
            lr=self.learning_rate_init,
            device=device,
            **adam_options(device),
        )
        with _seeded_torch(seed, net.device):
            net.initialize()
        return net

    def _configure_net(self, net, n_samples, *, early, epochs, seed):
        """Set what may change between calls: epochs, batches, stopping, callbacks."""
        net.max_epochs = epochs
        net.batch_size = self._batch_size(n_samples)
        net.beta = self.beta
        net.n_draws = self._training_draws()
        net.seed = _derive_seed(seed, len(net.history or ()), 1)
        net.validation_seed = _derive_seed(seed, 2)
        net.verbose = self.verbose
        net.train_split = (
            ValidSplit(self.validation_fraction, stratified=False, random_state=seed)
            if early
            else None
        )
        if getattr(net, "initialized_", False):
            for group in net.optimizer_.param_groups:
                group["lr"] = self.learning_rate_init
        net.callbacks = self._callbacks(early)
        # skorch's PrintLog formats a table every epoch, even when it prints nothing.
        net.callbacks__print_log = PrintLog() if self.verbose else None

    def _callbacks(self, early):
        """Divergence guard, stopping rule, step-size schedule, progress bar, user's callbacks."""
        monitor = "valid_loss" if early else "train_loss"
        plateau = dict(monitor=monitor, threshold=self.tol, threshold_mode="abs")
        callbacks = [
            ("last_good", LastGoodState()),
            ("stopping", StoppingRule(patience=self.n_iter_no_change, load_best=early, **plateau)),
        ]
        if self.learning_rate == "adaptive":
            # Halve the step size when the monitored loss stalls for a quarter
            # of the stopping patience, so training ends on small steps.
            schedule = LRScheduler(
                ReduceLROnPlateau, factor=0.5, patience=max(1, self.n_iter_no_change // 4), **plateau
            )
            callbacks.append(("lr_schedule", schedule))
        if self.ema_decay > 0:
            callbacks.append(("averaging", WeightAveraging(self.ema_decay)))
        if self.verbose:
            callbacks.append(("progress_bar", ProgressBar()))
        return [*callbacks, *self._user_callbacks()]

    def _training_data(self, X, module):
        """In-memory X mapped to model space once; a memory-mapped X streamed in blocks."""
        if _is_memory_mapped(X):
            return StreamedRows(X, module)
        return ModelSpaceRows.from_data(module, X)

    def _record_history(self, early):
        epochs = [row for row in self.net_.history if "train_loss" in row]
        self.n_iter_ = len(epochs)
        self.loss_curve_ = [float(row["train_loss"]) for row in epochs]
        self.validation_scores_ = None
        self.best_validation_score_ = None
        if early:
            scores = [-float(row["valid_loss"]) for row in epochs if "valid_loss" in row]
            self.validation_scores_ = scores
            self.best_validation_score_ = max(scores)

    # -- checks and resolved settings -------------------------------------------

    def _training_draws(self):
        """``n_training_importance_samples`` with 'auto' resolved by the estimator."""
        if self.n_training_importance_samples == "auto":
            return self._auto_training_importance_samples
        return self.n_training_importance_samples

    def _likelihood(self):
        """``likelihood`` with 'auto' resolved to the estimator's ``_auto_likelihood``."""
        return self._auto_likelihood if self.likelihood == "auto" else self.likelihood

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if any(not isinstance(s, Integral) or isinstance(s, bool) or s <= 0 for s in sizes):
            raise InvalidParameterError(
                f"The 'hidden_layer_sizes' parameter of {type(self).__name__} must be an int "
                f"or a sequence of ints in [1, inf). Got {self.hidden_layer_sizes!r} instead."
            )
        return tuple(int(s) for s in sizes)

    def _bounds_arrays(self, n_features):
        """``bounds`` as two float arrays of shape (n_features,), or (None, None)."""
        if self.bounds is None:
            return None, None
        try:
            low, high = (np.asarray(b, dtype=float) for b in self.bounds)
            valid = np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low < high)
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise InvalidParameterError(
                f"The 'bounds' parameter of {type(self).__name__} must be None or a (low, "
                f"high) pair of finite numbers or arrays with low < high. Got {self.bounds!r} "
                "instead."
            )
        try:
            low, high = (np.broadcast_to(b, (n_features,)).copy() for b in (low, high))
        except ValueError:
            raise ValueError(
                "bounds must be a (low, high) pair of numbers or of arrays of shape "
                f"(n_features,) = ({n_features},), got {self.bounds!r}."
            ) from None
        return low, high

    def _check_data(self, X):
        """Checks of X and the parameters before a fit from scratch."""
        self._hidden_sizes()
        support = LIKELIHOODS[self._likelihood()].support
        if self.bounds is not None and support != "real":
            raise InvalidParameterError(
                "bounds is only used with likelihood='gaussian' or 'gaussian_mixture', got "
                f"likelihood={self._likelihood()!r}; set bounds=None."
            )
        _check_support(X, self._likelihood(), *self._bounds_arrays(X.shape[1]))

    def _check_fitted_data(self, X):
        """Checks of X against the fitted model: its support, and a range it can score."""
        net = self.net_
        low, high = getattr(net, "module__low", None), getattr(net, "module__high", None)
        _check_support(X, net.module__likelihood, low, high)
        module = net.module_
        if module.shift is None or X.size == 0:
            return
        # Scaling is monotone per feature: each feature's extremes bound its row values.
        ends = torch.from_numpy(_column_extremes(X).astype(np.float64))
        with torch.inference_mode():
            _check_distance(module.preprocess(ends.to(net.device))[0].abs().max().item())

    def _use_early_stopping(self, n_samples, incremental):
        if incremental:
            return False
        if self.early_stopping == "auto":
            return n_samples * self.validation_fraction >= _MIN_VALIDATION_ROWS
        if self.early_stopping and n_samples - math.ceil(n_samples * self.validation_fraction) < 1:
            raise ValueError(
                f"early_stopping=True holds out validation_fraction={self.validation_fraction} "
                f"of the {n_samples} rows, which leaves none to train on; pass more rows, "
                "lower validation_fraction or set early_stopping=False."
            )
        return bool(self.early_stopping)

    def _batch_size(self, n_samples):
        if self.batch_size == "auto":
            # Batches of n/200 rows within [32, 128]: small data sets
            # get enough steps between two checks of the epoch-based stopping rule.
            return max(1, min(n_samples, max(32, min(128, n_samples // 200))))
        if self.batch_size > n_samples:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. It is going "
                "to be clipped",
                UserWarning,
            )
        return max(1, min(self.batch_size, n_samples))

    def _user_callbacks(self):
        callbacks = []
        for item in self.callbacks or []:
            cb = item[1] if isinstance(item, tuple) and len(item) == 2 else item
            if not isinstance(cb, Callback) and not (isinstance(cb, type) and issubclass(cb, Callback)):
                raise InvalidParameterError(
                    f"The 'callbacks' parameter of {type(self).__name__} must be None or a "
                    f"list of skorch callbacks or (name, callback) pairs. Got {item!r} in it."
                )
            callbacks.append(deepcopy(item))
        return callbacks

    # -- inference ---------------------------------------------------------------

    def _validate_X(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        self._check_fitted_data(X)
        return X

    def _widest_layer(self):
        """Width of the fitted model's widest layer, which sizes inference chunks."""
        net = self.net_
        return max(self.n_features_in_, net.module__n_components, *net.module__hidden_layer_sizes)

    def _map_rows(self, fn, X, *, rows_per_chunk):
        """Apply ``fn(x_chunk) -> tensor`` to row chunks of X under inference_mode.

        The results are written into one array allocated up front: small
        per-chunk results kept alive between the large temporaries of each
        chunk would fragment the heap and grow memory with the number of rows.
        """
        device = self.net_.device
        out = None
        with torch.inference_mode():
            for start in range(0, len(X), rows_per_chunk):
                x = rows_as_tensor(X[start : start + rows_per_chunk]).to(device)
                n = len(x)
                if n < _MIN_CHUNK_ROWS:
                    x = torch.cat([x, x[:1].expand(_MIN_CHUNK_ROWS - n, -1)])
                result = fn(x)[:n].cpu().numpy()
                if out is None:
                    out = np.empty((len(X), *result.shape[1:]), dtype=result.dtype)
                out[start : start + n] = result
        return np.empty((0,)) if out is None else out

    def _decoder_mean(self, Z):
        """Mean of p(x|z) in data space for latent rows Z (float64)."""
        module = self.net_.module_
        return self._map_rows(
            lambda z: module.postprocess(module.decode(z.to(torch.float32)).mean),
            Z,
            rows_per_chunk=max(1, _CHUNK_ELEMENTS // self._widest_layer()),
        )


def _check_support(X, likelihood, low, high):
    """Refuse X outside the likelihood's support or outside the bounds (low, high)."""
    if X.size == 0:
        return
    support = LIKELIHOODS[likelihood].support
    lo, hi = X.min(), X.max()
    if support == "binary" and not _all_rows(X, lambda block: np.isin(block, (0, 1))):
        raise ValueError(
            f"likelihood='bernoulli' requires binary data in {{0, 1}}; X has values in "
            f"[{lo:.4g}, {hi:.4g}]. Use likelihood='continuous_bernoulli' for data in "
            "[0, 1] or likelihood='gaussian' for real-valued data."
        )
    if support == "unit_interval" and (lo < 0 or hi > 1):
        raise ValueError(
            f"likelihood='continuous_bernoulli' requires data in [0, 1]; X has values "
            f"in [{lo:.4g}, {hi:.4g}]. Scale X to [0, 1] (e.g. with MinMaxScaler) or "
            "use likelihood='gaussian'."
        )
    if low is None:
        return
    lo, hi = X.min(axis=0), X.max(axis=0)
    outside = np.flatnonzero(~((lo > low) & (hi < high)))
    if outside.size:
        j = outside[0]
        raise ValueError(
            f"X must lie strictly inside bounds; feature {j} has values in "
            f"[{lo[j]:.4g}, {hi[j]:.4g}], its bounds are "
            f"({low[j]:.4g}, {high[j]:.4g}). Widen the bounds or use bounds=None."
        )


def _all_rows(X, condition):
    """Whether ``condition(block)`` holds everywhere, evaluated on row blocks of X."""
    chunk_rows = _stream_rows(X)
    return all(
        condition(X[start : start + chunk_rows]).all() for start in range(0, len(X), chunk_rows)
    )


def _stream_rows(X):
    return max(1, _STREAM_ELEMENTS // max(1, X.shape[1]))


def _column_extremes(X):
    """Each feature's minimum and maximum, shape (2, n_features)."""
    return np.stack([X.min(axis=0), X.max(axis=0)])


def _check_distance(distance):
    """Refuse rows ``distance`` training standard deviations from the training mean, if too far."""
    if not distance <= _MAX_STANDARDISED:
        raise ValueError(
            f"X has values {distance:.3g} training standard deviations from the training "
            f"mean; the model scores rows up to {_MAX_STANDARDISED:.0e} away. Check that X "
            "has the units of the training data and holds no sentinel values (such as "
            "1e30 for a missing entry)."
        )


def _data_statistics(X, low, high):
    """Per-feature mean and scale of X (logit-mapped when bounded), in one streaming pass."""
    chunk_rows = _stream_rows(X)
    scaler = StandardScaler()
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, len(X), chunk_rows):
            block = np.asarray(X[start : start + chunk_rows], dtype=np.float64)
            if low is not None:
                block = logit((block - low) / (high - low))
            scaler.partial_fit(block)
    if not (np.all(np.isfinite(scaler.mean_)) and np.all(np.isfinite(scaler.var_))):
        raise ValueError(
            f"The mean or variance of X overflows float64 (|X| reaches {np.max(np.abs(X)):.3g}); "
            "divide X by a constant first, e.g. with sklearn.preprocessing.MaxAbsScaler."
        )
    return scaler.mean_, scaler.scale_


def _is_memory_mapped(X):
    """Whether X is a np.memmap or a view of one (read from disk, not held in memory)."""
    while X is not None:
        if isinstance(X, (np.memmap, mmap.mmap)):
            return True
        X = getattr(X, "base", None)
    return False


def _resolve_device(device):
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} but CUDA is not available on this machine; use "
            "device='cpu' or device='auto'."
        )
    return device
