"""The parameters are declared once (``_params``): each estimator's written-out ``__init__`` keeps to it.

An ``__init__`` is written out so that IDEs and static tools can read it;
these tests hold its signature (names, order, kinds, defaults), its
assignments and ``_parameter_constraints`` to the ``Parameter`` records of
the estimator's ``_parameters``, from which its docstring is made too.
"""

import inspect
import math

import pytest

from skvae import VAEDensityEstimator, VAEImputer, VAEOutlierDetector, VAETransformer

ESTIMATORS = [VAEDensityEstimator, VAEImputer, VAEOutlierDetector, VAETransformer]


def _same(a, b):
    """Equal and of one type (False is not 0), or both NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_the_signature_is_the_declaration(Estimator):
    declared = Estimator._parameters
    self, *params = inspect.signature(Estimator.__init__).parameters.values()
    assert self.name == "self"
    assert [p.name for p in params] == [p.name for p in declared]
    # The first may be passed by position, as PCA's n_components; the others by name only.
    kinds = [inspect.Parameter.POSITIONAL_OR_KEYWORD] + [inspect.Parameter.KEYWORD_ONLY] * (len(params) - 1)
    assert [p.kind for p in params] == kinds
    for param, declaration in zip(params, declared):
        assert _same(param.default, declaration.default), (param.name, param.default, declaration.default)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_the_constraints_are_the_declaration(Estimator):
    declared = Estimator._parameters
    assert list(Estimator._parameter_constraints) == [p.name for p in declared]
    for p in declared:
        assert Estimator._parameter_constraints[p.name] is p.constraints


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_init_assigns_each_argument_to_its_own_attribute_and_nothing_else(Estimator):
    first, *rest = (p.name for p in Estimator._parameters)
    markers = {name: object() for name in [first, *rest]}
    est = Estimator(markers[first], **{name: markers[name] for name in rest})
    assert vars(est).keys() == markers.keys()
    assert [name for name, marker in markers.items() if vars(est)[name] is not marker] == []
    defaults = vars(Estimator())
    assert [p.name for p in Estimator._parameters if not _same(defaults[p.name], p.default)] == []

