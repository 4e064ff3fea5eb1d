"""Drive a simulated charger from CPython: start tools/sim.py, wait for `SIM READY`, talk to its
control socket, stop it or cut its power. Used by the tests, `make run` and `make bench`."""

import ctypes
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIM = ROOT / "tools" / "sim.py"
READY = re.compile(r"^SIM READY control=(\S+):(\d+)$")
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)  # resolved before fork: the child only calls prctl


def _die_with_parent():
    # Runs between fork and exec: the sim is in its own session (so a power cut hits it alone),
    # and without this a test or `make run` that is killed would leave it running. The signal
    # comes when the thread that started the sim ends: start sims from a thread that outlives them.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class SimProcess:
    def __init__(
        self,
        data,
        *,
        csms=None,
        cp_id="CP001",
        connectors=1,
        heap=None,
        sets=None,
        ca=None,
        cert=None,
        key=None,
        log_path=None,
        control_port=0,
        app=None,
        micropython=None,
        board=None,
    ):
        self.data = Path(data)
        self.args = ["--data", str(self.data), "--control", f"127.0.0.1:{control_port}"]
        if csms:
            self.args += ["--csms", csms]
        if cp_id:
            self.args += ["--id", cp_id]
        self.args += ["--connectors", str(connectors)]
        if heap:
            self.args += ["--heap", str(heap)]
        if app:
            self.args += ["--app", app]
        if micropython:
            self.args += ["--micropython", str(micropython)]
        if board:
            self.args += ["--board", board]
        for k, v in (sets or {}).items():
            self.args += ["--set", f"{k}={v}"]
        for flag, path in (("--ca", ca), ("--cert", cert), ("--key", key)):
            if path:
                self.args += [flag, str(path)]
        self.log_path = Path(log_path) if log_path else self.data.parent / "sim.log"
        self.proc = None
        self.port = None
        self.ready_count = 0
        self._lines = queue.Queue()
        self._conn = None

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout=30):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(SIM), *self.args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,  # its own process group: a power cut kills exactly the sim
            preexec_fn=_die_with_parent,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        self.wait_ready(timeout)
        return self

    def _pump(self):
        for raw in self.proc.stdout:
            self._lines.put(raw.decode(errors="replace").rstrip("\n"))
        self._lines.put(None)

    def wait_ready(self, timeout=30):
        """Wait for the next `SIM READY` line (the first start, or the restart after a Reset)."""
        end = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no SIM READY within {timeout}s\n{self.log_tail()}") from None
            if line is None:
                raise RuntimeError(f"sim exited ({self.proc.wait()}) before SIM READY\n{self.log_tail()}")
            m = READY.match(line)
            if m:
                self.port = int(m.group(2))
                self.ready_count += 1
                self._drop_conn()
                return self.port

    def terminate(self, timeout=10):
        """SIGTERM: orderly shutdown. Returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._drop_conn()

    def power_cut(self):
        """SIGKILL the sim's whole process group, like pulling the plug."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self._drop_conn()

    def close(self):
        if self.proc and self.proc.poll() is None:
            try:
                self.terminate(10)
            except subprocess.TimeoutExpired:
                self.power_cut()
        if self.proc:
            self._log.close()

    def log_tail(self, n=60):
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    # --- control socket ----------------------------------------------------------------------------
    def _drop_conn(self):
        if self._conn:
            self._conn[0].close()
            self._conn = None

    def request(self, obj, timeout=10):
        """One request on the control socket; returns the reply object."""
        for attempt in (1, 2):
            try:
                if self._conn is None:
                    s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
                    self._conn = (s, s.makefile("rb"))
                s, f = self._conn
                s.sendall(json.dumps(obj).encode() + b"\n")
                line = f.readline()
                if not line:
                    raise ConnectionError("control socket closed")
                return json.loads(line)
            except (OSError, ConnectionError):
                self._drop_conn()
                if attempt == 2:
                    raise

    def ok(self, obj):
        reply = self.request(obj)
        if reply.get("ok") is not True:
            raise AssertionError(f"control request {obj} failed: {reply}")
        return reply

    def state(self):
        return self.ok({"cmd": "state"})

    def connector(self, c=1):
        return next(x for x in self.state()["connectors"] if x["id"] == c)

    def events(self, since=0):
        return self.ok({"cmd": "events", "since": since})["events"]

    def wait_state(self, predicate, timeout=10, what="state"):
        end = time.monotonic() + timeout
        while True:
            st = self.state()
            if predicate(st):
                return st
            if time.monotonic() > end:
                raise TimeoutError(f"{what} not reached; last state {st}")
            time.sleep(0.05)
