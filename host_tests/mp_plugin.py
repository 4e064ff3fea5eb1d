"""pytest plugin: MicroPython test files run inside the MicroPython Unix port.

Files host_tests/mp/test_*.py are MicroPython code. Each top-level `def test_*` or
`async def test_*` becomes one pytest item. The whole file runs in one `micropython`
process (from the .mpy build of the sim board: MICROPYPATH=build/sim:host_tests/mp:.frozen),
and each item reports its own result and traceback. A file may set its heap with a
line `# mp-heap: 256K` (default 2M, MicroPython's own default).
"""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MP_DIR = ROOT / "host_tests" / "mp"
MICROPYTHON = Path(sys.executable).parent / "micropython"
FILE_TIMEOUT_S = 300


def micropython_env(board="sim", extra=()):
    env = dict(os.environ)
    parts = [str(ROOT / "build" / board), *map(str, extra), ".frozen"]
    env["MICROPYPATH"] = ":".join(parts)
    return env


def pytest_pycollect_makemodule(module_path, parent):
    path = Path(module_path)
    if path.parent == MP_DIR and path.name.startswith("test_"):
        return MpFile.from_parent(parent, path=path)
    return None


class MpFile(pytest.File):
    def collect(self):
        self.results = None
        tree = ast.parse(self.path.read_text())
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
                yield MpItem.from_parent(self, name=node.name)

    def run_all(self):
        if self.results is not None:
            return self.results
        names = [item.name for item in self.session.items if item.parent is self]
        src = self.path.read_text()
        m = re.search(r"^# mp-heap: (\S+)", src, re.M)
        heap = m.group(1) if m else "2M"
        cmd = [str(MICROPYTHON), "-X", f"heapsize={heap}", str(MP_DIR / "_mprun.py"), self.path.stem, *names]
        env = micropython_env(extra=[MP_DIR])
        try:
            proc = subprocess.run(cmd, capture_output=True, env=env, timeout=FILE_TIMEOUT_S, cwd=MP_DIR)
            out, err = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
            rc = proc.returncode
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode(errors="replace")
            err, rc = f"timed out after {FILE_TIMEOUT_S}s", -1
        self.results = parse_results(out)
        self.crash = f"micropython exited {rc}\n--- stdout ---\n{out[-4000:]}\n--- stderr ---\n{err[-4000:]}"
        return self.results


def parse_results(out):
    results = {}
    lines = out.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("@@RESULT "):
            _, name, status, _n = line.split(" ", 3)
            body = []
            i += 1
            while i < len(lines) and not lines[i].startswith("@@RESULT "):
                body.append(lines[i])
                i += 1
            results[name] = (status, "\n".join(body).strip())
            continue
        i += 1
    return results


class MpFailure(Exception):
    pass


class MpItem(pytest.Item):
    def runtest(self):
        results = self.parent.run_all()
        if self.name not in results:
            raise MpFailure(f"{self.name} did not report a result\n{self.parent.crash}")
        status, text = results[self.name]
        if status != "ok":
            raise MpFailure(text)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, MpFailure):
            return f"MicroPython test {self.name} failed:\n{excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"mp::{self.name}"
