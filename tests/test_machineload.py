"""The lab sees how busy the rest of the machine was while it measured."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from pipeline.instrument import machineload

LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/stat")


@LINUX
def test_a_process_spinning_beside_the_measurement_counts_as_foreign_cpu() -> None:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # started and spinning
        before = machineload.read()
        time.sleep(1.0)
        load = before.until_now()
    finally:
        spinner.kill()
        spinner.wait()
    assert load.foreign_cores is not None and load.foreign_cores > 0.5, load


def test_this_process_own_cpu_is_not_foreign(monkeypatch) -> None:
    start = machineload.LoadReading(wall=0.0, own_cpu=1.0, busy=10.0, steal=0.0)
    later = machineload.LoadReading(wall=2.0, own_cpu=2.5, busy=13.0, steal=0.2)
    monkeypatch.setattr(machineload, "read", lambda: later)
    load = start.until_now()
    assert load.foreign_cpu_seconds == pytest.approx(1.5)  # 3 s busy, 1.5 of them ours
    assert load.foreign_cores == pytest.approx(0.75) and load.steal_seconds == pytest.approx(0.2)
