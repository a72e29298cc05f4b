"""Predict, then measure: the model's speedups beside the measured ones, on three workloads.

For each workload, `vidpipe compare SAMPLE --workload W --repeat R --predict --out OUT/W`,
then one table of predicted against measured speedup per layout and workload, with the error,
and one of the predictions for 4 to 16 cores. Writes OUT/accuracy.md and prints it.

With --render, nothing is measured: the comparisons in FROM (by default the committed ones,
docs/data/case-study/compare/) are predicted again from the ingredients they recorded, by the
model as it is now (`pipeline.lab.compare.repredict`), so that a change to the model is checked
against the same measurements in seconds. Their results, charts and accuracy.md go into OUT,
by default a new temporary folder (printed): FROM is left as it is, and nothing is written into
the repository unless OUT is there (`--out docs/data/case-study/compare` updates the committed
predictions).

    python scripts/predict_vs_measure.py [--out predict_out] [--repeat 3]
    python scripts/predict_vs_measure.py --render [--from DIR] [--out DIR]

About 20 minutes on 2 cores with --repeat 3. `make case-study` runs the same comparisons (with
more layouts) into docs/data/case-study/compare/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline.lab.compare import repredict
from pipeline.lab.plots import speedup_chart
from pipeline.lab.summary import LayoutSummary

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_media" / "car-detection.mp4"
#: The comparisons `make case-study` measured, committed: what --render predicts by default.
COMMITTED = ROOT / "docs" / "data" / "case-study" / "compare"
WORKLOADS = ("gil-bound", "gil-free", "default")
#: Predictions off by more than this share of the measured speedup are marked as misses.
TOLERANCE = 0.15


def measure(out: Path, repeat: int) -> None:
    for workload in WORKLOADS:
        sample = str(SAMPLE.relative_to(ROOT))  # as the docs write it; run from the root
        command = [sys.executable, "-m", "pipeline", "compare", sample, "--workload"]
        command += [
            workload,
            "--repeat",
            str(repeat),
            "--predict",
            "--out",
            str((out / workload).resolve()),
        ]
        print("$ vidpipe " + " ".join(command[3:]), file=sys.stderr)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)


def render(source: Path, out: Path) -> None:
    """Predict the comparisons in `source` again into `out` (the same folder: in place): each
    workload's results.json and results.md, and its speedup chart."""
    for workload in WORKLOADS:
        folder = out / workload
        if source.resolve() != out.resolve():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / workload / "results.json", folder / "results.json")
        summaries = repredict(folder)
        cores = json.loads((folder / "results.json").read_text())
        speedup_chart(summaries, cores["forecast"]["usable_cores"], folder / "speedup.png")


def prediction_errors(
    results: dict[str, dict[str, Any]],
) -> list[tuple[float, str, dict[str, Any]]]:
    """(error, workload, summary) of every predicted layout but serial, in table order; the
    error as `LayoutSummary.prediction_error` states it: (predicted - measured) / measured."""
    return [
        (LayoutSummary(**s).prediction_error or 0.0, workload, s)
        for workload, data in results.items()
        for s in data["summaries"]
        if s["layout"] != "serial" and s["predicted_speedup"] is not None
    ]


def accuracy_table(results: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| workload | layout | measured | predicted | error | limit (predicted) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for error, workload, s in prediction_errors(results):
        miss = " **miss**" if abs(error) > TOLERANCE else ""
        lines.append(
            f"| {workload} | {s['layout']} | {s['speedup']:.2f}x | "
            f"{s['predicted_speedup']:.2f}x | {error:+.0%}{miss} | {s['predicted_limit']} |"
        )
    return lines


def cores_table(results: dict[str, dict[str, Any]]) -> list[str]:
    counts = sorted({r["cores"] for d in results.values() for r in d["forecast"]["rows"]})
    here = next(iter(results.values()))["forecast"]["usable_cores"]
    header = " | ".join(f"{c} cores" + (" (measured)" if c == here else "") for c in counts)
    lines = [f"| workload | layout | {header} |", "| --- | --- |" + " --- |" * len(counts)]
    for workload, data in results.items():
        measured = {s["layout"]: s["speedup"] for s in data["summaries"]}
        rows = data["forecast"]["rows"] + data["forecast"]["perfect"]
        for layout in [*(s["layout"] for s in data["summaries"]), "perfect"]:
            cells = []
            for count in counts:
                row = next((r for r in rows if (r["layout"], r["cores"]) == (layout, count)), None)
                if row is None:
                    cells.append("-")
                elif count == here and layout in measured:
                    cells.append(f"{measured[layout]:.2f}x (pred. {row['speedup']:.2f}x)")
                else:
                    cells.append(f"{row['speedup']:.2f}x {row['limit']}")
            lines.append(f"| {workload} | {layout} | " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        help="where results go (predict_out; with --render, a new temporary folder)",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--render",
        action="store_true",
        help="measure nothing: predict FROM's measurements again with the model as it is now",
    )
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=COMMITTED,
        help="with --render: the comparisons to predict again, left as they are unless OUT is "
        "the same folder (docs/data/case-study/compare, the committed ones)",
    )
    args = parser.parse_args()
    if args.render:  # measurements made before, predicted again by the model as it is now
        if args.out is None:
            args.out = Path(tempfile.mkdtemp(prefix="predict-render-"))
        render(args.source, args.out)
    else:
        args.out = args.out or Path("predict_out")
        measure(args.out, args.repeat)
    results = {w: json.loads((args.out / w / "results.json").read_text()) for w in WORKLOADS}
    env = next(iter(results.values()))["environment"]
    worst = max((abs(e), w, s["layout"]) for e, w, s in prediction_errors(results))
    text = "\n".join(
        [
            "# Predicted and measured speedups",
            "",
            f"Measured: `vidpipe compare {SAMPLE.relative_to(ROOT)} --workload W --repeat "
            f"{next(iter(results.values()))['repeat']} --predict`, medians, on "
            f"{env['usable_cores']} usable cores (x264 and OpenCV pinned to one thread). "
            f"Predicted: the model, from each comparison's median serial run.",
            "",
            *accuracy_table(results),
            "",
            f"Worst error: {worst[0]:.0%} ({worst[1]}, {worst[2]}); a miss is an error above "
            f"{TOLERANCE:.0%}.",
            "",
            "Speedup over serial by core count: measured where the machine has them, "
            "predicted (with the limit the model names) elsewhere.",
            "",
            *cores_table(results),
            "",
        ]
    )
    (args.out / "accuracy.md").write_text(text)
    print(text)
    print(f"written into {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
