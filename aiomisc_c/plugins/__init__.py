"""Plugins: installed entry points loaded at import (mirror of ``aiomisc.plugins``).

Groups ``aiomisc_c.plugins`` then ``aiomisc_c`` (not aiomisc's own groups:
aiomisc plugins import and patch the original package).  Each loaded
plugin's ``setup()`` is called once.  ``AIOMISC_NO_PLUGINS`` set to any
non-empty value disables all of it.
"""
from __future__ import annotations

import importlib.machinery
import logging
import os
import sys
from types import MappingProxyType
from typing import Any, Callable, Dict, Iterator, Mapping

__all__ = ("plugins",)

PLUGIN_GROUPS = ("aiomisc_c.plugins", "aiomisc_c")

log = logging.getLogger(__name__)


def _may_have_plugins() -> bool:
    """A cheap pre-check before the entry-point scan: False only when no
    installed distribution can declare one of ``PLUGIN_GROUPS``.

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
                    if "[aiomisc_c" in f.read():
                        return True
            except OSError:
                continue
    return False


def _entry_points() -> Iterator[Any]:
    """Entry points of ``PLUGIN_GROUPS``, group by group, in one scan of
    the installed distributions (this runs on every ``import aiomisc_c``)."""
    if not _may_have_plugins():
        return
    from importlib.metadata import Distribution

    found: Dict[str, list] = {group: [] for group in PLUGIN_GROUPS}
    for dist in Distribution.discover():
        for entry_point in dist.entry_points:
            bucket = found.get(entry_point.group)
            if bucket is not None:
                bucket.append(entry_point)
    for group in PLUGIN_GROUPS:
        yield from found[group]


def setup_plugins() -> Mapping[str, Callable]:
    """Load every plugin entry point and call its ``setup()``.

    A plugin that fails to load is logged and skipped; a failing
    ``setup()`` is logged and re-raised.
    """
    if os.environ.get("AIOMISC_NO_PLUGINS"):
        return MappingProxyType({})

    loaded: Dict[str, Any] = {}
    for entry_point in _entry_points():
        try:
            # A later entry point with the same name replaces an earlier one.
            loaded[entry_point.name] = entry_point.load()
        except BaseException:  # noqa: B036 - any broken plugin is skipped
            log.exception("Failed to load entrypoint %r", entry_point)

    for name, plugin in loaded.items():
        log.debug("Trying to load %r %r", name, plugin)
        try:
            plugin.setup()
        except BaseException:
            log.exception("Error on %s aiomisc plugin setup", name)
            raise

    return MappingProxyType(loaded)


plugins: Mapping[str, Callable] = setup_plugins()
