"""``mypy --strict`` on the package and on code written as users write it.

One mypy run checks ``aiomisc_c`` itself, ``tests/typing/user_code.py``
(``assert_type`` on every decorated function and the main methods of the
public classes: no type may degrade to ``Any``) and
``tests/typing/planted_errors.py``, whose lines ending with an ``E:``
comment must be reported with the message fragment the comment gives, and
no other line.
"""
import re
from pathlib import Path

import pytest
from mypy import api as mypy_api

import aiomisc_c

pytestmark = pytest.mark.typing

TYPING_DIR = Path(__file__).parent / "typing"
USER_CODE = TYPING_DIR / "user_code.py"
PLANTED = TYPING_DIR / "planted_errors.py"
PACKAGE_DIR = Path(aiomisc_c.__file__).parent

ERROR = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): error: (?P<message>.*)$")
EXPECTED = re.compile(r"\S.*  # E: (?P<fragment>.+)$")


@pytest.fixture(scope="module")
def mypy_errors(tmp_path_factory):
    """[(path, line, message)] of one ``mypy --strict`` run."""
    cache = tmp_path_factory.mktemp("mypy-cache")
    # The typed modules are found as top-level modules on MYPYPATH (mypy
    # takes either files or -p/-m, not both).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MYPYPATH", str(TYPING_DIR))
        stdout, stderr, status = mypy_api.run(
            MYPY_ARGS + ["--cache-dir", str(cache)] + config_args(),
        )
    assert status in (0, 1), stderr or stdout   # 2: mypy itself failed
    return parse(stdout)


MYPY_ARGS = [
    "--strict",
    "--no-error-summary",
    "--show-absolute-path",
    "--hide-error-context",
    "--no-pretty",
    "--python-version", "3.10",
    "--ignore-missing-imports",
    "-p", "aiomisc_c",
    "-m", USER_CODE.stem,
    "-m", PLANTED.stem,
]


def config_args():
    """The project's mypy settings (per-module overrides) when the tests
    run from a checkout or an unpacked sdist."""
    pyproject = Path(__file__).parent.parent / "pyproject.toml"
    if pyproject.is_file() and "[tool.mypy]" in pyproject.read_text():
        return ["--config-file", str(pyproject)]
    return []


def parse(stdout):
    errors = []
    for line in stdout.splitlines():
        match = ERROR.match(line)
        if match:
            errors.append((
                Path(match["path"]).resolve(), int(match["line"]),
                match["message"],
            ))
        else:
            assert ": note: " in line, line
    return errors


def expected_errors():
    expected = {}
    for number, line in enumerate(PLANTED.read_text().splitlines(), 1):
        match = EXPECTED.search(line)
        if match:
            expected[number] = match["fragment"].strip()
    return expected


def errors_in(errors, path):
    return [(line, message) for p, line, message in errors if p == path.resolve()]


def test_package_is_strictly_typed(mypy_errors):
    outside = [
        error for error in mypy_errors
        if error[0] not in (USER_CODE.resolve(), PLANTED.resolve())
    ]
    assert not outside, "\n".join(f"{p}:{n}: {m}" for p, n, m in outside)


def test_user_code_keeps_every_type(mypy_errors):
    errors = errors_in(mypy_errors, USER_CODE)
    assert not errors, "\n".join(f"{n}: {m}" for n, m in errors)


def test_planted_errors_are_reported(mypy_errors):
    expected = expected_errors()
    assert len(expected) >= 15
    reported = {}
    for line, message in errors_in(mypy_errors, PLANTED):
        reported.setdefault(line, []).append(message)
    assert sorted(reported) == sorted(expected), (
        f"unexpected: {sorted(set(reported) - set(expected))}, "
        f"missing: {sorted(set(expected) - set(reported))}"
    )
    for line, fragment in expected.items():
        assert any(fragment in message for message in reported[line]), (
            line, fragment, reported[line],
        )
