"""`vidpipe predict` and `compare --predict`: predictions made, marked and checked."""

from __future__ import annotations

import json

import pytest

from pipeline.config.settings import usable_cores
from pipeline.lab.compare import repredict
from pipeline.lab.model import LAYOUTS

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.timeout(120)
def test_predict_gives_every_layout_on_every_core_count(cli, tiny_clip) -> None:
    here = usable_cores()
    counts = sorted({here, 2, 4, 64})
    done = cli.run("predict", tiny_clip, "--cores", ",".join(map(str, counts)), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    rows = {(r["layout"], r["cores"]): r for r in result["rows"]}
    assert set(rows) == {(layout, c) for layout in LAYOUTS for c in counts}
    for (layout, cores), row in rows.items():
        assert row["wall_seconds"] > 0 and row["speedup"] > 0 and row["limit"] and row["why"]
        assert row["this_machine"] is (cores <= here)
        if layout == "serial":
            assert row["speedup"] == pytest.approx(1.0)
    # Predictions are anchored on the measured serial run.
    serial_here = rows[("serial", here)]["wall_seconds"]
    assert serial_here == pytest.approx(result["serial_wall_seconds"])
    assert {p["cores"] for p in result["perfect"]} == set(counts)
    assert result["startup_seconds"] > 0
    render = next(t for t in result["tasks"] if t["name"] == "render")
    # The serial share passes 1 when two threads are slower than one (a convoy).
    assert 0 <= render["gil_share"] <= 1 and render["serial_share"] >= render["gil_share"]
    for cores in (4, 64):  # more cores: never slower, for a layout that splits the work
        assert rows[("segments", cores)]["wall_seconds"] <= rows[("segments", 2)]["wall_seconds"]


@pytest.mark.timeout(120)
def test_predict_marks_core_counts_this_machine_lacks(cli, tiny_clip) -> None:
    done = cli.run("predict", tiny_clip, "--cores", "4096", "--layouts", "pool")
    assert done.returncode == 0, done.stderr
    assert f"4096 cores (predicted: this machine has {usable_cores()})" in done.stdout
    assert "serial" in done.stdout and "pool" in done.stdout and "perfect" in done.stdout
    assert "hybrid" not in done.stdout


@pytest.mark.timeout(120)
def test_predict_from_a_serial_runs_report(cli, tiny_clip, tmp_path) -> None:
    out = tmp_path / "out"
    assert cli.run("run", tiny_clip, "--out", out, "--layout", "serial").returncode == 0
    report = json.loads((out / "report.json").read_text())
    done = cli.run("predict", tiny_clip, "--from", out, "--json", "--cores", "2")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["serial_wall_seconds"] == report["wall_seconds"]
    assert "measuring a serial run" not in done.stderr


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("setup", "args", "words"),
    [
        ("pool", [], "report.json is of a 'pool' run; predict needs a serial run's"),
        ("serial", ["--particles", "7"], "these options give"),
        (None, [], "no report.json there"),
    ],
)
def test_predict_from_refuses_what_it_cannot_predict_from(
    cli, tiny_clip, tmp_path, setup, args, words
) -> None:
    out = tmp_path / "out"
    if setup:
        made = cli.run("run", tiny_clip, "--out", out, "--layout", setup, "--workers", "2")
        assert made.returncode == 0, made.stderr
    done = cli.run("predict", tiny_clip, "--from", out, *args)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and words in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--layouts", "ray"], "layout 'ray' is not predicted"),
        (["--layouts", "warp"], "unknown layout 'warp'"),
        (["--cores", "0"], "--cores"),
        (["--cores", "two"], "--cores"),
    ],
)
def test_predict_refuses_bad_options(cli, tiny_clip, args, words) -> None:
    done = cli.run("predict", tiny_clip, *args)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr


def test_predict_refuses_a_bad_layout_file_before_measuring(cli, tiny_clip, tmp_path) -> None:
    layout = tmp_path / "bad.toml"
    layout.write_text("tasks = [\n")
    done = cli.run("predict", tiny_clip, "--layouts", layout)
    assert done.returncode == 2, done.stderr
    # One line: the error, and no "measuring" before it.
    assert done.stderr.startswith("error: layout file") and done.stderr.count("\n") == 1


@pytest.mark.timeout(240)
def test_compare_predict_puts_predictions_beside_measurements(cli, tiny_clip, tmp_path) -> None:
    out = tmp_path / "cmp"
    done = cli.run(
        "compare",
        tiny_clip,
        "--layouts",
        "threads,pool,segments",
        "--repeat",
        "1",
        "--workers",
        "2",
        "--out",
        out,
        "--predict",
        timeout=230,
    )
    assert done.returncode == 0, done.stderr
    assert "| predicted | error |" in done.stdout
    results = json.loads((out / "results.json").read_text())
    summaries = {s["layout"]: s for s in results["summaries"]}
    for s in summaries.values():
        assert s["predicted_speedup"] > 0 and s["predicted_limit"]
    assert summaries["serial"]["predicted_speedup"] == pytest.approx(1.0)
    # Direction: where the measurement is clear (20% from serial either way), the prediction
    # is on the same side. On 12 frames, starting worker processes costs more than it saves.
    clear = {k: s for k, s in summaries.items() if abs(s["speedup"] - 1) > 0.2}
    assert "pool" in clear, summaries["pool"]
    for layout, s in clear.items():
        assert (s["predicted_speedup"] > 1) == (s["speedup"] > 1), (layout, s)
    assert summaries["pool"]["predicted_limit"] == "start-up"
    assert results["forecast"]["rows"] and (out / "speedup.png").read_bytes()[:8] == PNG
    # Predicted again from what results.json recorded, by the same model: the same figures.
    table = (out / "results.md").read_text()
    repredict(out)
    assert json.loads((out / "results.json").read_text()) == results
    assert (out / "results.md").read_text() == table
