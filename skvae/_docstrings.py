"""Docstring text shared by the estimators, inserted with ``str.format``."""

import re
import textwrap

_PARAMETERS = """\
n_components : int, default=16
    Dimension of the latent space z (as in PCA). Latent dimensions the data
    do not need collapse onto the prior and cost little, so the default errs
    on the large side; choose it by held-out likelihood (``GridSearchCV``)
    when it matters.

hidden_layer_sizes : tuple of int, default=(256, 256)
    Widths of the encoder's hidden layers; the decoder mirrors them. ``()``
    gives a linear encoder and decoder: with the Gaussian likelihood the model
    is then factor analysis, x ~ N(b, W W^T + diag(s^2)).

activation : {'identity', 'logistic', 'tanh', 'relu', 'elu', 'silu'}, \
default='elu'
    Activation of the hidden layers. ELU is smooth, so the decoder's mean
    and scales vary smoothly with z, which the density between training
    rows relies on.

likelihood : {'auto', 'gaussian', 'gaussian_mixture', 'bernoulli', \
'continuous_bernoulli'}, default='auto'
    Family of the decoder p(x|z). ``'auto'`` is ``'gaussian_mixture'`` for
    :class:`VAEDensityEstimator` and ``'gaussian'`` for
    :class:`VAETransformer`. ``'gaussian'``: real data; the decoder
    gives the mean, and a standard deviation per feature is learned, bounded
    below by 1e-3 in standardised units. ``'gaussian_mixture'``: real data;
    for each feature the decoder gives the weights, means and standard
    deviations (same floor) of ``n_mixture_components`` Gaussians, so p(x|z)
    can be skewed, multimodal or close to discrete where the data are; the
    best density estimates, but a latent code that explains less of each
    row (the decoder can call more of it noise), hence not the transformer's
    default.
    ``'bernoulli'``: binary data in {0, 1}. ``'continuous_bernoulli'``: data
    in [0, 1] (a proper density there, unlike the Bernoulli).

n_mixture_components : int, default=5
    Gaussians per feature of the ``'gaussian_mixture'`` likelihood; ignored
    by the other likelihoods.

bounds : tuple (low, high) or None, default=None
    For the Gaussian likelihoods, data known to lie strictly inside
    ``(low, high)`` (pixel intensities, proportions); each bound is a number or
    an array of shape (n_features,). The model works on
    ``logit((x - low) / (high - low))`` and reports densities in data space,
    the log-Jacobian of that map included. Values on or outside the bounds
    are refused with a ``ValueError`` by every method.

beta : float, default=1.0
    Weight of the KL term in the training objective (beta-VAE). Scores and
    ``validation_scores_`` always use the true bound (beta=1).

n_training_importance_samples : int or 'auto', default='auto'
    Latent draws per row in training. 1 maximises the ELBO with an analytic
    KL term; K > 1 maximises IWAE_K (Burda et al., 2016), a tighter bound
    that lets the encoder be less exact, at up to K times the cost of a
    step (the encoder runs once). ``'auto'`` is 4 for
    :class:`VAEDensityEstimator`, whose product is the likelihood (on the
    digits validation split IWAE_4 training gained 0.5 nats per sample for
    1.7 times the fit time), and 1 for :class:`VAETransformer`, whose
    product is the encoder.

n_importance_samples : int, default=100
    K, the number of latent draws per row used by :meth:`score_samples` and
    :meth:`score`. Larger K gives a tighter, less noisy estimate at K times
    the cost.

bound : {'iwae', 'elbo'}, default='iwae'
    Estimate returned by :meth:`score_samples`: the importance-weighted
    bound IWAE_K (Burda et al., 2015), which approaches log p(x) as K grows,
    or the evidence lower bound with an analytic KL term.

batch_size : int or 'auto', default='auto'
    Rows per minibatch; ``'auto'`` is ``n_samples // 200`` clipped to
    [32, 128] (and to ``n_samples``): about 200 steps per epoch, so that
    small data sets train long enough between two checks of the
    epoch-based stopping rule. Values larger
    than the data are clipped with a warning, as in MLPRegressor.

max_iter : int, default=200
    Maximum number of epochs (passes over the data).

learning_rate : {'constant', 'adaptive'}, default='adaptive'
    Step-size schedule, named as in MLPRegressor. ``'adaptive'`` halves the
    step size whenever the monitored loss (validation loss with early
    stopping, training loss without) has not improved by ``tol`` for
    ``max(1, n_iter_no_change // 4)`` epochs, so training ends on small
    steps near a maximum of the bound.

learning_rate_init : float, default=2e-3
    Initial step size of the Adam optimizer (MLPRegressor's 1e-3 doubled:
    with the weight average of ``ema_decay`` and the adaptive schedule, 2e-3
    gave higher held-out likelihood on validation splits of digits, breast
    cancer and wine; 3e-3 did not).

early_stopping : bool or 'auto', default='auto'
    Whether :meth:`fit` holds out ``validation_fraction`` of the rows and
    stops when their mean ELBO (on the same latent draws every epoch, so
    that epochs are compared without Monte Carlo noise) has not improved by ``tol`` for
    ``n_iter_no_change`` epochs, restoring the best weights. ``'auto'``
    enables it when the held-out part would have at least 20 rows.
    Without it, training stops when the training loss stalls in the same
    way. :meth:`partial_fit` never uses it.

validation_fraction : float, default=0.1
    Proportion of the rows held out for early stopping.

n_iter_no_change : int, default=20
    Epochs without an improvement of at least ``tol`` before training stops.

ema_decay : float in [0, 1), default=0.99
    Decay of the exponential moving average of the weights (Polyak
    averaging) that becomes the fitted model: after every step the average
    moves ``1 - ema_decay`` of the way to the current weights, so it spans
    about ``1 / (1 - ema_decay)`` steps. Early stopping validates the
    average; training continues from the raw weights (in ``partial_fit`` and
    with ``warm_start``; a model read by :func:`skvae.load` continues from
    the average, as the file holds only the fitted weights). The late Adam steps scatter the weights around a
    maximum of the bound and their average lies nearer to it: with 0.99, the
    held-out log-likelihood of the digits and breast-cancer validation
    splits rose by 0.9 and 1.5 nats per sample. 0 turns averaging off.

tol : float, default=1e-4
    Minimum improvement of the monitored loss, in nats per sample.

warm_start : bool, default=False
    When True, :meth:`fit` continues training the fitted model instead of
    starting anew; the architecture and the data scaling of the first fit
    are kept.

random_state : int, RandomState instance or None, default=None
    Seeds weight initialisation, shuffling, the validation split, the
    training noise and the draws of :meth:`score_samples`. Pass an int for
    reproducible results. Global random states (numpy's, torch's) are never
    touched.

device : {'cpu', 'cuda', 'auto'} or torch.device, default='cpu'
    Where the model trains and scores. ``'auto'`` picks CUDA when available.

verbose : int, default=0
    0 is silent; 1 or more shows a progress bar and a table of the training
    and validation loss per epoch.

callbacks : list of skorch callbacks or None, default=None
    Extra callbacks for the skorch training loop (e.g.
    ``skorch.callbacks.LRScheduler``), as instances or ``(name, instance)``
    pairs. They are copied, never modified."""

_ATTRIBUTES = """\
net_ : skorch.NeuralNet
    The trained skorch net; ``net_.module_`` is the torch module and
    ``net_.history`` the training history.

n_features_in_ : int
    Number of features seen during :term:`fit`.

feature_names_in_ : ndarray of shape (`n_features_in_`,)
    Names of features seen during :term:`fit`. Defined only when `X`
    has feature names that are all strings.

n_iter_ : int
    Number of epochs run, over all calls to fit and partial_fit.

loss_curve_ : list of float
    Training loss per epoch: the negative training objective (negative
    ELBO when ``beta=1``), nats per sample, lower is better.

validation_scores_ : list of float or None
    Mean ELBO of the held-out rows per epoch, nats per sample, higher is
    better; None without early stopping.

best_validation_score_ : float or None
    Best of ``validation_scores_``; None without early stopping."""

_SCORE_NOTES = """\
**What score_samples measures.** ``score_samples(X)`` estimates log p(x),
the natural logarithm of the model's probability density at each row of X,
in nats, in the space of the data as passed. The model itself works in a
transformed space y = t(x): features standardised with the training mean
and standard deviation, after a logit map ``logit((x - low) / (high -
low))`` when ``bounds`` are given. Densities change under such a map, so
the log-Jacobian ``log |dy/dx|`` of every row is added back:
``log p(x) = log p(y) + log |dy/dx|``. Consequences: scores are comparable with those of
any other density model of the same data (GaussianMixture,
KernelDensity); fitting on ``a * X + b`` (a > 0, same ``random_state``)
gives the same model in other units and scores lower by exactly
``n_features * log(a)``; for a < 0 the model is fitted to the mirrored
data, so its scores differ by ``n_features * log|a|`` only up to the
randomness of training. For discrete data, add uniform noise first
(dequantisation): a density of discrete values is unbounded.

**Which estimate.** log p(x) = log E_q(z|x)[p(x|z) p(z) / q(z|x)] has no
closed form; ``bound='iwae'`` (default) returns the importance-weighted
estimate IWAE_K = log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x) from K =
``n_importance_samples`` draws z_k of the encoder q(z|x) (Burda et al.,
2016). It is a lower bound of log p(x) in expectation, it increases with K,
and it converges to log p(x) as K grows; ``bound='elbo'`` returns the
evidence lower bound E_q[log p(x|z)] - KL(q(z|x) || p(z)), the K = 1 case
with an analytic KL term, looser and cheaper. Scoring costs K decoder
passes per row. The draws are fixed by ``random_state`` and shared by all
rows, so the same fitted model gives the same scores twice, and a row's
score does not depend on the other rows scored with it."""

_PARALLEL_NOTES = """\
Training and scoring run on torch's intra-op thread pool, which torch sizes
at import from ``OMP_NUM_THREADS`` (all cores by default); skvae never
changes it. joblib's default backend (loky) starts the workers of
``GridSearchCV(n_jobs=k)`` or ``cross_validate(n_jobs=k)`` with
``OMP_NUM_THREADS`` set to ``cpu_count // k``, so each worker's torch uses
its share of the cores and they are not oversubscribed. Forcing more
threads per worker (``joblib.parallel_config(inner_max_num_threads=...)``
or a larger ``OMP_NUM_THREADS`` exported beforehand) oversubscribes them:
on 2 cores, 2 workers of 2 threads each made a grid search 3 to 6 times
slower.
With joblib's threading backend or threads of your own, cap torch with
``torch.set_num_threads`` (process-wide), or with
``threadpoolctl.threadpool_limits`` inside each thread.
Dask's worker processes (``LocalCluster(processes=True)``, ``dask-worker``)
start with ``OMP_NUM_THREADS=1`` (Dask's ``distributed.nanny.pre-spawn-environ``
setting), so torch runs one thread per task there, and a search under
``joblib.parallel_backend("dask")`` does not oversubscribe. That setting
also holds ``MALLOC_TRIM_THRESHOLD_=65536``, which turns off glibc's
adaptive mmap threshold, so that every tensor over 128 kB is a fresh memory
mapping: scoring on such a worker ran 3 to 4 times slower than in a plain
process. Setting ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TOP_PAD_`` there as
well before the cluster starts restored the speed (8,300 to 20,500 rows/s on
2 workers)::

    dask.config.set({
        "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 2**25,
        "distributed.nanny.pre-spawn-environ.MALLOC_TOP_PAD_": 2**26,
    })"""

DOCS = {
    "parameters": _PARAMETERS,
    "attributes": _ATTRIBUTES,
    "score_notes": _SCORE_NOTES,
    "parallel_notes": _PARALLEL_NOTES,
}


def fill_doc(template, defaults=None):
    """Insert the shared sections into a class docstring template (4-space indent).

    ``defaults`` maps parameter names to the estimator's own defaults, where
    they differ from the shared text's.
    """
    docs = dict(DOCS)
    for name, value in (defaults or {}).items():
        # From the parameter's heading to its "default=", not past the next heading.
        heading = rf"(^{name} : (?:(?!\n\S).)*?default=)[^\n]*"
        docs["parameters"], found = re.subn(
            heading, lambda m: m.group(1) + repr(value), docs["parameters"], flags=re.M | re.S
        )
        if not found:
            raise ValueError(f"no shared documentation for the parameter {name!r}")
    return template.format(**{key: textwrap.indent(text, "    ") for key, text in docs.items()})
