"""``aiomisc_c.plugins``: plugin entry points and the CLI.

In-process tests drive ``setup_plugins`` with fake entry points; subprocess
tests install a fake distribution (a ``*.dist-info`` directory on
``PYTHONPATH``) and import the package for real.
"""
import importlib
import importlib.machinery
import logging
import os
import subprocess
import sys
import textwrap
import types
from collections.abc import Mapping
from importlib.metadata import Distribution

import pytest
from helpers.childproc import NEUTRAL_CWD, child_env

# The module, not the ``plugins`` mapping the package attribute may be.
plugins_module = importlib.import_module("aiomisc_c.plugins")


class FakeEntryPoint:
    def __init__(self, name, load, group="aiomisc_c"):
        self.name = name
        self.group = group
        self._load = load

    def load(self):
        return self._load()

    def __repr__(self):
        return f"<FakeEntryPoint {self.name}>"


def plugin_module(name, calls):
    module = types.ModuleType(name, f"Plugin {name}.")
    module.setup = lambda: calls.append(name)
    return module


@pytest.fixture
def entry_points(monkeypatch):
    found = []
    monkeypatch.setattr(plugins_module, "_entry_points", lambda: iter(found))
    monkeypatch.delenv("AIOMISC_NO_PLUGINS", raising=False)
    return found


def test_module_names():
    assert plugins_module.__all__ == ("plugins",)
    assert isinstance(plugins_module.plugins, Mapping)
    assert isinstance(plugins_module.plugins, types.MappingProxyType)
    assert plugins_module.PLUGIN_GROUPS == ("aiomisc_c.plugins", "aiomisc_c")


def test_setup_plugins_loads_and_sets_up(entry_points):
    calls = []
    first = plugin_module("first", calls)
    second = plugin_module("second", calls)
    entry_points += [
        FakeEntryPoint("first", lambda: first, "aiomisc_c.plugins"),
        FakeEntryPoint("second", lambda: second),
    ]
    result = plugins_module.setup_plugins()
    assert isinstance(result, types.MappingProxyType)
    assert dict(result) == {"first": first, "second": second}
    assert calls == ["first", "second"]
    with pytest.raises(TypeError):
        result["third"] = first  # read-only


def test_later_entry_point_replaces_earlier(entry_points):
    calls = []
    old, new = plugin_module("old", calls), plugin_module("new", calls)
    entry_points += [
        FakeEntryPoint("same", lambda: old, "aiomisc_c.plugins"),
        FakeEntryPoint("same", lambda: new),
    ]
    assert dict(plugins_module.setup_plugins()) == {"same": new}
    assert calls == ["new"]


def test_load_failure_is_logged_and_skipped(entry_points, caplog):
    calls = []
    good = plugin_module("good", calls)

    def broken():
        raise ImportError("no such plugin")

    entry_points += [
        FakeEntryPoint("broken", broken),
        FakeEntryPoint("good", lambda: good),
    ]
    with caplog.at_level(logging.ERROR, logger="aiomisc_c.plugins"):
        result = plugins_module.setup_plugins()
    assert dict(result) == {"good": good}
    assert calls == ["good"]
    assert any("Failed to load entrypoint" in m for m in caplog.messages)


def test_setup_failure_is_raised(entry_points, caplog):
    module = types.ModuleType("bad")

    def setup():
        raise ZeroDivisionError

    module.setup = setup
    entry_points.append(FakeEntryPoint("bad", lambda: module))
    with caplog.at_level(logging.ERROR, logger="aiomisc_c.plugins"):
        with pytest.raises(ZeroDivisionError):
            plugins_module.setup_plugins()
    assert any("bad" in m for m in caplog.messages)


def test_plugin_without_setup_fails(entry_points):
    entry_points.append(FakeEntryPoint("nosetup", lambda: object()))
    with pytest.raises(AttributeError):
        plugins_module.setup_plugins()


@pytest.mark.parametrize("value", ["1", "0", "yes", "x"])
def test_disabled_by_env(entry_points, monkeypatch, value):
    calls = []
    entry_points.append(
        FakeEntryPoint("p", lambda: plugin_module("p", calls)),
    )
    # Any non-empty value disables plugins (even "0").
    monkeypatch.setenv("AIOMISC_NO_PLUGINS", value)
    result = plugins_module.setup_plugins()
    assert isinstance(result, types.MappingProxyType)
    assert dict(result) == {}
    assert calls == []


def test_empty_env_value_enables(entry_points, monkeypatch):
    calls = []
    module = plugin_module("p", calls)
    entry_points.append(FakeEntryPoint("p", lambda: module))
    monkeypatch.setenv("AIOMISC_NO_PLUGINS", "")
    assert dict(plugins_module.setup_plugins()) == {"p": module}


def test_entry_points_reads_only_own_groups():
    groups = {ep.group for ep in plugins_module._entry_points()}
    assert groups <= {"aiomisc_c.plugins", "aiomisc_c"}


# --------------------------------------------------------------------------
# Real entry points, in child processes.

PLUGIN_SOURCE = '''\
"""Fake plugin for the tests."""
import os

SETUP_CALLS = []


def setup():
    SETUP_CALLS.append(True)
    marker = os.environ.get("FAKE_PLUGIN_MARKER")
    if marker:
        with open(marker, "a") as fp:
            fp.write("setup\\n")
'''


@pytest.fixture
def fake_distribution(tmp_path):
    """A distribution declaring plugins in both groups, plus one in
    aiomisc's own group (which must be ignored) and a broken one."""
    (tmp_path / "fake_aiomisc_c_plugin.py").write_text(PLUGIN_SOURCE)
    dist_info = tmp_path / "fake_aiomisc_c_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-aiomisc-c-plugin\nVersion: 1.0\n",
    )
    (dist_info / "entry_points.txt").write_text(textwrap.dedent("""\
        [aiomisc_c]
        fake_bare = fake_aiomisc_c_plugin

        [aiomisc_c.plugins]
        fake_grouped = fake_aiomisc_c_plugin
        fake_broken = fake_aiomisc_c_plugin_missing

        [aiomisc]
        fake_foreign = fake_aiomisc_c_plugin
    """))
    return tmp_path


def run_child(args, path, **env):
    overrides = {"PYTHONPATH": os.pathsep.join(
        filter(None, [str(path), child_env()["PYTHONPATH"]]),
    )}
    overrides.update(env)
    return subprocess.run(
        [sys.executable, *args], cwd=NEUTRAL_CWD, env=child_env(**overrides),
        capture_output=True, text=True, timeout=120,
    )


IMPORT_AND_LIST = (
    "import sys, aiomisc_c.plugins; "
    "p = sys.modules['aiomisc_c.plugins'].plugins; "
    "print(sorted(name for name in p if name.startswith('fake')))"
)


@pytest.mark.subprocess
def test_import_loads_installed_plugins(fake_distribution, tmp_path):
    marker = tmp_path / "marker"
    result = run_child(
        ["-c", IMPORT_AND_LIST], fake_distribution,
        FAKE_PLUGIN_MARKER=str(marker), AIOMISC_NO_PLUGINS="",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['fake_bare', 'fake_grouped']"
    # One module object behind both names: setup() ran once per entry point.
    assert marker.read_text().splitlines() == ["setup", "setup"]
    assert "Failed to load entrypoint" in result.stderr
    assert "fake_broken" in result.stderr


@pytest.mark.subprocess
def test_import_with_plugins_disabled(fake_distribution, tmp_path):
    marker = tmp_path / "marker"
    result = run_child(
        ["-c", IMPORT_AND_LIST], fake_distribution,
        FAKE_PLUGIN_MARKER=str(marker), AIOMISC_NO_PLUGINS="1",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert not marker.exists()


@pytest.mark.subprocess
def test_cli_lists_plugins(fake_distribution):
    result = run_child(
        ["-m", "aiomisc_c.plugins", "-l", "info", "-F", "plain"],
        fake_distribution, AIOMISC_NO_PLUGINS="",
    )
    assert result.returncode == 0, result.stderr
    names = result.stdout.split()
    assert "fake_bare" in names and "fake_grouped" in names
    assert names == sorted(names)
    assert "fake_foreign" not in names
    assert "Available" in result.stderr
    assert "Fake plugin for the tests." in result.stderr


@pytest.mark.subprocess
@pytest.mark.parametrize("flag", ["-s", "-q", "--quiet", "--silent"])
def test_cli_silent(tmp_path, flag):
    # Without the broken entry point: nothing at all may reach stderr.
    (tmp_path / "fake_aiomisc_c_plugin.py").write_text(PLUGIN_SOURCE)
    dist_info = tmp_path / "fake_aiomisc_c_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-aiomisc-c-plugin\nVersion: 1.0\n",
    )
    (dist_info / "entry_points.txt").write_text(
        "[aiomisc_c]\nfake_bare = fake_aiomisc_c_plugin\n",
    )
    result = run_child(
        ["-m", "aiomisc_c.plugins", flag], tmp_path, AIOMISC_NO_PLUGINS="",
    )
    assert result.returncode == 0, result.stderr
    assert "fake_bare" in result.stdout.split()
    assert result.stderr == ""


@pytest.mark.subprocess
def test_cli_no_output(fake_distribution):
    result = run_child(
        ["-m", "aiomisc_c.plugins", "-n", "-l", "info"],
        fake_distribution, AIOMISC_NO_PLUGINS="",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "fake_bare" in result.stderr


@pytest.mark.subprocess
def test_cli_bad_arguments(fake_distribution):
    result = run_child(
        ["-m", "aiomisc_c.plugins", "--log-level", "loud"],
        fake_distribution, AIOMISC_NO_PLUGINS="1",
    )
    assert result.returncode == 2
    assert "-m aiomisc_c.plugins" in result.stderr
    assert "invalid choice" in result.stderr


def test_cli_module_names():
    # importlib: the package attribute "plugins" is the mapping (as in
    # aiomisc), so "import aiomisc_c.plugins.__main__ as cli" cannot bind it
    cli = importlib.import_module("aiomisc_c.plugins.__main__")

    assert cli.module_name == "aiomisc_c.plugins"
    assert cli.executable.name == os.path.basename(sys.executable)
    assert cli.parser.prog == f"{cli.executable.name} -m aiomisc_c.plugins"
    assert callable(cli.main)
    defaults = cli.parser.parse_args([])
    assert defaults.log_level == "info"
    assert not defaults.quiet and not defaults.no_output


def own_entry_point_installed():
    return any(
        ep.group == "aiomisc_c" and ep.name == "systemd_watchdog"
        for dist in Distribution.discover() for ep in dist.entry_points
    )


@pytest.mark.subprocess
@pytest.mark.skipif(
    not own_entry_point_installed(),
    reason="aiomisc_c is not installed with its entry points",
)
def test_cli_lists_systemd_watchdog():
    result = subprocess.run(
        [sys.executable, "-m", "aiomisc_c.plugins", "-s"], cwd=NEUTRAL_CWD,
        env=child_env(AIOMISC_NO_PLUGINS=""), capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "systemd_watchdog" in result.stdout.split()
    assert result.stderr == ""


# -- the pre-check that spares importing importlib.metadata --------------------


def test_entry_points_read_from_files(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    monkeypatch.setattr(sys, "meta_path", [importlib.machinery.PathFinder])
    dist = tmp_path / "other-1.0.dist-info"
    dist.mkdir()
    (dist / "entry_points.txt").write_text("[console_scripts]\nx = y:z\n")
    assert list(plugins_module._entry_points()) == []

    ours = tmp_path / "plugin-1.0.dist-info"
    ours.mkdir()
    (ours / "entry_points.txt").write_text("[aiomisc_c.plugins]\nname = mod\n")
    assert [
        (ep.group, ep.name, ep.value) for ep in plugins_module._entry_points()
    ] == [("aiomisc_c.plugins", "name", "mod")]
    # the files were enough: importlib.metadata was not consulted
    assert isinstance(
        next(plugins_module._entry_points()), plugins_module._EntryPoint,
    )


def test_zips_and_custom_finders_use_importlib_metadata(tmp_path, monkeypatch):
    archive = tmp_path / "bundle.zip"
    archive.write_bytes(b"")
    monkeypatch.setattr(sys, "path", [str(archive)])
    monkeypatch.setattr(sys, "meta_path", [importlib.machinery.PathFinder])
    assert not any(
        isinstance(ep, plugins_module._EntryPoint)
        for ep in plugins_module._all_entry_points("[")
    )

    class Finder:
        @staticmethod
        def find_distributions(context=None):
            return iter(())

    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    (tmp_path / "plugin-1.0.dist-info").mkdir()
    (tmp_path / "plugin-1.0.dist-info" / "entry_points.txt").write_text(
        "[aiomisc_c]\nname = mod\n",
    )
    monkeypatch.setattr(sys, "meta_path", [Finder, importlib.machinery.PathFinder])
    assert not plugins_module._standard_finders_only()
    found = list(plugins_module._entry_points())
    assert [(ep.name, ep.value) for ep in found] == [("name", "mod")]
    assert not isinstance(found[0], plugins_module._EntryPoint)


# -- entry points read from the files, without importlib.metadata --------------


def test_parse_entry_points_file():
    text = (
        "# comment\n[console_scripts]\nx = y:z\n\n"
        "[aiomisc_c]\n; another comment\n"
        "watchdog = pkg.module\nattr = pkg.module:obj.inner [extra]\n"
    )
    parsed = [
        (ep.group, ep.name, ep.value)
        for ep in plugins_module._parse_entry_points(text)
    ]
    assert parsed == [
        ("console_scripts", "x", "y:z"),
        ("aiomisc_c", "watchdog", "pkg.module"),
        ("aiomisc_c", "attr", "pkg.module:obj.inner [extra]"),
    ]


def test_entry_point_from_file_loads_module_and_attribute():
    text = "[aiomisc_c]\nmod = os.path\nfunc = os.path:join\n"
    mod, func = plugins_module._parse_entry_points(text)
    assert mod.load() is os.path
    assert func.load() is os.path.join
    assert repr(func) == (
        "EntryPoint(name='func', value='os.path:join', group='aiomisc_c')"
    )


def test_entry_points_match_importlib_metadata():
    groups = ("console_scripts", "pytest11", "aiomisc_c.plugins", "aiomisc_c")
    for group in groups:
        ours = [
            (ep.name, ep.value)
            for ep in plugins_module._entry_points((group,))
        ]
        theirs = [
            (ep.name, ep.value)
            for dist in Distribution.discover()
            for ep in dist.entry_points if ep.group == group
        ]
        assert sorted(ours) == sorted(theirs), group


def test_directory_listing_of_the_path_finder_is_reused_while_current(
    tmp_path, monkeypatch,
):
    entry = str(tmp_path)
    (tmp_path / "module_a.py").write_text("")
    monkeypatch.setattr(sys, "path", [entry])
    monkeypatch.setattr(sys, "meta_path", [importlib.machinery.PathFinder])
    monkeypatch.setitem(sys.path_importer_cache, entry, None)
    sys.path_importer_cache.pop(entry)
    assert importlib.machinery.PathFinder.find_spec("module_a", [entry])
    finder = sys.path_importer_cache[entry]
    assert plugins_module._directory_names(entry) is finder._path_cache

    # installed after the finder listed the directory: listed again
    ours = tmp_path / "plugin-1.0.dist-info"
    ours.mkdir()
    (ours / "entry_points.txt").write_text("[aiomisc_c]\nname = mod\n")
    stat = os.stat(entry)
    os.utime(entry, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert "plugin-1.0.dist-info" not in finder._path_cache
    assert "plugin-1.0.dist-info" in plugins_module._directory_names(entry)
    assert [
        (ep.group, ep.name, ep.value) for ep in plugins_module._entry_points()
    ] == [("aiomisc_c", "name", "mod")]
