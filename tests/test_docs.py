"""Every ``.. code-block:: python`` of README.rst and docs/*.rst runs.

Each block runs in a fresh interpreter (warnings are errors) against the
installed package, so the documentation cannot drift from the code.
"""
import glob
import os
import subprocess
import sys

import pytest

from helpers.childproc import child_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCUMENTS = [os.path.join(ROOT, "README.rst")] + sorted(
    glob.glob(os.path.join(ROOT, "docs", "*.rst")),
)


# An RST comment line right before a code block, for an example whose
# third-party package exists only on newer Pythons (aiocarbon 0.17 needs
# 3.11):  ".. test-requires-python: 3.11"
REQUIRES_PYTHON = ".. test-requires-python:"


def python_blocks(path):
    """The python code blocks of an RST file, dedented, each with the
    minimum Python version it declares (or ``None``)."""
    blocks, block, requires, pending = [], None, None, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith(REQUIRES_PYTHON):
                version = line[len(REQUIRES_PYTHON):].strip()
                pending = tuple(int(part) for part in version.split("."))
            elif line.startswith(".. code-block:: python"):
                block, requires, pending = [], pending, None
            elif block is not None:
                if line.strip() and not line.startswith("    "):
                    blocks.append(("".join(block), requires))
                    block = None
                else:
                    block.append(line[4:] if line.startswith("    ") else line)
    if block:
        blocks.append(("".join(block), requires))
    return blocks


EXAMPLES = [
    pytest.param(
        code, id=f"{os.path.basename(path)}-{index}",
        marks=[] if requires is None else pytest.mark.skipif(
            sys.version_info < requires,
            reason=f"the example needs Python >= {'.'.join(map(str, requires))}",
        ),
    )
    for path in DOCUMENTS
    for index, (code, requires) in enumerate(python_blocks(path))
]


def test_documents_have_examples():
    assert os.path.exists(os.path.join(ROOT, "README.rst"))
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("example", EXAMPLES)
def test_documented_example_runs(example, tmp_path):
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", example],
        capture_output=True, text=True, env=child_env(), timeout=120, cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
