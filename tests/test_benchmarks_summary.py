"""The README's benchmark summary is generated from the committed benchmark
data (``docs/benchmarks.json``, written by ``python -m benchmarks --docs``),
never kept by hand."""
import importlib.util
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.rst")
DATA = os.path.join(ROOT, "docs", "benchmarks.json")


@pytest.fixture(scope="module")
def render():
    """benchmarks._render, loaded from its file (the source tree is not put
    on sys.path: the tests use the installed aiomisc_c)."""
    package_dir = os.path.join(ROOT, "benchmarks")
    spec = importlib.util.spec_from_file_location(
        "_bench_pkg", os.path.join(package_dir, "__init__.py"),
        submodule_search_locations=[package_dir],
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules["_bench_pkg"] = package
    try:
        spec.loader.exec_module(package)
        yield importlib.import_module("_bench_pkg._render")
    finally:
        for name in [n for n in sys.modules if n.startswith("_bench_pkg")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def results():
    with open(DATA, encoding="utf-8") as fp:
        return json.load(fp)


@pytest.fixture(scope="module")
def readme():
    with open(README, encoding="utf-8") as fp:
        return fp.read()


def test_readme_summary_is_rendered_from_the_data(render, results, readme):
    assert render.readme_block(readme) == render.readme_summary(results)


def test_rendering_the_readme_again_changes_nothing(render, results, readme):
    block = render.readme_summary(results)
    assert render.replace_between_markers(readme, block) == readme


def test_the_summary_follows_the_data(render, results, readme):
    changed = json.loads(json.dumps(results))
    runs = changed["modules"]["circuit_breaker"]["runs"]["asyncio"]
    runs["aiomisc_c"]["cases"]["call"]["median"] = 100.0
    runs["aiomisc"]["cases"]["call"]["median"] = 1234.0
    summary = render.readme_summary(changed)
    row = next(line for line in summary.splitlines()
               if line.startswith("``CircuitBreaker.call`` "))
    assert row.split()[1:4] == ["100", "1,234", "12×"]
    assert summary != render.readme_block(readme)
    rewritten = render.replace_between_markers(readme, summary)
    assert render.readme_block(rewritten) == summary
    # the text around the markers is kept
    start = readme.index(render.SUMMARY_START)
    assert rewritten[:start] == readme[:start]
    end = readme.index(render.SUMMARY_END)
    assert rewritten.endswith(readme[end:])


def test_a_missing_case_renders_as_a_dash(render, results):
    changed = json.loads(json.dumps(results))
    del changed["modules"]["backoff"]
    summary = render.readme_summary(changed)
    row = next(line for line in summary.splitlines()
               if line.startswith("``timeout(1)`` call"))
    assert row.split()[2:] == ["—"] * 6
