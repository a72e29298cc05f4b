"""What a learner meets first: messages that name the cause (issue 23, C2, C3 and the learner's
small things): layout files with a BOM, unknown options, linked folders, the colour stages,
"did you mean ...?", the sample's keyframes and `predict_vs_measure.py --render`."""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import ROOT
from make_sample import make_sample

from pipeline import RunOptions
from pipeline.cli.args import build_parser
from pipeline.config.layout_file import read_layout_file
from pipeline.config.workloads import apply_workload
from pipeline.errors import ConfigError, did_you_mean
from pipeline.lab.stagecheck import check_stage
from pipeline.layouts import layout_info
from pipeline.media.probe import probe
from pipeline.plan import ownership
from pipeline.plan.planner import plan
from pipeline.stages import BUILTIN_STAGES
from pipeline.stages.loader import build_stage, load_stage_class, parse_stage_spec

# --- C2: layout files ------------------------------------------------------------------------


def test_a_layout_file_starting_with_a_utf8_bom_is_read(tmp_path: Path) -> None:
    layout = tmp_path / "bom.toml"
    layout.write_bytes(b"\xef\xbb\xbf" + b'tasks = "threads"\n[frames]\npool = "threads"\n')
    read = read_layout_file(layout)
    assert read.tasks.value == "threads" and read.frames.pool.value == "threads"


def test_a_stage_file_starting_with_a_utf8_bom_loads(tmp_path: Path) -> None:
    """The neighbour: a stage file saved by an editor that writes a BOM (Python runs it)."""
    stage = tmp_path / "bom_stage.py"
    stage.write_bytes(b"\xef\xbb\xbfdef same(frame, index):\n    return frame\n")
    assert load_stage_class(f"{stage}:same").__name__ == "same"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[task.render]\nstages = [{ height = 3 }]",
            "[task.render] stages[0]: a stage table needs 'stage'",
        ),
        ("[task.render]\nstages = ['resize', 5]", "[task.render] stages[1]: must be"),
        ("[task]\nrender = 5", "[task.render] must be a table"),
        ("[task.render]\nstages = ['warp']", "[task.render] stages[0]: 'warp' is neither"),
        ("[task.render]\nframes = { pool = 'gpu' }", "[task.render] frames: 'pool' must be"),
        ("[frames]\nwindow = 'big'", "[frames] 'window' must be a whole number"),
    ],
)
def test_layout_file_messages_separate_where_from_what(
    text: str, expected: str, tmp_path: Path
) -> None:
    layout = tmp_path / "bad.toml"
    layout.write_text(text + "\n")
    with pytest.raises(ConfigError) as caught:
        read_layout_file(layout)
    message = str(caught.value)
    assert message.startswith(f"layout file {layout}: "), message
    assert expected in message, message
    assert "  " not in message, message


# --- C3: unknown options, linked folders -----------------------------------------------------


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    handlers = {name: (lambda args: 0) for name in _COMMANDS}
    with pytest.raises(SystemExit) as caught:
        build_parser(handlers).parse_args(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err.strip()


_COMMANDS = ("run", "compare", "predict", "probe", "layouts", "stages", "check-stage", "workloads")


@pytest.mark.parametrize(
    "argv",
    [
        ["--bogus"],
        ["run", "--bogus"],
        ["run", "in.mp4", "--bogus"],
        ["compare", "--bogus"],
        ["predict", "--bogus"],
        ["probe", "--bogus"],
        ["check-stage", "--bogus"],
        ["--bogus", "stages"],
    ],
)
def test_an_unknown_option_is_named_before_missing_arguments(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _usage_error(argv, capsys) == "error: unrecognized arguments: --bogus"


@pytest.mark.parametrize(
    ("argv", "missing"),
    [([], "COMMAND"), (["run"], "input, --out"), (["run", "in.mp4"], "--out")],
)
def test_missing_arguments_are_still_named(
    argv: list[str], missing: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _usage_error(argv, capsys) == f"error: the following arguments are required: {missing}"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["rn"], "argument COMMAND: invalid choice: 'rn' (did you mean 'run'?) (choose from"),
        (
            ["run", "in.mp4", "--out", "o", "--transport", "shmm"],
            "argument --transport: invalid choice: 'shmm' (did you mean 'shm'?)",
        ),
        (
            ["run", "in.mp4", "--out", "o", "--preset", "ultrafst"],
            "argument --preset: invalid choice: 'ultrafst' (did you mean 'ultrafast'?)",
        ),
        (
            ["run", "in.mp4", "--out", "o", "--start-method", "x"],
            "argument --start-method: invalid",
        ),
    ],
)
def test_a_misspelt_choice_gets_a_suggestion(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The neighbour in the parser: a command's name and the options with fixed choices."""
    assert _usage_error(argv, capsys).startswith(f"error: {expected}")


def test_vidpipe_bogus_names_the_option_end_to_end(cli) -> None:
    done = cli.run("--bogus")
    assert done.returncode == 2
    assert done.stderr == "error: unrecognized arguments: --bogus\n"


def _make_link(at: Path, to: str, tmp_path: Path) -> None:
    target = tmp_path / "target"
    if to == "a directory":
        target.mkdir()
    elif to == "a file":
        target.write_text("the user's\n")
    at.symlink_to(target)


@pytest.mark.parametrize("to", ["a directory", "a file", "nothing"])
def test_a_linked_vidpipe_folder_is_called_a_symbolic_link(to: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    _make_link(out / ".vidpipe", to, tmp_path)
    with pytest.raises(ConfigError) as caught, ownership.hold(out, ownership.Claim()):
        pass
    message = str(caught.value)
    assert f"{out / '.vidpipe'} is a symbolic link (to {to})" in message, message
    assert "not a directory" not in message
    assert (out / ".vidpipe").is_symlink(), "the link is left as it was"


@pytest.mark.parametrize("to", ["a file", "nothing"])
def test_an_out_that_is_a_link_to_no_folder_is_called_a_symbolic_link(
    to: str, tmp_path: Path
) -> None:
    """The neighbour: `--out` itself (a link to a folder is the user's choice, and used)."""
    out = tmp_path / "out"
    _make_link(out, to, tmp_path)
    with pytest.raises(ConfigError) as caught, ownership.hold(out, ownership.Claim()):
        pass
    assert f"--out {out}: is a symbolic link (to {to})" in str(caught.value)


def test_a_linked_compare_run_folder_is_called_a_symbolic_link(tmp_path: Path) -> None:
    from pipeline.lab.compare import _check_runs_folders

    (tmp_path / "runs").mkdir()
    _make_link(tmp_path / "runs" / "serial-1", "a directory", tmp_path)
    with pytest.raises(ConfigError, match=r"serial-1 is a symbolic link \(to a directory\)"):
        _check_runs_folders(tmp_path, {"serial": "serial"}, 1, force=True)


# --- The colour stages -----------------------------------------------------------------------


def test_the_colour_stages_are_listed(cli) -> None:
    assert {"to-bgr", "to-i420"} <= set(BUILTIN_STAGES)
    done = cli.run("stages")
    assert done.returncode == 0, done.stderr
    listed = {line.split()[0]: line for line in done.stdout.splitlines()}
    assert "takes yuv420p" in listed["to-bgr"] and "takes bgr24" in listed["to-i420"]


@pytest.mark.parametrize(("name", "pix_fmt"), [("to-bgr", "yuv420p"), ("to-i420", "bgr24")])
def test_check_stage_accepts_the_colour_stages(name: str, pix_fmt: str) -> None:
    report = check_stage(parse_stage_spec(name), width=64, height=48, count=4)
    assert report.ok, report
    assert report.pix_fmt == pix_fmt


def test_a_colour_stage_named_in_a_chain_is_not_doubled(tiny_clip, tmp_path: Path) -> None:
    """`--stage compress:to-bgr` then a BGR stage: no second conversion before it."""
    from pipeline import run

    to_bgr, resize = parse_stage_spec("to-bgr"), parse_stage_spec("resize:height=60")
    stages = (("compress", to_bgr), ("compress", resize))
    options = RunOptions(
        out_dir=tmp_path / "o", layout="serial", tasks=("compress",), stages=stages
    )
    report = run(tiny_clip, options)
    assert report.tasks["compress"].stages == ["to-bgr", "resize(height=60)", "to-i420"]


# --- "did you mean ...?" ---------------------------------------------------------------------


def test_did_you_mean_names_a_close_name_only() -> None:
    assert did_you_mean("pol", ["serial", "pool", "processes"]) == " (did you mean 'pool'?)"
    assert did_you_mean("teleport", ["serial", "pool"]) == ""


def test_an_unknown_layout_gets_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"^unknown layout 'pol' \(did you mean 'pool'\?\)"):
        layout_info("pol")
    with pytest.raises(ConfigError) as caught:
        layout_info("teleport")
    assert "did you mean" not in str(caught.value)


def test_an_unknown_workload_gets_a_suggestion(tmp_path: Path) -> None:
    options = RunOptions(out_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"unknown workload 'gil-bond' \(did you mean 'gil-b"):
        apply_workload(options, "gil-bond", set())


def test_an_unknown_task_gets_a_suggestion(tiny_clip, tmp_path: Path) -> None:
    options = RunOptions(out_dir=tmp_path / "o", tasks=("rendr",))
    with pytest.raises(ConfigError, match=r"unknown task 'rendr' \(did you mean 'render'\?\)"):
        plan(tiny_clip, options)


def test_a_stage_for_a_task_not_run_gets_a_suggestion(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"task 'rendr' is not run \(did you mean 'render'\?\)"):
        RunOptions(out_dir=tmp_path, stages=(("rendr", parse_stage_spec("resize")),))


def test_a_layout_file_task_not_run_gets_a_suggestion(tmp_path: Path) -> None:
    from pipeline.config.options import apply_layout_file

    layout = tmp_path / "typo.toml"
    layout.write_text("[task.rendr]\nbuiltin_stages = false\n")
    options = RunOptions(out_dir=tmp_path, layout=str(layout))
    with pytest.raises(ConfigError, match=r"\[task.rendr\] is not run \(did you mean 'render'\?\)"):
        apply_layout_file(options)


@pytest.mark.parametrize(
    ("ref", "pattern"),
    [
        ("resiz", r"'resiz' is neither a built-in stage.* \(did you mean 'resize'\?\)"),
        ("animat:particles=3", r"'animat:particles=3' is neither.* \(did you mean 'animate'\?\)"),
    ],
)
def test_an_unknown_stage_gets_a_suggestion(ref: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        build_stage(parse_stage_spec(ref))


def test_a_layout_file_choice_gets_a_suggestion(tmp_path: Path) -> None:
    layout = tmp_path / "typo.toml"
    layout.write_text('tasks = "thread"\n')
    with pytest.raises(ConfigError, match=r"got 'thread' \(did you mean 'threads'\?\)"):
        read_layout_file(layout)


def test_run_with_a_close_layout_name_suggests_it(cli, tiny_clip, tmp_path: Path) -> None:
    done = cli.run("run", tiny_clip, "--out", tmp_path / "o", "--layout", "pol")
    assert done.returncode == 2
    assert done.stderr.startswith("error: unknown layout 'pol' (did you mean 'pool'?) ")
    assert done.stderr.count("\n") == 1


def test_compare_with_a_close_workload_name_suggests_it(cli, tiny_clip, tmp_path: Path) -> None:
    done = cli.run("compare", tiny_clip, "--out", tmp_path / "c", "--workload", "defualt")
    assert done.returncode == 2
    assert "unknown workload 'defualt' (did you mean 'default'?)" in done.stderr


# --- scripts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fps", ["25", "30000/1001"])
def test_the_default_sample_has_a_keyframe_at_least_every_2_seconds(
    fps: str, tmp_path: Path
) -> None:
    clip = make_sample(tmp_path / "keys.mp4", size="64x48", frames=130, fps=fps)
    media = probe(clip)
    starts = [index for index, _ in media.keyframes]
    assert starts[0] == 0 and len(starts) >= 3, starts
    gaps = [b - a for a, b in zip(starts, [*starts[1:], media.packets], strict=True)]
    assert max(gaps) <= 2 * Fraction(fps), starts


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _predict_render(*args: str | Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "scripts/predict_vs_measure.py", "--render", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, "TMPDIR": str(tmp)},
    )


def test_predict_render_writes_nothing_into_the_repository(tmp_path: Path) -> None:
    docs = ROOT / "docs" / "data" / "case-study" / "compare"
    before, top = _snapshot(docs), sorted(p.name for p in ROOT.iterdir())
    done = _predict_render(tmp=tmp_path)
    assert done.returncode == 0, done.stderr
    assert _snapshot(docs) == before, "the committed measurements were rewritten"
    new = {p.name for p in ROOT.iterdir()} - set(top) - {".pytest_cache", "__pycache__"}
    assert not new, f"it wrote into the checkout: {new}"
    (written,) = tmp_path.glob("predict-render-*")
    assert str(written) in done.stderr
    assert (written / "accuracy.md").read_text().startswith("# Predicted and measured")
    for workload in ("gil-bound", "gil-free", "default"):
        assert (written / workload / "results.json").is_file()
        assert (written / workload / "speedup.png").is_file()


def test_predict_render_writes_where_it_is_told(tmp_path: Path) -> None:
    out = tmp_path / "again"
    done = _predict_render("--out", out, tmp=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (out / "accuracy.md").is_file() and not list(tmp_path.glob("predict-render-*"))
    # and from there again: OUT's own comparisons, rewritten in place as asked
    done = _predict_render("--from", out, "--out", out, tmp=tmp_path)
    assert done.returncode == 0, done.stderr


def test_parser_handlers_cover_every_command() -> None:
    """Guard for `_usage_error`: the commands it gives handlers for are the parser's."""
    parser = build_parser({name: (lambda args: 0) for name in _COMMANDS})
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(_COMMANDS)


def test_check_stage_of_a_colour_stage_at_an_odd_size_says_why(cli) -> None:
    """I420 cannot hold an odd size: `to-bgr` has no frames to take, `to-i420` none to give."""
    done = cli.run("check-stage", "to-bgr", "--size", "65x49", "--frames", "4")
    assert done.returncode == 2
    assert done.stderr == (
        "error: --size 65x49: stage to-bgr takes only yuv420p frames, which need an even width "
        "and height; give an even --size\n"
    )
    done = cli.run("check-stage", "to-i420", "--size", "65x49", "--frames", "4")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "I420 frames need an even width and height, got 65x49" in done.stderr
