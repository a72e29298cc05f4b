#!/usr/bin/env python3
"""Compare layouts on one input: the same as `vidpipe compare`, with the same options.

python scripts/compare_layouts.py INPUT [--layouts serial,threads,...] [--repeat R]
    [--out DIR] [--workload NAME] [run options]
"""

import sys

from pipeline.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))
