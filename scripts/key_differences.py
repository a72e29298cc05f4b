#!/usr/bin/env python3
"""Measure every row of the teaching note's "Key Differences" table on this machine.

    python scripts/key_differences.py [--out DIR] [--quick]

Writes DIR/key_differences.md (the note's claim next to the measured figure),
DIR/key_differences.json (the raw numbers) and DIR/key_differences.png (a chart per row).

- creation overhead: start and join a thread vs a process under fork, forkserver and spawn,
  bare and with the pipeline's imports (numpy, OpenCV) in the child;
- memory: extra resident and unique memory of a process vs a thread doing the same work;
- CPU utilisation: speedup with 1..N threads vs 1..N processes on pure-Python work and on
  OpenCV work (OpenCV pinned to one thread per worker); and inside the pipeline, the share of its
  time the render task's animate stage (the gil-bound workload) waited for the GIL under serial,
  threads, hybrid and pool;
- communication: frames/s through a thread queue, a pickle queue, and shared memory;
- task type: the two tasks of the pipeline as independent processes vs threads of one process.

--quick makes every measurement small (seconds in all), for tests; the figures are then noisy.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import bench_transport
import numpy as np
import psutil

from pipeline.config.settings import usable_cores

METHODS = ("fork", "forkserver", "spawn")


# Run in a fresh `python -c` interpreter: a spawned child re-imports its parent's main module,
# and this script's imports (numpy, OpenCV) would otherwise be counted as the cost of a process.
_CREATION = """
import importlib, json, multiprocessing, statistics, sys, threading, time
repeat = int(sys.argv[1])
def timed(make):
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        worker = make()
        worker.start()
        worker.join()
        samples.append((time.perf_counter() - began) * 1000)
    return statistics.median(samples)
out = {"thread": {"bare": timed(lambda: threading.Thread(target=time.sleep, args=(0,)))}}
for method in ("fork", "forkserver", "spawn"):
    ctx = multiprocessing.get_context(method)
    out[method] = {
        "bare": timed(lambda: ctx.Process(target=time.sleep, args=(0,))),
        "with numpy+opencv": timed(
            lambda: ctx.Process(target=importlib.import_module, args=("cv2",))),
    }
print(json.dumps(out))
"""


def creation_overhead(repeat: int) -> dict[str, dict[str, float]]:
    """Median milliseconds to start and join a thread, and a process per start method.

    "bare" runs `time.sleep(0)`; "with numpy+opencv" imports OpenCV (and so numpy), what every
    worker of the pipeline does before its first frame.
    """
    done = subprocess.run(
        [sys.executable, "-c", _CREATION, str(repeat)], capture_output=True, text=True, check=True
    )
    result: dict[str, dict[str, float]] = json.loads(done.stdout)
    return result


def _work_and_report(megabytes: int, ready: Any, done: Any) -> None:
    buffer = np.ones(megabytes * 1_000_000 // 8)  # the work: a buffer filled and kept
    ready.set()
    done.wait()
    del buffer


def _await_ready(ready: Any, worker: Any) -> None:
    """Wait for `worker` (a thread or a process) to set `ready`; fail, not hang, if it dies."""
    while not ready.wait(0.2):
        if not worker.is_alive() and not ready.is_set():
            raise bench_transport.PeerLost(f"{worker.name} ended before filling its buffer")


def memory_cost(megabytes: int) -> dict[str, float]:
    """Extra memory (MB) of a thread vs a spawned process that each fill a `megabytes` buffer."""
    me = psutil.Process()
    before = me.memory_info().rss
    ready, done = threading.Event(), threading.Event()
    thread = threading.Thread(target=_work_and_report, args=(megabytes, ready, done), daemon=True)
    thread.start()
    _await_ready(ready, thread)
    thread_rss = (me.memory_info().rss - before) / 1e6
    done.set()
    thread.join()
    ctx = multiprocessing.get_context("spawn")
    ready_p, done_p = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_work_and_report, args=(megabytes, ready_p, done_p), daemon=True)
    child.start()
    _await_ready(ready_p, child)
    info = psutil.Process(child.pid).memory_full_info()
    done_p.set()
    child.join()
    return {
        "work_mb": megabytes,
        "thread_extra_rss_mb": thread_rss,
        "process_rss_mb": info.rss / 1e6,
        "process_uss_mb": info.uss / 1e6,
        # what a process costs beyond the work itself: an interpreter and its imports
        "process_overhead_rss_mb": info.rss / 1e6 - megabytes,
        "process_overhead_uss_mb": info.uss / 1e6 - megabytes,
    }


def _python_work(n: int) -> float:
    total = 0.0
    for i in range(n):
        total += (i % 7) * 0.5
    return total


def _opencv_work(n: int) -> int:
    import cv2

    cv2.setNumThreads(1)
    frame = np.full((720, 1280, 3), 128, np.uint8)
    for _ in range(n):
        frame = cv2.GaussianBlur(frame, (0, 0), 3)
    return int(frame[0, 0, 0])


def cpu_scaling(max_workers: int, python_n: int, opencv_n: int) -> dict[str, dict[int, float]]:
    """Speedup of N workers over one, on a fixed amount of work split N ways."""
    out: dict[str, dict[int, float]] = {}
    for kind, work, n in (("python", _python_work, python_n), ("opencv", _opencv_work, opencv_n)):
        for pool_name, pool_type in (
            ("threads", ThreadPoolExecutor),
            ("processes", ProcessPoolExecutor),
        ):
            times = {}
            for workers in range(1, max_workers + 1):
                kwargs: dict[str, Any] = {"max_workers": workers}
                if pool_type is ProcessPoolExecutor:
                    kwargs["mp_context"] = multiprocessing.get_context("spawn")
                with pool_type(**kwargs) as pool:
                    list(pool.map(work, [1] * workers))  # warm up: start workers, imports
                    began = time.perf_counter()
                    list(pool.map(work, [n // workers] * workers))
                    times[workers] = time.perf_counter() - began
            out[f"{kind} {pool_name}"] = {w: times[1] / t for w, t in times.items()}
    return out


def communication(size: str, frames: int) -> dict[str, float]:
    """Frames per second through each transport (see bench_transport.py)."""
    spec = bench_transport._spec(size)
    frame = np.random.default_rng(0).integers(0, 256, spec.shape, dtype=np.uint8)
    ctx = multiprocessing.get_context("spawn")
    return {
        "copy": frames / bench_transport.bench_copy(frame, frames),
        "thread queue": frames / bench_transport.bench_thread(frame, frames),
        "pickle queue": frames / bench_transport.bench_pickle(frame, frames, ctx),
        "shared memory": frames / bench_transport.bench_shm(frame, spec, frames, ctx),
    }


def _clip(folder: Path, frames: int) -> Path:
    clip = folder / "clip.mp4"
    subprocess.run(
        [sys.executable, str(Path(__file__).resolve().parent / "make_sample.py"), str(clip),
         "--size", "640x360", "--frames", str(frames)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return clip


def task_type(frames: int) -> dict[str, float]:
    """Wall seconds of the two pipeline tasks as threads of one process vs as two processes."""
    with tempfile.TemporaryDirectory() as tmp:
        clip = _clip(Path(tmp), frames)
        out = {}
        for layout in ("threads", "processes", "threads", "processes"):
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pipeline",
                    "run",
                    str(clip),
                    "--out",
                    f"{tmp}/{layout}",
                    "--layout",
                    layout,
                    "--no-progress",
                    "--encoder-threads",
                    "1",
                    "--opencv-threads",
                    "1",
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            report = json.loads((Path(tmp) / layout / "report.json").read_text())
            out.setdefault(layout, []).append(report["wall_seconds"])
            del done
    return {layout: statistics.median(walls) for layout, walls in out.items()}


#: The layouts whose GIL waits the note's CPU row shows.
GIL_LAYOUTS = ("serial", "threads", "hybrid", "pool")


def gil_in_pipeline(frames: int, samples: int) -> dict[str, float]:
    """The share of its time the animate stage waited for the GIL (blocked, `cpu_breakdown`)
    on the gil-bound workload, per layout, with 2 workers."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="vidpipe-keydiff-") as tmp:
        clip = _clip(Path(tmp), frames)
        for layout in GIL_LAYOUTS:
            folder = Path(tmp) / layout
            subprocess.run(
                [sys.executable, "-m", "pipeline", "run", str(clip), "--out", str(folder),
                 "--layout", layout, "--workload", "gil-bound", "--samples", str(samples),
                 "--tasks", "render", "--workers", "2", "--no-progress"],
                check=True,
                capture_output=True,
            )  # fmt: skip
            report = json.loads((folder / "report.json").read_text())
            animate = report["tasks"]["render"]["cpu_breakdown"]["animate"]
            total = animate["on_cpu"] + (animate["waiting_for_core"] or 0) + animate["blocked"]
            out[layout] = animate["blocked"] / total if total else 0.0
    return out


def table_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The note's table: each row's name, what the note says and what was measured.

    `results` as measured, or as read back from key_differences.json (string keys)."""
    c, m = results["creation_ms"], results["memory"]
    s = {kind: {int(k): v for k, v in by.items()} for kind, by in results["scaling"].items()}
    comm, tasks = results["communication_fps"], results["task_type_seconds"]
    g = results["gil_wait"]
    n = results["max_workers"]
    rows = [
        (
            "Task type",
            "processes for CPU-bound tasks, threads for I/O-bound ones",
            f"the pipeline's two tasks (a short 640x360 clip) as threads of one process: "
            f"{tasks['threads']:.2f} s; as two processes: {tasks['processes']:.2f} s",
        ),
        (
            "Memory",
            "processes have separate memory, threads share it",
            f"filling a {m['work_mb']} MB buffer, a thread adds {m['thread_extra_rss_mb']:.0f} MB "
            f"to its process; a spawned process needs {m['process_rss_mb']:.0f} MB resident: "
            f"{m['process_overhead_rss_mb']:.0f} MB beyond the work, "
            f"{m['process_overhead_uss_mb']:.0f} MB of it unique to the process",
        ),
        (
            "CPU utilisation",
            "the GIL stops threads from using several cores",
            f"{n} threads: {s['python threads'][n]:.2f}x on pure Python, "
            f"{s['opencv threads'][n]:.2f}x on OpenCV; {n} processes: "
            f"{s['python processes'][n]:.2f}x and {s['opencv processes'][n]:.2f}x. In the "
            "pipeline (gil-bound, a short 640x360 clip), the animate stage waited for the GIL "
            + ", ".join(f"{share:.0%} of its time under {layout}" for layout, share in g.items()),
        ),
        (
            "Creation overhead",
            "processes are expensive to create, threads cheap",
            f"start and join: thread {c['thread']['bare']:.2f} ms; process: fork "
            f"{c['fork']['bare']:.1f} ms, forkserver {c['forkserver']['bare']:.1f} ms, spawn "
            f"{c['spawn']['bare']:.1f} ms; importing OpenCV and numpy as pipeline workers do: "
            f"fork {c['fork']['with numpy+opencv']:.0f} ms, "
            f"spawn {c['spawn']['with numpy+opencv']:.0f} ms",
        ),
        (
            "Communication",
            "processes need costly IPC, threads share memory",
            f"{results['frame_size']} frames/s: thread queue {comm['thread queue']:.0f}, "
            f"pickle queue {comm['pickle queue']:.0f}, shared memory {comm['shared memory']:.0f} "
            f"(in-process copy {comm['copy']:.0f})",
        ),
    ]
    return rows


def write_markdown(results: dict[str, Any], path: Path) -> None:
    lines = [
        "# The note's key differences, measured",
        "",
        f"Measured on {results['machine']}, {results['usable_cores']} usable cores, Python "
        f"{results['python']}{' (quick mode: small, noisy samples)' if results['quick'] else ''}."
        " Command: `python scripts/key_differences.py`.",
        "",
        "| row | the note says | measured here |",
        "| --- | --- | --- |",
        *[f"| {a} | {b} | {c} |" for a, b, c in table_rows(results)],
        "",
    ]
    path.write_text("\n".join(lines))


def write_chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    c = results["creation_ms"]
    names = ["thread", *METHODS]
    ax = axes[0][0]
    ax.bar(names, [c[k]["bare"] for k in names], color="#4c72b0", label="bare")
    ax.bar(
        METHODS,
        [c[k]["with numpy+opencv"] - c[k]["bare"] for k in METHODS],
        bottom=[c[k]["bare"] for k in METHODS],
        color="#dd8452",
        label="+ numpy, OpenCV",
    )
    ax.set_yscale("log")
    ax.set_ylabel("ms to start and join")
    ax.set_title("Creation overhead")
    ax.legend()
    m = results["memory"]
    ax = axes[0][1]
    ax.bar(
        ["thread: extra RSS", "process: RSS", "process: unique"],
        [m["thread_extra_rss_mb"], m["process_rss_mb"], m["process_uss_mb"]],
        color="#55a868",
    )
    ax.axhline(m["work_mb"], color="#c44e52", linestyle="--", label="the work's own data")
    ax.set_ylabel("MB")
    ax.set_title("Memory of a worker doing the same work")
    ax.legend()
    ax = axes[1][0]
    for label, by in results["scaling"].items():
        values = {int(k): v for k, v in by.items()}  # JSON made the worker counts strings
        xs = sorted(values)
        ax.plot(xs, [values[x] for x in xs], marker="o", label=label)
    xs = list(range(1, results["max_workers"] + 1))
    ax.plot(xs, xs, color="#999999", linestyle="--", label="ideal")
    ax.set_xlabel("workers")
    ax.set_ylabel("speedup over one worker")
    ax.set_title("CPU utilisation: threads vs processes")
    ax.legend(fontsize=8)
    comm = results["communication_fps"]
    ax = axes[1][1]
    ax.bar(list(comm), list(comm.values()), color="#8172b2")
    ax.set_yscale("log")
    ax.set_ylabel(f"{results['frame_size']} frames/s")
    ax.set_title("Communication")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("key_differences_out"))
    parser.add_argument("--quick", action="store_true", help="tiny measurements, for tests")
    args = parser.parse_args()
    quick = args.quick
    cores = usable_cores()
    workers = max(2, cores)
    results: dict[str, Any] = {
        "quick": quick,
        "machine": f"{os.cpu_count()} CPUs",
        "usable_cores": cores,
        "python": sys.version.split()[0],
        "max_workers": workers,
        "frame_size": "320x240" if quick else "1920x1080",
    }
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("creation_ms", lambda: creation_overhead(3 if quick else 15)),
        ("memory", lambda: memory_cost(20 if quick else 200)),
        (
            "scaling",
            lambda: cpu_scaling(workers, 200_000 if quick else 20_000_000, 4 if quick else 200),
        ),
        ("communication_fps", lambda: communication(results["frame_size"], 20 if quick else 200)),
        ("gil_wait", lambda: gil_in_pipeline(12 if quick else 100, 20 if quick else 400)),
        ("task_type_seconds", lambda: task_type(10 if quick else 200)),
    ]
    for key, step in steps:
        print(f"measuring {key.replace('_', ' ')} ...", file=sys.stderr)
        try:
            results[key] = step()
        except (
            bench_transport.PeerLost, RuntimeError, OSError, subprocess.CalledProcessError,
            BrokenProcessPool,
        ) as error:  # fmt: skip
            # "can't start new thread", a worker killed for memory: say so and stop, never hang
            print(f"error: measuring {key.replace('_', ' ')} failed: {error}", file=sys.stderr)
            return 1
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "key_differences.json").write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(results, args.out / "key_differences.md")
    write_chart(results, args.out / "key_differences.png")
    print((args.out / "key_differences.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
