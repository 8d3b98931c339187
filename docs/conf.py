"""Sphinx configuration of the aiomisc_c documentation.

Build: ``pip install '.[docs]' && sphinx-build -W -b html docs docs/_build``
(or ``.ci/docs``).  The API reference (``docs/api/*.rst``) is generated at
every build by ``_apiref.py`` from the package's public modules, so a new
module appears in it without editing anything here.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

try:
    import aiomisc_c  # the installed package (CI), or PYTHONPATH
except ImportError:  # a clone without the package installed
    sys.path.insert(0, os.path.dirname(HERE))
    import aiomisc_c

import _apiref  # noqa: E402

project = "aiomisc_c"
author = "aiomisc_c contributors"
copyright = "aiomisc_c contributors"
from aiomisc_c.version import package_version  # noqa: E402

release = package_version
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

html_theme = "furo"
html_title = f"aiomisc_c {release}"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
# Names that do not resolve (type hints of third-party packages) are left as
# plain text: the docs build must not need the network for intersphinx.
nitpicky = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_inherit_docstrings = True
# The class docstring only: the stdlib bases' __init__ docstrings are not
# reStructuredText.
autoclass_content = "class"


def drop_type_docstrings(app, what, name, obj, options, lines):
    """Constants (tuples, strings, ...) would show their type's docstring."""
    if what in ("data", "attribute") and obj.__doc__ == type(obj).__doc__:
        lines[:] = []


def setup(app):
    app.connect("builder-inited", _apiref.write_reference)
    app.connect("autodoc-process-docstring", drop_type_docstrings)
