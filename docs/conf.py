"""Sphinx configuration of the gln-jax documentation.

Build (warnings are errors)::

    sphinx-build -W --keep-going -b html docs docs/_build/html

The notebooks (``notebooks/*.ipynb``) are copied into the build's source tree at start-up and
rendered with myst-nb, execution off. ``GLN_JAX_DOCS_ROOT`` names the repository when the docs
source is built from a copy (``tests/test_docs.py`` does so).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("GLN_JAX_DOCS_ROOT", HERE.parent)).resolve()
sys.path[:0] = [str(ROOT), str(ROOT / "ports"), str(HERE / "_ext")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import importlib  # noqa: E402

import gln_jax  # noqa: E402

#: The public modules of the API reference. Importing them first binds ``gln_jax.datasets`` to
#: the public module before the package's lazy ``__getattr__`` can.
PUBLIC_MODULES = [
    "gln_jax.transforms",
    "gln_jax.gaussian",
    "gln_jax.streaming",
    "gln_jax.ensemble",
    "gln_jax.sharding",
    "gln_jax.kernel",
    "gln_jax.recipes",
    "gln_jax.sklearn",
    "gln_jax.nnx",
    "gln_jax.datasets",
    "gln_jax.utils",
    "gln_numpy",
    "gln_torch",
    "gln_tf",
]
for _name in PUBLIC_MODULES:
    importlib.import_module(_name)


def _reexported() -> dict[str, list[str]]:
    """Per module, the names of ``__all__`` that are the reference's own top-level objects
    (the ports' ``GLNConfig``...): documented once, under ``gln_jax``, and linked from there."""
    result = {}
    for name in PUBLIC_MODULES:
        module = importlib.import_module(name)
        result[name] = [
            item
            for item in getattr(module, "__all__", [])
            if item in gln_jax.__all__ and getattr(module, item) is getattr(gln_jax, item)
        ]
    return result


project = "gln-jax"
author = "gln-jax developers"
copyright = "gln-jax developers, Apache-2.0"  # noqa: A001
release = version = gln_jax.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_nb",  # Markdown pages (it includes myst-parser) and the notebooks
    "gln_docs",  # docs/_ext/gln_docs.py: benchmark tables from benchmarks/*.json, docstring checks
]

# .rst first: autosummary writes its stub pages with the first suffix
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
templates_path = ["_templates"]

# MyST
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # the notebooks are rendered as stored; tests/test_notebooks.py runs them
nb_merge_streams = True

# API reference
autosummary_generate = True
autosummary_imported_members = True
autosummary_ignore_module_all = False  # a module's __all__ is its public surface
autosummary_context = {"reexported": _reexported()}
autodoc_default_options = {"members": False, "show-inheritance": False}
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_member_order = "bysource"
autodoc_mock_imports: list[str] = []
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True
add_module_names = False

# Every cross-reference must resolve, except to the library's internal modules (documented in
# their source; the reference covers the public surface) and to third-party types.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(gln_jax\.)?(core|api|data|tools)\..*"),
    (r"py:.*", r"(gln_numpy|gln_torch|gln_tf|gln_common)\.(?!GLN$).*\..*"),
    (r"py:.*", r"(jax|jaxlib|numpy|np|jnp|torch|tensorflow|tf|flax|nnx|sklearn|optax|pathlib)\b.*"),
    # jaxtyping's shaped annotations: Real[ArrayLike, "B P"] renders its parts as names
    (r"py:.*", r"(jaxtyping\..*|ndarray|'[A-Za-z _*]*')"),
    (r"py:.*", r"(Array|ArrayLike|PRNGKey|Mesh|NamedSharding|Path|Callable|Sequence|Iterable)"),
    (r"py:.*", r"(Iterator|Any|Literal|Self|collections\.abc\..*|typing\..*|optional|callable)"),
    (r"py:.*", r"(GLNConfig|GLNState|LayerState|GaussianConfig|TransformConfig|TransformState)"),
    (r"py:.*", r"(ClassSharding|MemberSharding|DatasetSpec|IDXFile|LoadedDataset|Saliency)"),
    (r"py:.*", r".*\._\w+"),  # private names (a base class such as _OnlineGLNEstimator)
    # bare names in the implementation's docstrings that point at internal helpers
    (r"py:.*", r"(smallest_pred_clipping|KernelFallbackWarning|BLOCK|module|load|from_state)"),
]

# HTML
html_theme = "furo"
html_title = f"gln-jax {release}"
html_static_path: list[str] = []
html_show_sourcelink = False


def _copy_notebooks(app) -> None:
    """Copies ``notebooks/*.ipynb`` to ``<source>/notebooks`` (generated, git-ignored)."""
    target = Path(app.srcdir) / "notebooks"
    target.mkdir(exist_ok=True)
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        shutil.copyfile(notebook, target / notebook.name)


def setup(app):
    app.connect("config-inited", lambda app, config: _copy_notebooks(app))
    app.add_config_value("gln_root", str(ROOT), "env")
