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


class _EntryPoint:
    """An entry point read from an ``entry_points.txt`` file: what the
    loader needs of ``importlib.metadata.EntryPoint``, without importing
    that module (tens of milliseconds on every ``import aiomisc_c``)."""

    __slots__ = ("name", "value", "group")

    def __init__(self, name: str, value: str, group: str):
        self.name = name
        self.value = value
        self.group = group

    def load(self) -> Any:
        import importlib

        target = self.value.split("[", 1)[0]      # drop any "[extras]"
        module_name, _, attributes = target.partition(":")
        obj: Any = importlib.import_module(module_name.strip())
        for attribute in attributes.strip().split("."):
            if attribute:
                obj = getattr(obj, attribute)
        return obj

    def __repr__(self) -> str:
        return (
            f"EntryPoint(name={self.name!r}, value={self.value!r}, "
            f"group={self.group!r})"
        )


def _parse_entry_points(text: str) -> Iterator[_EntryPoint]:
    """The entries of an ``entry_points.txt`` (an INI file: ``[group]``
    headers, ``name = value`` lines, ``#``/``;`` comments)."""
    group = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line[0] == "[" and line[-1] == "]":
            group = line[1:-1].strip()
            continue
        name, sep, value = line.partition("=")
        if group is not None and sep:
            yield _EntryPoint(name.strip(), value.strip(), group)


def _standard_finders_only() -> bool:
    """Whether every installed distribution is a plain directory found by
    the standard path finder (then its ``entry_points.txt`` can be read
    directly; zip files and custom finders need ``importlib.metadata``)."""
    for finder in sys.meta_path:
        if (
            hasattr(finder, "find_distributions")
            and finder is not importlib.machinery.PathFinder
        ):
            return False
    return True


def _directory_names(entry: str) -> Iterable[str]:
    """The names in the ``sys.path`` directory ``entry``.

    The import system's path finder keeps the listing of every directory it
    searched (the standard library's among them); it is reused while the
    directory is unchanged since, instead of listing it again on every
    ``import aiomisc_c``.
    """
    directory = entry or "."
    finder = sys.path_importer_cache.get(entry or os.getcwd())
    if type(finder) is importlib.machinery.FileFinder:
        names = getattr(finder, "_path_cache", None)
        listed_at = getattr(finder, "_path_mtime", None)
        if isinstance(names, set) and names and listed_at is not None:
            if os.stat(directory).st_mtime == listed_at:
                return names
    return os.listdir(directory)


def _entry_points_files() -> Iterator[str]:
    """The text of every ``entry_points.txt`` on ``sys.path``, in path
    order; raises ``NotADirectoryError`` for a zip file on the path."""
    for entry in sys.path:
        directory = entry or "."
        try:
            names = _directory_names(entry)
        except NotADirectoryError:
            raise
        except OSError:
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            path = os.path.join(directory, name, "entry_points.txt")
            try:
                # read as bytes: a binary file object costs less to make
                # than a text one, and most of these files do not exist
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            yield data.decode("utf-8", "replace")


def _all_entry_points(marker: str) -> Iterator[Any]:
    """Every entry point of the distributions whose ``entry_points.txt``
    mentions ``marker``: read from the files where that is possible,
    through ``importlib.metadata`` where it is not."""
    if _standard_finders_only():
        try:
            texts = [text for text in _entry_points_files() if marker in text]
        except NotADirectoryError:
            pass
        else:
            for text in texts:
                yield from _parse_entry_points(text)
            return
    from importlib.metadata import Distribution

    for dist in Distribution.discover():
        yield from dist.entry_points


def _entry_points(groups: Tuple[str, ...] = PLUGIN_GROUPS) -> Iterator[Any]:
    """Entry points of ``groups``, group by group, in one scan of the
    installed distributions (this runs on every ``import aiomisc_c``)."""
    found: Dict[str, list[Any]] = {group: [] for group in groups}
    for entry_point in _all_entry_points("[" + os.path.commonprefix(list(groups))):
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
