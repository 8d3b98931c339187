"""Child Python processes that import the package under test.

Tests run against the *installed* package (CI installs it with pip), so a
child must not pick up the source tree, which has no compiled modules: it
gets the directory of the ``aiomisc_c`` this process imported on its path
and runs outside the repository.
"""
import os
import tempfile

import aiomisc_c

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(aiomisc_c.__file__)))
# A working directory outside the repository (``python -c`` puts it first on
# sys.path).
NEUTRAL_CWD = tempfile.gettempdir()


def child_env(base=None, **overrides):
    """``base`` (default: ``os.environ``) with the package root prepended to
    ``PYTHONPATH`` and ``overrides`` applied."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [PACKAGE_ROOT, env.get("PYTHONPATH")]),
    )
    env.update(overrides)
    return env
