"""The package's modules import one way: each only from the layers below it."""

import ast
from pathlib import Path

import skvae

# elementwise <- bounds <- likelihoods <- module <- net <- engine <- base <- estimators, with
# the helpers of each layer beside it: torch's seeds and devices at the bottom,
# skorch's internals (_skorch_compat) just above, the training data (_rows) beside
# the module, the net and skvae's callbacks below the engine. Inference and
# persistence sit beside the engine, so they never import the training loop, nor
# an estimator.
LAYERS = [
    {"_elementwise", "_torch_utils", "_column_lists"},
    {"_sklearn_compat", "_skorch_compat", "_version", "_arrays", "_bounds", "_transforms", "_tabular", "_threads"},
    {"_likelihoods", "_layout"},
    {"_module", "_data", "_rows"},
    {"_net", "_callbacks", "_params"},
    {"_engine", "_inference", "_persistence", "_docstrings"},
    {"_validation", "_explain"},
    {"_base"},
    {"_density", "_transformer", "_outlier", "_impute"},
    {"__init__", "_demo"},
    {"__main__"},
]
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}


def _package_imports(path):
    """Names of the skvae modules that ``path`` imports (relative imports)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                names.add(node.module)
            else:
                names.update(alias.name for alias in node.names)
    return names


def test_every_module_has_a_layer():
    modules = {path.stem for path in Path(skvae.__file__).parent.glob("*.py")}
    assert modules == set(LEVEL)


def test_modules_import_only_from_layers_below():
    for path in Path(skvae.__file__).parent.glob("*.py"):
        for name in _package_imports(path):
            assert LEVEL[name] < LEVEL[path.stem], f"{path.stem} imports {name}"
