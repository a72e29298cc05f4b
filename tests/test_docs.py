"""The documents say what their data and the code say: generated parts match the committed
data, sentences that read figures follow the figures, and the README's report example names
only what a real run reports."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import docs_render
import pytest
from conftest import ROOT

from pipeline import RunOptions, run

DATA = ROOT / "docs" / "data" / "case-study"


def test_committed_documents_are_what_their_data_render_to() -> None:
    stale = docs_render.render_all(DATA, ROOT, write=False)
    assert stale == [], "run `python scripts/case_study.py render` and commit the result"


def test_every_generated_part_has_a_renderer_and_every_renderer_a_part() -> None:
    texts = [(ROOT / doc).read_text() for doc in docs_render.DOCUMENTS]
    named = [m["name"] for text in texts for m in docs_render.BLOCK.finditer(text)]
    assert sorted(named) == sorted(docs_render.RENDERERS)  # each once, none unknown


@pytest.fixture
def copy(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the data and of the documents, to change one figure in."""
    data = tmp_path / "data"
    shutil.copytree(DATA, data, ignore=shutil.ignore_patterns("*.png"))
    for doc in docs_render.DOCUMENTS:
        (tmp_path / doc).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / doc, tmp_path / doc)
    return data, tmp_path


def _edit(path: Path, change: object) -> None:
    value = json.loads(path.read_text())
    change(value)  # type: ignore[operator]
    path.write_text(json.dumps(value))


def test_a_changed_figure_makes_the_check_fail(copy: tuple[Path, Path]) -> None:
    data, root = copy
    _edit(data / "transport.json", lambda t: t.update(shm_fps=t["shm_fps"] * 2))
    assert docs_render.render_all(data, root, write=False) == [root / "README.md"]


def _set_speedup(results: dict, layout: str, speedup: float) -> None:
    next(s for s in results["summaries"] if s["layout"] == layout)["speedup"] = speedup


@pytest.mark.parametrize(
    ("hybrid", "pool", "says", "not_says"),
    [
        (1.3, 1.2, "threads match or beat processes", "processes beat threads"),
        (1.1, 1.4, "processes beat threads here (1.40x against 1.10x)", "threads match or beat"),
    ],
)
def test_a_sentence_that_reads_a_figure_follows_the_figure(
    copy: tuple[Path, Path], hybrid: float, pool: float, says: str, not_says: str
) -> None:
    data, root = copy

    def change(results: dict) -> None:
        _set_speedup(results, "hybrid", hybrid)
        _set_speedup(results, "pool", pool)

    _edit(data / "compare" / "render-opencv" / "results.json", change)
    docs_render.render_all(data, root, write=True)
    text = (root / "docs" / "case-study.md").read_text()
    assert says in text
    assert not_says not in text


def test_an_unknown_generated_part_is_an_error(copy: tuple[Path, Path]) -> None:
    data, root = copy
    doc = root / "README.md"
    doc.write_text(doc.read_text() + "\n<!-- generated: nonsense -->\n<!-- end generated -->\n")
    with pytest.raises(docs_render.RenderError, match="no renderer for the generated part 'nons"):
        docs_render.render_all(data, root, write=False)


def _report_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Reading the report") :]
    return section[section.index("```") + 3 : section.index("```", section.index("```") + 3)]


def test_the_readme_report_example_names_only_what_a_default_run_reports(
    tiny_clip: Path, tmp_path: Path
) -> None:
    example = _report_example()
    roles = set(re.findall(r'"role": "([^"]+)"', example))
    timings = {
        key
        for block in re.findall(r'"timings": \{([^}]*)\}', example)
        for key in re.findall(r'"([^"]+)":', block)
    }
    assert {"main", "ffmpeg-transcode:compress", "ffmpeg-encode:render"} <= roles
    assert {"transcode", "decode", "stage animate"} <= timings
    run(tiny_clip, RunOptions(out_dir=tmp_path / "out"))  # the README's command: defaults
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert roles <= {p["role"] for p in report["processes"]}
    reported = {key for task in report["tasks"].values() for key in task["timings"]}
    assert timings <= reported
    keys = set(re.findall(r'"([a-z_]+)":', example)) - timings
    top = set(report) | {k for t in report["tasks"].values() for k in t}
    inner = {k for p in report["processes"] for k in p} | set(report["input"])
    inner |= set(report["input"]["video"]) | set(report["environment"])
    inner |= {k for t in report["tasks"].values() for b in t["cpu_breakdown"].values() for k in b}
    inner |= {k for t in report["tasks"].values() for k in t["job"]}
    inner |= set(report["tasks"]) | {
        k for t in report["tasks"].values() for k in t["cpu_breakdown"]
    }
    assert keys - top - inner - {"codec"} == set()


def test_render_without_measurements_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(docs_render.RenderError, match=r"no measurements in .*make case-study"):
        docs_render.render_all(tmp_path, ROOT, write=False)


def test_a_failed_measurement_leaves_the_data_as_they_were(
    copy: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys

    import case_study

    data, _ = copy
    before = sorted(p.read_bytes() for p in data.rglob("*") if p.is_file())
    calls = []

    def failing(*args: str, **kwargs: object) -> None:
        calls.append(args)
        if len(calls) == 2:  # after the note's table: the transport benchmark fails
            raise subprocess.CalledProcessError(1, [sys.executable, *args])
        if args[0] == "scripts/key_differences.py":  # new figures, before the failure
            Path(args[2]).mkdir(parents=True, exist_ok=True)
            (Path(args[2]) / "key_differences.json").write_text("{}")

    monkeypatch.setattr(case_study, "DATA", data)
    monkeypatch.setattr(case_study, "_python", failing)
    monkeypatch.setattr(sys, "argv", ["case_study.py", "measure", "--repeat", "1"])
    assert case_study.main() == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("failed (exit 1); docs/data/case-study is unchanged")
    )
    assert sorted(p.read_bytes() for p in data.rglob("*") if p.is_file()) == before
