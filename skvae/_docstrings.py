"""Docstring text shared by the estimators, composed with ``str.format``.

The Parameters section comes from the parameter declarations (``_params``);
the Attributes and the Notes shared by the estimators are here, each kept to
what a user needs to use them; the measurements behind them are in the user
guide.
"""

import textwrap

from ._params import docs

_ATTRIBUTES = """\
net_ : skorch.NeuralNet
    The trained skorch net; ``net_.module_`` is the torch module.

n_features_in_ : int
    Number of features seen during :term:`fit`.

feature_names_in_ : ndarray of shape (`n_features_in_`,)
    Names of features seen during :term:`fit`. Defined only when `X`
    has feature names that are all strings.

likelihood_ : str
    The likelihood of the fitted model, ``'auto'`` resolved.

n_components_ : int
    The latent dimension of the fitted model, ``'auto'`` resolved.

n_iter_ : int
    Number of epochs run, over all calls to fit and partial_fit.

loss_curve_ : list of float
    Training loss per epoch, nats per sample: the negative training
    objective (ELBO or IWAE_K, the KL term weighted by ``beta``).

validation_scores_ : list of float or None
    Training objective at ``beta=1`` of the held-out rows per epoch;
    None without early stopping.

best_validation_score_ : float or None
    Best of ``validation_scores_``; None without early stopping."""

_SCORE_NOTES = """\
``score_samples(X)`` estimates log p(x) in nats for the data as passed (the
internal maps' log-Jacobian added back), comparable with any density model
of the same data: IWAE_K with K = ``n_importance_samples``, a lower bound
that rises to log p(x) with K, or the ELBO. Its draws, from
``random_state``, are shared by all rows: scores are repeatable and a row's
does not depend on the others. Dequantise integer data in an array first
(user guide, "What score_samples measures")."""

_REFERENCES = """\
References
----------
Kingma, D. P. and Welling, M. (2014). Auto-Encoding Variational Bayes.
ICLR.

Burda, Y., Grosse, R. and Salakhutdinov, R. (2016). Importance Weighted
Autoencoders. ICLR.

Tomczak, J. M. and Welling, M. (2018). VAE with a VampPrior. AISTATS
(the learned mixture-of-Gaussians prior of ``prior='mixture'``)."""

SHARED = {
    "references": _REFERENCES,
    "score_notes": _SCORE_NOTES,
}


def compose(template, params, own_attributes=None, **sections):
    """A class docstring: ``template`` with its Parameters (from ``params``) and shared sections.

    ``template`` is indented by 4 spaces and names the pieces it takes:
    ``{parameters}`` (the Parameters and Attributes sections, with their
    headings; ``own_attributes`` go first in the latter), ``{score_notes}``,
    ``{references}`` (with its heading), or
    ``sections`` of its own.
    """
    attributes = _ATTRIBUTES if own_attributes is None else f"{own_attributes}\n\n{_ATTRIBUTES}"
    pieces = {
        **SHARED,
        "parameters": f"Parameters\n----------\n{docs(params)}\n\nAttributes\n----------\n{attributes}",
        **sections,
    }
    return template.format(**{key: textwrap.indent(text, "    ") for key, text in pieces.items()})
