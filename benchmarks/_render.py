"""Tables (terminal and RST) and the bar chart, from results.json data.

Ratios, all "higher is better" except the floor multiple:

* ``X vs aiomisc`` = aiomisc's value / X's value: the speed-up (or memory
  saving, for B/call) of X over aiomisc 17.x; likewise ``X vs stdlib``;
* ``X / floor`` = X's ns/op / the floor's ns/op on the same loop in the same
  process: how many times the no-thread lower bound X costs.
"""
import json
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ._harness import fmt_value, spread

DOCS_DATA = "benchmarks.json"
LOOP_TITLES = {"asyncio": "asyncio loop", "uvloop": "uvloop"}
RATIO_TICKS = [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]
SUBJECT_COLOURS = {
    "aiomisc_c": "#1f77b4", "aiomisc_c_py": "#9ecae1",
    "aiomisc": "#7f7f7f", "stdlib": "#ff7f0e",
}


class ModuleView:
    """Look-ups over one module's section of results.json."""

    def __init__(self, name: str, data: Dict[str, Any]):
        self.name = name
        self.data = data
        self.title = data["title"]
        self.baseline = data["baseline"]
        self.references = data["references"]
        self.subjects = [s["name"] for s in data["subjects"]]
        self.short = {s["name"]: s["short"] for s in data["subjects"]}
        self.label = {s["name"]: s["label"] for s in data["subjects"]}
        self.cases = data["cases"]
        self.case_by_name = {c["name"]: c for c in self.cases}
        self.runs = data.get("runs", {})
        self.ours = [s for s in self.subjects
                     if s != self.baseline and s not in self.references]

    def loops(self) -> List[str]:
        return [loop for loop in self.data["loops"] if loop in self.runs]

    def run(self, loop: str, subject: str) -> Dict[str, Any]:
        return self.runs.get(loop, {}).get(subject, {})

    def measurement(self, loop: str, subject: str,
                    case: str) -> Optional[Dict[str, Any]]:
        return self.run(loop, subject).get("cases", {}).get(case)

    def value(self, loop: str, subject: str, case: str) -> Optional[float]:
        found = self.measurement(loop, subject, case)
        return None if found is None else found["median"]

    def floor(self, loop: str, subject: str, case: str) -> Optional[float]:
        floor_case = self.case_by_name[case].get("floor")
        if not floor_case:
            return None
        # the floor measured in the same process; else any on this loop
        for candidate in [subject, self.baseline] + self.subjects:
            value = self.value(loop, candidate, floor_case)
            if value:
                return value
        return None

    def ratio_columns(self) -> List[Tuple[str, str, str]]:
        """(header, subject, against) per ratio column; against is a
        subject name or "floor"."""
        columns = []
        for subject in self.ours + self.references:
            columns.append((f"{self.short[subject]} vs "
                            f"{self.short[self.baseline]}",
                            subject, self.baseline))
        for reference in self.references:
            for subject in self.ours:
                columns.append((f"{self.short[subject]} vs "
                                f"{self.short[reference]}",
                                subject, reference))
        if any(case.get("floor") for case in self.cases):
            for subject in self.subjects:
                columns.append((f"{self.short[subject]} / floor", subject,
                                "floor"))
        return columns

    def ratio(self, loop: str, case: str, subject: str,
              against: str) -> Optional[float]:
        mine = self.value(loop, subject, case)
        if not mine:
            return None
        if against == "floor":
            floor = self.floor(loop, subject, case)
            return mine / floor if floor else None
        other = self.value(loop, against, case)
        return other / mine if other else None

    def loop_classes(self, loop: str) -> List[str]:
        classes = {
            run.get("facts", {}).get("loop_class")
            for run in self.runs.get(loop, {}).values()
        }
        return sorted(c for c in classes if c)

    def notes(self, loop: str) -> List[str]:
        notes = []
        for subject in self.subjects:
            run = self.run(loop, subject)
            if not run:
                notes.append(f"{self.label[subject]}: not run")
            elif "skipped" in run:
                notes.append(f"{self.label[subject]}: skipped "
                             f"({run['skipped']})")
            elif "failed" in run:
                notes.append(f"{self.label[subject]}: failed "
                             f"({run['failed']})")
            for case, error in run.get("errors", {}).items():
                last = error.strip().splitlines()[-1]
                notes.append(f"{self.label[subject]}: {case} failed: {last}")
        return notes

    def value_rows(self, loop: str, with_spread: bool) -> List[List[str]]:
        rows = []
        for case in self.cases:
            row = [case["title"], case["unit"]]
            for subject in self.subjects:
                found = self.measurement(loop, subject, case["name"])
                if found is None:
                    row.append("—")
                    continue
                cell = fmt_value(found["median"])
                if with_spread:
                    mad = found.get("mad_percent")
                    if mad is None and len(found["samples"]) > 1:
                        mad = spread(found["samples"])
                    if mad is not None:
                        cell += f" ±{mad:.0f}%"
                row.append(cell)
            rows.append(row)
        return rows

    def ratio_rows(self, loop: str) -> List[List[str]]:
        rows = []
        for case in self.cases:
            row = [case["title"]]
            for _, subject, against in self.ratio_columns():
                if against == "floor" and case["kind"] != "time":
                    row.append("")
                    continue
                row.append(fmt_ratio(self.ratio(loop, case["name"], subject,
                                                against)))
            rows.append(row)
        return rows


def fmt_ratio(value: Optional[float]) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}×" if value < 10 else f"{value:.1f}×"


def views(results: Dict[str, Any]) -> List[ModuleView]:
    return [ModuleView(name, data)
            for name, data in sorted(results.get("modules", {}).items())]


# --- terminal ----------------------------------------------------------------

def text_table(header: Sequence[str], rows: List[List[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column)
              for column in zip(header, *rows)]

    def line(cells: Sequence[str]) -> str:
        out = [str(cells[0]).ljust(widths[0])]
        out += [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  ".join(out)

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule] + [line(r) for r in rows])


def text_report(results: Dict[str, Any]) -> str:
    meta = results.get("meta", {})
    parts = [
        f"{meta.get('date', '?')}  {meta.get('cpu_count', '?')} CPUs "
        f"({meta.get('cpu_model', '?')}), {meta.get('python', '?')}, "
        f"aiomisc {meta.get('aiomisc')}, uvloop {meta.get('uvloop')}, "
        f"median of {meta.get('repeats', '?')} repeats, "
        f"load average {meta.get('load_before')} -> {meta.get('load_after')}, "
        f"{meta.get('seconds')} s",
    ]
    for view in views(results):
        for loop in view.loops():
            classes = ", ".join(view.loop_classes(loop))
            classes = f" ({classes})" if classes else ""
            parts.append(f"\n== {view.title} — {LOOP_TITLES[loop]}"
                         f"{classes} ==")
            header = ["case", "unit"] + [view.short[s] for s in view.subjects]
            parts.append(text_table(header, view.value_rows(loop, True)))
            parts.append("")
            header = ["ratios"] + [c[0] for c in view.ratio_columns()]
            parts.append(text_table(header, view.ratio_rows(loop)))
            parts += [f"  note: {note}" for note in view.notes(loop)]
    return "\n".join(parts)


# --- docs --------------------------------------------------------------------

def rst_text(text: str) -> str:
    """``text`` with the ``*`` outside ````literals```` escaped (case titles
    such as ``entrypoint(*10 services)`` are plain text)."""
    parts = str(text).split("``")
    for index in range(0, len(parts), 2):  # even parts: outside literals
        parts[index] = parts[index].replace("*", "\\*")
    return "``".join(parts)


def rst_table(caption: str, header: Sequence[str],
              rows: List[List[str]]) -> List[str]:
    lines = [f".. list-table:: {caption}", "   :header-rows: 1", ""]
    for row in [list(header)] + rows:
        for index, cell in enumerate(row):
            bullet = "   * - " if index == 0 else "     - "
            lines.append(f"{bullet}{rst_text(cell)}".rstrip())
    lines.append("")
    return lines


def rst_report(results: Dict[str, Any], image_name: str) -> str:
    meta = results.get("meta", {})
    lines = [
        ".. Generated by ``python -m benchmarks --docs``; do not edit.",
        "",
        "Benchmarks",
        "==========",
        "",
        f"Measured on {meta.get('date', '?')} on {meta.get('cpu_count', '?')}"
        f" CPUs ({meta.get('cpu_model', '?')}), {meta.get('python', '?')},"
        f" {meta.get('platform', '?')}; aiomisc {meta.get('aiomisc')},"
        f" uvloop {meta.get('uvloop')}. Every number is the median of"
        f" {meta.get('repeats', '?')} repeats (after a warm-up; ``±`` is the"
        f" median absolute deviation). Each implementation ran in its own"
        f" process; the Python twin with ``AIOMISC_C_NO_EXTENSIONS=1``.",
        "",
        f"Command: ``{meta.get('command', 'python -m benchmarks --docs')}``"
        " (see ``benchmarks/README.rst``).",
        "",
        "Ratios: *X vs aiomisc* is aiomisc's number divided by X's (above 1:"
        " X is faster, or uses less memory); *X vs stdlib* likewise;"
        " *X / floor* is X's ns/op divided by the no-thread floor measured on"
        " the same loop, that is how far X is from the cost of the asyncio"
        " machinery alone. The floor resolves each future with its own"
        " ``loop.call_soon`` handle, so an executor that resolves a whole"
        " batch of futures in one callback can go below it (a ratio under 1).",
        "",
        f"Load average while running: {meta.get('load_before')} before,"
        f" {meta.get('load_after')} after; the run took"
        f" {meta.get('seconds')} s.",
        "",
        f".. image:: {image_name}",
        "   :alt: speed-up over aiomisc 17.x per case and loop",
        "",
    ]
    for view in views(results):
        lines += [view.title, "-" * len(view.title), ""]
        doc = view.data.get("doc", "").split("\n\n")
        if doc and doc[0]:
            lines += [" ".join(doc[0].split()), ""]
        for subject in view.data["subjects"]:
            note = f": {subject['note']}" if subject.get("note") else ""
            lines.append(f"* **{subject['short']}** — {subject['label']}"
                         f"{note}")
        lines.append("")
        for loop in view.loops():
            title = LOOP_TITLES[loop]
            lines += [title, "~" * len(title), ""]
            classes = ", ".join(f"``{c}``" for c in view.loop_classes(loop))
            if classes:
                lines += [f"Loop class: {classes}.", ""]
            header = ["Case", "Unit"] + [view.short[s] for s in view.subjects]
            lines += rst_table(f"{view.title}, {title}: medians", header,
                               view.value_rows(loop, True))
            header = ["Case"] + [c[0] for c in view.ratio_columns()]
            lines += rst_table(f"{view.title}, {title}: ratios", header,
                               view.ratio_rows(loop))
            for note in view.notes(loop):
                lines.append(f"* {note}")
            if view.notes(loop):
                lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_chart(results: Dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    panels = [(view, loop) for view in views(results)
              for loop in view.loops()]
    if not panels:
        return
    columns = 2
    rows = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(7 * columns, 4.8 * rows),
                             squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (view, loop) in zip(axes.flat, panels):
        cases = [c for c in view.cases if c["kind"] != "floor"]
        ratios = {
            subject: [view.ratio(loop, case["name"], subject, view.baseline)
                      for case in cases]
            for subject in view.ours + view.references
        }
        shown = [s for s, values in ratios.items() if any(values)]
        width = 0.8 / max(1, len(shown))
        for index, subject in enumerate(shown):
            offset = (index - (len(shown) - 1) / 2) * width
            xs = [position + offset
                  for position, r in enumerate(ratios[subject]) if r]
            heights = [r for r in ratios[subject] if r]
            bars = ax.bar(xs, heights, width,
                          label=view.label[subject],
                          color=SUBJECT_COLOURS.get(subject))
            ax.bar_label(bars, labels=[f"{h:.2g}×" for h in heights],
                         fontsize=7, padding=1)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(FixedLocator(RATIO_TICKS))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}×"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        top = max([h for values in ratios.values() for h in values if h]
                  + [1.0])
        bottom = min([h for values in ratios.values() for h in values if h]
                     + [1.0])
        ax.set_ylim(bottom / 1.5, top * 2.5)
        ax.set_xticks(range(len(cases)))
        ax.set_xticklabels(
            [textwrap.fill(c.get("short") or c["title"], 16,
                           break_long_words=False)
             for c in cases], fontsize=8,
        )
        ax.set_ylabel(f"× vs {view.label[view.baseline]} (higher is better)",
                      fontsize=8)
        ax.set_title(f"{view.title} — {LOOP_TITLES[loop]}", fontsize=10)
        ax.legend(fontsize=7, loc="best")
        ax.grid(axis="y", which="both", alpha=0.3)
    meta = results.get("meta", {})
    fig.suptitle(
        f"aiomisc_c speed-up over aiomisc 17.x — {meta.get('date', '')}, "
        f"{meta.get('cpu_count', '?')} CPUs, {meta.get('python', '')}",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- README summary ----------------------------------------------------------

SUMMARY_START = ".. include-benchmarks-start"
SUMMARY_END = ".. include-benchmarks-end"
# (module, case, label) of each row of the README's table
SUMMARY_ROWS = (
    ("thread_pool", "threaded_gather", "``threaded`` call, 1,000 gathered"),
    ("thread_pool", "threaded_in_turn",
     "``threaded`` call, 1,000 submitted, awaited in turn"),
    ("thread_pool", "threaded_one_by_one",
     "``threaded`` call awaited one by one"),
    ("thread_pool", "executor_gather",
     "``run_in_executor(pool)``, 1,000 gathered"),
    ("circuit_breaker", "call", "``CircuitBreaker.call``"),
    ("circuit_breaker", "call_async", "``CircuitBreaker.call_async``"),
    ("circuit_breaker", "cutout_async",
     "``await`` a ``@cutout`` coroutine function"),
    ("backoff", "backoff_1_2", "``asyncbackoff(1, 2)`` call"),
    ("backoff", "retry_3", "``asyncretry(3)`` call"),
    ("backoff", "timeout_1", "``timeout(1)`` call"),
    ("entrypoint", "enter_exit", "``entrypoint()`` enter + exit"),
)
SUMMARY_LOOPS = ("asyncio", "uvloop")
OURS, THEIRS, STDLIB = "aiomisc_c", "aiomisc", "stdlib"


def summary_ratio(theirs: Optional[float], ours: Optional[float]) -> str:
    if not theirs or not ours:
        return "—"
    ratio = theirs / ours
    return f"{ratio:.1f}×" if ratio < 10 else f"{ratio:.0f}×"


def summary_value(view: Optional[ModuleView], loop: str, subject: str,
                  case: str) -> Optional[float]:
    if view is None or case not in view.case_by_name:
        return None
    return view.value(loop, subject, case)


def rst_simple_table(widths: Sequence[int], head: List[List[str]],
                     spans: List[str], body: List[List[str]]) -> List[str]:
    def line(cells: Sequence[str], sizes: Sequence[int]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, sizes)).rstrip()

    border = line(["=" * w for w in widths], widths)
    # the group row: the first column, then one cell per loop spanning three
    group_widths = [widths[0]] + [
        sum(widths[1:4]) + 4 for _ in range((len(widths) - 1) // 3)
    ]
    return (
        [border, line(head[0], group_widths),
         line(["-" * w for w in group_widths], group_widths),
         line(spans, widths), border]
        + [line(row, widths) for row in body]
        + [border]
    )


def readme_summary(results: Dict[str, Any]) -> str:
    """The README's benchmark summary (between the two markers)."""
    meta = results.get("meta", {})
    by_name = {view.name: view for view in views(results)}
    python = " ".join(str(meta.get("python", "?")).split()[:2])
    python = python.rsplit(".", 1)[0] if python.count(".") > 1 else python
    lines = [
        f"One run on these {meta.get('cpu_count', '?')}-vCPU machines "
        f"({meta.get('date', '?')}, {python},",
        f"medians of {meta.get('repeats', '?')}; ns per operation; *×* is "
        "aiomisc 17.x's time divided by",
        "aiomisc_c's). The machines are noisy: whole processes slow down by "
        "up to 2×",
        "for seconds at a time, so ratios move by ±30 % between runs. The "
        "full",
        "tables, with the Python twin, the stdlib, the peers and each case's "
        "spread,",
        "are in ``docs/benchmarks.rst``.",
        "",
    ]
    body = []
    for module, case, label in SUMMARY_ROWS:
        view = by_name.get(module)
        row = [label]
        for loop in SUMMARY_LOOPS:
            ours = summary_value(view, loop, OURS, case)
            theirs = summary_value(view, loop, THEIRS, case)
            row += [fmt_value(ours), fmt_value(theirs),
                    summary_ratio(theirs, ours)]
        body.append(row)
    widths = [max(len(row[0]) for row in body)]
    for column in range(1, 1 + 3 * len(SUMMARY_LOOPS)):
        minimum = 7 if column % 3 == 0 else 10
        widths.append(max([minimum] + [len(row[column]) for row in body]))
    head = [["case"] + list(SUMMARY_LOOPS)]
    spans = ["\\"] + [OURS, THEIRS, "×"] * len(SUMMARY_LOOPS)
    lines += rst_simple_table(widths, head, spans, body)

    memory = by_name.get("thread_pool")
    ours = summary_value(memory, "asyncio", OURS, "pending_memory")
    theirs = summary_value(memory, "asyncio", THEIRS, "pending_memory")
    if ours and theirs:
        lines += ["", f"Memory per pending ``threaded`` call: "
                      f"{ours:,.0f} bytes (aiomisc: {theirs:,.0f})."]
    imports = by_name.get("entrypoint")
    ours = summary_value(imports, "asyncio", OURS, "import_cold")
    theirs = summary_value(imports, "asyncio", THEIRS, "import_cold")
    stdlib = summary_value(imports, "asyncio", STDLIB, "import_cold")
    if ours and theirs:
        lines += [
            "",
            f"Cold ``import aiomisc_c`` in a new process: {ours / 1e6:.0f} "
            f"ms, aiomisc {theirs / 1e6:.0f} ms",
            f"({summary_ratio(theirs, ours)})"
            + (f"; ``import asyncio`` alone took {stdlib / 1e6:.0f} ms in "
               "the same run." if stdlib else "."),
        ]
    return "\n".join(lines) + "\n"


def replace_between_markers(text: str, block: str) -> str:
    """``text`` with what lies between the summary markers replaced."""
    start = text.index(SUMMARY_START + "\n") + len(SUMMARY_START) + 1
    end = text.index(SUMMARY_END, start)
    return text[:start] + "\n" + block + "\n" + text[end:]


def readme_block(text: str) -> str:
    """What lies between the summary markers of ``text``, as rendered."""
    start = text.index(SUMMARY_START + "\n") + len(SUMMARY_START) + 1
    end = text.index(SUMMARY_END, start)
    return text[start:end].strip("\n") + "\n"


def write_readme(results: Dict[str, Any], readme: Path) -> None:
    text = readme.read_text(encoding="utf-8")
    readme.write_text(replace_between_markers(text, readme_summary(results)),
                      encoding="utf-8")


def write_docs(results: Dict[str, Any], docs_dir: Path) -> Tuple[Path, Path]:
    docs_dir.mkdir(parents=True, exist_ok=True)
    png = docs_dir / "benchmarks.png"
    rst = docs_dir / "benchmarks.rst"
    write_chart(results, png)
    rst.write_text(rst_report(results, png.name))
    # the data the page and the README summary are rendered from, kept so
    # that the tests can check the README against it
    with open(docs_dir / DOCS_DATA, "w") as fp:
        json.dump(results, fp, indent=1)
        fp.write("\n")
    return rst, png
