"""`make run`: a person sees the charger boot against the CSMS simulator and drives both."""

import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_make_run_shows_boot_and_takes_commands(built, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "tools/run.py", "--port", "0", "--data", str(tmp_path / "data")],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()

    def expect(*needles, timeout=20):
        end = time.monotonic() + timeout
        seen = []
        while time.monotonic() < end:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            seen.append(line)
            if all(n in line for n in needles):
                return line
        raise AssertionError(f"no line with {needles}; saw:\n" + "".join(seen[-30:]))

    try:
        expect("CP001 <-", '"BootNotification"')
        expect("CP001 ->", '"Accepted"')
        proc.stdin.write("plug 1 --amps 20\n")
        proc.stdin.flush()
        expect("hw", "connector 1 status", "Preparing")
        proc.stdin.write('call CP001 GetConfiguration {"key":["NumberOfConnectors"]}\n')
        proc.stdin.flush()
        expect("OK ", "NumberOfConnectors")
        proc.stdin.write("bogus words\n")
        proc.stdin.flush()
        expect("ERROR")
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
