"""``import aiomisc_c`` from a clone whose C modules are not built warns once
with how to get them; nowhere else does it warn."""
import os
import shutil
import subprocess
import sys

import pytest

import aiomisc_c
from aiomisc_c import _compat

PACKAGE_DIR = os.path.dirname(os.path.abspath(aiomisc_c.__file__))
MESSAGE = "aiomisc_c is imported from a source checkout"


@pytest.fixture
def unbuilt_copy(tmp_path):
    """A copy of the package without compiled modules; no csrc/ yet."""
    shutil.copytree(
        PACKAGE_DIR, tmp_path / "aiomisc_c",
        ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"),
    )
    return tmp_path


def import_package(root, code=None, **env_changes):
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith("AIOMISC_C_") and key != "PYTHONWARNINGS"
    }
    env["PYTHONPATH"] = str(root)
    env.update(env_changes)
    code = code or (
        "import aiomisc_c, aiomisc_c.thread_pool, aiomisc_c.backoff\n"
        "print(aiomisc_c.implementation)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=str(root), env=env,
        capture_output=True, text=True, timeout=60,
    )


def test_warns_once_from_an_unbuilt_source_checkout(unbuilt_copy):
    os.mkdir(unbuilt_copy / "csrc")
    result = import_package(unbuilt_copy)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "python"
    assert result.stderr.count(MESSAGE) == 1, result.stderr
    assert "RuntimeWarning" in result.stderr
    assert "build_ext --inplace" in result.stderr
    assert "pip install ." in result.stderr
    assert str(unbuilt_copy / "aiomisc_c") in result.stderr


def test_the_warning_is_an_error_under_w_error(unbuilt_copy):
    os.mkdir(unbuilt_copy / "csrc")
    result = import_package(unbuilt_copy, PYTHONWARNINGS="error")
    assert result.returncode != 0
    assert MESSAGE in result.stderr


def test_no_warning_when_the_python_twins_are_chosen(unbuilt_copy):
    os.mkdir(unbuilt_copy / "csrc")
    result = import_package(unbuilt_copy, AIOMISC_C_NO_EXTENSIONS="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "python"
    assert MESSAGE not in result.stderr


def test_no_warning_for_an_installed_pure_python_package(unbuilt_copy):
    # no csrc/ beside the package: AIOMISC_C_NO_EXTENSIONS=1 pip install .
    result = import_package(unbuilt_copy)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "python"
    assert MESSAGE not in result.stderr


def test_warns_at_import_before_any_primitive_is_used(unbuilt_copy):
    # the primitives' modules load on first use; the warning does not wait
    os.mkdir(unbuilt_copy / "csrc")
    code = (
        "import sys, warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import aiomisc_c\n"
        "print(len([w for w in caught if 'source checkout' in str(w.message)]),"
        " 'aiomisc_c.thread_pool' in sys.modules)\n"
    )
    result = import_package(unbuilt_copy, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "False"]


def test_no_warning_and_no_c_import_from_a_built_checkout(tmp_path):
    # a checkout with its modules built: nothing warns, and "import
    # aiomisc_c" still imports no C module (it only looks for their files)
    if not _compat.c_available():
        pytest.skip("C twins not built")
    shutil.copytree(
        PACKAGE_DIR, tmp_path / "aiomisc_c",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    os.mkdir(tmp_path / "csrc")
    code = (
        "import sys\n"
        "import aiomisc_c\n"
        "print(sorted(m for m in sys.modules if m.startswith('aiomisc_c._')"
        " and m[10:] in ('_thread_pool', '_loop', '_backoff', '_circuit_breaker')))\n"
    )
    result = import_package(tmp_path, code, PYTHONWARNINGS="error")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert MESSAGE not in result.stderr
