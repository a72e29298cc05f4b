"""The scripts run and print what their docs promise (tiny inputs: these are not benchmarks)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from conftest import ROOT


def _json_of(script: str, *args: object, timeout: float = 300) -> Any:
    """What `scripts/<script> ARGS --json` prints, once it exits 0."""
    done = subprocess.run(
        [sys.executable, f"scripts/{script}", *map(str, args), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_bench_transport_prints_one_json_object() -> None:
    result = _json_of(
        "bench_transport.py", "--size", "64x48", "--frames", 20, "--repeat", 1, timeout=120
    )
    for key in ("copy_fps", "thread_fps", "pickle_fps", "shm_fps"):
        assert result[key] > 0


def test_make_sample_writes_the_clip_it_is_asked_for(tmp_path) -> None:
    out = tmp_path / "clip.mkv"
    subprocess.run(
        [
            sys.executable,
            "scripts/make_sample.py",
            out,
            "--size",
            "96x64",
            "--frames",
            "7",
            "--fps",
            "30000/1001",
            "--audio",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    from pipeline.media import count_decoded_frames, probe

    info = probe(out)
    assert (info.width, info.height, str(info.fps)) == (96, 64, "30000/1001")
    assert info.audio_codec == "aac" and count_decoded_frames(out) == 7


def test_key_differences_measures_every_row_of_the_table(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "scripts/key_differences.py", "--quick", "--out", tmp_path],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "key_differences.json").read_text())
    creation = results["creation_ms"]
    assert {"thread", "fork", "forkserver", "spawn"} <= creation.keys()
    assert all(v > 0 for row in creation.values() for v in row.values())
    assert results["memory"]["process_rss_mb"] > 0
    workers = str(results["max_workers"])
    for curve in ("python threads", "python processes", "opencv threads", "opencv processes"):
        assert results["scaling"][curve][workers] > 0
    assert set(results["communication_fps"]) == {
        "copy",
        "thread queue",
        "pickle queue",
        "shared memory",
    }
    assert set(results["task_type_seconds"]) == {"threads", "processes"}
    assert set(results["gil_wait"]) == {"serial", "threads", "hybrid", "pool"}
    assert all(0 <= share <= 1 for share in results["gil_wait"].values())
    table = (tmp_path / "key_differences.md").read_text()
    assert "the animate stage waited for the GIL" in table
    for row in ("Task type", "Memory", "CPU utilisation", "Creation overhead", "Communication"):
        assert f"| {row} |" in table
    assert (tmp_path / "key_differences.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_vs_ffmpeg_prints_every_engine_as_one_json_object(tiny_clip) -> None:
    result = _json_of("bench_vs_ffmpeg.py", tiny_clip, "--repeat", 1)
    engines = ("ffmpeg", "identity", "bgr", "moviepy", "opencv", "imageio_bgr", "imageio_i420")
    for key in (f"{name}_fps" for name in engines):
        assert result[key] > 0, key  # moviepy too: it is in the dev extra
    assert result["frames"] == 12 and result["ratios_to_ffmpeg"]["ffmpeg"] == 1.0
    # Start-up from a run on the first 10 frames, beside each engine's runs.
    assert set(result["startup_seconds"]) == set(engines) == set(result["steady_fps"])
    assert all(v > 0 for v in result["startup_seconds"].values())


def test_bench_vs_ffmpeg_takes_an_input_or_makes_one_not_both(tiny_clip) -> None:
    script = [sys.executable, "scripts/bench_vs_ffmpeg.py"]
    for words in ([str(tiny_clip), "--synthetic", "720p"], []):
        done = subprocess.run([*script, *words], capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 2 and "not both" in done.stderr, done.stderr


def test_bench_startup_times_the_listing_commands_and_the_first_ffmpeg() -> None:
    seconds = _json_of("bench_startup.py", "--repeat", 1, timeout=120)["seconds"]
    assert set(seconds) >= {"bare interpreter", "vidpipe layouts", "run: first ffmpeg"}
    assert all(0 < v < 30 for v in seconds.values())


def test_bench_memory_sets_each_layout_beside_ffmpegs_command_lines(tiny_clip) -> None:
    result = _json_of("bench_memory.py", tiny_clip, "--repeat", 1, "--layouts", "serial,processes")
    ffmpeg = result["ffmpeg_mb"]
    assert ffmpeg["compress"] > 5 and ffmpeg["render"] > 5
    assert ffmpeg["side by side"] == ffmpeg["compress"] + ffmpeg["render"]
    layouts = result["layouts"]
    assert layouts["serial"]["against"] == "one after the other"
    assert layouts["processes"]["against"] == "side by side"
    assert all(entry["peak_mb"] > 0 and entry["ratio"] > 0 for entry in layouts.values())


def _silent_death(*_args: object) -> None:
    """A peer that ends without a word, as one killed for memory or threads does."""


def test_transport_benchmark_fails_instead_of_waiting_for_a_dead_consumer(monkeypatch) -> None:
    import multiprocessing

    import bench_transport
    import numpy as np

    monkeypatch.setattr(bench_transport, "PATIENCE", 5.0)
    monkeypatch.setattr(bench_transport, "_pickle_consumer", _silent_death)
    monkeypatch.setattr(bench_transport, "_shm_consumer", _silent_death)
    frame = np.zeros((16, 16, 3), np.uint8)
    fork = multiprocessing.get_context("fork")  # the patched consumers travel as they are
    with pytest.raises(bench_transport.PeerLost, match="consumer process ended"):
        bench_transport.bench_pickle(frame, 50, fork)
    with pytest.raises(bench_transport.PeerLost, match="consumer process ended"):
        bench_transport.bench_shm(frame, bench_transport._spec("16x16"), 50, fork)


def test_key_differences_fails_with_a_message_when_a_worker_dies(monkeypatch, capsys) -> None:
    import key_differences

    monkeypatch.setattr(key_differences, "_work_and_report", _silent_death)
    with pytest.raises(key_differences.bench_transport.PeerLost, match="ended before"):
        key_differences.memory_cost(1)

    def no_threads(*_args: object) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(key_differences, "creation_overhead", no_threads)
    monkeypatch.setattr(sys, "argv", ["key_differences.py", "--quick"])
    assert key_differences.main() == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: measuring creation ms failed: can't start new thread"
