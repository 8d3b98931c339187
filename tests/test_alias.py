"""``aiomisc_c.alias``: ``import aiomisc`` gives aiomisc_c's own modules.

Every case runs in a child interpreter: the alias changes ``sys.modules``
and ``sys.meta_path`` of the whole process, and loads the plugins of
aiomisc's entry-point groups.
"""
import os
import subprocess
import sys
import textwrap

import pytest
from helpers.childproc import NEUTRAL_CWD, child_env

pytestmark = pytest.mark.subprocess


def run_python(args, path=None, cwd=NEUTRAL_CWD, **env):
    """Run the interpreter with ``path`` (a directory) first on PYTHONPATH."""
    overrides = {"AIOMISC_NO_PLUGINS": "1"}
    if path is not None:
        overrides["PYTHONPATH"] = os.pathsep.join(
            [str(path), child_env()["PYTHONPATH"]],
        )
    overrides.update(env)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=child_env(**overrides),
        capture_output=True, text=True, timeout=120,
    )


def run_code(code, path=None, **env):
    result = run_python(["-c", textwrap.dedent(code)], path, **env)
    assert result.returncode == 0, result.stderr
    return result


def test_aiomisc_names_are_aiomisc_c_modules():
    run_code("""
        import importlib, sys
        import aiomisc_c.alias
        import aiomisc, aiomisc_c
        import aiomisc.service, aiomisc.service.base, aiomisc.log
        import aiomisc.thread_pool, aiomisc.utils, aiomisc.context_vars
        import aiomisc._context_vars
        from aiomisc.service import Service
        from aiomisc.circuit_breaker import CircuitBreaker
        import aiomisc_log, aiomisc_log.enum, aiomisc_log.formatter
        import aiomisc_c.log.core, aiomisc_c.log.enum, aiomisc_c.log.formatter

        assert aiomisc is aiomisc_c
        assert aiomisc.service is sys.modules["aiomisc_c.service"]
        assert aiomisc.service.base is sys.modules["aiomisc_c.service.base"]
        assert Service is aiomisc_c.service.Service is aiomisc.Service
        assert CircuitBreaker is aiomisc_c.circuit_breaker.CircuitBreaker
        assert aiomisc.log is aiomisc_c.log
        assert sys.modules["aiomisc._context_vars"] is aiomisc_c._context_vars
        assert aiomisc_log is aiomisc_c.log.core
        assert aiomisc_log.basic_config is aiomisc_c.log.core.basic_config
        assert aiomisc_log.enum is aiomisc_c.log.enum
        assert aiomisc_log.formatter is aiomisc_c.log.formatter
        assert aiomisc_log.enum.LogFormat is aiomisc_c.log.LogFormat
        # The modules keep their own identity (pickling, python -m, ...).
        assert aiomisc.service.__name__ == "aiomisc_c.service"
        assert aiomisc.service.__spec__.name == "aiomisc_c.service"
        assert aiomisc_log.__spec__.name == "aiomisc_c.log.core"
        # Patching through one name patches the other.
        aiomisc.utils.PATCHED = 1
        assert aiomisc_c.utils.PATCHED == 1

        has_worker = importlib.util.find_spec("aiomisc_c.worker") is not None
        if has_worker:
            import aiomisc_worker, aiomisc_c.worker
            assert aiomisc_worker is aiomisc_c.worker
        else:
            try:
                import aiomisc_worker
            except ModuleNotFoundError as e:
                assert e.name == "aiomisc_worker", e.name
            else:
                raise AssertionError("aiomisc_worker imported")
    """)


def test_unknown_submodule_is_not_found_under_its_aiomisc_name():
    run_code("""
        import aiomisc_c.alias
        try:
            import aiomisc.no_such_module
        except ModuleNotFoundError as e:
            assert e.name == "aiomisc.no_such_module", e.name
            assert str(e) == "No module named 'aiomisc.no_such_module'", str(e)
        else:
            raise AssertionError("imported")
    """)


@pytest.mark.parametrize("name, attribute", [
    ("entrypoint", "Entrypoint"),
    ("timeout", "timeout"),
])
def test_first_import_of_submodule_keeps_package_attribute(name, attribute):
    # "import aiomisc.entrypoint" must not turn the package attribute
    # aiomisc.entrypoint (the Entrypoint class) into the submodule.
    run_code(f"""
        import sys
        import aiomisc_c.alias
        import aiomisc.{name}
        import aiomisc_c, aiomisc_c.{name}
        module = sys.modules["aiomisc_c.{name}"]
        assert sys.modules["aiomisc.{name}"] is module
        assert aiomisc.{name} is not module, aiomisc.{name}
        assert aiomisc.{name} is module.{attribute}
        from aiomisc import {name} as value
        assert value is module.{attribute}
    """)


def test_lazily_loaded_submodule_through_alias():
    # aiomisc_c imports iterator_wrapper on first use only.
    run_code("""
        import sys
        import aiomisc_c.alias
        assert "aiomisc_c.iterator_wrapper" not in sys.modules
        from aiomisc.iterator_wrapper import IteratorWrapper
        import aiomisc, aiomisc_c
        module = sys.modules["aiomisc_c.iterator_wrapper"]
        assert sys.modules["aiomisc.iterator_wrapper"] is module
        assert IteratorWrapper is module.IteratorWrapper is aiomisc.IteratorWrapper
        assert aiomisc.iterator_wrapper is module
    """)


def test_star_import_gives_aiomisc_names():
    run_code("""
        import aiomisc_c.alias
        import aiomisc_c
        namespace = {}
        exec("from aiomisc import *", namespace)
        namespace.pop("__builtins__")
        assert sorted(namespace) == sorted(aiomisc_c.__all__), (
            set(namespace) ^ set(aiomisc_c.__all__))
        for name, value in namespace.items():
            assert value is getattr(aiomisc_c, name), name
        assert namespace["entrypoint"] is aiomisc_c.Entrypoint
        assert callable(namespace["timeout"])
    """)


@pytest.fixture
def real_aiomisc(tmp_path):
    """A stand-in for the original aiomisc package on the path."""
    package = tmp_path / "aiomisc"
    package.mkdir()
    (package / "__init__.py").write_text("ORIGINAL = True\n")
    return tmp_path


def test_alias_wins_over_installed_aiomisc(real_aiomisc):
    result = run_code("""
        import aiomisc_c.alias, aiomisc, aiomisc_c
        print(aiomisc is aiomisc_c, hasattr(aiomisc, "ORIGINAL"))
    """, real_aiomisc)
    assert result.stdout.split() == ["True", "False"]


def test_install_after_real_aiomisc_was_imported_fails(real_aiomisc):
    result = run_python(["-c", "import aiomisc; import aiomisc_c.alias"], real_aiomisc)
    assert result.returncode == 1
    assert "RuntimeError: cannot alias aiomisc to aiomisc_c" in result.stderr
    assert "'aiomisc' is already imported from" in result.stderr
    assert str(real_aiomisc / "aiomisc" / "__init__.py") in result.stderr


def test_uninstall_restores_sys_modules(real_aiomisc):
    run_code("""
        import sys
        import aiomisc_c, aiomisc_c.log.core
        meta_path = list(sys.meta_path)

        import aiomisc_c.alias as alias
        before_alias = dict(sys.modules)
        import aiomisc, aiomisc.entrypoint, aiomisc_log.enum, aiomisc_log.formatter
        assert alias.installed()
        assert aiomisc_c.log.core.enum is aiomisc_c.log.enum

        alias.uninstall()
        assert not alias.installed()
        assert sys.meta_path == meta_path
        leftovers = {
            name for name in sys.modules
            if name.split(".")[0] in ("aiomisc", "aiomisc_log", "aiomisc_worker")
        }
        assert not leftovers, leftovers
        # Only modules of aiomisc_c itself were added meanwhile.
        added = set(sys.modules) - set(before_alias) - {"aiomisc_c.alias"}
        assert all(name.startswith("aiomisc_c.") for name in added), added
        assert not hasattr(aiomisc_c.log.core, "enum")
        assert aiomisc_c.entrypoint is aiomisc_c.Entrypoint

        import aiomisc
        assert aiomisc.ORIGINAL and aiomisc is not aiomisc_c
        # Installing again now refuses to mix the two packages.
        try:
            alias.install()
        except RuntimeError:
            pass
        else:
            raise AssertionError("installed over the original package")
    """, real_aiomisc)


def test_aiomisc_pytest_name_gives_the_plugin_helpers():
    run_code("""
        import sys
        import aiomisc_c.alias as alias
        import aiomisc_pytest
        import aiomisc_c.pytest
        assert aiomisc_pytest.__name__ == "aiomisc_c.pytest.aiomisc_pytest"
        assert aiomisc_pytest.TCPProxy is aiomisc_c.pytest.TCPProxy
        assert aiomisc_pytest.pytest_plugins == ["aiomisc_c.pytest"]
        # No hooks or fixtures of its own (pytest registers it as a plugin).
        assert not [n for n in vars(aiomisc_pytest) if n.startswith("pytest_")
                    and n != "pytest_plugins"]
        alias.uninstall()
        assert "aiomisc_pytest" not in sys.modules
    """)


def test_installed_aiomisc_pytest_is_not_aliased(tmp_path):
    (tmp_path / "aiomisc_pytest.py").write_text("ORIGINAL = True\n")
    run_code("""
        import aiomisc_c.alias
        import aiomisc_pytest
        assert aiomisc_pytest.ORIGINAL
    """, tmp_path)


def test_install_twice_is_a_noop():
    run_code("""
        import sys
        import aiomisc_c.alias as alias
        alias.install()
        alias.install()
        assert sum(isinstance(f, alias.AliasFinder) for f in sys.meta_path) == 1
        import aiomisc, aiomisc_c
        assert aiomisc is aiomisc_c
    """)


SCRIPT = """\
import sys
import aiomisc
import aiomisc_c
print(__name__, sys.argv, aiomisc is aiomisc_c, sys.path[0])
sys.exit(int(sys.argv[-1]))
"""


def test_run_script_with_alias(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    result = run_python(["-m", "aiomisc_c.alias", str(script), "a", "3"])
    assert result.returncode == 3, result.stderr
    assert result.stdout.split(" ", 1) == [
        "__main__", f"[{str(script)!r}, 'a', '3'] True {tmp_path}\n",
    ]


def test_run_module_with_alias(tmp_path):
    package = tmp_path / "app"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(SCRIPT)
    result = run_python(
        ["-m", "aiomisc_c.alias", "-m", "app", "x", "0"], cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    name, rest = result.stdout.split(" ", 1)
    assert name == "__main__"
    assert rest.startswith(f"[{str(package / '__main__.py')!r}, 'x', '0'] True")


@pytest.mark.parametrize("args, message", [
    ([], "nothing to run"),
    (["-m"], "-m needs a module name"),
    (["--bogus"], "unknown option '--bogus'"),
    (["missing-script.py"], "can't open file 'missing-script.py'"),
])
def test_run_usage_errors(args, message):
    result = run_python(["-m", "aiomisc_c.alias", *args])
    assert result.returncode == 2
    assert message in result.stderr
    assert "usage: python -m aiomisc_c.alias script.py" in result.stderr


PLUGIN_SOURCE = '''\
"""A plugin written for aiomisc."""
import aiomisc

STARTED = []


async def on_start(entrypoint, services, **_):
    STARTED.extend(services)


def setup():
    print("setup", aiomisc.__name__, flush=True)
    aiomisc.entrypoint.PRE_START.connect(on_start)
'''


@pytest.fixture
def aiomisc_plugin(tmp_path):
    """A distribution registering a plugin in aiomisc's entry-point group."""
    (tmp_path / "aiomisc_style_plugin.py").write_text(PLUGIN_SOURCE)
    dist_info = tmp_path / "aiomisc_style_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: aiomisc-style-plugin\nVersion: 1.0\n",
    )
    (dist_info / "entry_points.txt").write_text(
        "[aiomisc.plugins]\nstyle = aiomisc_style_plugin\n",
    )
    return tmp_path


def test_aiomisc_plugins_load_only_with_alias(aiomisc_plugin):
    without = run_code("""
        import sys, aiomisc_c
        assert "style" not in aiomisc_c.plugins
        assert "aiomisc_style_plugin" not in sys.modules
        print("ok")
    """, aiomisc_plugin, AIOMISC_NO_PLUGINS="")
    assert without.stdout.split() == ["ok"]

    with_alias = run_code("""
        import aiomisc_c, aiomisc_c.alias
        import aiomisc_style_plugin
        assert aiomisc_c.plugins["style"] is aiomisc_style_plugin

        class Svc(aiomisc_c.Service):
            async def start(self):
                pass

        svc = Svc()
        with aiomisc_c.entrypoint(svc, log_config=False) as loop:
            pass
        assert aiomisc_style_plugin.STARTED == [svc]
        print("done")
    """, aiomisc_plugin, AIOMISC_NO_PLUGINS="")
    # setup() ran once, on aiomisc_c.
    assert with_alias.stdout.split() == ["setup", "aiomisc_c", "done"]


def test_aiomisc_plugins_disabled_by_env(aiomisc_plugin):
    result = run_code("""
        import sys, aiomisc_c, aiomisc_c.alias
        assert "style" not in aiomisc_c.plugins
        assert "aiomisc_style_plugin" not in sys.modules
    """, aiomisc_plugin, AIOMISC_NO_PLUGINS="1")
    assert "setup" not in result.stdout
