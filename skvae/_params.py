"""The estimators' parameters, declared once: name, default, constraints and documentation.

Every estimator lists its parameters as ``Parameter`` records (the shared
ones, with its own defaults, plus its own); from that one list come its
``__init__`` (``make_init``: assignments only, the signature scikit-learn's
``get_params`` reads), its ``_parameter_constraints`` and the Parameters
section of its docstring.
"""

import inspect
from numbers import Integral, Real
from typing import NamedTuple

import torch

from ._likelihoods import LIKELIHOODS
from ._module import ACTIVATIONS
from ._sklearn_compat import Interval, StrOptions


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
Dimension of the latent space z, as in PCA. Dimensions the data do not
need collapse onto the prior and cost little, hence a generous default."""),
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
    Parameter("learning_rate", "adaptive", [StrOptions({"constant", "adaptive"})],
              "{'constant', 'adaptive'}", """\
Step-size schedule, as in MLPRegressor: ``'adaptive'`` halves the step
when the monitored loss has not improved by ``tol`` for
``max(1, n_iter_no_change // 4)`` epochs; each fit starts anew."""),
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


def make_init(params):
    """An ``__init__`` that assigns each parameter, with the signature ``(self, first, *, rest)``.

    Like the ``__init__`` that ``dataclasses`` writes: the signature is real
    (``inspect.signature``, ``help`` and scikit-learn's ``get_params`` read
    it), arguments are bound by it (an unknown name is a TypeError), and the
    body only assigns, in signature order.
    """
    kinds = [inspect.Parameter.POSITIONAL_OR_KEYWORD] + [inspect.Parameter.KEYWORD_ONLY] * (len(params) - 1)
    signature = inspect.Signature([
        inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        *(inspect.Parameter(p.name, kind, default=p.default) for p, kind in zip(params, kinds)),
    ])

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name, value in list(bound.arguments.items())[1:]:
            setattr(self, name, value)

    __init__.__signature__ = signature
    return __init__


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
