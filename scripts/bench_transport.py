#!/usr/bin/env python3
"""How fast can frames move between two endpoints? A benchmark of the pool's transports.

    python scripts/bench_transport.py [--size 1920x1080] [--frames N] [--repeat R] [--json]

Each method delivers N frames from a producer to a consumer, at most 8 in flight:

* copy:   `numpy.copyto` into a buffer in the same process (the physical reference: one memcpy);
* thread: the frame object through a `queue.Queue` to another thread (shared memory, no copy);
* pickle: the frame through a `multiprocessing.Queue` to another process (pickled, piped,
          unpickled: the textbook way);
* shm:    the producer copies the frame into a slot of a shared-memory ring (the pipeline's
          `SharedFrameRing`), only the slot number travels through a `multiprocessing.Queue`,
          and the consumer hands the slot back when done.

Methods run interleaved (copy, thread, pickle, shm, copy, ...) and the medians are printed, with
ratios measured in the same run. Process start-up is not timed: the consumer says it is ready
first. With --json, one JSON object with keys copy_fps, thread_fps, pickle_fps, shm_fps (and
the MB/s and ratios).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import queue
import statistics
import sys
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any, TypeVar

import numpy as np

from pipeline.engine.shm import SharedFrameRing
from pipeline.stages.base import StreamSpec

IN_FLIGHT = 8
METHODS = ("copy", "thread", "pickle", "shm")
#: No single hand-over takes this long; a peer that stays silent for it is stuck.
PATIENCE = 60.0
T = TypeVar("T")


class PeerLost(RuntimeError):
    """The other end of a measurement died or stopped answering."""


def patiently(step: Callable[[float], T], alive: Callable[[], bool], peer: str) -> T:
    """Run a blocking queue step (`get`/`put` given a timeout) while the peer lives.

    A consumer that fails to start or dies (out of threads, out of memory) would otherwise
    leave its producer blocked for ever on a full or empty queue.
    """
    deadline = time.monotonic() + PATIENCE
    while True:
        try:
            return step(0.2)
        except (queue.Empty, queue.Full):
            if not alive():
                try:  # what it sent just before it ended may still be in the pipe
                    return step(0.5)
                except (queue.Empty, queue.Full):
                    raise PeerLost(f"the {peer} ended before the measurement did") from None
            if time.monotonic() > deadline:
                raise PeerLost(f"the {peer} did not answer in {PATIENCE:.0f} s") from None


def _spec(size: str) -> StreamSpec:
    width, height = (int(n) for n in size.split("x"))
    return StreamSpec(width, height, Fraction(25))


def _receiver(q: Any) -> Callable[[float], Any]:
    """`q.get` with a timeout, as `patiently` calls it (`get`'s first parameter is `block`)."""
    return lambda timeout: q.get(timeout=timeout)


def bench_copy(frame: np.ndarray, n: int) -> float:
    ring = [np.empty_like(frame) for _ in range(IN_FLIGHT)]
    started = time.perf_counter()
    for i in range(n):
        np.copyto(ring[i % IN_FLIGHT], frame)
    return time.perf_counter() - started


def bench_thread(frame: np.ndarray, n: int) -> float:
    q: queue.Queue[np.ndarray | None] = queue.Queue(IN_FLIGHT)
    received = []

    def consume() -> None:
        while (item := q.get()) is not None:
            received.append(item.shape)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    started = time.perf_counter()
    for item in [*[frame] * n, None]:
        patiently(lambda t, item=item: q.put(item, timeout=t), consumer.is_alive, "consumer thread")
    consumer.join()
    return time.perf_counter() - started


def _pickle_consumer(inbox: Any, outbox: Any) -> None:
    outbox.put("ready")
    while (item := inbox.get()) is not None:
        assert item.base is None or item.size  # the frame arrived as a real array
    outbox.put("done")


def bench_pickle(frame: np.ndarray, n: int, context: Any) -> float:
    inbox, outbox = context.Queue(IN_FLIGHT), context.Queue()
    consumer = context.Process(target=_pickle_consumer, args=(inbox, outbox), daemon=True)
    consumer.start()
    alive, peer, answer = consumer.is_alive, "consumer process", _receiver(outbox)
    patiently(answer, alive, peer)
    started = time.perf_counter()
    for item in [*[frame] * n, None]:
        patiently(lambda t, item=item: inbox.put(item, timeout=t), alive, peer)
    patiently(answer, alive, peer)
    elapsed = time.perf_counter() - started
    consumer.join()
    return elapsed


def _shm_consumer(name: str, spec: StreamSpec, inbox: Any, outbox: Any) -> None:
    ring = SharedFrameRing.attach(name, spec, IN_FLIGHT)
    outbox.put("ready")
    while (slot := inbox.get()) is not None:
        _ = ring.frames[slot][0, 0]  # the frame is right there, in this process's memory
        outbox.put(slot)
    ring.close()
    outbox.put("done")


def bench_shm(frame: np.ndarray, spec: StreamSpec, n: int, context: Any) -> float:
    ring = SharedFrameRing.create(f"vidpipe-bench-{id(frame)}", spec, IN_FLIGHT)
    try:
        inbox, outbox = context.Queue(), context.Queue()
        consumer = context.Process(
            target=_shm_consumer, args=(ring.name, spec, inbox, outbox), daemon=True
        )
        consumer.start()
        alive, peer, answer = consumer.is_alive, "consumer process", _receiver(outbox)
        patiently(answer, alive, peer)
        free = list(range(IN_FLIGHT))
        started = time.perf_counter()
        for _ in range(n):
            if not free:
                free.append(patiently(answer, alive, peer))
            slot = free.pop()
            np.copyto(ring.frames[slot], frame)
            inbox.put(slot)
        inbox.put(None)
        while patiently(answer, alive, peer) != "done":
            pass
        elapsed = time.perf_counter() - started
        consumer.join()
        return elapsed
    finally:
        ring.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1920x1080", help="frame size, WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=200, help="frames per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved repeats")
    parser.add_argument("--start-method", default="spawn", help="for the consumer process")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    spec = _spec(args.size)
    frame = np.random.default_rng(0).integers(0, 256, spec.shape, dtype=np.uint8)
    context = multiprocessing.get_context(args.start_method)
    runs: dict[str, list[float]] = {m: [] for m in METHODS}
    try:
        for _ in range(args.repeat):
            runs["copy"].append(bench_copy(frame, args.frames))
            runs["thread"].append(bench_thread(frame, args.frames))
            runs["pickle"].append(bench_pickle(frame, args.frames, context))
            runs["shm"].append(bench_shm(frame, spec, args.frames, context))
    except (PeerLost, RuntimeError, OSError) as error:  # e.g. "can't start new thread"
        print(f"error: the transport benchmark failed: {error}", file=sys.stderr)
        return 1
    mb = spec.frame_bytes / 1e6
    result: dict[str, Any] = {
        "size": args.size,
        "frames": args.frames,
        "repeat": args.repeat,
        "frame_mb": round(mb, 3),
    }
    for method, seconds in runs.items():
        fps = args.frames / statistics.median(seconds)
        result[f"{method}_fps"] = round(fps, 1)
        result[f"{method}_mb_s"] = round(fps * mb, 1)
    result["shm_over_pickle"] = round(result["shm_fps"] / result["pickle_fps"], 2)
    result["shm_over_copy"] = round(result["shm_fps"] / result["copy_fps"], 2)
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{args.frames} frames of {args.size} ({mb:.2f} MB), median of {args.repeat} "
        f"interleaved runs, {IN_FLIGHT} in flight"
    )
    print(f"{'method':<8} {'frames/s':>10} {'MB/s':>10}")
    for method in METHODS:
        print(f"{method:<8} {result[f'{method}_fps']:>10.1f} {result[f'{method}_mb_s']:>10.1f}")
    print(
        f"shm / pickle = {result['shm_over_pickle']:.2f}x, "
        f"shm / in-process copy = {result['shm_over_copy']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
