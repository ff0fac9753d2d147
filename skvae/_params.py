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
    Parameter("n_components", 16, [StrOptions({"auto"}), *_POSITIVE_INT], "int or 'auto'", """\
Dimension of the latent space z, as in PCA. Dimensions the data do not
need collapse onto the prior and cost little, hence a generous default.
``'auto'``: :meth:`fit` first trains 16 for ``min(20, max_iter)`` epochs,
then trains anew with as many as that encoder uses (those whose posterior
mean varies over the rows by a variance above 0.01; at least 1), about a
tenth more time. With few rows or epochs the unused ones may not have
collapsed yet, and all 16 are kept. :meth:`partial_fit` builds 16 (user
guide, "Choosing ``n_components`` and layers"). ``n_components_`` holds
the number."""),
    Parameter("hidden_layer_sizes", (256, 256), ["array-like", *_POSITIVE_INT], "tuple of int", """\
Widths of the encoder's hidden layers; the decoder mirrors them. ``()``
gives linear networks: with the Gaussian likelihood, factor analysis."""),
    Parameter("activation", "elu", [StrOptions(set(ACTIVATIONS))],
              "{'identity', 'logistic', 'tanh', 'relu', 'elu', 'silu'}", """\
Activation of the hidden layers; the smooth ELU keeps the density smooth."""),
    Parameter("likelihood", "auto", [StrOptions({"auto", *LIKELIHOODS})],
              "{'auto', 'gaussian', 'gaussian_mixture', 'bernoulli', 'continuous_bernoulli'}", """\
Family of the decoder p(x|z) (user guide, "Choosing a likelihood"):
``'gaussian'``, or ``'gaussian_mixture'`` (``n_mixture_components`` per
feature), for real values; ``'bernoulli'`` for {0, 1};
``'continuous_bernoulli'`` for [0, 1]. ``'auto'`` is ``'gaussian'``, but
:class:`VAEDensityEstimator` fits both Gaussian kinds and keeps the better
on the early-stopping rows, or the mixture if it has none (see its Notes)."""),
    Parameter("n_mixture_components", 5, _POSITIVE_INT, "int", """\
Gaussians per feature of the ``'gaussian_mixture'`` likelihood."""),
    Parameter("prior", "normal", [StrOptions({"normal", "mixture"})], "{'normal', 'mixture'}", """\
The prior p(z): ``'normal'``, N(0, I); ``'mixture'``, a mixture of 10
diagonal Gaussians whose weights, means and scales are learned with the
rest, for data whose codes do not fill N(0, I): clusters, or sheets of
a surface (user guide, "Choosing a prior"). Its KL term has no closed
form; the model's draws estimate it (a one-draw fit, ``bound='elbo'``)."""),
    Parameter("bounds", None, [None, tuple, list], "tuple (low, high) or None", """\
Interval strictly holding real data (pixels, proportions), numbers or
arrays of shape (n_features,): the model works on
``logit((x - low) / (high - low))``; values outside raise a ValueError."""),
    Parameter("power_transform", False, ["boolean", StrOptions({"auto"})], "bool or 'auto'", """\
Whether each feature is Gaussianised by a fitted Yeo-Johnson map, linear
beyond the training range, before the VAE. ``'auto'``: with a real-valued
likelihood and no ``bounds``; True needs a real-valued likelihood."""),
    Parameter("categorical_features", "from_dtype",
              ["array-like", StrOptions({"from_dtype"}), None], "array-like of {bool, int, str}, 'from_dtype' or None", """\
Categorical columns, as in HistGradientBoostingClassifier: a boolean
mask, indices or names; ``'from_dtype'``: a DataFrame's ``category``,
``bool`` and label columns; None: none (user guide, "Tabular data")."""),
    Parameter("discrete_features", None, ["array-like", StrOptions({"auto"}), None],
              "array-like of {bool, int, str}, 'auto' or None", """\
Real columns whose frequent values (seen 10 times or more in the rows of
the first fit or partial_fit) each get a probability of their own, a mass
beside the column's density: codes, caps, zeros, or indicators stored as
floats. A boolean mask, indices or names; ``'auto'``: the real columns
nearly all on at most 32 frequent values, or half on one value, a mass for
each value on 5% of their observed entries; None: none (user guide,
"Tabular data")."""),
    Parameter("handle_unknown", "error", [StrOptions({"error", "ignore", "warn"})],
              "{'error', 'ignore', 'warn'}", """\
What a category unseen in fit does: ``'error'`` raises a ValueError,
``'ignore'`` reads it as missing, ``'warn'`` does so with a warning."""),
    Parameter("beta", 1.0, [Interval(Real, 0, None, closed="left")], "float", """\
Weight of the KL term in training (beta-VAE); scores always use beta=1."""),
    Parameter("training_noise", 0.0, [Interval(Real, 0, None, closed="left")], "float", """\
SD of Gaussian noise added to training batches (standardised units, real
likelihoods): no near-infinite density on single rows. Not when scoring."""),
    Parameter("n_training_importance_samples", "auto",
              [StrOptions({"auto"}), *_POSITIVE_INT], "int or 'auto'", """\
Latent draws per row in training: 1 maximises the ELBO, K > 1 the tighter
IWAE_K at up to K times the cost. ``'auto'``: 4 for the density
estimator, 20 for the imputer (as MIWAE), 1 otherwise."""),
    Parameter("n_importance_samples", 100, _POSITIVE_INT, "int", """\
K, the latent draws per row when scoring: a larger K gives a tighter,
less noisy estimate at K times the cost."""),
    Parameter("bound", "iwae", [StrOptions({"iwae", "elbo"})], "{'iwae', 'elbo'}", """\
Estimate of :meth:`score_samples`: IWAE_K, which approaches log p(x) as K
grows, or the ELBO, cheaper and looser."""),
    Parameter("batch_size", "auto", [StrOptions({"auto"}), *_POSITIVE_INT], "int or 'auto'", """\
Rows per minibatch. ``'auto'``: ``n_samples // 200`` within [32, 128],
at most ``n_samples`` (about 200 steps per epoch, enough on small data),
or ``min(128, n_samples)`` for the detector. Larger values are clipped."""),
    Parameter("max_iter", 500, _POSITIVE_INT, "int", """\
Maximum number of epochs: a cap, which the stopping rule usually comes
before (a ConvergenceWarning says when it does not)."""),
    Parameter("learning_rate", "adaptive", [StrOptions({"constant", "adaptive", "cosine"})],
              "{'constant', 'adaptive', 'cosine'}", """\
Step-size schedule: ``'adaptive'`` (as in MLPRegressor) halves the step
when the monitored loss has not improved by ``tol`` for
``max(1, n_iter_no_change // 4)`` epochs (the density estimator: ``// 2``
when 100 to 999 rows are held out); ``'cosine'`` decays it to 0
along a half cosine over ``max_iter`` epochs, batch by batch, so that
``max_iter`` is a budget (no ConvergenceWarning when it is spent;
``partial_fit`` keeps ``learning_rate_init``). Each fit starts anew."""),
    Parameter("learning_rate_init", 2e-3, [Interval(Real, 0, None, closed="neither")], "float", """\
Initial step size of Adam; 2e-3 suits the weight average and the
adaptive schedule of the density estimator."""),
    Parameter("early_stopping", "auto", ["boolean", StrOptions({"auto"})], "bool or 'auto'", """\
Whether :meth:`fit` stops when the bound of the held-out
``validation_fraction`` has not improved by ``tol`` for
``n_iter_no_change`` epochs, keeping the best weights; ``'auto'``: when
20 rows or more are held out."""),
    Parameter("validation_fraction", 0.1, [Interval(Real, 0, 1, closed="neither")], "float", """\
Proportion of the rows held out for early stopping."""),
    Parameter("n_iter_no_change", 20, _POSITIVE_INT, "int", """\
Epochs without an improvement of at least ``tol`` before training stops."""),
    Parameter("ema_decay", 0.99, [Interval(Real, 0, 1, closed="left")], "float in [0, 1)", """\
Decay of the moving average of the weights (Polyak averaging) that is
the fitted model, over about ``1 / (1 - ema_decay)`` steps: it lies nearer
a maximum of the bound than the last step. 0 turns it off."""),
    Parameter("tol", 1e-4, [Interval(Real, 0, None, closed="left")], "float", """\
Minimum improvement of the monitored loss, in nats per sample."""),
    Parameter("warm_start", False, ["boolean"], "bool", """\
When True, :meth:`fit` continues training the fitted model."""),
    Parameter("random_state", None, ["random_state"], "int, RandomState instance or None", """\
Seeds every draw (weights, shuffling, validation split, noise, scoring);
global random states are never touched. On a busy machine, fix torch's
thread count for bit-for-bit fits (user guide, "Performance")."""),
    Parameter("device", "cpu", [StrOptions({"cpu", "cuda", "auto"}), torch.device],
              "{'cpu', 'cuda', 'auto'} or torch.device", """\
Where the model trains and scores. ``'auto'`` picks CUDA when available."""),
    Parameter("verbose", 0, ["verbose"], "int", """\
0 is silent; 1 or more shows a progress bar and the loss per epoch."""),
    Parameter("callbacks", None, [None, list], "list of skorch callbacks or None", """\
Extra skorch callbacks (e.g. ``LRScheduler``), as instances or
``(name, instance)`` pairs, copied for each call."""),
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


# n_components='auto': a first fit of AUTO_COMPONENTS latent dimensions for at most
# AUTO_FIRST_EPOCHS epochs, then a fit with the dimensions whose posterior mean
# varies over the rows by more than USED_VARIANCE (the prior's variance is 1).
AUTO_COMPONENTS = 16
# Components of the learned prior (prior='mixture').
PRIOR_COMPONENTS = 10
AUTO_FIRST_EPOCHS = 20
USED_VARIANCE = 0.01


class Settings(NamedTuple):
    """The parameters of one fit, checked and with their ``'auto'`` values resolved."""

    likelihoods: tuple  # those a fresh fit trains, the best kept; () when the fit continues the model
    model: dict  # what a new model is built with: n_components, hidden_layer_sizes, low and high (bounds), power, prior_components
    training: dict  # the ``TrainingOptions`` that come from the parameters
    first_epochs: int = 0  # n_components='auto': epochs of the first fit that counts the dimensions used; 0: none


def check_settings(estimator, shape, *, incremental, fresh, table):
    """Check the parameters against each other, the data and the call; resolve their ``'auto'`` values.

    Each parameter alone is checked by ``_parameter_constraints``; this is
    the one check of what they cannot see: combinations of parameters, and
    parameters against the data (its ``shape``; ``table``, the schema of the
    columns the model reads, or None for an array) and the call
    (``incremental`` for partial_fit; ``fresh`` when a new model is built,
    without which the model's settings are those of the fitted one). What an
    ``'auto'`` means for an estimator is in its ``_auto_likelihoods``,
    ``_auto_training_importance_samples`` and ``_auto_batch_size``, and its
    adaptive schedule's patience in ``_halving_patience``.

    Returns
    -------
    settings : Settings
    """
    est, owner = estimator, type(estimator).__name__
    n_samples, n_features = shape
    if incremental and not isinstance(est.early_stopping, str) and est.early_stopping:
        raise ValueError("partial_fit does not support early_stopping=True.")
    early_stopping = False if incremental else _early_stopping(est, n_samples)
    training = dict(
        max_epochs=1 if incremental else est.max_iter,
        batch_size=_batch_size(est, n_samples),
        learning_rate_init=est.learning_rate_init,
        schedule=est.learning_rate,
        early_stopping=early_stopping,
        validation_fraction=est.validation_fraction,
        n_iter_no_change=est.n_iter_no_change,
        halving_patience=est._halving_patience(n_samples, early_stopping),
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
    auto_components = isinstance(est.n_components, str)
    model = dict(
        n_components=AUTO_COMPONENTS if auto_components else est.n_components,
        hidden_layer_sizes=hidden_sizes(est.hidden_layer_sizes, owner),
        low=low,
        high=high,
        power=_power_transform(est, likelihood, support),
        prior_components=PRIOR_COMPONENTS if est.prior == "mixture" else 0,
    )
    # 'auto' trains each of _auto_likelihoods (all of real values) and keeps the one that
    # scores the held-out rows best; a table with categorical or integer columns keeps the
    # first: its integers' interval masses and spikes need the mixture's shapes, and its
    # fits are the slowest to double.
    auto = est.likelihood == "auto" and training["early_stopping"] and plain
    first_epochs = min(AUTO_FIRST_EPOCHS, est.max_iter) if auto_components and not incremental else 0
    return Settings(est._auto_likelihoods if auto else (likelihood,), model, training, first_epochs)


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


def held_out_rows(n_samples, validation_fraction):
    """The rows ``ValidSplit`` holds out of ``n_samples`` for early stopping."""
    return math.ceil(validation_fraction * n_samples)


def _early_stopping(est, n_samples):
    """``early_stopping`` resolved: 'auto' is on when the held-out part has enough rows."""
    if isinstance(est.early_stopping, str):
        return n_samples * est.validation_fraction >= _MIN_VALIDATION_ROWS
    if est.early_stopping and n_samples - held_out_rows(n_samples, est.validation_fraction) < 1:
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
