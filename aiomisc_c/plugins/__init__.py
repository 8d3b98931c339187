"""Plugins: installed entry points loaded at import (mirror of ``aiomisc.plugins``).

Groups ``aiomisc_c.plugins`` then ``aiomisc_c``.  aiomisc's own groups
(``aiomisc.plugins``, ``aiomisc``) are loaded only once ``aiomisc_c.alias``
is installed: their plugins ``import aiomisc``, which is the original
package without the alias.  Each loaded plugin's ``setup()`` is called
once.  ``AIOMISC_NO_PLUGINS`` set to any
non-empty value disables all of it.
"""
from __future__ import annotations

import importlib.machinery
import logging
import os
import sys
from types import MappingProxyType
from typing import Any, Callable, Dict, Iterable, Iterator, Mapping, Tuple

__all__ = ("plugins",)

PLUGIN_GROUPS = ("aiomisc_c.plugins", "aiomisc_c")
# Loaded by aiomisc_c.alias, which makes "import aiomisc" give aiomisc_c.
ALIAS_PLUGIN_GROUPS = ("aiomisc.plugins", "aiomisc")

log = logging.getLogger(__name__)


def _may_have_plugins(marker: str = "[aiomisc_c") -> bool:
    """A cheap pre-check before the entry-point scan: False only when no
    installed distribution can declare a group starting with ``marker``.

    ``importlib.metadata`` costs tens of milliseconds to import, and this
    runs on every ``import aiomisc_c``.  Only plain directories on
    ``sys.path`` found by the standard path finder can be pre-checked; any
    other source of distributions (zip files, custom finders) answers True.
    """
    for finder in sys.meta_path:
        if (
            hasattr(finder, "find_distributions")
            and finder is not importlib.machinery.PathFinder
        ):
            return True
    for entry in sys.path:
        directory = entry or "."
        try:
            names = os.listdir(directory)
        except NotADirectoryError:
            return True          # a zip file on sys.path
        except OSError:
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            path = os.path.join(directory, name, "entry_points.txt")
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    if marker in f.read():
                        return True
            except OSError:
                continue
    return False


def _entry_points(groups: Tuple[str, ...] = PLUGIN_GROUPS) -> Iterator[Any]:
    """Entry points of ``groups``, group by group, in one scan of the
    installed distributions (this runs on every ``import aiomisc_c``)."""
    if not _may_have_plugins("[" + os.path.commonprefix(list(groups))):
        return
    from importlib.metadata import Distribution

    found: Dict[str, list[Any]] = {group: [] for group in groups}
    for dist in Distribution.discover():
        for entry_point in dist.entry_points:
            bucket = found.get(entry_point.group)
            if bucket is not None:
                bucket.append(entry_point)
    for group in groups:
        yield from found[group]


def setup_plugins() -> Mapping[str, Callable[..., Any]]:
    """Load every plugin entry point and call its ``setup()``.

    A plugin that fails to load is logged and skipped; a failing
    ``setup()`` is logged and re-raised.
    """
    if os.environ.get("AIOMISC_NO_PLUGINS"):
        return MappingProxyType({})
    return MappingProxyType(_load_and_setup(_entry_points(), {}))


def _load_and_setup(
    entry_points: Iterable[Any], previous: Mapping[str, Any],
) -> Dict[str, Any]:
    """Load ``entry_points`` and call ``setup()`` of each plugin that is
    not in ``previous`` already; returns the newly loaded ones."""
    loaded: Dict[str, Any] = {}
    for entry_point in entry_points:
        try:
            # A later entry point with the same name replaces an earlier one.
            loaded[entry_point.name] = entry_point.load()
        except BaseException:  # noqa: B036 - any broken plugin is skipped
            log.exception("Failed to load entrypoint %r", entry_point)

    known = [id(plugin) for plugin in previous.values()]
    loaded = {
        name: plugin for name, plugin in loaded.items()
        if id(plugin) not in known
    }
    for name, plugin in loaded.items():
        log.debug("Trying to load %r %r", name, plugin)
        try:
            plugin.setup()
        except BaseException:
            log.exception("Error on %s aiomisc plugin setup", name)
            raise

    return loaded


_aiomisc_groups_loaded = False


def _load_aiomisc_plugins() -> None:
    """Load the plugins of aiomisc's entry-point groups into ``plugins``
    (once; called by ``aiomisc_c.alias``).  A plugin object loaded already
    (e.g. aiomisc_c's own module, reached through the alias) is not set up
    twice."""
    global _aiomisc_groups_loaded
    if _aiomisc_groups_loaded or os.environ.get("AIOMISC_NO_PLUGINS"):
        return
    _aiomisc_groups_loaded = True
    _plugins_by_name.update(
        _load_and_setup(_entry_points(ALIAS_PLUGIN_GROUPS), _plugins_by_name),
    )


# The mapping behind the read-only ``plugins`` (the alias adds to it).
_plugins_by_name: Dict[str, Any] = dict(setup_plugins())
plugins: Mapping[str, Callable[..., Any]] = MappingProxyType(_plugins_by_name)
