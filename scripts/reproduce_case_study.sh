#!/usr/bin/env bash
# Reproduce every figure of docs/case-study.md on this machine, into OUT (case_study_out).
#   bash scripts/reproduce_case_study.sh [OUT]
# Takes about 20 minutes on 2 cores. Needs the plot extra: pip install -e '.[plot]'.
set -euo pipefail
out=${1:-case_study_out}
sample=sample_media/car-detection.mp4
mkdir -p "$out"
python scripts/key_differences.py --out "$out/key_differences"
python scripts/bench_transport.py --size 1920x1080 --frames 200 --repeat 3 | tee "$out/transport.txt"
for workload in gil-bound gil-free io default; do
  vidpipe compare "$sample" --repeat 3 --workload "$workload" --out "$out/$workload"
done
vidpipe compare "$sample" --repeat 3 --tasks render --particles 12000 --glow 0 \
  --layouts hybrid,pool --out "$out/render-python"
vidpipe compare "$sample" --repeat 3 --tasks render --workload gil-free \
  --layouts hybrid,pool --out "$out/render-opencv"
echo "figures in $out/"
