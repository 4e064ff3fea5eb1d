"""Install the MicroPython stubs that host_tests/test_typecheck.py checks the boards against: one
directory per port under .venv/stubs/<port>/ (the ports' stubs both define `machine`, so they
cannot share site-packages), pinned by the `# stubs: <port> <requirement>...` lines of
requirements.txt. Run by `make venv`; a port whose stamp matches its pins is skipped, so the
tests themselves never download anything."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent.parent


def pins():
    """{port: [requirement, ...]} from requirements.txt."""
    out = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        parts = line.split()
        if parts[:2] == ["#", "stubs:"] and len(parts) > 3:
            out[parts[2]] = parts[3:]
    return out


def stub_dir(port):
    return VENV / "stubs" / port


def installed(port):
    """True when the port's stubs are installed at the pinned versions."""
    stamp = stub_dir(port) / ".installed"
    return stamp.exists() and stamp.read_text() == " ".join(pins()[port])


def install(port):
    if installed(port):
        return
    target = stub_dir(port)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile"]
        + ["--upgrade", "--target", str(target), *pins()[port]],
        check=True,
    )
    (target / ".installed").write_text(" ".join(pins()[port]))


if __name__ == "__main__":
    for port in pins():
        install(port)
