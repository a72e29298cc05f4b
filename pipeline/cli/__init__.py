"""The command line: `vidpipe run|compare|predict|probe|layouts|stages|check-stage|workloads`.

`main` parses the arguments (`args`), runs a command (`commands`) and maps errors to one-line
messages and exit codes; `output` prints what a run did; `progress` draws the tqdm bars.
Everything heavier is imported by the command that needs it, so that listing commands start
fast.
"""

from .main import main

__all__ = ["main"]
