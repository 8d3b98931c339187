"""Code written for aiomisc, run unchanged on aiomisc_c through the alias:
a small application with its test suite (run by pytest with the alias and
the plugin), and the third-party package aiomisc-dependency (from the
registry, without aiomisc) loaded as the aiomisc plugin it registers."""
import os
import subprocess
import sys
import textwrap

import pytest
from helpers.childproc import child_env

pytestmark = pytest.mark.subprocess

APP = '''\
"""An application written for aiomisc."""
import asyncio

import aiomisc
from aiomisc.service.base import Service
from aiomisc_log import LogFormat


class Greeter(Service):
    greeting: str = "hello"

    async def start(self) -> None:
        self.context["greeter"] = self

    @aiomisc.threaded
    def _compose(self, name):
        return f"{self.greeting}, {name}"

    @aiomisc.timeout(5)
    async def greet(self, name):
        return await self._compose(name)


def main():
    with aiomisc.entrypoint(Greeter(greeting="hi"), log_format=LogFormat.plain) as loop:
        greeter = loop.run_until_complete(aiomisc.get_context()["greeter"])
        print(loop.run_until_complete(greeter.greet("world")))


if __name__ == "__main__":
    main()
'''

APP_TESTS = '''\
import asyncio

import aiomisc
import pytest
from aiomisc.entrypoint import Entrypoint
from aiomisc_pytest import TCPProxy

from app import Greeter


@pytest.fixture
def services():
    return [Greeter(greeting="hi")]


@pytest.fixture
def default_context():
    return {"who": "bob"}


async def test_greet(entrypoint):
    assert isinstance(entrypoint, Entrypoint)
    greeter = await aiomisc.get_context()["greeter"]
    who = await aiomisc.get_context()["who"]
    assert await greeter.greet(who) == "hi, bob"


async def test_tcp_proxy(tcp_proxy, localhost):
    async def handle(reader, writer):
        writer.write(await reader.readexactly(3))
        writer.close()

    assert tcp_proxy is TCPProxy
    server = await asyncio.start_server(handle, localhost, 0)
    async with tcp_proxy(localhost, server.sockets[0].getsockname()[1]) as proxy:
        reader, writer = await proxy.create_client()
        writer.write(b"abc")
        assert await reader.read() == b"abc"
        writer.close()
    server.close()
    await server.wait_closed()


def test_runs_on_aiomisc_c():
    import aiomisc_c
    assert aiomisc is aiomisc_c
'''


@pytest.fixture
def application(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "test_app.py").write_text(APP_TESTS)
    return tmp_path


def run_in(directory, args, pythonpath=(), **env):
    overrides = {
        "PYTHONPATH": os.pathsep.join(
            [str(directory), *map(str, pythonpath), child_env()["PYTHONPATH"]],
        ),
        "AIOMISC_NO_PLUGINS": "",
        "PYTEST_ADDOPTS": "",
    }
    overrides.update(env)
    return subprocess.run(
        [sys.executable, *args], cwd=directory, env=child_env(**overrides),
        capture_output=True, text=True, timeout=180,
    )


def test_application_runs_through_alias(application):
    result = run_in(application, ["-m", "aiomisc_c.alias", "app.py"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["hi, world"]


@pytest.mark.parametrize("command", [
    ["-m", "pytest", "-p", "aiomisc_c.alias", "-p", "aiomisc_c.pytest"],
    ["-m", "aiomisc_c.alias", "-m", "pytest", "-p", "aiomisc_c.pytest"],
    # aiomisc-pytest's name loads the plugin too (once).
    ["-m", "pytest", "-p", "aiomisc_c.alias", "-p", "aiomisc_pytest"],
    ["-m", "pytest", "-p", "aiomisc_c.alias", "-p", "aiomisc_pytest",
     "-p", "aiomisc_c.pytest"],
], ids=["pytest-p-alias", "alias-runs-pytest", "p-aiomisc_pytest", "both-names"])
def test_application_tests_run_through_alias_and_plugin(application, command):
    result = run_in(
        application, [*command, "-p", "no:cacheprovider", "-W", "error", "-q"],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


# --------------------------------------------------------------------------
# aiomisc-dependency (it declares aiomisc as a requirement: installed here
# without its dependencies, next to aiodine from the test extra).

NETWORK_ERRORS = (
    "NewConnectionError", "Temporary failure in name resolution",
    "Network is unreachable", "Failed to establish a new connection",
    "No matching distribution found", "Could not fetch URL",
    "ProxyError", "Name or service not known",
)


def pip_install_target(target, requirement):
    """``pip install --no-deps --target`` (skips the test when the package
    index cannot be reached)."""
    result = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--no-deps", "--no-input",
            "--disable-pip-version-check", "--target", str(target), requirement,
        ],
        capture_output=True, text=True, timeout=600,
    )
    if result.returncode != 0:
        if any(error in result.stderr for error in NETWORK_ERRORS):
            pytest.skip(
                f"the package index is unreachable, cannot install {requirement}: "
                f"{result.stderr.strip().splitlines()[-1]}",
            )
        pytest.fail(f"pip install {requirement} failed:\n{result.stderr}")
    return target


@pytest.fixture(scope="session")
def aiomisc_dependency_path(tmp_path_factory):
    pytest.importorskip("aiodine", reason="aiodine is part of the test extra")
    target = pip_install_target(
        tmp_path_factory.mktemp("aiomisc-dependency"), "aiomisc-dependency==0.1.21",
    )
    assert (target / "aiomisc_dependency" / "plugin.py").exists()
    return target


DEPENDENCY_APP = '''\
import asyncio

import aiomisc
import aiomisc_dependency
from aiomisc_dependency import dependency


@dependency
async def settings():
    return {"greeting": "hi"}


@dependency
async def greeter(settings):
    return lambda name: f"{settings['greeting']}, {name}"


class App(aiomisc.Service):
    __dependencies__ = ("greeter", "loop")

    async def start(self):
        assert self.loop is asyncio.get_running_loop()
        self.result = self.greeter("bob")
'''

DEPENDENCY_SCRIPT = DEPENDENCY_APP + '''

if __name__ == "__main__":
    import importlib.machinery
    import sys
    import aiomisc_c

    # The original aiomisc is not installed: the alias makes this work.
    assert importlib.machinery.PathFinder.find_spec("aiomisc") is None
    assert aiomisc is aiomisc_c
    assert aiomisc.plugins["dependency"] is sys.modules["aiomisc_dependency.plugin"]
    app = App()
    with aiomisc.entrypoint(app, log_config=False):
        pass
    print(app.result, aiomisc_dependency.__file__)
'''

DEPENDENCY_TESTS = '''\
import pytest

from dependency_app import App


@pytest.fixture
def services():
    return [App()]


async def test_injected(services):
    assert services[0].result == "hi, bob"
'''


def test_aiomisc_dependency_injects_through_alias(tmp_path, aiomisc_dependency_path):
    (tmp_path / "dependency_app.py").write_text(DEPENDENCY_SCRIPT)
    result = run_in(
        tmp_path, ["-m", "aiomisc_c.alias", "dependency_app.py"],
        [aiomisc_dependency_path],
    )
    assert result.returncode == 0, result.stderr
    greeting, path = result.stdout.strip().rsplit(" ", 1)
    assert greeting == "hi, bob"
    assert path.startswith(str(aiomisc_dependency_path))


def test_aiomisc_dependency_without_alias_is_not_loaded(tmp_path, aiomisc_dependency_path):
    result = run_in(
        tmp_path, ["-c", textwrap.dedent("""
            import sys, aiomisc_c
            assert "dependency" not in aiomisc_c.plugins
            assert "aiomisc_dependency" not in sys.modules
            assert "aiomisc" not in sys.modules
        """)],
        [aiomisc_dependency_path],
    )
    assert result.returncode == 0, result.stderr


def test_aiomisc_dependency_with_the_pytest_plugin(tmp_path, aiomisc_dependency_path):
    (tmp_path / "dependency_app.py").write_text(DEPENDENCY_APP)
    (tmp_path / "test_dependency.py").write_text(DEPENDENCY_TESTS)
    result = run_in(
        tmp_path,
        ["-m", "pytest", "-p", "aiomisc_c.alias", "-p", "aiomisc_c.pytest",
         "-p", "no:cacheprovider", "-W", "error", "-q"],
        [aiomisc_dependency_path],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


# --------------------------------------------------------------------------
# aiomisc-pytest itself (from the registry, without aiomisc): it cannot be
# active together with aiomisc_c's plugin; either one runs aiomisc tests.

ASYNC_TEST = """
import asyncio
import aiomisc


async def test_runs(event_loop):
    assert asyncio.get_running_loop() is event_loop
    import aiomisc_c
    assert aiomisc is aiomisc_c
"""


@pytest.fixture(scope="session")
def aiomisc_pytest_path(tmp_path_factory):
    target = pip_install_target(
        tmp_path_factory.mktemp("aiomisc-pytest"), "aiomisc-pytest==1.3.4",
    )
    assert (target / "aiomisc_pytest.py").exists()
    return target


def entry_point_args():
    """Load aiomisc_c's plugin as its entry point would, when it is not
    installed (from a source tree)."""
    import importlib.metadata

    installed = any(
        entry_point.value == "aiomisc_c.pytest.plugin"
        for entry_point in importlib.metadata.entry_points(group="pytest11")
    )
    return [] if installed else ["-p", "aiomisc_c.pytest.plugin"]


@pytest.mark.parametrize("disable, outcome", [
    ([], "usage error"),
    (["-p", "no:aiomisc"], "1 passed"),
])
def test_aiomisc_pytest_and_the_plugin(tmp_path, aiomisc_pytest_path, disable, outcome):
    (tmp_path / "test_async.py").write_text(ASYNC_TEST)
    result = run_in(
        tmp_path,
        ["-m", "pytest", "-p", "aiomisc_c.alias", *entry_point_args(),
         "-p", "no:cacheprovider", "-q", *disable],
        [aiomisc_pytest_path],
    )
    if outcome == "usage error":
        assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stderr
        assert "aiomisc_c's pytest plugin and aiomisc-pytest are both active" in (
            result.stderr
        )
        assert "`-p no:aiomisc` (aiomisc-pytest) or `-p no:aiomisc_c`" in result.stderr
    else:
        assert result.returncode == 0, result.stdout + result.stderr
        assert outcome in result.stdout


def test_aiomisc_pytest_runs_on_aiomisc_c(tmp_path, aiomisc_pytest_path):
    # With aiomisc_c's plugin off, aiomisc-pytest itself runs the test on
    # aiomisc_c through the alias.
    (tmp_path / "test_async.py").write_text(ASYNC_TEST)
    result = run_in(
        tmp_path,
        ["-m", "pytest", "-p", "aiomisc_c.alias", "-p", "no:aiomisc_c",
         "-p", "no:cacheprovider", "-q"],
        [aiomisc_pytest_path],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
