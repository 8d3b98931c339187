"""One subprocess of the benchmark run: one module, one subject, one loop.

It sets the subject up, then serves commands from the runner, one JSON line
each on stdin (``{"op": "run", "case": NAME, "iterations": N}``, ``{"op":
"close"}``), answering one JSON line each. The runner keeps one such process
per subject alive and asks them in turn, one sample at a time, so that the
noise of a shared machine (steal time comes and goes in bursts of seconds)
falls on every subject alike instead of on whichever ran during a burst.

Started by ``benchmarks/run.py`` as a script (``python benchmarks/_child.py``),
so that the source tree is not put in front of ``sys.path``: an installed
aiomisc_c (``pip install .[bench]``) is measured when there is one, else the
source tree's (built in place). ``AIOMISC_C_BENCH_SOURCE=tree`` forces the
tree. Anything printed by the code under test goes to stderr.
"""
import os
import sys

if __name__ == "__main__" and not __package__:
    import importlib.util

    _BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
    _REPO = os.path.dirname(_BENCH_DIR)
    sys.path[:] = [p for p in sys.path
                   if os.path.abspath(p or ".") != _BENCH_DIR]
    if os.environ.get("AIOMISC_C_BENCH_SOURCE") == "tree":
        sys.path.insert(0, _REPO)
    elif importlib.util.find_spec("aiomisc_c") is None:
        sys.path.append(_REPO)
    # the benchmarks package itself, loaded by path (the tree stays off
    # sys.path unless chosen above)
    _spec = importlib.util.spec_from_file_location(
        "benchmarks", os.path.join(_BENCH_DIR, "__init__.py"),
        submodule_search_locations=[_BENCH_DIR],
    )
    _package = importlib.util.module_from_spec(_spec)
    sys.modules["benchmarks"] = _package
    _spec.loader.exec_module(_package)
    from benchmarks._child import main as _main

    _main()
    raise SystemExit(0)

import argparse
import asyncio
import gc
import importlib
import json
import time
import traceback
from typing import Any, Dict, TextIO

from ._harness import Unavailable, describe_loop, run_once


def send(channel: TextIO, message: Dict[str, Any]) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def serve(module_name: str, subject: str, loop_kind: str) -> None:
    # the protocol gets a private copy of stdout; fd 1 goes to stderr so a
    # stray print() cannot corrupt it
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    module = importlib.import_module(f"benchmarks.bench_{module_name}")
    cases = {case.name: case for case in module.CASES}
    try:
        fixture = module.setup(subject, loop_kind)
    except Unavailable as exc:
        send(channel, {"skipped": str(exc)})
        return

    # what the imports and the setup left on the heap is frozen out of the
    # collector: otherwise a library that imports more pays for it in every
    # full collection during the cases
    gc.collect()
    gc.freeze()

    facts = dict(fixture.facts)
    facts.setdefault("loop_class", describe_loop(fixture.loop))
    facts["pid"] = os.getpid()
    send(channel, {
        "ready": True, "facts": facts, "cases": sorted(fixture.bodies),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    try:
        for line in sys.stdin:
            command = json.loads(line)
            if command["op"] == "close":
                break
            try:
                value, extra = run_once(
                    fixture, cases[command["case"]], command["iterations"],
                )
            except Exception:  # reported; the runner drops the case
                send(channel, {"error": traceback.format_exc()})
            else:
                send(channel, {"value": value, "extra": extra})
    finally:
        fixture.close()
        if fixture.loop is not None and not fixture.loop.is_closed():
            fixture.loop.close()
        asyncio.set_event_loop(None)
    send(channel, {"closed": True})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--module", required=True)
    parser.add_argument("--subject", required=True)
    parser.add_argument("--loop", required=True)
    args = parser.parse_args()
    serve(args.module, args.subject, args.loop)


if __name__ == "__main__":
    main()
