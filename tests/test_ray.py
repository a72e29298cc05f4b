"""The `ray` layout: segments as Ray tasks, on a local instance or a cluster joined by address.

Every run must produce the serial run's frames. The two-node cluster is real: a head node and a
worker node started with `ray start` on loopback addresses, each with two CPUs, so that the
segments have to spread over both.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import assert_only_recorded_pieces, assert_tree_gone

# Not imported here: Ray reads its settings when first imported, and the runs below are
# separate processes that set them (pipeline/layouts/cluster/env.py).
if importlib.util.find_spec("ray") is None:
    pytest.skip("the ray extra is not installed", allow_module_level=True)

CLIP = {"size": "160x120", "frames": 120, "audio": True, "gop": 10, "bframes": 2}
JOB = ("--workers", "4", "--save-every", "10", "--no-progress")
RAY_BIN = Path(sys.executable).parent / "ray"


def _digests(out: Path) -> dict[str, str]:
    report = json.loads((out / "report.json").read_text())
    return {name: task["frame_digest"] for name, task in report["tasks"].items()}


def _serial(cli, clip: Path, out: Path, *extra: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    done = cli.run("run", clip, "--out", out, "--layout", "serial", *JOB, *extra)
    assert done.returncode == 0, done.stderr
    return _digests(out)


@pytest.mark.timeout(120)
def test_ray_layout_on_a_local_instance_matches_serial(cli, make_clip, tmp_path) -> None:
    clip = make_clip("ray.mp4", **CLIP)
    expected = _serial(cli, clip, tmp_path / "serial")
    out = tmp_path / "ray"
    done = cli.run("run", clip, "--out", out, "--layout", "ray", *JOB)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # Ray starts quietly
    assert _digests(out) == expected
    report = json.loads((out / "report.json").read_text())
    assert sum(node["segments"] for node in report["nodes"].values()) == 8
    assert sum(node["frames"] for node in report["nodes"].values()) == 240
    assert all(node["bytes_in"] > 0 and node["bytes_out"] > 0 for node in report["nodes"].values())
    assert report["tasks"]["render"]["thumbnails"] == 12
    assert sorted(p.name for p in (out / "thumbnails" / "render").iterdir())[-1] == (
        "frame_000110.jpg"
    )
    assert not (out / ".vidpipe" / "pieces").exists()
    assert_tree_gone(cli.tag)  # the local instance is shut down with the run


@pytest.mark.timeout(180)
def test_a_killed_ray_worker_is_retried_and_the_frames_are_right(cli, make_clip, tmp_path) -> None:
    clip = make_clip("ray.mp4", **CLIP)
    slow = ("--particles", "3000")  # segments last long enough to be caught running
    expected = _serial(cli, clip, tmp_path / "serial", *slow)
    out = tmp_path / "ray"
    proc = cli.start("run", clip, "--out", out, "--layout", "ray", *JOB, *slow)
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        for candidate in psutil.process_iter(["cmdline"]):
            if "ray::encode_segment" in " ".join(candidate.info["cmdline"] or []):
                victim = candidate
                break
        time.sleep(0.02)
    assert victim is not None, "no Ray worker was seen running a segment"
    victim.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert _digests(out) == expected
    assert_tree_gone(cli.tag)


@pytest.mark.timeout(180)
def test_an_interrupted_ray_run_resumes_to_the_uninterrupted_frames(
    cli, make_clip, tmp_path
) -> None:
    clip = make_clip("ray.mp4", **CLIP)
    slow = ("--particles", "3000")  # render's segments outlast compress's by seconds
    expected = _serial(cli, clip, tmp_path / "serial", *slow)
    out = tmp_path / "ray"
    proc = cli.start("run", clip, "--out", out, "--layout", "ray", *JOB, *slow)
    checkpoint = out / "compress.checkpoint.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if checkpoint.exists() and json.loads(checkpoint.read_text()).get("segments_done"):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 143, stderr
    assert_tree_gone(cli.tag)
    assert not (out / "rendered.mp4").exists()
    assert_only_recorded_pieces(out)

    resumed = cli.run("run", clip, "--out", out, "--layout", "ray", *JOB, *slow, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _digests(out) == expected
    report = json.loads((out / "report.json").read_text())
    assert report["tasks"]["compress"]["resumed_frames"] > 0
    assert not (out / ".vidpipe" / "pieces").exists()


@pytest.mark.timeout(120)
def test_an_application_error_is_not_retried_and_ends_the_run(cli, make_clip, tmp_path) -> None:
    clip = make_clip("ray.mp4", **CLIP)
    out = tmp_path / "ray"
    os.environ["VIDPIPE_FAULT"] = "stage:render:35:raise"
    try:
        done = cli.run("run", clip, "--out", out, "--layout", "ray", *JOB)
    finally:
        del os.environ["VIDPIPE_FAULT"]
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert re.fullmatch(
        r"error: task 'render': stage 'animate' failed on frame \d+: InjectedFault: .*", lines[0]
    )
    assert not (out / "rendered.mp4").exists() and not list(out.rglob("*.part"))


def test_without_ray_the_layout_names_the_extra(cli_without_ray, tiny_clip, tmp_path) -> None:
    done = cli_without_ray.run("run", tiny_clip, "--out", tmp_path / "o", "--layout", "ray")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: layout 'ray' needs the 'ray' extra: pip install 'vidpipe[ray]'"
    )


def test_an_unreachable_cluster_is_one_error_line(cli, tiny_clip, tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    done = cli.run(
        "run", tiny_clip, "--out", tmp_path, "--layout", "ray", "--ray-address", f"127.0.0.1:{port}"
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: cannot reach the Ray cluster at 127.0.0.1:{port} (Connection refused)"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def two_node_cluster(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A head node and a worker node on loopback, two CPUs each; yields (address, environment)."""
    token = tmp_path / "token"
    token.write_text(secrets.token_hex(32))
    # A local run earlier in this process switched clusters off for its private instance.
    base = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    env = {
        **base,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
    }
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--disable-usage-stats"]
    # Each node's files in a folder of its own, removed after (Ray's default is /tmp/ray); a
    # short path, as Ray's socket paths must fit in 107 characters.
    temp = Path(tempfile.mkdtemp(prefix="vidpipe-ray-test-"))
    try:
        for name, args in (
            ("head", ["--head", "--port", str(port), "--include-dashboard", "false"]),
            ("worker", ["--address", address]),
        ):
            subprocess.run(
                [str(RAY_BIN), "start", *args, *common, "--temp-dir", str(temp / name)],
                env=env,
                check=True,
                capture_output=True,
                timeout=60,
            )
        yield address, env
    finally:
        # Not `ray stop`: it stops every Ray instance on the machine, other runs' included.
        _stop_nodes_under(temp)
        shutil.rmtree(temp, ignore_errors=True)


def _stop_nodes_under(temp: Path) -> None:
    """Stop the Ray processes whose command line names `temp` (this cluster's nodes), and
    everything they started."""
    nodes = []
    for proc in psutil.process_iter():
        try:
            if any(str(temp) in arg for arg in proc.cmdline()):
                nodes.append(proc)
        except psutil.Error:
            continue
    tree = []
    for node in nodes:
        try:
            tree += [node, *node.children(recursive=True)]
        except psutil.Error:
            continue
    for proc in tree:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(tree, timeout=10)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=10)


@pytest.mark.timeout(180)
def test_a_two_node_cluster_shares_the_segments(two_node_cluster, cli, make_clip, tmp_path) -> None:
    address, env = two_node_cluster
    clip = make_clip("ray.mp4", **CLIP)
    expected = _serial(cli, clip, tmp_path / "serial")
    out = tmp_path / "ray"
    cli.extra_env.update({k: v for k, v in env.items() if k.startswith("RAY_")})
    no_workers = [arg for arg in JOB if arg not in ("--workers", "4")]
    done = cli.run(
        "run",
        clip,
        "--out",
        out,
        "--layout",
        "ray",
        "--ray-address",
        address,
        *no_workers,
        timeout=150,
    )
    assert done.returncode == 0, done.stderr
    assert _digests(out) == expected
    nodes = json.loads((out / "report.json").read_text())["nodes"]
    assert len(nodes) == 2, nodes
    assert all(node["segments"] > 0 for node in nodes.values()), nodes
    # Without --workers, a task is cut into as many segments as the cluster has CPUs (4), not
    # as this machine has cores.
    assert sum(node["segments"] for node in nodes.values()) == 2 * 4, nodes


def test_native_writes_to_stderr_are_silenced_only_inside_the_block(capfd) -> None:
    from pipeline.layouts.cluster.instance import _native_stderr_silenced

    os.write(2, b"before\n")
    with _native_stderr_silenced():
        os.write(2, b"Failed to push error to driver\n")  # as Ray's core worker does
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "before\nafter\n"
