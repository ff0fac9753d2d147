"""The estimators' parameters, declared once, and every check of them.

Every estimator lists its parameters as ``Parameter`` records (the shared
ones, with its own defaults, plus its own) in ``_parameters``; from that one
list come its ``_parameter_constraints`` (each parameter alone, checked by
scikit-learn on entry to fit) and the Parameters section of its docstring,
and its written-out ``__init__`` is tested against it. ``check_settings`` is
the one check of parameters against each other, the data and the call, and
resolves their ``'auto'`` values for a fit.
"""

import math
import warnings
from numbers import Integral, Real
from typing import NamedTuple

import torch

from ._data import bounds_arrays, check_callbacks, hidden_sizes
from ._likelihoods import LIKELIHOODS
from ._module import ACTIVATIONS
from ._sklearn_compat import Interval, StrOptions, validate_parameter_constraints


class Parameter(NamedTuple):
    """One constructor parameter; ``type`` and ``doc`` are its numpydoc entry."""

    name: str
    default: object
    constraints: list
    type: str
    doc: str


_POSITIVE_INT = [Interval(Integral, 1, None, closed="left")]

SHARED = (
    Parameter("n_components", 16, _POSITIVE_INT, "int", """\
Dimension of the latent space z (as in PCA). Latent dimensions the data
do not need collapse onto the prior and cost little, so the default errs
on the large side; choose it by held-out likelihood (``GridSearchCV``)
when it matters."""),
    Parameter("hidden_layer_sizes", (256, 256), ["array-like", *_POSITIVE_INT], "tuple of int", """\
Widths of the encoder's hidden layers; the decoder mirrors them. ``()``
gives a linear encoder and decoder: with the Gaussian likelihood the model
is then factor analysis, x ~ N(b, W W^T + diag(s^2))."""),
    Parameter("activation", "elu", [StrOptions(set(ACTIVATIONS))],
              "{'identity', 'logistic', 'tanh', 'relu', 'elu', 'silu'}", """\
Activation of the hidden layers. ELU is smooth, so the decoder's mean
and scales vary smoothly with z, which the density between training
rows relies on."""),
    Parameter("likelihood", "auto", [StrOptions({"auto", *LIKELIHOODS})],
              "{'auto', 'gaussian', 'gaussian_mixture', 'bernoulli', 'continuous_bernoulli'}", """\
Family of the decoder p(x|z). ``'auto'`` is ``'gaussian'`` for
:class:`VAETransformer`, :class:`VAEOutlierDetector` and
:class:`VAEImputer`. For :class:`VAEDensityEstimator` it is chosen by
held-out likelihood: :meth:`fit` trains a model with
``'gaussian_mixture'`` and one with ``'gaussian'`` on the same rows and
keeps the one whose best score on the early-stopping rows is higher
(``likelihood_``; about twice the fit time); without early stopping, for
a table with categorical or integer columns, and in :meth:`partial_fit`,
it is ``'gaussian_mixture'``. ``'gaussian'``:
real data; the decoder gives the mean, and a standard deviation per
feature is learned, bounded below by 1e-3 in standardised units.
``'gaussian_mixture'``: real data; for each feature the decoder gives the
weights, means and standard deviations (same floor) of
``n_mixture_components`` Gaussians, so p(x|z) can be skewed, multimodal or
close to discrete where the data are; the best density estimates, but a
latent code that explains less of each row (the decoder can call more of
it noise), hence not the transformer's default. ``'bernoulli'``: binary
data in {0, 1}. ``'continuous_bernoulli'``: data in [0, 1] (a proper
density there, unlike the Bernoulli)."""),
    Parameter("n_mixture_components", 5, _POSITIVE_INT, "int", """\
Gaussians per feature of the ``'gaussian_mixture'`` likelihood; ignored
by the other likelihoods."""),
    Parameter("bounds", None, [None, tuple, list], "tuple (low, high) or None", """\
For the real-valued likelihoods, data known to lie strictly inside
``(low, high)`` (pixel intensities, proportions); each bound is a number or
an array of shape (n_features,). The model works on
``logit((x - low) / (high - low))`` and reports densities in data space,
the log-Jacobian of that map included. Values on or outside the bounds
are refused with a ``ValueError`` by every method."""),
    Parameter("power_transform", False, ["boolean", StrOptions({"auto"})], "bool or 'auto'", """\
Whether each feature is Gaussianised before the VAE: standardised, then
mapped by a Yeo-Johnson power transform whose exponent is fitted by
maximum likelihood (as :class:`~sklearn.preprocessing.PowerTransformer`
does), then standardised again. Beyond a feature's training range the map
continues along its tangent, so that the exponent fitted on the training
rows does not push far rows polynomially farther or pull them in. Its
log-Jacobian is added to the scores, which stay densities of the data as
passed. ``'auto'`` applies it when the likelihood models real values and
``bounds`` is None (after the logit map of ``bounds`` the data are
already spread); True requires a likelihood of real values."""),
    Parameter("categorical_features", "from_dtype",
              ["array-like", StrOptions({"from_dtype"}), None], "array-like of {bool, int, str}, 'from_dtype' or None", """\
Which columns are categorical, as in
:class:`~sklearn.ensemble.HistGradientBoostingClassifier`: a boolean mask,
indices or column names, or ``'from_dtype'``: with a pandas DataFrame, its
``category``, ``bool`` and ``object``/string columns of labels; with an
array, none. Each categorical column gets a categorical distribution over
its levels (those seen in fit, or its category set); a DataFrame's integer
columns get a probability mass over the integers, its other columns the
real-valued likelihood. None: no categorical columns. See the user guide,
"Tabular data"."""),
    Parameter("handle_unknown", "error", [StrOptions({"error", "ignore", "warn"})],
              "{'error', 'ignore', 'warn'}", """\
What a categorical value not seen in fit does after fit, as in
:class:`~sklearn.preprocessing.OneHotEncoder`: ``'error'`` raises a
``ValueError`` naming the column and the value; ``'ignore'`` reads it as a
missing entry, marginalised like any other; ``'warn'`` does the same with
a warning."""),
    Parameter("beta", 1.0, [Interval(Real, 0, None, closed="left")], "float", """\
Weight of the KL term in the training objective (beta-VAE). Scores and
``validation_scores_`` always use the true bound (beta=1)."""),
    Parameter("training_noise", 0.0, [Interval(Real, 0, None, closed="left")], "float", """\
Standard deviation of the Gaussian noise added to every training batch,
in the model's standardised units (after the maps of ``bounds`` and
``power_transform``), with a real-valued likelihood; ignored by the
Bernoulli likelihoods. The model then fits the data density convolved
with a narrow kernel, as a kernel density estimate does, and cannot put
near-infinite density on single rows (memorised outliers, the two values
of a binary feature). Validation and scored rows never get any."""),
    Parameter("n_training_importance_samples", "auto",
              [StrOptions({"auto"}), *_POSITIVE_INT], "int or 'auto'", """\
Latent draws per row in training. 1 maximises the ELBO with an analytic
KL term; K > 1 maximises IWAE_K (Burda et al., 2016), a tighter bound
that lets the encoder be less exact, at up to K times the cost of a
step (the encoder runs once). ``'auto'`` is 4 for
:class:`VAEDensityEstimator`, whose product is the likelihood (on the
digits validation split IWAE_4 training gained 0.5 nats per sample for
1.7 times the fit time), and 1 for :class:`VAETransformer`, whose
product is the encoder, and for :class:`VAEOutlierDetector`; 20 for
:class:`VAEImputer` (see its Notes)."""),
    Parameter("n_importance_samples", 100, _POSITIVE_INT, "int", """\
K, the number of latent draws per row used by :meth:`score_samples` and
:meth:`score`. Larger K gives a tighter, less noisy estimate at K times
the cost."""),
    Parameter("bound", "iwae", [StrOptions({"iwae", "elbo"})], "{'iwae', 'elbo'}", """\
Estimate returned by :meth:`score_samples`: the importance-weighted
bound IWAE_K (Burda et al., 2016), which approaches log p(x) as K grows,
or the evidence lower bound with an analytic KL term."""),
    Parameter("batch_size", "auto", [StrOptions({"auto"}), *_POSITIVE_INT], "int or 'auto'", """\
Rows per minibatch. ``'auto'`` is ``n_samples // 200`` clipped to
[32, 128] (and to ``n_samples``) for :class:`VAEDensityEstimator` and
:class:`VAETransformer`: about 200 steps per epoch, so that small data
sets train long enough between two checks of the epoch-based stopping
rule; for :class:`VAEOutlierDetector` it is ``min(128, n_samples)``.
Values larger than the data are clipped with a warning, as in
MLPRegressor."""),
    Parameter("max_iter", 500, _POSITIVE_INT, "int", """\
Maximum number of epochs (passes over the data): a cap, not a schedule,
since the stopping rule of ``n_iter_no_change`` ends training. A
``ConvergenceWarning`` says when the cap came first. The density
estimator's and the transformer's 500 is above where their stopping rule
fired on the benchmarks (246 to 339 epochs for 2,000 rows near a thin
surface, where MLPRegressor's 200 cut them short, and the fitted model
was up to 0.45 nats per row further from the truth);
:class:`VAEOutlierDetector` and :class:`VAEImputer` keep the 200 their
defaults were chosen with."""),
    Parameter("learning_rate", "adaptive", [StrOptions({"constant", "adaptive"})],
              "{'constant', 'adaptive'}", """\
Step-size schedule, named as in MLPRegressor. ``'adaptive'`` halves the
step size whenever the monitored loss (validation loss with early
stopping, training loss without) has not improved by ``tol`` for
``max(1, n_iter_no_change // 4)`` epochs, so training ends on small
steps near a maximum of the bound. Each call to :meth:`fit` or
:meth:`partial_fit` starts at ``learning_rate_init``."""),
    Parameter("learning_rate_init", 2e-3, [Interval(Real, 0, None, closed="neither")], "float", """\
Initial step size of the Adam optimizer. The density estimator's and the
transformer's 2e-3, MLPRegressor's 1e-3 doubled, gave the higher held-out
likelihood with the weight average of ``ema_decay`` and the adaptive
schedule on validation splits of digits, breast cancer and wine (3e-3 did
not)."""),
    Parameter("early_stopping", "auto", ["boolean", StrOptions({"auto"})], "bool or 'auto'", """\
Whether :meth:`fit` holds out ``validation_fraction`` of the rows and
stops when their mean bound has not improved by ``tol`` for
``n_iter_no_change`` epochs, restoring the best weights. The held-out
rows are scored with the training objective at beta=1 (the ELBO, or
IWAE_K with ``n_training_importance_samples=K``), on the same latent
draws every epoch, so that epochs are compared without Monte Carlo noise.
``'auto'`` enables it when the held-out part would have at least 20
rows. Without it, training stops when the training loss stalls in the
same way. :meth:`partial_fit` never uses it."""),
    Parameter("validation_fraction", 0.1, [Interval(Real, 0, 1, closed="neither")], "float", """\
Proportion of the rows held out for early stopping."""),
    Parameter("n_iter_no_change", 20, _POSITIVE_INT, "int", """\
Epochs without an improvement of at least ``tol`` before training stops."""),
    Parameter("ema_decay", 0.99, [Interval(Real, 0, 1, closed="left")], "float in [0, 1)", """\
Decay of the exponential moving average of the weights (Polyak
averaging) that becomes the fitted model: after every step the average
moves ``1 - ema_decay`` of the way to the current weights, so it spans
about ``1 / (1 - ema_decay)`` steps. Early stopping validates the
average; training continues from the raw weights (in ``partial_fit`` and
with ``warm_start``; a model read by :func:`skvae.load` continues from
the average, as the file holds only the fitted weights). The late Adam
steps scatter the weights around a maximum of the bound and their
average lies nearer to it: with 0.99, the held-out log-likelihood of the
digits and breast-cancer validation splits rose by 0.9 and 1.5 nats per
sample. 0 turns averaging off."""),
    Parameter("tol", 1e-4, [Interval(Real, 0, None, closed="left")], "float", """\
Minimum improvement of the monitored loss, in nats per sample."""),
    Parameter("warm_start", False, ["boolean"], "bool", """\
When True, :meth:`fit` continues training the fitted model instead of
starting anew; the architecture and the data maps of the first fit are
kept."""),
    Parameter("random_state", None, ["random_state"], "int, RandomState instance or None", """\
Seeds weight initialisation, shuffling, the validation split, the
training noise and the draws of :meth:`score_samples`. Pass an int for
reproducible results (a fit on a machine whose load changes can differ in
the last digits unless torch's thread count is fixed, see Notes). Global
random states (numpy's, torch's) are never touched."""),
    Parameter("device", "cpu", [StrOptions({"cpu", "cuda", "auto"}), torch.device],
              "{'cpu', 'cuda', 'auto'} or torch.device", """\
Where the model trains and scores. ``'auto'`` picks CUDA when available."""),
    Parameter("verbose", 0, ["verbose"], "int", """\
0 is silent; 1 or more shows a progress bar and a table of the training
and validation loss per epoch."""),
    Parameter("callbacks", None, [None, list], "list of skorch callbacks or None", """\
Extra callbacks for the skorch training loop (e.g.
``skorch.callbacks.LRScheduler``), as instances or ``(name, instance)``
pairs. They are copied for each call, never modified; their
``on_train_end`` also runs when training is interrupted."""),
)

# Where an estimator's own parameters go in its signature: before these.
_TRAILING = ("warm_start", "random_state", "device", "verbose", "callbacks")


def parameters(own=(), **defaults):
    """The shared parameters with an estimator's ``defaults``, and its ``own`` before the trailing ones."""
    shared = {p.name: p for p in SHARED}
    unknown = set(defaults) - set(shared) - {p.name for p in own}
    if unknown:
        raise ValueError(f"no such parameters: {sorted(unknown)}")
    head = [p for p in SHARED if p.name not in _TRAILING]
    tail = [p for p in SHARED if p.name in _TRAILING]
    listed = [*head, *own, *tail]
    return tuple(p._replace(default=defaults.get(p.name, p.default)) for p in listed)


def shared_arguments(arguments):
    """The shared parameters' values among an ``__init__``'s ``locals()``, for ``_BaseVAE.__init__``.

    An estimator whose parameters or defaults differ from the shared ones
    writes its own signature and passes the shared ones on with this.
    """
    return {p.name: arguments[p.name] for p in SHARED}


def constraints(params):
    """``_parameter_constraints`` for scikit-learn's validation."""
    return {p.name: p.constraints for p in params}


def docs(params):
    """The Parameters section's entries, numpydoc style, unindented."""
    entries = []
    for p in params:
        body = "\n".join("    " + line for line in p.doc.splitlines())
        entries.append(f"{p.name} : {p.type}, default={p.default!r}\n{body}")
    return "\n\n".join(entries)


# Early stopping with early_stopping='auto' needs this many held-out rows.
_MIN_VALIDATION_ROWS = 20


class Settings(NamedTuple):
    """The parameters of one fit, checked and with their ``'auto'`` values resolved."""

    likelihoods: tuple  # those a fresh fit trains, the best kept; () when the fit continues the model
    model: dict  # what a new model is built with: hidden_layer_sizes, low and high (bounds), power
    training: dict  # the ``TrainingOptions`` that come from the parameters


def check_settings(estimator, shape, *, incremental, fresh, table):
    """Check the parameters against each other, the data and the call; resolve their ``'auto'`` values.

    Each parameter alone is checked by ``_parameter_constraints``; this is
    the one check of what they cannot see: combinations of parameters, and
    parameters against the data (its ``shape``; ``table``, the schema of the
    columns the model reads, or None for an array) and the call
    (``incremental`` for partial_fit; ``fresh`` when a new model is built,
    without which the model's settings are those of the fitted one). What an
    ``'auto'`` means for an estimator is in its ``_auto_likelihoods``,
    ``_auto_training_importance_samples`` and ``_auto_batch_size``.

    Returns
    -------
    settings : Settings
    """
    est, owner = estimator, type(estimator).__name__
    n_samples, n_features = shape
    if incremental and not isinstance(est.early_stopping, str) and est.early_stopping:
        raise ValueError("partial_fit does not support early_stopping=True.")
    training = dict(
        max_epochs=1 if incremental else est.max_iter,
        batch_size=_batch_size(est, n_samples),
        learning_rate_init=est.learning_rate_init,
        adaptive=est.learning_rate == "adaptive",
        early_stopping=False if incremental else _early_stopping(est, n_samples),
        validation_fraction=est.validation_fraction,
        n_iter_no_change=est.n_iter_no_change,
        tol=est.tol,
        beta=est.beta,
        n_draws=_resolved(est.n_training_importance_samples, est._auto_training_importance_samples),
        ema_decay=est.ema_decay,
        training_noise=est.training_noise,
        verbose=est.verbose,
        callbacks=check_callbacks(est.callbacks, owner),
        incremental=incremental,
    )
    if not fresh:
        return Settings((), {}, training)
    likelihood = _resolved(est.likelihood, est._auto_likelihoods[0])
    support = LIKELIHOODS[likelihood].support
    plain = table is None or table.plain
    if not plain:
        _check_table_settings(likelihood, support, est.bounds)
    low, high = bounds_arrays(est.bounds, n_features, owner, likelihood)
    model = dict(
        hidden_layer_sizes=hidden_sizes(est.hidden_layer_sizes, owner),
        low=low,
        high=high,
        power=_power_transform(est, likelihood, support),
    )
    # 'auto' trains each of _auto_likelihoods (all of real values) and keeps the one that
    # scores the held-out rows best; a table with categorical or integer columns keeps the
    # first: its integers' interval masses and spikes need the mixture's shapes, and its
    # fits are the slowest to double.
    auto = est.likelihood == "auto" and training["early_stopping"] and plain
    return Settings(est._auto_likelihoods if auto else (likelihood,), model, training)


def check_scoring_parameters(estimator):
    """Check the parameters read at scoring time (``_scoring_parameters``): set_params may change them after fit."""
    names = estimator._scoring_parameters
    validate_parameter_constraints(
        {name: estimator._parameter_constraints[name] for name in names},
        {name: getattr(estimator, name) for name in names},
        caller_name=type(estimator).__name__,
    )


def _resolved(value, auto):
    return auto if isinstance(value, str) and value == "auto" else value


def _batch_size(est, n_samples):
    if est.batch_size == "auto":
        return est._auto_batch_size(n_samples)
    if est.batch_size > n_samples:
        # scikit-learn's MLP words it so.
        warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped", UserWarning)
    return min(est.batch_size, n_samples)


def _early_stopping(est, n_samples):
    """``early_stopping`` resolved: 'auto' is on when the held-out part has enough rows."""
    if isinstance(est.early_stopping, str):
        return n_samples * est.validation_fraction >= _MIN_VALIDATION_ROWS
    if est.early_stopping and n_samples - math.ceil(n_samples * est.validation_fraction) < 1:
        raise ValueError(
            f"early_stopping=True holds out validation_fraction={est.validation_fraction} "
            f"of the {n_samples} rows, which leaves none to train on; pass more rows, "
            "lower validation_fraction or set early_stopping=False."
        )
    return bool(est.early_stopping)


def _power_transform(est, likelihood, support):
    """``power_transform`` resolved: 'auto' is on for real-valued, unbounded data."""
    if isinstance(est.power_transform, str):
        return support == "real" and est.bounds is None
    power = bool(est.power_transform)
    if power and support != "real":
        raise ValueError(
            "power_transform=True requires a likelihood of real values ('gaussian' or "
            f"'gaussian_mixture'), got likelihood={likelihood!r}; set "
            "power_transform='auto' or False."
        )
    return power


def _check_table_settings(likelihood, support, bounds):
    """Refuse settings that a table of categorical or integer columns cannot take."""
    if support != "real":
        raise ValueError(
            "A table with categorical or integer columns needs a likelihood of real values for its "
            f"numeric columns ('auto', 'gaussian' or 'gaussian_mixture'), got likelihood={likelihood!r}."
        )
    if bounds is not None:
        raise ValueError(
            "bounds applies to tables of real columns only; this one has categorical or integer "
            "columns. Set bounds=None (integer columns are modelled as integers)."
        )
