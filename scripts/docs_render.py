"""Render the generated parts of the documents (DOCUMENTS) from docs/data/case-study/.

A generated part is the text between `<!-- generated: NAME -->` and `<!-- end generated -->`;
RENDERERS maps each NAME to a function of the data. Every sentence that interprets a figure
lives in such a function and states a condition on the data: where the data say otherwise, the
sentence says what they show instead. Used by scripts/case_study.py.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import key_differences
import predict_vs_measure

DOCUMENTS = ("docs/case-study.md", "docs/cluster.md", "README.md")
BLOCK = re.compile(
    r"(<!-- generated: (?P<name>[a-z-]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S
)
WORKLOADS = ("gil-bound", "gil-free", "io", "default")
PREDICTED = predict_vs_measure.WORKLOADS
THREAD_ONLY = ("threads", "hybrid", "threads-everywhere")  # one process: threads share the GIL
PROCESS_POOLS = ("pool", "segments")  # the layouts that spread one task's frames over processes
GIL_LAYOUTS = ("serial", "threads", "hybrid", "pool")


class RenderError(Exception):
    """A document names a generated part no renderer knows, or the data lack a figure."""


@dataclass
class Data:
    env: dict[str, Any]
    keydiff: dict[str, Any]
    transport: dict[str, Any]
    compares: dict[str, dict[str, Any]]
    compare_runs: dict[str, list[dict[str, Any]]]
    runs: list[dict[str, Any]]

    @classmethod
    def load(cls, folder: Path) -> Data:
        def read(path: Path) -> Any:
            try:
                return json.loads(path.read_text())
            except (OSError, ValueError) as error:
                raise RenderError(f"cannot read {path}: {error}") from error

        if not (folder / "compare").is_dir():
            raise RenderError(f"no measurements in {folder}: run `make case-study`")
        compares = {
            p.name: read(p / "results.json") for p in sorted((folder / "compare").iterdir())
        }
        return cls(
            env=read(folder / "environment.json"),
            keydiff=read(folder / "key_differences" / "key_differences.json"),
            transport=read(folder / "transport.json"),
            compares=compares,
            compare_runs={n: read(folder / "compare" / n / "runs.json") for n in compares},
            runs=read(folder / "runs.json"),
        )

    def speedups(self, name: str) -> dict[str, dict[str, Any]]:
        """The summaries of comparison `name`, by short layout name."""
        return {short(s["layout"]): s for s in self.compares[name]["summaries"]}


def short(layout: str) -> str:
    """`examples/layouts/threads-everywhere.toml` -> `threads-everywhere`."""
    return Path(layout).stem if layout.endswith(".toml") else layout


def x(value: float) -> str:
    return f"{value:.2f}x"


def share(value: float) -> str:
    return f"{value:.0%}"


def mb(value: float) -> str:
    return f"{value / 1e6:.0f}"


def best_of(speedups: dict[str, dict[str, Any]], names: tuple[str, ...]) -> float:
    """The best speedup among the layouts `names` (those that ran)."""
    return max(speedups[n]["speedup"] for n in names if n in speedups)


def copy_speed(shm_fps: float, copy_fps: float) -> str:
    """The shared-memory ring's pace against a plain copy in one process, in words."""
    if shm_fps >= 0.95 * copy_fps:
        return "as fast as a plain copy in one process"
    return f"{shm_fps / copy_fps:.2f}x the speed of a plain copy in one process"


def best(speedups: dict[str, dict[str, Any]]) -> tuple[str, float]:
    name = max((n for n in speedups if n != "serial"), key=lambda n: speedups[n]["speedup"])
    return name, speedups[name]["speedup"]


def _median_by_layout(
    runs: list[dict[str, Any]], value: Callable[[dict[str, Any]], float]
) -> dict[str, float]:
    by: dict[str, list[float]] = {}
    for run in runs:
        by.setdefault(short(run["layout"]), []).append(value(run))
    return {layout: statistics.median(vs) for layout, vs in by.items()}


# --- docs/case-study.md ---------------------------------------------------------------------


def stamp(d: Data) -> str:
    e = d.env
    repeat = {c["repeat"] for c in d.compares.values()}
    differ = [
        f"{name} ({', '.join(short(s['layout']) for s in c['summaries'] if s['frames_differ'])})"
        for name, c in d.compares.items()
        if not c["frames_match_serial"]
    ]
    same = (
        "Every run of every layout produced the same frames as the serial run (`vidpipe compare` "
        "checks the digests)."
        if not differ
        else "Frames differed from the serial run's in: " + "; ".join(differ) + "."
    )
    return (
        f"Measured on {e['date']} by `make case-study` at commit `{e['commit']}`, on {e['cpu']} "
        f"({e['cpu_count']} CPUs, {e['usable_cores']} usable, {e['memory_gib']} GiB), CPython "
        f"{e['python']} with the GIL {'enabled' if e['gil_enabled'] else 'disabled'}, ffmpeg "
        f"{e['ffmpeg']} (imageio-ffmpeg), OpenCV {e['opencv']}, numpy {e['numpy']}. Every "
        f"comparison ran each layout {'/'.join(map(str, sorted(repeat)))} times, interleaved, and "
        "reports medians, with x264 and OpenCV pinned to one thread, so that the layout was the "
        f"only parallelism in Python's hands. {same}"
    )


def note_table(d: Data) -> str:
    rows = key_differences.table_rows(d.keydiff)
    return "\n".join(
        ["| row | the note says | measured here |", "| --- | --- | --- |"]
        + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    )


def _scaling(d: Data) -> tuple[int, dict[str, float]]:
    n = d.keydiff["max_workers"]
    return n, {kind: by[str(n)] for kind, by in d.keydiff["scaling"].items()}


def note_reading(d: Data) -> str:
    n, s = _scaling(d)
    c, m = d.keydiff["creation_ms"], d.keydiff["memory"]
    comm, tasks = d.keydiff["communication_fps"], d.keydiff["task_type_seconds"]
    py, cv = s["python threads"], s["opencv threads"]
    if py < 1.2 and cv > 1.5:
        cpu = (
            f"**CPU utilisation under the GIL holds, for pure Python only.** {n} threads running "
            f"pure Python are {x(py)} as fast as one; running OpenCV, {x(cv)}, because OpenCV, "
            'numpy and blocking I/O release the GIL. "Threads cannot use several cores" is true '
            "of Python bytecode, not of a Python program."
        )
    else:
        cpu = (
            f"**CPU utilisation under the GIL:** {n} threads ran pure Python at {x(py)} and OpenCV "
            f"at {x(cv)} of one thread here; {n} processes at {x(s['python processes'])} and "
            f"{x(s['opencv processes'])}."
        )
    spawn, fork = c["spawn"], c["fork"]
    creation = (
        (
            '**Creation overhead: the start method matters more than the word "process".** '
            if spawn["bare"] > 5 * fork["bare"]
            else "**Creation overhead.** "
        )
        + "A "
        f"forked process starts in {fork['bare']:.1f} ms, "
        f"{fork['bare'] / c['thread']['bare']:.0f} times a thread's {c['thread']['bare']:.2f} ms; "
        f"a spawned one takes {spawn['bare']:.0f} ms bare and "
        f"{spawn['with numpy+opencv']:.0f} ms once it has imported OpenCV, which every "
        "pipeline worker must do: a fixed cost per worker, paid again by every segment."
    )
    own = m["process_overhead_uss_mb"] < 0.8 * m["process_overhead_rss_mb"]
    memory = (
        ("**Memory holds, and costs less than it looks.** " if own else "**Memory holds.** ")
        + f"A spawned process (an interpreter with numpy) costs "
        f"{m['process_overhead_rss_mb']:.0f} MB resident beyond its work here, of which "
        f"{m['process_overhead_uss_mb']:.0f} MB is its own"
        + ("; the rest is shared libraries." if own else ".")
    )
    pickle, shm, copy = comm["pickle queue"], comm["shared memory"], comm["copy"]
    speed = copy_speed(shm, copy)
    comms = (
        (
            "**Communication is costly for the textbook transport only.** "
            if shm > 5 * pickle
            else "**Communication.** "
        )
        + "Pickling "
        f"{d.keydiff['frame_size']} frames through a `multiprocessing.Queue` moves {pickle:.0f} "
        f"frames/s; a ring of shared-memory slots, where only slot numbers travel, moves "
        f"{shm:.0f}, {shm / pickle:.0f}x more, {speed}."
        + (" What costs is serialising, not processes." if shm > 5 * pickle else "")
    )
    faster = "threads" if tasks["threads"] < tasks["processes"] else "processes"
    task = (
        f"**Task type.** The pipeline's two tasks are CPU-bound, so the note puts them in "
        f"processes; here they took {tasks['threads']:.2f} s as threads of one process and "
        f"{tasks['processes']:.2f} s as two processes: "
        + (
            "threads were faster, because most of their CPU time runs outside the GIL, in ffmpeg "
            "and OpenCV (section 2)."
            if faster == "threads"
            else "processes were faster, as the note says."
        )
    )
    return "\n".join(f"- {item}" for item in (cpu, creation, memory, comms, task))


def _cell(s: dict[str, Any] | None, bold: bool) -> str:
    if s is None:
        return ""
    text = f"{s['wall_seconds']:.2f} s ({x(s['speedup'])})"
    return f"{s['wall_seconds']:.2f} s (**{x(s['speedup'])}**)" if bold else text


def workloads_table(d: Data) -> str:
    by = {w: d.speedups(w) for w in WORKLOADS}
    layouts = list(by[WORKLOADS[0]])
    lines = [f"| layout | {' | '.join(WORKLOADS)} |", "| --- |" + " --- |" * len(WORKLOADS)]
    for layout in layouts:
        cells = [_cell(by[w].get(layout), best(by[w])[0] == layout) for w in WORKLOADS]
        lines.append(f"| {layout} | {' | '.join(cells)} |")
    lines.append(
        "| serial's CPU use | "
        + " | ".join(
            f"{by[w]['serial']['cpu_percent']:.0f}% of {_cores(d)} cores" for w in WORKLOADS
        )
        + " |"
    )
    lines.append(
        "| summed peak memory, MB | "
        + " | ".join(
            ", ".join(f"{layout} {mb(s['peak_rss_bytes'])}" for layout, s in by[w].items())
            for w in WORKLOADS
        )
        + " |"
    )
    return "\n".join(lines)


def _cores(d: Data) -> int:
    return int(d.env["usable_cores"])


def lesson(d: Data) -> str:
    """The two-row lesson, as far as the data bear it out."""
    bound, free = d.speedups("gil-bound"), d.speedups("gil-free")
    threads_top = best_of(bound, THREAD_ONLY)
    pools_top = max(PROCESS_POOLS, key=lambda n: bound[n]["speedup"])
    first = (
        f"on work that holds the GIL (`gil-bound`), every layout that only adds threads stays at "
        f"or below {x(threads_top)}, and worker processes speed it up (`{pools_top}` "
        f"{x(bound[pools_top]['speedup'])})"
        if threads_top < 1.15 and bound[pools_top]["speedup"] > threads_top + 0.2
        else f"on `gil-bound`, the best thread-only layout reached {x(threads_top)} and the best "
        f"process pool (`{pools_top}`) {x(bound[pools_top]['speedup'])}"
    )
    winner, top = best(free)
    second = (
        f"on work that releases it (`gil-free`), threads in one process do best (`{winner}` "
        f"{x(top)}), with no copies and no worker start-up"
        if winner in ("threads", "threads-everywhere")
        else f"on work that releases it (`gil-free`), a pool of threads in each task's process "
        f"does best (`hybrid` {x(top)}), with no frame copies"
        if winner == "hybrid"
        else f"on `gil-free`, `{winner}` did best ({x(top)}), ahead of every thread-only layout"
    )
    return f"The lesson in two rows: {first}; {second}."


def workloads_reading(d: Data) -> str:
    by = {w: d.speedups(w) for w in WORKLOADS}
    busy = [by[w]["serial"]["cpu_percent"] for w in WORKLOADS]
    winners = ", ".join(f"`{best(by[w])[0]}` on {w} ({x(best(by[w])[1])})" for w in WORKLOADS)
    spread = [s["speedup"] for w in WORKLOADS for s in by[w].values()]
    return "\n".join(
        [
            (
                f"**Even the serial layout keeps {min(busy):.0f}% to {max(busy):.0f}% of the "
                f"{_cores(d)} cores busy**, more than one core's share, because decoding and "
                "encoding run in ffmpeg processes beside the Python loop under every layout: the "
                "job is a multi-process program before any layout makes it one. "
                if min(busy) > 100 / _cores(d)
                else f"The serial layout keeps {min(busy):.0f}% to {max(busy):.0f}% of the "
                f"{_cores(d)} cores busy. "
            )
            + "Every layout stays within "
            f"{x(min(spread))} to {x(max(spread))} of serial. The winners: {winners}.",
            "",
            lesson(d),
        ]
    )


def render_only_table(d: Data) -> str:
    py, cv = d.speedups("render-python"), d.speedups("render-opencv")
    lines = [
        "| render only | pure Python (12000 particles) | OpenCV (the gil-free glow) |",
        "| --- | --- | --- |",
    ]
    for layout, label in (
        ("serial", "serial"),
        ("hybrid", "hybrid (threads)"),
        ("pool", "pool (processes, shm)"),
    ):
        lines.append(f"| {label} | {_cell(py[layout], False)} | {_cell(cv[layout], False)} |")
    lines.append(
        "| summed peak memory, MB | "
        + ", ".join(f"{k} {mb(v['peak_rss_bytes'])}" for k, v in py.items())
        + " | "
        + ", ".join(f"{k} {mb(v['peak_rss_bytes'])}" for k, v in cv.items())
        + " |"
    )
    return "\n".join(lines)


def render_only_reading(d: Data) -> str:
    py, cv = d.speedups("render-python"), d.speedups("render-opencv")
    h, p = py["hybrid"]["speedup"], py["pool"]["speedup"]
    items = [
        (
            f"**Threads on pure Python are worse than no threads**: {x(h)}. The frame threads "
            "hand the GIL back and forth, and each hand-off costs more than it saves."
            if h < 0.97
            else f"**Threads on pure Python gain nothing**: {x(h)}; the GIL lets one run at a time."
            if h < 1.1
            else f"Threads on pure Python reached {x(h)} here."
        ),
        (
            f"**Processes do run pure Python in parallel**: `pool` {x(p)}, short of "
            f"{_cores(d)}x because the serial run already keeps ffmpeg's encoder busy beside "
            "Python, and the pool pays for worker start-up and a frame copy each way."
            if p > 1.1 and p > h + 0.1
            else f"`pool` reached {x(p)} here, against {x(h)} for threads."
        ),
        (
            f"**On OpenCV work, threads match or beat processes** ({x(cv['hybrid']['speedup'])} "
            f"against {x(cv['pool']['speedup'])}): the same parallelism, without the frame copies "
            f"and the extra interpreters ({mb(cv['hybrid']['peak_rss_bytes'])} MB against "
            f"{mb(cv['pool']['peak_rss_bytes'])} MB summed peak)."
            if cv["hybrid"]["speedup"] >= 0.97 * cv["pool"]["speedup"]
            else f"On OpenCV work, processes beat threads here ({x(cv['pool']['speedup'])} "
            f"against {x(cv['hybrid']['speedup'])})."
        ),
    ]
    return "\n".join(f"- {item}" for item in items)


def _animate(d: Data, workload: str) -> dict[str, dict[str, float]]:
    out = {}
    runs = d.compare_runs[workload]
    for layout in GIL_LAYOUTS:
        mine = [r for r in runs if short(r["layout"]) == layout and r["animate"]]
        if not mine:
            raise RenderError(f"no {layout} run of {workload} measured its animate stage")
        out[layout] = {
            "wall": statistics.median(r["wall_seconds"] for r in mine),
            **{
                k: statistics.median(r["animate"][k] or 0.0 for r in mine)
                for k in ("on_cpu", "waiting_for_core", "blocked")
            },
        }
        total = out[layout]["on_cpu"] + out[layout]["waiting_for_core"] + out[layout]["blocked"]
        out[layout]["share"] = out[layout]["blocked"] / total if total else 0.0
    return out


def gil_table(d: Data) -> str:
    lines = [
        "| workload | layout | wall s | on a CPU s | waiting for a core s | blocked s | blocked |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for workload in ("gil-bound", "gil-free"):
        for layout, a in _animate(d, workload).items():
            lines.append(
                f"| {workload} | {layout} | {a['wall']:.2f} | {a['on_cpu']:.2f} | "
                f"{a['waiting_for_core']:.2f} | {a['blocked']:.2f} | {share(a['share'])} |"
            )
    return "\n".join(lines)


def gil_reading(d: Data) -> str:
    bound, free = _animate(d, "gil-bound"), _animate(d, "gil-free")
    alone = max(bound[layout]["share"] for layout in ("serial", "threads", "pool"))
    first = (
        f"**The GIL is the cost of threads, not of Python.** The same pure-Python work waits for "
        f"the GIL only where two threads of one process run it at once: `hybrid`'s pool threads "
        f"spend {share(bound['hybrid']['share'])} of their time blocked, taking turns; alone in a "
        f"thread (`serial`, `threads`) or in processes of its own (`pool`) it waits at most "
        f"{share(alone)}."
        if bound["hybrid"]["share"] >= 0.25 and alone < 0.05
        else f"On `gil-bound`, `hybrid`'s pool threads were blocked "
        f"{share(bound['hybrid']['share'])} of their time; the other layouts at most "
        f"{share(alone)}."
    )
    second = (
        f"**OpenCV releases it.** On `gil-free` (Gaussian blurs), `hybrid`'s threads are blocked "
        f"{share(free['hybrid']['share'])} of their time and run the stage side by side: the "
        f"whole job takes {free['hybrid']['wall']:.2f} s against serial's "
        f"{free['serial']['wall']:.2f} s."
        if free["hybrid"]["share"] < 0.1
        else f"On `gil-free`, `hybrid`'s threads were blocked {share(free['hybrid']['share'])}."
    )
    waits = [w[layout]["waiting_for_core"] for w in (bound, free) for layout in ("hybrid", "pool")]
    third = (
        f"**Waiting for a core is the other limit.** Under `hybrid` and `pool`, the stage waits "
        f"{min(waits):.1f} to {max(waits):.1f} s for a core: the workers and the ffmpeg encoders "
        "share the cores. That is not the GIL; no layout removes it, only more cores do."
        if min(waits) > 0.5
        else f"Under `hybrid` and `pool`, the stage waits {min(waits):.1f} to {max(waits):.1f} s "
        "for a core."
    )
    return "\n".join(f"- {item}" for item in (first, second, third))


#: Why a prediction can miss, for the misses seen so far: shown only when that miss occurs.
MISS_WHY = {
    ("gil-bound", "hybrid"): (
        "two threads taking turns on the GIL were timed alone, each with a core; in the run, "
        "ffmpeg's decoder and encoder and the other task take cores too, and each hand-off of "
        "the GIL waits for the receiving thread to get a core (section 3b: the stage waits for "
        "a core under `hybrid`)"
    ),
    ("default", "*"): (
        "a short job whose CPU work comes in bursts (the compress task's ffmpeg in its first "
        "seconds, beside the render task): the model spreads all CPU time evenly over the run"
    ),
}


def predict_accuracy(d: Data) -> str:
    results = {w: d.compares[w] for w in PREDICTED}
    errors = [
        (e, w, short(s["layout"])) for e, w, s in predict_vs_measure.prediction_errors(results)
    ]
    tolerance = predict_vs_measure.TOLERANCE
    misses = [e for e in errors if abs(e[0]) > tolerance]
    worst = max(errors, key=lambda e: abs(e[0]))
    lines = [
        *map(_short_files, predict_vs_measure.accuracy_table(results)),
        "",
        f"{len(errors) - len(misses)} of {len(errors)} predictions are within "
        f"{tolerance:.0%} of the measured speedup (a **miss** is further off); the worst is "
        f"{worst[0]:+.0%} ({worst[1]}, {worst[2]}). " + _sides(errors),
    ]
    for error, workload, layout in misses:
        why = MISS_WHY.get((workload, layout)) or MISS_WHY.get((workload, "*"))
        lines += [
            "",
            f"- **{layout} on {workload}, {error:+.0%}**: "
            + (why + "." if why else "not explained yet: the model leaves something out here."),
        ]
    return "\n".join(lines)


def _sides(errors: list[tuple[float, str, str]]) -> str:
    fast = [e for e in errors if e[0] > 0]
    slow = ", ".join(f"{layout} on {w} ({e:+.0%})" for e, w, layout in errors if e <= 0)
    if len(fast) > len(errors) / 2:
        return (
            f"{len(fast)} of {len(errors)} err on the fast side: the model packs the work as if "
            "the scheduler were perfect" + (f"; on the slow side: {slow}." if slow else ".")
        )
    return f"{len(fast)} of {len(errors)} err on the fast side, the others on the slow side."


def predict_cores(d: Data) -> str:
    results = {w: d.compares[w] for w in PREDICTED}
    return "\n".join(map(_short_files, predict_vs_measure.cores_table(results)))


def _short_files(line: str) -> str:
    """Table lines name a layout file by its stem, as the other tables do."""
    line = re.sub(r"(?:examples/layouts/)?([\w-]+)\.toml", r"\1", line)
    return line.replace("| perfect |", "| perfect (the model's estimate) |")


def _at(d: Data, workload: str, layout: str, cores: int) -> dict[str, Any]:
    rows = d.compares[workload]["forecast"]
    return next(
        r
        for r in rows["rows"] + rows["perfect"]
        if (short(r["layout"]), r["cores"]) == (layout, cores)
    )


def predict_cores_reading(d: Data) -> str:
    top = max(r["cores"] for r in d.compares["gil-bound"]["forecast"]["rows"])
    pool, free_pool = _at(d, "gil-bound", "pool", top), _at(d, "gil-free", "pool", top)
    threads = max(_at(d, "gil-bound", n, top)["speedup"] for n in THREAD_ONLY)
    hybrid = _at(d, "gil-free", "hybrid", top)
    items = [
        (
            f"work that holds the GIL scales with processes and not with threads (`gil-bound` at "
            f"{top} cores: `pool` {x(pool['speedup'])}, threads at most {x(threads)})"
            if pool["speedup"] > 2 * threads
            else f"on `gil-bound` at {top} cores, `pool` {x(pool['speedup'])} and threads "
            f"{x(threads)}"
        ),
        (
            f"work that releases it scales with threads too (`gil-free`: `hybrid` "
            f"{x(hybrid['speedup'])} at {top} cores), until the Python around the blurs meets the "
            f"GIL, where processes go further (`pool` {x(free_pool['speedup'])})"
            if hybrid["limit"] == "the GIL" and free_pool["speedup"] > hybrid["speedup"]
            else f"on `gil-free` at {top} cores, `hybrid` {x(hybrid['speedup'])} "
            f"({hybrid['limit']}) and `pool` {x(free_pool['speedup'])} ({free_pool['limit']})"
        ),
    ]
    encoder = sorted(
        {
            f"`{short(r['layout'])}` on {w}"
            for w in PREDICTED
            for r in d.compares[w]["forecast"]["rows"]
            if r["cores"] == top and r["limit"] == "the encoder"
        }
    )
    if encoder:
        items.append(
            "the one-threaded encoder (as `compare` pins it; `--encoder-threads 0` lifts that "
            f"limit) caps {', '.join(encoder)}"
        )
    return (
        "Read down a column and the note's lesson returns, with numbers: " + "; ".join(items) + "."
    )


def _processes_win_only_gil_bound(d: Data) -> bool:
    bound, free = d.speedups("gil-bound"), d.speedups("gil-free")
    processes_win_bound = best_of(bound, PROCESS_POOLS) > best_of(bound, THREAD_ONLY)
    return processes_win_bound and best_of(free, THREAD_ONLY) >= best_of(free, PROCESS_POOLS)


def more_cores(d: Data) -> str:
    cores = _cores(d)
    busy = [d.speedups(w)["serial"]["cpu_percent"] for w in WORKLOADS]
    return (
        f"The layouts are built to scale with cores (pools of `--workers`, one segment per "
        f"worker). The machine stamped at the top has {cores} usable cores, and serial already "
        f"keeps {min(busy):.0f}% to {max(busy):.0f}% of them busy (section 2)"
        + (
            ", so this document measures little of that scaling."
            if cores <= 4
            else f": the speedups above are what {cores} cores give."
        )
    )


def summary(d: Data) -> str:
    n, s = _scaling(d)
    c, m, comm = d.keydiff["creation_ms"], d.keydiff["memory"], d.keydiff["communication_fps"]
    bound, free = d.speedups("gil-bound"), d.speedups("gil-free")
    rows = [
        (
            "use processes for CPU-bound work",
            ("for work that holds the GIL: " if _processes_win_only_gil_bound(d) else "")
            + f"`gil-bound`, best process pool "
            f"{x(best_of(bound, PROCESS_POOLS))} against {x(best_of(bound, THREAD_ONLY))} for "
            "threads; "
            f"`gil-free`, threads {x(best_of(free, THREAD_ONLY))} against processes "
            f"{x(best_of(free, PROCESS_POOLS))}",
        ),
        (
            "processes have separate memory",
            f"a spawned process with numpy: about {m['process_overhead_rss_mb']:.0f} MB resident "
            f"beyond its work, {m['process_overhead_uss_mb']:.0f} MB its own (a pipeline worker "
            "also imports OpenCV: section 2's peaks)",
        ),
        (
            "threads are limited by the GIL",
            ("for Python bytecode: " if s["python threads"] < 1.2 else "pure Python: ")
            + f"{n} threads {x(s['python threads'])}; "
            f"for OpenCV: {x(s['opencv threads'])}",
        ),
        (
            "process creation is costly",
            f"fork {c['fork']['bare']:.1f} ms, spawn {c['spawn']['bare']:.0f} ms, "
            f"{c['spawn']['with numpy+opencv']:.0f} ms with a worker's imports",
        ),
        (
            "communication between processes is costly",
            f"pickling is: {comm['pickle queue']:.0f} frames/s at {d.keydiff['frame_size']}; "
            + (
                f"shared memory is not: {comm['shared memory']:.0f} frames/s"
                if comm["shared memory"] > 5 * comm["pickle queue"]
                else f"shared memory too: {comm['shared memory']:.0f} frames/s"
            ),
        ),
    ]
    return "\n".join(
        ["| the note's claim | on this machine |", "| --- | --- |"]
        + [f"| {a} | {b} |" for a, b in rows]
    )


# --- README.md ------------------------------------------------------------------------------


def readme_workloads(d: Data) -> str:
    by = {w: d.speedups(w) for w in WORKLOADS}
    layouts = [n for n in by[WORKLOADS[0]] if n != "serial"]
    lines = [
        f"| workload | best layout | {' | '.join(layouts)} |",
        "| --- | --- |" + " --- |" * len(layouts),
    ]
    for w in WORKLOADS:
        name, top = best(by[w])
        cells = [x(by[w][n]["speedup"]) if n in by[w] else "" for n in layouts]
        lines.append(f"| {w} | {name} {x(top)} | {' | '.join(cells)} |")
    return "\n".join([*lines, "", lesson(d)])


def readme_transport(d: Data) -> str:
    t = d.transport
    rows = [
        ("`numpy.copyto` in one process (the physical reference)", "copy"),
        ("`queue.Queue` between threads (a reference, no copy)", "thread"),
        ("`multiprocessing.Queue` between processes (pickled)", "pickle"),
        ("shared-memory ring between processes (one copy, slot numbers travel)", "shm"),
    ]
    speed = copy_speed(t["shm_fps"], t["copy_fps"])
    return "\n".join(
        [
            f"On {d.env['cpu_count']} CPUs, {t['size']} frames ({t['frame_mb']:.1f} MB), "
            f"{t['frames']} frames, median of {t['repeat']} interleaved runs:",
            "",
            "| method | frames/s | MB/s |",
            "| --- | --- | --- |",
            *[f"| {label} | {t[f'{k}_fps']:.0f} | {t[f'{k}_mb_s']:.0f} |" for label, k in rows],
            "",
            f"The shared-memory ring moves frames {t['shm_over_pickle']:.1f}x faster than pickling "
            f'them through a queue, {speed}. Threads need no copy at all: that is what "threads '
            'share memory" means in numbers.',
        ]
    )


def readme_measured(d: Data) -> str:
    wall = _median_by_layout(d.runs, lambda r: r["wall_seconds"])
    cpu = _median_by_layout(d.runs, lambda r: sum(p["cpu_seconds"] for p in r["processes"]))
    peak = _median_by_layout(d.runs, lambda r: r["peak_rss_bytes_total"])
    pinned = d.speedups("default")
    digests = {json.dumps(r["digests"], sort_keys=True) for r in d.runs}
    rounds = len(d.runs) // len(wall)
    lines = [
        "| layout | default settings | CPU s | peak MB | x264 and OpenCV pinned to 1 thread |",
        "| --- | --- | --- | --- | --- |",
        *[
            f"| {layout} | {wall[layout]:.2f} s | {cpu[layout]:.1f} | {mb(peak[layout])} | "
            f"{pinned[layout]['wall_seconds']:.2f} s |"
            for layout in wall
        ],
        "",
        f"{rounds} rounds, medians. "
        + (
            f"Every run produced the same frames (the same digests in all {len(d.runs)} runs)."
            if len(digests) == 1
            else f"**Frames differed between runs** ({len(digests)} different sets of digests)."
        )
        + (
            " The first lesson is in the CPU column: even `serial` uses "
            f"{cpu['serial']:.1f} CPU-seconds in {wall['serial']:.1f} s of wall time, because the "
            "decoders and encoders are ffmpeg processes running beside Python under every layout."
            if cpu["serial"] > 1.3 * wall["serial"]
            else f" `serial` used {cpu['serial']:.1f} CPU-seconds in {wall['serial']:.1f} s."
        ),
    ]
    return "\n".join(lines)


def readme_ffmpeg_memory(d: Data) -> str:
    peaks: dict[str, list[float]] = {}
    for run in d.runs:
        for p in run["processes"]:
            role = p["role"].split(":")[0]
            if role.startswith("ffmpeg-"):
                peaks.setdefault(role.removeprefix("ffmpeg-"), []).append(p["peak_rss_bytes"])
    names = {
        "decode": "decoders",
        "encode": "encoders",
        "transcode": "transcoders",
        "join": "joins",
    }
    parts = [
        f"{names.get(role, role)} {mb(min(v))} to {mb(max(v))} MB"
        for role, v in sorted(peaks.items())
    ]
    return (
        "Each ffmpeg process's own peak, over the default runs of the table in [Measured on this "
        f"project's machine](#measured-on-this-projects-machine): {', '.join(parts)}."
    )


# --- docs/cluster.md ------------------------------------------------------------------------


def cluster_table(d: Data) -> str:
    by = d.speedups("ray")
    lines = [
        "| layout | wall s | speedup over serial | CPU % | peak MB |",
        "| --- | --- | --- | --- | --- |",
        *[
            f"| {'ray (local instance)' if n == 'ray' else n} | {s['wall_seconds']:.2f} | "
            f"{x(s['speedup'])} | {s['cpu_percent']:.0f} | {mb(s['peak_rss_bytes'])} |"
            for n, s in by.items()
        ],
    ]
    ratio = by["ray"]["wall_seconds"] / by["segments"]["wall_seconds"]
    lines += [
        "",
        f"**ray / segments = {ratio:.2f}x the wall time** when each run starts its own Ray "
        "instance.",
    ]
    return "\n".join(lines)


def _peaks(runs: list[dict[str, Any]], layout: str, ffmpeg: bool) -> list[float]:
    return [
        p["peak_rss_bytes"]
        for r in runs
        if r["layout"] == layout
        for p in r["processes"]
        if p["role"].startswith("ffmpeg") == ffmpeg
        and p["role"] != "main"
        and not p["role"].startswith("ffmpeg-join")  # the joins run in the main process
    ]


def _span(peaks: list[float]) -> str:
    return f"{mb(min(peaks))} to {mb(max(peaks))} MB"


def cluster_memory(d: Data) -> str:
    runs = d.compare_runs["ray"]
    ray, seg = _peaks(runs, "ray", False), _peaks(runs, "segments", False)
    why = " (it has loaded Ray)" if min(ray) > max(seg) else ""
    return (
        f"The peak memory column is the largest sum of the peaks of the processes alive "
        f"together, each process's own (see the README's Memory). A Ray worker peaked at "
        f"{_span(ray)} against {_span(seg)} for a segment worker{why}; an ffmpeg process at "
        f"{_span(_peaks(runs, 'ray', True))} under a Ray worker and "
        f"{_span(_peaks(runs, 'segments', True))} under a segment worker. Ray's own "
        "daemons (GCS, raylet, object store) are not counted at all: compare this column "
        "between the two layouts with that in mind."
    )


RENDERERS: dict[str, Callable[[Data], str]] = {
    "stamp": stamp,
    "note-table": note_table,
    "note-reading": note_reading,
    "workloads-table": workloads_table,
    "workloads-reading": workloads_reading,
    "render-only-table": render_only_table,
    "render-only-reading": render_only_reading,
    "gil-table": gil_table,
    "gil-reading": gil_reading,
    "predict-accuracy": predict_accuracy,
    "predict-cores": predict_cores,
    "predict-cores-reading": predict_cores_reading,
    "more-cores": more_cores,
    "summary": summary,
    "cluster-table": cluster_table,
    "cluster-memory": cluster_memory,
    "readme-workloads": readme_workloads,
    "readme-transport": readme_transport,
    "readme-measured": readme_measured,
    "readme-ffmpeg-memory": readme_ffmpeg_memory,
}


def render_text(text: str, data: Data) -> str:
    """`text` with each generated part rendered again from `data`."""

    def block(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in RENDERERS:
            raise RenderError(f"no renderer for the generated part '{name}'")
        try:
            body = RENDERERS[name](data).rstrip()
        except (KeyError, IndexError, ValueError, ZeroDivisionError) as error:
            raise RenderError(f"the data cannot render '{name}': {error!r}") from error
        return f"{match[1]}{body}\n{match[4]}"

    return BLOCK.sub(block, text)


def render_all(data_dir: Path, root: Path, write: bool) -> list[Path]:
    """Render every document; return those whose text changed (written only if `write`)."""
    data = Data.load(data_dir)
    stale = []
    for name in DOCUMENTS:
        path = root / name
        text = path.read_text()
        new = render_text(text, data)
        if new != text:
            stale.append(path)
            if write:
                path.write_text(new)
    return stale
