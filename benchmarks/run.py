"""Run every benchmark module and collect the results.

    python -m benchmarks                  # everything, tables on stdout
    python -m benchmarks --docs           # ... and docs/benchmarks.rst, .png,
                                          # .json and the README's summary
    python -m benchmarks --only thread_pool --repeats 5 --scale 0.5
    python -m benchmarks --from-json docs/benchmarks.json --docs  # re-render

Each ``benchmarks/bench_<name>.py`` is picked up automatically (see
``_harness.py`` for what it must define). Every (module, loop, subject) runs
in its own subprocess; results are merged into ``benchmarks/results.json``
(a partial run replaces only what it ran).
"""
import argparse
import importlib
import json
import os
import platform
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from . import _render
from ._harness import fmt_value, median, spread

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_OUTPUT = BENCH_DIR / "results.json"


def discover() -> List[str]:
    return sorted(
        path.stem[len("bench_"):] for path in BENCH_DIR.glob("bench_*.py")
    )


def describe_module(name: str) -> Dict[str, Any]:
    module = importlib.import_module(f"benchmarks.bench_{name}")
    return {
        "title": module.TITLE,
        "doc": (module.__doc__ or "").strip(),
        "baseline": module.BASELINE,
        "references": list(module.REFERENCES),
        "loops": list(module.LOOPS),
        "subjects": [
            {"name": s.name, "label": s.label, "short": s.short,
             "note": s.note, "env": dict(s.env)}
            for s in module.SUBJECTS
        ],
        "cases": [
            {"name": c.name, "title": c.title, "kind": c.kind,
             "unit": c.unit, "floor": c.floor, "ops": c.ops,
             "iterations": c.iterations, "short": c.short or c.title}
            for c in module.CASES
        ],
    }


class ChildFailed(Exception):
    pass


class Child:
    """One subject's subprocess (see ``_child.py``) and what it measured."""

    def __init__(self, module: str, subject: Dict[str, Any], loop: str,
                 workdir: str, timeout: float):
        self.name = subject["name"]
        self.short = subject["short"]
        self.timeout = timeout
        self.started = time.monotonic()
        self.result: Dict[str, Any] = {"cases": {}, "errors": {}}
        self.cases: List[str] = []
        env = dict(os.environ)
        env.update(subject["env"])
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "_child.py"), "--module", module,
             "--subject", self.name, "--loop", loop],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=env, cwd=workdir,
        )
        try:
            hello = self.receive()
        except ChildFailed as exc:
            self.fail(str(exc))
            return
        if "skipped" in hello:
            self.result["skipped"] = hello["skipped"]
            self.proc.wait()
            return
        self.result["facts"] = hello["facts"]
        self.result["date"] = hello["date"]
        self.cases = hello["cases"]

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None and "failed" not in self.result

    def receive(self) -> Dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        if not ready:
            raise ChildFailed(f"no answer in {self.timeout} s")
        line = self.proc.stdout.readline()
        if not line:
            raise ChildFailed(f"exited with {self.proc.wait()}")
        return json.loads(line)

    def request(self, message: Dict[str, Any]) -> Dict[str, Any]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise ChildFailed(f"exited with {self.proc.wait()}")
        return self.receive()

    def sample(self, case: str, iterations: int) -> Optional[Tuple[float, Any]]:
        """One sample, or None when the case failed (the error is kept)."""
        try:
            answer = self.request(
                {"op": "run", "case": case, "iterations": iterations},
            )
        except ChildFailed as exc:
            self.fail(f"{case}: {exc}")
            return None
        if "error" in answer:
            self.result["errors"][case] = answer["error"]
            print(f"    {self.short}: {case} FAILED\n{answer['error']}",
                  file=sys.stderr)
            return None
        return answer["value"], answer.get("extra")

    def fail(self, reason: str) -> None:
        self.result["failed"] = reason
        print(f"    {self.short}: FAILED: {reason}", file=sys.stderr)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> Dict[str, Any]:
        if self.alive:
            try:
                self.request({"op": "close"})
            except ChildFailed as exc:
                self.fail(f"close: {exc}")
            self.proc.wait(self.timeout)
        self.result["seconds"] = round(time.monotonic() - self.started, 1)
        return self.result


def run_loop(module: str, described: Dict[str, Any], loop: str,
             args: argparse.Namespace) -> Dict[str, Dict[str, Any]]:
    """Measure every subject of ``module`` on ``loop``, sample by sample in
    turn (the order rotates every round)."""
    subjects = [s for s in described["subjects"]
                if not args.subject or s["name"] in args.subject]
    with tempfile.TemporaryDirectory(prefix="aiomisc_c_bench_") as workdir:
        children = []
        for subject in subjects:
            print(f"[{module}] {loop}: starting {subject['label']}",
                  file=sys.stderr, flush=True)
            child = Child(module, subject, loop, workdir, args.timeout)
            if "skipped" in child.result:
                print(f"    skipped: {child.result['skipped']}",
                      file=sys.stderr)
            children.append(child)
        for case in described["cases"]:
            if args.case and case["name"] not in args.case:
                continue
            measure_in_turn(case, children, args)
        return {child.name: child.close() for child in children}


def measure_in_turn(case: Dict[str, Any], children: List[Child],
                    args: argparse.Namespace) -> None:
    iterations = max(1, round(case["iterations"] * args.scale))
    active = [c for c in children if c.alive and case["name"] in c.cases]
    # warm-up: spawns the pools' threads, fills caches; not recorded
    for child in active:
        child.sample(case["name"], max(1, iterations // 4))
    samples: Dict[str, List[float]] = {c.name: [] for c in active}
    extras: Dict[str, List[Any]] = {c.name: [] for c in active}
    for round_no in range(args.repeats):
        active = [c for c in active if c.alive
                  and case["name"] not in c.result["errors"]]
        if not active:
            break
        shift = round_no % len(active)
        for child in active[shift:] + active[:shift]:
            got = child.sample(case["name"], iterations)
            if got is not None:
                samples[child.name].append(got[0])
                extras[child.name].append(got[1])
    summary = []
    for child in children:
        values = samples.get(child.name)
        if not values or case["name"] in child.result["errors"]:
            continue
        measurement = {
            "unit": case["unit"], "median": median(values),
            "min": min(values), "samples": values,
            "mad_percent": spread(values),
            "iterations": iterations, "ops": case["ops"],
        }
        if any(extras[child.name]):
            measurement["extra"] = extras[child.name]
        child.result["cases"][case["name"]] = measurement
        summary.append(f"{child.short} {fmt_value(measurement['median'])}"
                       f" ±{spread(values):.0f}%")
    print(f"    {case['name']:<20} {case['unit']:<6} " + " | ".join(summary),
          file=sys.stderr, flush=True)


def machine_facts() -> Dict[str, Any]:
    facts: Dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": f"{platform.python_implementation()} "
                  f"{platform.python_version()}",
        "platform": platform.platform(),
        "command": " ".join(["python -m benchmarks"] + sys.argv[1:]),
        "load_before": load_average(),
    }
    for package in ("aiomisc", "uvloop"):
        facts[package] = package_version(package)
    return facts


def load_average() -> Optional[float]:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def warn_if_busy() -> None:
    load = load_average()
    cpus = os.cpu_count() or 1
    if load is not None and load > cpus / 2:
        print(f"warning: the machine is busy (load average {load} on {cpus} "
              "CPUs); the numbers will be noisy", file=sys.stderr)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fp:
            for line in fp:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(name: str) -> Optional[str]:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def load(path: Path) -> Dict[str, Any]:
    if path.exists():
        with open(path) as fp:
            return json.load(fp)
    return {"meta": {}, "modules": {}}


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repeats", type=int, default=7,
                        help="repeats per case; the median is reported")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every case's iterations (0.1 = quick)")
    parser.add_argument("--only", action="append", default=[],
                        metavar="MODULE", help="run only these modules")
    parser.add_argument("--subject", action="append", default=[],
                        help="run only these subjects (e.g. aiomisc_c)")
    parser.add_argument("--loop", action="append", default=[],
                        choices=("asyncio", "uvloop"))
    parser.add_argument("--case", action="append", default=[],
                        help="run only these cases")
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds a subprocess may take for one sample")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--fresh", action="store_true",
                        help="discard earlier results instead of merging")
    parser.add_argument("--from-json", type=Path, metavar="PATH",
                        help="run nothing; report on saved results")
    parser.add_argument("--docs", action="store_true",
                        help="render docs/benchmarks.rst, .png and .json "
                        "and the README's summary")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if args.from_json:
        results = load(args.from_json)
    else:
        results = {"meta": {}, "modules": {}} if args.fresh else load(
            args.output,
        )
        warn_if_busy()
        started = time.monotonic()
        results["meta"] = machine_facts()
        results["meta"].update(repeats=args.repeats, scale=args.scale)
        for name in discover():
            if args.only and name not in args.only:
                continue
            described = describe_module(name)
            stored = results["modules"].get(name, {})
            runs = stored.get("runs", {})
            described["runs"] = runs
            results["modules"][name] = described
            for loop in described["loops"]:
                if args.loop and loop not in args.loop:
                    continue
                measured = run_loop(name, described, loop, args)
                for subject, result in measured.items():
                    previous = runs.setdefault(loop, {}).get(subject)
                    if args.case and previous and "cases" in result:
                        # a run of a few cases keeps the other cases
                        previous.setdefault("cases", {}).update(
                            result["cases"],
                        )
                        result = previous
                    runs[loop][subject] = result
            # keep what was measured even if a later module crashes
            save(results, args.output)
        results["meta"]["seconds"] = round(time.monotonic() - started, 1)
        results["meta"]["load_after"] = load_average()
        save(results, args.output)
        print(f"results: {args.output}", file=sys.stderr)

    print(_render.text_report(results))
    if args.docs:
        rst, png = _render.write_docs(results, REPO_DIR / "docs")
        _render.write_readme(results, REPO_DIR / "README.rst")
        print(f"docs: {rst} {png} {rst.parent / _render.DOCS_DATA}, "
              "README.rst's summary", file=sys.stderr)


def save(results: Dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w") as fp:
        json.dump(results, fp, indent=1, sort_keys=False)
        fp.write("\n")
    tmp.replace(path)


if __name__ == "__main__":
    main()
