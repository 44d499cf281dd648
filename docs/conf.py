# Sphinx configuration for sklearn_robust.
# SPDX-License-Identifier: BSD-3-Clause
#
# Build: pip install -e ".[docs]" && make -C docs html  (warnings are errors).
# The build needs no network: intersphinx links to Python, NumPy, scikit-learn,
# PyTorch and skorch are made only when SKLEARN_ROBUST_DOCS_INTERSPHINX=1.
import os
import re
import sys

sys.path.insert(0, os.path.abspath(".."))
# The examples run in this process and train small networks: one OpenMP thread
# is faster than several competing for the cores (set before torch is imported).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import sklearn_robust  # noqa: E402

project = "sklearn_robust"
author = "The sklearn_robust developers"
copyright = "The sklearn_robust developers, BSD-3-Clause"
version = release = sklearn_robust.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

exclude_patterns = ["_build", "**.ipynb_checkpoints", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip"]
root_doc = "index"

# -- autodoc / autosummary / numpydoc ----------------------------------------
autosummary_generate = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# -- intersphinx: off unless asked for (the build must work offline) ----------
_INTERSPHINX = os.environ.get("SKLEARN_ROBUST_DOCS_INTERSPHINX", "0") == "1"
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
    "torch": ("https://pytorch.org/docs/stable", None),
    "skorch": ("https://skorch.readthedocs.io/en/stable", None),
} if _INTERSPHINX else {}
intersphinx_timeout = 10

# -- sphinx-gallery -----------------------------------------------------------
# SKLEARN_ROBUST_DOCS_PLOT=0 (``make html-noplot``) builds without running the
# examples; otherwise every ``examples/plot_*.py`` runs.
_PLOT = os.environ.get("SKLEARN_ROBUST_DOCS_PLOT", "1") != "0"
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "plot_gallery": _PLOT,
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("sklearn_robust",),
    "backreferences_dir": "generated/backreferences",
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "remove_config_comments": True,
    "show_memory": False,
    "min_reported_time": 0,
}


# -- HTML -----------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn_robust {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_prev_next": True,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path = []
html_show_sourcelink = False


# -- docstring fixes for inherited scikit-learn docstrings -----------------------
# ``ClassifierMixin.score`` links to a label of scikit-learn's own user guide
# (``:ref:`accuracy <accuracy_score>```), which does not exist here and is only
# reachable through intersphinx. Turn it into a function reference, which links
# when intersphinx is on and is plain text otherwise.
_SKLEARN_REF = re.compile(r":ref:`([^`<]+?)\s*<accuracy_score>`")


def _fix_inherited_refs(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        lines[i] = _SKLEARN_REF.sub(r"\1 (:func:`sklearn.metrics.accuracy_score`)",
                                    line)


def setup(app):
    app.connect("autodoc-process-docstring", _fix_inherited_refs)
