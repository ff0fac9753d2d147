"""Docstring text shared by the estimators, composed with ``str.format``.

The Parameters section comes from the parameter declarations (``_params``);
the Attributes and Notes sections shared by several estimators are here.
"""

import textwrap

from ._params import docs

_ATTRIBUTES = """\
net_ : skorch.NeuralNet
    The trained skorch net; ``net_.module_`` is the torch module and
    ``net_.history`` the training history.

n_features_in_ : int
    Number of features seen during :term:`fit`.

feature_names_in_ : ndarray of shape (`n_features_in_`,)
    Names of features seen during :term:`fit`. Defined only when `X`
    has feature names that are all strings.

likelihood_ : str
    The likelihood of the fitted model: ``likelihood``, with ``'auto'``
    resolved (see that parameter).

n_iter_ : int
    Number of epochs run, over all calls to fit and partial_fit.

loss_curve_ : list of float
    Training loss per epoch: the negative training objective, nats per
    sample, lower is better. The objective is the ELBO with
    ``n_training_importance_samples=1`` and IWAE_K with K draws (the KL
    term weighted by ``beta``); the log-Jacobian of the data maps is
    included, so that at ``beta=1`` it bounds -log p(x) in data space.

validation_scores_ : list of float or None
    The training objective at ``beta=1`` (ELBO or IWAE_K) of the held-out
    rows per epoch, mean in nats per sample, higher is better; None
    without early stopping.

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
randomness of training. For discrete data in an array, add uniform noise
first (dequantisation): a density of discrete values is unbounded. In a
pandas DataFrame, integer and categorical columns are modelled as discrete
(user guide, "Tabular data"): the score of a row is then the sum of
log-probabilities for those columns and log-densities for the real ones.

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
at import from ``OMP_NUM_THREADS`` (all cores by default). When the count is
still torch's own, a fit and a scoring pass on the CPU time their steps and
move to fewer threads while fewer are faster, as they are when another
process holds a core (all threads then wait for the one that shares it: 2 to
4 times slower on 2 cores), and the count is restored when they end. Scores,
``transform``, ``inverse_transform`` and imputations come out the same to the
last bit at any count (the continuous Bernoulli likelihood's keep the count);
a tuned fit differs in the last digits from one with the count fixed. A count you set (``OMP_NUM_THREADS`` or
``MKL_NUM_THREADS``, ``torch.set_num_threads``, ``threadpoolctl``) is used
as it is. joblib's default backend (loky) starts the workers of
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

_REFERENCES = """\
References
----------
Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes.
ICLR.

Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted
Autoencoders. ICLR."""

SHARED = {
    "references": _REFERENCES,
    "attributes": _ATTRIBUTES,
    "score_notes": _SCORE_NOTES,
    "parallel_notes": _PARALLEL_NOTES,
}


def compose(template, params, own_attributes=None, **sections):
    """A class docstring: ``template`` with its Parameters (from ``params``) and shared sections.

    ``template`` is indented by 4 spaces and names the pieces it takes:
    ``{parameters}`` and ``{attributes}`` (each with its heading;
    ``own_attributes`` go first in the latter), ``{score_notes}``,
    ``{parallel_notes}``, ``{references}`` (with its heading), or
    ``sections`` of its own.
    """
    attributes = _ATTRIBUTES if own_attributes is None else f"{own_attributes}\n\n{_ATTRIBUTES}"
    pieces = {
        **SHARED,
        "parameters": f"Parameters\n----------\n{docs(params)}",
        "attributes": f"Attributes\n----------\n{attributes}",
        **sections,
    }
    return template.format(**{key: textwrap.indent(text, "    ") for key, text in pieces.items()})
