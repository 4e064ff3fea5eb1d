"""pytest plugin: MicroPython test files run inside the MicroPython Unix port.

Files host_tests/mp/test_*.py are MicroPython code. Each top-level `def test_*` or
`async def test_*` becomes one pytest item per interpreter: `test_x.py::mp64::test_y` on the
64-bit Unix port of the venv and, where `../shared/micropython32/micropython` sits beside the
repository (CI), `test_x.py::mp32::test_y` on a 32-bit build (4-byte pointers, 31-bit small ints,
as on ESP32 and RP2040). `--micropython PATH` (repeatable) or `MP_MICROPYTHON=PATH[:PATH...]`
replaces that list; each interpreter is labelled by its word size (mp32, mp64).

The whole file runs in one `micropython` process per interpreter (from the .mpy build of the
sim board: MICROPYPATH=build/sim:host_tests/mp:.frozen), and each item reports its own result
and traceback. A file may set its heap with a line `# mp-heap: 256K` (default 2M, MicroPython's
own default); it is sized for the 64-bit port and kept on the 32-bit one (objects are smaller).
"""

import ast
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MP_DIR = ROOT / "host_tests" / "mp"
MICROPYTHON = Path(sys.executable).parent / "micropython"
MICROPYTHON32 = ROOT.parent / "shared" / "micropython32" / "micropython"
FILE_TIMEOUT_S = 300
_INTERPRETERS = pytest.StashKey[list]()


def micropython_env(board="sim", extra=()):
    env = dict(os.environ)
    parts = [str(ROOT / "build" / board), *map(str, extra), ".frozen"]
    env["MICROPYPATH"] = ":".join(parts)
    return env


def pytest_addoption(parser):
    parser.addoption(
        "--micropython",
        action="append",
        metavar="PATH",
        help="MicroPython Unix port for host_tests/mp (repeatable; default: the venv's and, if present, "
        "../shared/micropython32/micropython; env MP_MICROPYTHON=PATH[:PATH...])",
    )


def _word_bits(exe):
    """32 or 64 for a MicroPython that runs, else None."""
    try:
        proc = subprocess.run(
            [str(exe), "-c", "import sys; print(64 if sys.maxsize > 1 << 32 else 32)"],
            capture_output=True,
            timeout=20,
        )
        return int(proc.stdout) if proc.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def _interpreters(config):
    """[(label, path)]: the interpreters every MicroPython test file runs on."""
    given = config.getoption("micropython") or [
        p for p in os.environ.get("MP_MICROPYTHON", "").split(":") if p
    ]
    candidates = [Path(p).resolve() for p in given] or [MICROPYTHON]
    if not given and MICROPYTHON32.is_file():
        candidates.append(MICROPYTHON32)  # optional: a clone without ../shared runs the 64-bit items only
    found = []
    for exe in candidates:
        bits = _word_bits(exe)
        if bits is None:
            if given:
                raise pytest.UsageError(f"MicroPython interpreter {exe} does not run")
            if exe != MICROPYTHON:
                continue  # the optional 32-bit port cannot run on this host
            bits = 64  # the venv's: its items fail with the reason
        label = f"mp{bits}"
        n = sum(1 for lab, _ in found if lab.split("-")[0] == label)
        found.append((f"{label}-{n + 1}" if n else label, exe))
    return found


def pytest_configure(config):
    config.stash[_INTERPRETERS] = _interpreters(config)


def pytest_report_header(config):
    return "micropython: " + ", ".join(f"{label}={exe}" for label, exe in config.stash[_INTERPRETERS])


def pytest_pycollect_makemodule(module_path, parent):
    path = Path(module_path)
    if path.parent == MP_DIR and path.name.startswith("test_"):
        return MpFile.from_parent(parent, path=path)
    return None


class MpFile(pytest.File):
    def collect(self):
        tree = ast.parse(self.path.read_text())
        names = [
            node.name
            for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")
        ]
        for label, exe in self.config.stash[_INTERPRETERS]:
            yield MpRun.from_parent(self, name=label, exe=exe, tests=names)


class MpRun(pytest.Collector):
    """One test file on one interpreter: one micropython process for the selected items."""

    def __init__(self, *, exe, tests, **kw):
        super().__init__(**kw)
        self.exe, self.tests, self.results = exe, tests, None

    def collect(self):
        for name in self.tests:
            yield MpItem.from_parent(self, name=name)

    def run_all(self):
        if self.results is not None:
            return self.results
        names = [item.name for item in self.session.items if item.parent is self]
        src = self.path.read_text()
        m = re.search(r"^# mp-heap: (\S+)", src, re.M)
        heap = m.group(1) if m else "2M"
        cmd = [str(self.exe), "-X", f"heapsize={heap}", str(MP_DIR / "_mprun.py"), self.path.stem, *names]
        env = micropython_env(extra=[MP_DIR])
        with tempfile.TemporaryDirectory(prefix=f"mp-{self.path.stem}-") as scratch:
            env["MP_TMP"] = scratch  # host_tests/mp/mptmp.py: this run's own files
            try:
                proc = subprocess.run(cmd, capture_output=True, env=env, timeout=FILE_TIMEOUT_S, cwd=MP_DIR)
                out, err = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
                rc = proc.returncode
            except subprocess.TimeoutExpired as e:
                out = (e.stdout or b"").decode(errors="replace")
                err, rc = f"timed out after {FILE_TIMEOUT_S}s", -1
        self.results = parse_results(out)
        self.crash = f"{self.exe} exited {rc}\n--- stdout ---\n{out[-4000:]}\n--- stderr ---\n{err[-4000:]}"
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
            return f"MicroPython test {self.parent.name}::{self.name} failed:\n{excinfo.value}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"{self.parent.name}::{self.name}"
