"""Planning a job: from the options and the probed input to what each task will do.

`planner` probes the input and builds the `RunPlan`; `tasks` the chains of stages; `pieces`
how each task's output is cut (segments, resumable pieces); `checkpoints` what a task records
for `--resume`; `outdir` every path under `--out`; `ownership` what vidpipe owns there and the
lock a run holds on it.
"""
