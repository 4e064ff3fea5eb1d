"""mypy over the real boards' code (boards/<port>.py, firmware/hal/) against the official
MicroPython stubs of each port. `make venv` installs the stubs once per port into
.venv/stubs/<port>/ (tools/install_stubs.py; pins: the `# stubs:` lines of requirements.txt).
Findings listed in KNOWN are accepted for now (NewType ticks, an optional WLAN): any other fails."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import build
import install_stubs

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent.parent
HAL = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "firmware" / "hal").glob("*.py"))
# Drivers of one port's peripherals (rp2.DMA) are checked against the boards that get them.
PORT_DRIVERS = {f"firmware/{rel}": boards for rel, boards in build.PORT_DRIVERS.items()}

# (file, message) without line numbers: reported to the lead, not fixed here.
_TICKS = 'Incompatible types in assignment (expression has type "_TicksMs", variable has type "int")'
KNOWN = {
    # the DMA channel and raw buffer are made on the first burst (Optional until then)
    ("firmware/hal/pilot_rp2.py", 'Item "None" of "Any | None" has no attribute "active"  [union-attr]'),
    ("firmware/hal/pilot_rp2.py", 'Item "None" of "Any | None" has no attribute "config"  [union-attr]'),
    ("firmware/hal/pilot_rp2.py", 'Value of type "Any | None" is not indexable  [index]'),
    ("firmware/hal/meter_s0.py", _TICKS + "  [assignment]"),
    ("firmware/hal/mcu_board.py", _TICKS + "  [assignment]"),
    ("firmware/hal/net.py", 'Unsupported operand types for & ("_TicksUs" and "int")  [operator]'),
    ("firmware/hal/net.py", 'Need type annotation for "data"  [var-annotated]'),
} | {
    ("firmware/hal/net.py", f'Item "None" of "Any | None" has no attribute "{a}"  [union-attr]')
    for a in ("disconnect", "connect", "isconnected", "status", "ifconfig")
}


def _stub_dir(port):
    assert port in install_stubs.pins(), f"no '# stubs: {port} ...' line in requirements.txt"
    assert install_stubs.installed(port), f"the {port} stubs are not installed: run `make venv`"
    return install_stubs.stub_dir(port)


def mypy(port, files):
    """Errors mypy reports in our files, as (file, message) without line numbers. Errors inside
    the stubs themselves (they have a few) are not ours and are left out."""
    stubs = _stub_dir(port)
    res = subprocess.run(
        [sys.executable, "-m", "mypy", "--custom-typeshed-dir", str(stubs), "--no-incremental"]
        + ["--check-untyped-defs", "--follow-imports=silent", "--python-version", "3.11"]
        + ["--explicit-package-bases", "--no-error-summary", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"MYPYPATH": f"{stubs}:firmware", "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode in (0, 1), res.stderr + res.stdout
    found = set()
    for line in res.stdout.splitlines():
        m = re.match(r"([^:]+):\d+: error: (.*)$", line)
        if m and not (ROOT / m.group(1)).resolve().is_relative_to(stubs.resolve()):
            found.add((m.group(1), m.group(2)))
    return found


@pytest.mark.parametrize("port", ["esp32", "pico_w"])
def test_board_and_hal_typecheck_against_the_port_stubs(port):
    files = [f for f in HAL if port in PORT_DRIVERS.get(f, (port,))]
    found = mypy(port, [f"boards/{port}.py", *files])
    assert found - KNOWN == set(), "new type errors:\n" + "\n".join(sorted(map(str, found - KNOWN)))


def test_a_wrong_argument_type_is_caught(tmp_path):
    bad = tmp_path / "bad_pwm.py"
    bad.write_text("import machine\n\n\ndef f():\n    machine.PWM(machine.Pin(25), freq='1 kHz')\n")
    found = mypy("esp32", [str(bad)])
    assert any(f == str(bad) and "freq" in msg and "arg-type" in msg for f, msg in found), found
