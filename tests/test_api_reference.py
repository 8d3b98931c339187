"""The API reference (docs/_apiref.py, run by Sphinx at every build) covers
every public module, and describes each public object exactly once."""
import importlib.util
import os
import re
import sys
from collections import Counter

import pytest

import aiomisc_c

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_DIR = os.path.dirname(os.path.abspath(aiomisc_c.__file__))
DIRECTIVE = re.compile(r"^\.\. auto(?:class|function|exception|data):: (\S+)$",
                       re.MULTILINE)


@pytest.fixture(scope="module")
def apiref():
    spec = importlib.util.spec_from_file_location(
        "_docs_apiref", os.path.join(ROOT, "docs", "_apiref.py"),
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Modules whose third-party package cannot be installed on this Python:
# aiocarbon 0.17 (the carbon extra) needs Python 3.11.
UNAVAILABLE_HERE = (
    {"aiomisc_c.service.carbon"} if sys.version_info < (3, 11) else set()
)


@pytest.fixture(scope="module")
def pages(apiref):
    failed = {}
    exports, homes = apiref.collect(failed)
    assert set(failed) <= UNAVAILABLE_HERE, failed
    return {
        name: apiref.module_page(name, exports, homes, [])
        for name in exports
    }


def modules_on_disk():
    """Public modules found by walking the package directory."""
    found = {"aiomisc_c"}
    for directory, subdirs, files in os.walk(PACKAGE_DIR):
        relative = os.path.relpath(directory, os.path.dirname(PACKAGE_DIR))
        parts = relative.split(os.sep)
        subdirs[:] = [d for d in subdirs if not d.startswith(("_", "."))]
        if any(part.startswith("_") for part in parts):
            continue
        if "__init__.py" not in files:
            continue
        found.add(".".join(parts))
        for file in files:
            stem, ext = os.path.splitext(file)
            if ext == ".py" and not stem.startswith("_"):
                found.add(".".join(parts + [stem]))
    return found


def test_every_public_module_has_a_page(apiref):
    modules = apiref.public_modules()
    assert set(modules) == modules_on_disk()
    assert "aiomisc_c.service.tcp" in modules
    assert not [m for m in modules if "._" in m]


def test_each_object_is_described_once(pages):
    described = Counter(
        target for page in pages.values() for target in DIRECTIVE.findall(page)
    )
    assert described
    assert [t for t, n in described.items() if n > 1] == []
    objects = Counter()
    for target in described:
        module, _, attr = target.rpartition(".")
        objects[id(getattr(sys.modules[module], attr))] += 1
    # an object bound to two names in its home module is described twice at
    # most (once per name); never in two modules
    assert max(objects.values()) <= 2


def test_every_top_level_name_is_described_somewhere(apiref, pages):
    described = {
        id(getattr(sys.modules[t.rpartition(".")[0]], t.rpartition(".")[2]))
        for page in pages.values() for t in DIRECTIVE.findall(page)
    }
    missing = [
        name for name in aiomisc_c.__all__
        if not name.startswith("_") and apiref.is_documentable(getattr(aiomisc_c, name))
        and id(getattr(aiomisc_c, name)) not in described
    ]
    assert missing == []
    # the C twins are described under their public modules
    assert ".. autoclass:: aiomisc_c.circuit_breaker.CircuitBreaker" in (
        pages["aiomisc_c.circuit_breaker"]
    )
    assert ".. autofunction:: aiomisc_c.thread_pool.threaded" in (
        pages["aiomisc_c.thread_pool"]
    )
