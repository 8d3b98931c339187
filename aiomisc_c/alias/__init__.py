"""Run code written for aiomisc on aiomisc_c without editing it.

Importing this module installs an import hook: from then on ``import
aiomisc`` gives the ``aiomisc_c`` package itself, ``aiomisc.X.Y`` gives
``aiomisc_c.X.Y``, the top-level packages aiomisc 17 ships beside it map
into aiomisc_c's namespace (``aiomisc_log`` is ``aiomisc_c.log.core``,
``aiomisc_log.X`` is ``aiomisc_c.log.X``, ``aiomisc_worker[.X]`` is
``aiomisc_c.worker[.X]``, ``aiomisc_pytest`` gives the pytest plugin's
helpers where aiomisc-pytest is not installed), and plugins registered for aiomisc (entry-point
groups ``aiomisc.plugins`` and ``aiomisc``) are loaded too.  Each alias is
the very module object of aiomisc_c, so ``aiomisc.Service is
aiomisc_c.Service`` and patching one patches the other.

* ``python -m aiomisc_c.alias script.py [args]`` or ``python -m
  aiomisc_c.alias -m module [args]`` runs a program with the alias in
  place; ``pytest -p aiomisc_c.alias`` runs an aiomisc test suite.
* :func:`uninstall` removes the hook and every alias from ``sys.modules``.

The names are mapped generically, so every present and future submodule
of aiomisc_c is reachable under its aiomisc name.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

__all__ = ("AliasFinder", "install", "installed", "target_name", "uninstall")

# aiomisc name prefix -> aiomisc_c name prefix, for the package itself and
# for its submodules (``aiomisc_log`` is a module in aiomisc_c, but its
# submodules live beside it in ``aiomisc_c.log``).
_PACKAGES: Tuple[Tuple[str, str, str], ...] = (
    # (aiomisc top-level name, its aiomisc_c module, prefix of its submodules)
    ("aiomisc", "aiomisc_c", "aiomisc_c"),
    ("aiomisc_log", "aiomisc_c.log.core", "aiomisc_c.log"),
    ("aiomisc_worker", "aiomisc_c.worker", "aiomisc_c.worker"),
)

# aiomisc-pytest's module: aliased only where aiomisc-pytest itself is not
# installed (installed, it runs on top of the alias and clashes with
# aiomisc_c's plugin, which then says so).
_PYTEST_ALIAS = ("aiomisc_pytest", "aiomisc_c.pytest.aiomisc_pytest")

# Submodules aiomisc_log imports with itself: aliased together with it, so
# that ``import aiomisc_log.formatter`` never needs ``aiomisc_log`` (a plain
# module in aiomisc_c) to be a package.
_LOADED_WITH = {"aiomisc_log": ("aiomisc_log.enum", "aiomisc_log.formatter")}


def target_name(name: str) -> Optional[str]:
    """The aiomisc_c module an aiomisc module name maps to (``None`` when
    ``name`` is not one of aiomisc's)."""
    if name == _PYTEST_ALIAS[0]:
        return _PYTEST_ALIAS[1]
    for top, module, prefix in _PACKAGES:
        if name == top:
            return module
        if name.startswith(top + "."):
            return prefix + name[len(top):]
    return None


def _aliases_of(name: str) -> List[str]:
    """Every aiomisc name an aiomisc_c module is reachable under
    (``aiomisc_c.log.enum`` is both ``aiomisc.log.enum`` and
    ``aiomisc_log.enum``)."""
    names = []
    for top, module, prefix in _PACKAGES:
        if name == module:
            names.append(top)
        elif name.startswith(prefix + "."):
            names.append(top + name[len(prefix):])
    return names


# (Finder and loader are duck-typed: importlib.abc costs tens of
# milliseconds to import.)


class _AliasLoader:
    """Hands out the already imported aiomisc_c module as the alias."""

    def __init__(self, target: str):
        self.target = target
        self._spec: Any = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = importlib.import_module(self.target)
        # The import system sets ``__spec__`` of the returned module to the
        # alias' spec; the module keeps its own, put back in exec_module.
        self._spec = module.__spec__
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        alias_spec = module.__spec__
        assert alias_spec is not None
        _registered[alias_spec.name] = module
        module.__spec__ = self._spec
        _register_loaded_modules()


class AliasFinder:
    """The ``sys.meta_path`` entry that maps aiomisc names to aiomisc_c."""

    def find_spec(
        self, fullname: str, path: Optional[Sequence[str]] = None,
        target: Optional[types.ModuleType] = None,
    ) -> Optional[importlib.machinery.ModuleSpec]:
        target_module = target_name(fullname)
        if target_module is None:
            return None
        if fullname == _PYTEST_ALIAS[0] and importlib.machinery.PathFinder.find_spec(
            fullname,
        ) is not None:
            return None
        loaded = sys.modules.get(target_module)
        if loaded is None:
            try:
                found = importlib.util.find_spec(target_module)
            except ModuleNotFoundError:
                found = None
            if found is None:
                # "No module named 'aiomisc.<name>'", as without the alias.
                return None
            is_package = found.submodule_search_locations is not None
        else:
            is_package = hasattr(loaded, "__path__")
        return importlib.machinery.ModuleSpec(
            fullname, _AliasLoader(target_module),  # type: ignore[arg-type]
            is_package=is_package,
        )


_finder: Optional[AliasFinder] = None
# alias name -> module, for uninstall()
_registered: Dict[str, types.ModuleType] = {}


def installed() -> bool:
    """Whether the alias is in place."""
    return _finder is not None and _finder in sys.meta_path


def _foreign_modules() -> Iterator[Tuple[str, Any]]:
    """Modules imported under an aiomisc name that are not aiomisc_c's."""
    for name, module in list(sys.modules.items()):
        if target_name(name) is None or module is None or name == _PYTEST_ALIAS[0]:
            continue
        # (a module of aiomisc_c put there by hand is fine)
        if not getattr(module, "__name__", "").startswith("aiomisc_c"):
            yield name, module


# (parent module, attribute name) set by the alias, for uninstall()
_attributes_set: List[Tuple[types.ModuleType, str]] = []


def _register(alias: str, module: types.ModuleType) -> None:
    if sys.modules.get(alias) is not module:
        sys.modules[alias] = module
    _registered[alias] = module
    # As the import system does for a submodule: its parent gets it as an
    # attribute (aiomisc_log.enum), unless the parent has that name already
    # (aiomisc.entrypoint is the Entrypoint class, not the module).
    parent_name, _, child = alias.rpartition(".")
    parent = sys.modules.get(parent_name) if parent_name else None
    if parent is not None and not hasattr(parent, child):
        setattr(parent, child, module)
        _attributes_set.append((parent, child))


def _register_loaded_modules() -> None:
    """Put every aiomisc_c module imported so far in ``sys.modules`` under
    its aiomisc names.

    Done before the import system gets to find an alias: for a module
    imported the regular way, it would then bind the module as an attribute
    of its parent package, and ``import aiomisc.entrypoint`` would turn the
    package attribute ``entrypoint`` (the Entrypoint class) into the
    submodule.
    """
    if not installed():
        return
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith("aiomisc_c"):
            continue
        for alias in _aliases_of(name):
            _register(alias, module)
    for alias, companions in _LOADED_WITH.items():
        if alias in _registered:
            for companion in companions:
                module_name = target_name(companion)
                assert module_name is not None
                _register(companion, importlib.import_module(module_name))


def install() -> None:
    """Make the aiomisc module names resolve to aiomisc_c's modules.

    Raises ``RuntimeError`` when the real aiomisc (or ``aiomisc_log``,
    ``aiomisc_worker``) was already imported: objects of both packages
    would then be mixed.  Installing twice is a no-op.
    """
    global _finder
    if installed():
        return
    foreign = dict(_foreign_modules())
    if foreign:
        name = sorted(foreign)[0]
        where = getattr(foreign[name], "__file__", None) or repr(foreign[name])
        raise RuntimeError(
            f"cannot alias aiomisc to aiomisc_c: {name!r} is already imported "
            f"from {where}; install the alias (import aiomisc_c.alias) before "
            f"anything imports aiomisc",
        )
    _finder = AliasFinder()
    sys.meta_path.insert(0, _finder)
    _register_loaded_modules()
    # (the module: the package attribute "plugins" is the mapping)
    importlib.import_module("aiomisc_c.plugins")._load_aiomisc_plugins()


def uninstall() -> None:
    """Remove the import hook and every alias put in ``sys.modules``.

    Modules imported through the alias keep the aiomisc_c objects they
    hold; plugins of aiomisc's entry-point groups stay loaded.
    """
    global _finder
    if _finder is not None:
        while _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
        _finder = None
    for alias, module in list(_registered.items()):
        if sys.modules.get(alias) is module:
            del sys.modules[alias]
    _registered.clear()
    for parent, child in _attributes_set:
        vars(parent).pop(child, None)
    _attributes_set.clear()


install()
