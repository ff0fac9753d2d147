"""The package's modules import one way: each only from the layers below it."""

import ast
from pathlib import Path

import skvae

# elementwise <- bounds <- likelihoods <- module <- engine <- base <- estimators, with the
# helpers of each layer beside it; persistence beside the engine's users,
# never importing an estimator.
LAYERS = [
    {"_elementwise"},
    {"_sklearn_compat", "_version", "_arrays", "_bounds", "_transforms", "_tabular", "_threads"},
    {"_likelihoods", "_layout"},
    {"_module", "_data"},
    {"_engine", "_params"},
    {"_inference", "_persistence", "_docstrings", "_validation"},
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
