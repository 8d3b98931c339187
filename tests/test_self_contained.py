"""The package, its docs and its tests refer only to what is in the project.

Working notes kept outside the repository (design notes, task descriptions,
numbered sections of some other text) mean nothing to a reader of a clone, so
no tracked text file may point at them: every ``*.md`` it names must be a file
of the project, and section signs or references to a task description or
a specification by nickname are not used.
The scan covers every text file of the source tree, so a merged branch that
brings such a mention back fails here.
"""
import pathlib
import re
from typing import Iterator, List, Tuple

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Directories and top-level files that make up the project's text.
SCANNED_DIRS = ("aiomisc_c", "csrc", "tests", "docs", "benchmarks", "examples", ".ci")
SCANNED_FILES = (
    "README.rst", "CHANGELOG.md", "pyproject.toml", "setup.py", "Makefile",
    "MANIFEST.in",
)
TEXT_SUFFIXES = {
    ".py", ".pyi", ".c", ".h", ".rst", ".md", ".toml", ".txt", ".cfg", ".in",
    ".ini", ".yml", ".yaml", "",
}
SKIPPED_DIR_NAMES = {"__pycache__", "build", ".pytest_cache", ".mypy_cache"}

# The patterns are assembled from pieces so this file does not match itself.
SECTION_SIGN = "\u00a7"
FORBIDDEN = [
    (re.compile(SECTION_SIGN), "a section sign (numbered section of an outside text)"),
    (re.compile(r"\bthe " + "brief" + r"\b", re.IGNORECASE),
     "a reference to a task description"),
    (re.compile(r"\bthe " + "spec" + r"\b(?!ial)", re.IGNORECASE),
     "a reference to an outside specification"),
    (re.compile(r"/work/" + "shared"), "a path outside the repository"),
]
MARKDOWN_NAME = re.compile(r"(?<![\w./-])([\w./-]+\." + "md" + r")\b")


def _project_files() -> Iterator[pathlib.Path]:
    for name in SCANNED_FILES:
        path = ROOT / name
        if path.is_file():
            yield path
    for directory in SCANNED_DIRS:
        base = ROOT / directory
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if SKIPPED_DIR_NAMES.intersection(path.relative_to(ROOT).parts):
                continue
            if path.is_file() and path.suffix in TEXT_SUFFIXES:
                yield path


def _markdown_files() -> set:
    return {path.name for path in _project_files() if path.suffix == ".md"}


def find_outside_mentions(
    path: pathlib.Path, known_markdown: set,
) -> List[Tuple[int, str]]:
    """Return ``(line number, reason)`` for each mention of an outside text."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return []
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for pattern, reason in FORBIDDEN:
            if pattern.search(line):
                found.append((number, reason))
        for match in MARKDOWN_NAME.finditer(line):
            if pathlib.PurePath(match.group(1)).name not in known_markdown:
                found.append(
                    (number, "names %s, not a file of the project" % match.group(1)),
                )
    return found


def test_tree_is_there():
    # the scan must have something to scan, or the next test proves nothing
    files = list(_project_files())
    assert ROOT.joinpath("aiomisc_c", "__init__.py") in files
    assert ROOT.joinpath("tests", "conftest.py") in files
    assert any(path.suffix == ".c" for path in files)
    assert any(path.suffix == ".rst" for path in files)


def test_no_mention_of_documents_outside_the_project():
    known = _markdown_files()
    problems = [
        "%s:%d: %s" % (path.relative_to(ROOT), number, reason)
        for path in _project_files()
        for number, reason in find_outside_mentions(path, known)
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("line", [
    "see " + "API" + ".md for the details",
    "(" + "DESIGN" + ".md)",
    "as " + SECTION_SIGN + "6 says",
    "# per the " + "brief",
    "The " + "spec" + " wants this",
    "notes in thread_pool_core" + ".md",
])
def test_scan_catches_planted_mentions(tmp_path, line):
    planted = tmp_path / "planted.py"
    planted.write_text("x = 1\n# %s\n" % line, encoding="utf-8")
    found = find_outside_mentions(planted, {"CHANGELOG.md"})
    assert found, line
    assert {number for number, _ in found} == {2}


def test_scan_accepts_project_words(tmp_path):
    clean = tmp_path / "clean.py"
    clean.write_text(
        "# see CHANGELOG.md; a special case; briefly; importlib spec objects\n",
        encoding="utf-8",
    )
    assert find_outside_mentions(clean, {"CHANGELOG.md"}) == []
