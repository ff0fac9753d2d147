"""Sphinx configuration of the skvae documentation.

Build from the project root with ``sphinx-build -W -b html docs docs/_build/html``;
``-D plot_gallery=0`` skips running the gallery's examples.
"""

import os
import sys
import warnings
from pathlib import Path

# The docs describe the working tree, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import skvae  # noqa: E402

# sphinx-gallery resolves the names an example uses even with plot_gallery=0, when
# no example has run in this process; IterativeImputer (plot_impute.py) is there
# only once its experimental flag is imported.
from sklearn.experimental import enable_iterative_imputer  # noqa: E402, F401

project = "skvae"
author = "skvae developers"
copyright = "2026, skvae developers"
release = skvae.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/**/*.ipynb"]
templates_path = ["_templates"]
default_role = "literal"
# Plain ``::`` blocks hold formulas, not Python; code says ``.. code-block:: python``.
highlight_language = "text"
nitpicky = False

# -- autosummary / autodoc / numpydoc -------------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Check the public docstrings at build time; a failure is a warning, an error under -W.
# Left out, as scikit-learn's own docstring test does: ES01 (no extended summary),
# SA01 (no See Also), EX01 (no Examples) for short methods, and RT02, which flags
# the ``name : type`` form of Returns that scikit-learn uses. Methods inherited
# from scikit-learn unchanged are its docstrings, not ours.
numpydoc_validation_checks = {"all", "ES01", "SA01", "EX01", "RT02"}
numpydoc_validation_exclude = {
    r"\.set_output$",
    r"\.set_params$",
    r"\.get_params$",
    r"\.get_metadata_routing$",
    r"\.set_.*_request$",
    r"\.fit_transform$",
    r"\.fit_predict$",
    r"\.__init__$",
}
numpydoc_xref_param_type = False

# No intersphinx: the build must pass -W offline, and an unreachable inventory
# is an unsuppressible warning. References to scikit-learn render as literals.

# -- sphinx-gallery ----------------------------------------------------------------
# One folder per topic under docs/examples/, each with a README.txt that titles it.
# New topics are picked up without changing this file.
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("skvae",),
    "backreferences_dir": "gen_modules/backreferences",
    "reference_url": {"skvae": None},
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "matplotlib_animations": False,
    "show_memory": False,
}

# -- HTML ---------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skvae {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "github_url": None,
    "navbar_align": "left",
    "show_toc_level": 2,
    # Example pages give the right-hand column to their code, which would otherwise
    # scroll sideways on a laptop screen.
    "secondary_sidebar_items": {
        "user_guide/*": ["page-toc"],
        "generated/*": ["page-toc"],
        "api": ["page-toc"],
        "glossary": ["page-toc"],
    },
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": []}
html_show_sourcelink = False

# Examples that read the shared data folder find it through SKVAE_DATA_DIR; the
# gallery runs each script from its own folder, so point it at the project's copy.
_shared_data = Path(__file__).resolve().parents[2] / "shared" / "data"
if _shared_data.is_dir():
    os.environ.setdefault("SKVAE_DATA_DIR", str(_shared_data))

# Matplotlib's non-interactive backend; examples never open windows.
os.environ.setdefault("MPLBACKEND", "Agg")
warnings.filterwarnings("ignore", category=UserWarning, message="Matplotlib is currently using agg")
