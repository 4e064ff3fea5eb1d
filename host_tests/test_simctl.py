"""tools/simctl.py: a simulated charger never outlives the program that started it, even one that
is killed (a failing test, a `make run` ended with SIGKILL)."""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PARENT = """
import sys
sys.path.insert(0, sys.argv[1])
from simctl import SimProcess
sim = SimProcess(sys.argv[2], cp_id="ORPHAN").start()
print(sim.proc.pid, flush=True)
import time
time.sleep(600)
"""


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.split(") ", 1)[1][0] != "Z"  # a zombie has died already


def test_a_killed_parent_takes_its_sim_along(built, tmp_path):
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(ROOT / "tools"), str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        sim_pid = int(parent.stdout.readline())
        assert _alive(sim_pid)
        parent.kill()
        parent.wait(10)
        end = time.monotonic() + 10
        while _alive(sim_pid):
            assert time.monotonic() < end, "the sim outlived the program that started it"
            time.sleep(0.05)
    finally:
        parent.kill()
