"""setup.py's build_ext: the hint on a compiler failure, and build switches
(AIOMISC_C_*) that take effect after an earlier build in the same tree.

Each test runs ``setup.py build_ext --inplace`` in a temporary copy of the
project; the compiler is ``false`` or a stand-in script that logs its
arguments and writes the output file, so no C is compiled.
"""
import os
import shutil
import stat
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(
    os.name != "posix" or sys.implementation.name != "cpython",
    reason="the C modules are built on CPython on POSIX only",
)

FAKE_COMPILER = """#!/bin/sh
echo "$@" >> "{log}"
while [ $# -gt 0 ]; do
    if [ "$1" = "-o" ]; then shift; mkdir -p "$(dirname "$1")"; : > "$1"; fi
    shift
done
"""


@pytest.fixture
def project(tmp_path):
    copy = tmp_path / "project"
    os.mkdir(copy)
    for name in ("setup.py", "pyproject.toml", "README.rst", "LICENSE"):
        shutil.copy(os.path.join(ROOT, name), copy / name)
    shutil.copytree(os.path.join(ROOT, "csrc"), copy / "csrc")
    shutil.copytree(
        os.path.join(ROOT, "aiomisc_c"), copy / "aiomisc_c",
        ignore=shutil.ignore_patterns("*.so", "__pycache__"),
    )
    return copy


def build_ext(project, inplace=True, **env_changes):
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith("AIOMISC_C_")
        and key not in ("CC", "LDSHARED", "CFLAGS")
    }
    env.update(env_changes)
    return subprocess.run(
        [sys.executable, "setup.py", "build_ext"]
        + (["--inplace"] if inplace else []),
        cwd=str(project), env=env, capture_output=True, text=True,
        timeout=300,
    )


def test_compiler_failure_says_how_to_install_without_c(project):
    result = build_ext(project, CC="false", LDSHARED="false")
    assert result.returncode != 0
    assert "AIOMISC_C_NO_EXTENSIONS=1 pip install ." in result.stderr
    assert not list((project / "aiomisc_c").glob("_*.so"))


def test_no_extensions_switch_builds_nothing(project):
    result = build_ext(
        project, CC="false", LDSHARED="false", AIOMISC_C_NO_EXTENSIONS="1",
    )
    assert result.returncode == 0, result.stderr
    assert "AIOMISC_C_NO_EXTENSIONS" not in result.stderr


def test_a_changed_build_switch_rebuilds(project, tmp_path):
    log = tmp_path / "compiler.log"
    compiler = tmp_path / "fake-cc"
    compiler.write_text(FAKE_COMPILER.format(log=log))
    compiler.chmod(compiler.stat().st_mode | stat.S_IEXEC)
    tools = {"CC": str(compiler), "LDSHARED": f"{compiler} -shared"}

    def compiled(inplace=True, **switches):
        if log.exists():
            log.unlink()
        result = build_ext(project, inplace, **tools, **switches)
        assert result.returncode == 0, result.stderr
        return log.read_text().splitlines() if log.exists() else []

    first = compiled()
    # one translation unit per extension: csrc/<name>/module.c
    sources = sorted(
        name for name in os.listdir(project / "csrc")
        if (project / "csrc" / name / "module.c").exists()
    )
    assert sources
    assert any(" -O2" in line for line in first)
    assert len([line for line in first if " -c " in line]) == len(sources)

    # up to date: the same switches compile nothing
    assert compiled() == []

    debug = compiled(AIOMISC_C_DEBUG_BUILD="1")
    assert len([line for line in debug if " -c " in line]) == len(sources)
    assert all(" -O0" in line for line in debug if " -c " in line)

    assert compiled(AIOMISC_C_DEBUG_BUILD="1") == []
    # and back to the default build
    assert any(" -O2" in line for line in compiled())

    # an in-place build and a wheel's build share their objects: objects
    # compiled in place under other switches are never linked into the other
    compiled(inplace=False)
    compiled(AIOMISC_C_DEBUG_BUILD="1")
    wheel = compiled(inplace=False)
    assert len([line for line in wheel if " -c " in line]) == len(sources)
    assert all(" -O2" in line for line in wheel if " -c " in line)
