#!/usr/bin/env python3
"""Run the firmware on the MicroPython Unix port with the simulated board (`sim`).

This is the supervisor (CPython). It holds the physical world (tools/sim_world.py), the hardware
event log and the control socket (tools/sim_control.py), and runs the firmware in a MicroPython
child, `micropython -m sim_boot DATA/sim_args.json`, on a thin board twin (boards/sim.py) that
talks to it over a hardware bus on the child's stdin/stdout (tools/sim_twin.py, docs/SIM.md).
It prepares --data, converts certificates to DER, makes sure build/sim is up to date, and prints
`SIM READY control=HOST:PORT` on stdout each time the firmware has started (first start, and
after every restart).

A Reset (main.run returns "reset": the child exits with status 3) starts a fresh child with the
same arguments, flash and control port, as a hardware reset clears RAM; the world and the event
log carry on. A crashed child is restarted after 1 s; after 3 crashes in a row, each within 10 s
of its start, the supervisor gives up with the child's exit status.

Signals: SIGTERM/SIGINT = orderly shutdown (the child's stdin is closed: it cancels the firmware,
unmounts the flash and exits; killed after 5 s), exit status 0. SIGKILL of the process group =
power cut. The child is killed by the kernel if this process dies (PR_SET_PDEATHSIG).
The exit status is 0 when the firmware ends by itself (main.run returned "exit").

The app runs as a real board runs it (`--app romfs`, the default): from the ROMFS image
build/sim.romfs, mounted at /rom with `vfs.VfsRom`. On the Unix port the image's bytes sit in the
heap (on a board they stay in flash): `-X heapsize` is --heap plus what the image takes, and every
heap figure the sim reports leaves the image out. `--app mpy` imports the .mpy files of build/sim
instead (the fallback deployment: bytecode in the heap). `--micropython PATH` runs another
interpreter, for example the 32-bit Unix port, whose heap figures are a 32-bit board's.

Test hook: the environment variable SIM_EXTRA_PATH (colon-separated directories) is put in
front of build/sim on MICROPYPATH, so a test can substitute its own `main`.
"""

import argparse
import asyncio
import ctypes
import fcntl
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sim_control import ControlServer  # noqa: E402
from sim_twin import EXIT_RESET, TwinProcess  # noqa: E402
from sim_world import World  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = Path(sys.executable).parent / "micropython"
BUILD = ROOT / "build" / "sim"
DEFAULT_HEAP = "512K"  # the firmware's budget (~110 KB x 1.5 on 64 bit) + TLS + the board twin
FLASH_BLOCKS = 512  # 2 MiB of 4 KiB blocks
STOP_TIMEOUT_S = 5.0
CRASH_REBOOT_S = 1.0  # a crashed firmware reboots after this, like a watchdog would
QUICK_CRASH_S = 10.0  # a crash this soon after the start counts towards giving up
MAX_QUICK_CRASHES = 3
CERT_NAMES = {"ca": "csms_root.der", "cert": "cp_cert.der", "key": "cp_key.der"}
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)  # resolved before fork: the child only calls prctl


def host_port(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def heap_size(text):
    """Bytes of a size like 512K, 2M or 65536."""
    if not re.fullmatch(r"[1-9][0-9]*[KkMm]?", text):
        raise argparse.ArgumentTypeError(f"expected a size like 512K or 2M, got {text!r}")
    scale = {"k": 1024, "m": 1024 * 1024}.get(text[-1].lower(), 1)
    return int(text.rstrip("KkMm")) * scale


def image_heap(image_bytes):
    """What a ROMFS image of this size takes of `-X heapsize` when it sits in the heap: the bytes,
    rounded to GC blocks, plus the GC's own tables for them (under 3 %)."""
    return (image_bytes * 103 + 99) // 100 + 256


def key_value(text):
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def charge_point_id(text):
    if not text or len(text) > 48 or any(ch.isspace() or ch in "/?#" for ch in text):
        raise argparse.ArgumentTypeError("id must be 1..48 characters without spaces, '/', '?', '#'")
    return text


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csms", help="CSMS URL (ws:// or wss://); the ChargePointId is appended")
    ap.add_argument("--id", type=charge_point_id, help="ChargePointId")
    ap.add_argument("--connectors", type=int, default=1, choices=range(1, 9), metavar="N")
    ap.add_argument("--data", help="directory for the flash image and state (default: a fresh temp dir)")
    ap.add_argument("--control", type=host_port, default=("127.0.0.1", 0), metavar="HOST:PORT")
    ap.add_argument(
        "--heap", type=heap_size, default=DEFAULT_HEAP, help="MicroPython heap (default %(default)s)"
    )
    ap.add_argument("--set", type=key_value, action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--ca", help="CSMS root certificate (PEM or DER)")
    ap.add_argument("--cert", help="charge point certificate (PEM or DER)")
    ap.add_argument("--key", help="charge point private key (PEM or DER)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the simulated noise")
    ap.add_argument(
        "--app", choices=("romfs", "mpy"), default="romfs",
        help="run the app from its ROMFS image, as real boards do (default), or from .mpy files",
    )  # fmt: skip
    ap.add_argument(
        "--micropython", default=str(MICROPYTHON), metavar="PATH", help="the MicroPython Unix port to run"
    )
    ap.add_argument(
        "--board", choices=("sim", "emu_pico"), default="sim",
        help="sim: the Unix port (default); emu_pico: the rp2 port in the RP2040 emulator (tools/emu_sim.py)",
    )  # fmt: skip
    args = ap.parse_args(argv)
    if args.csms and not re.match(r"wss?://", args.csms):
        ap.error("--csms must be a ws:// or wss:// URL")
    return args


def to_der(path, kind):
    """DER bytes of a certificate or key given as PEM or DER (the host MicroPython has no PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise SystemExit(f"sim: cannot read {path}: {e.strerror}") from None
    pem = b"-----BEGIN" in data
    try:
        if kind == "key":
            if pem:
                key = serialization.load_pem_private_key(data, password=None)
            else:
                key = serialization.load_der_private_key(data, password=None)
            return key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        if pem:
            certs = x509.load_pem_x509_certificates(data)  # a bundle: the first one is used
            return certs[0].public_bytes(serialization.Encoding.DER)
        x509.load_der_x509_certificate(data)  # validates
        return data
    except (ValueError, TypeError) as e:  # TypeError: an encrypted key (no password here)
        raise SystemExit(f"sim: cannot read {path} as a {kind}: {e}") from None


def build_firmware(app):
    """Bring build/sim (and its ROMFS image for `--app romfs`) up to date; returns the image or
    None. A lock keeps parallel sims from building over each other."""
    import build

    lock_path = ROOT / "build" / ".sim-build.lock"
    lock_path.parent.mkdir(exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if app == "romfs":
            return build.romfs("sim", quiet=True)
        build.build("sim", quiet=True)
        return None


def prepare_data(args, data):
    data.mkdir(parents=True, exist_ok=True)
    certs = {}
    for opt, name in CERT_NAMES.items():
        src = getattr(args, opt)
        if src:
            dst = data / name
            dst.write_bytes(to_der(src, "key" if opt == "key" else "cert"))
            certs[name] = str(dst)
    boot = {
        "csms": args.csms,
        "id": args.id,
        "connectors": args.connectors,
        "set": dict(args.set),
        "certs": certs,
        "data": str(data),
        "flash_image": str(data / "flash.img"),
        "flash_blocks": FLASH_BLOCKS,
        "seed": args.seed,
    }
    path = data / "sim_args.json"
    path.write_text(json.dumps(boot, indent=1))
    return path


def child_env():
    env = dict(os.environ)
    extra = [p for p in env.pop("SIM_EXTRA_PATH", "").split(":") if p]
    env["MICROPYPATH"] = ":".join([*extra, str(BUILD), ".frozen"])
    return env


def _in_child():
    # Runs between fork and exec: die with the supervisor, whatever kills it.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor handles Ctrl-C


def say(line):
    try:
        print(line, flush=True)
    except (BrokenPipeError, ValueError):
        pass  # nobody reads our stdout any more: keep running


async def serve(args, world, twin, control, what, quick_crash_s=QUICK_CRASH_S):
    """The supervision loop of a board (the Unix-port child or the emulator: `twin`): the control
    port, SIM READY at each start, restarts after a Reset or a crash (`what` crashed: the crash
    limit), SIGTERM/SIGINT an orderly stop. Returns the exit status."""
    host, port = args.control
    try:
        port = await control.start(host, port)
    except OSError as e:
        sys.stderr.write(f"sim: cannot listen on {host}:{port}: {e.strerror or e}\n")
        return 1
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    ticker = asyncio.create_task(twin.tick())
    stop_wait = asyncio.create_task(stopping.wait())
    quick_crashes = 0
    try:
        while True:
            run = asyncio.create_task(twin.run(lambda: say(f"SIM READY control={host}:{port}")))
            await asyncio.wait({run, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if stopping.is_set():
                await twin.stop(STOP_TIMEOUT_S)
                await asyncio.wait({run}, timeout=STOP_TIMEOUT_S)
                return 0
            try:
                rc = run.result()
            except OSError as e:  # the program missing or not executable
                sys.stderr.write(f"sim: cannot start {what}: {e}\n")
                return 1
            world.power_off()  # the controller's outputs drop with it
            if rc == 0:
                return 0
            if rc == EXIT_RESET:
                quick_crashes = 0
                continue
            quick = time.monotonic() - twin.started_s < quick_crash_s
            quick_crashes = quick_crashes + 1 if quick else 1
            if quick_crashes >= MAX_QUICK_CRASHES:
                sys.stderr.write(f"sim: {what} failed {quick_crashes} times in a row (status {rc})\n")
                return rc
            sys.stderr.write(f"sim: {what} ended with status {rc}: restarting\n")
            await asyncio.wait({stop_wait}, timeout=CRASH_REBOOT_S)
            if stopping.is_set():
                return 0
    finally:
        ticker.cancel()
        stop_wait.cancel()
        twin.kill()
        await control.close()


async def supervise(args, cmd, data):
    world = World(args.connectors, seed=args.seed)
    twin = TwinProcess(world, cmd, env=child_env(), cwd=data, preexec_fn=_in_child)
    return await serve(args, world, twin, ControlServer(world, twin), "the firmware process")


def run(args):
    temp = None
    if args.data:
        data = Path(args.data).resolve()
    else:
        temp = data = Path(tempfile.mkdtemp(prefix="evse-sim-"))
    try:
        image = build_firmware(args.app)
        args_file = prepare_data(args, data)
        heap = args.heap
        cmd = ["-m", "sim_boot", str(args_file)]
        if image is not None:
            heap += image_heap(image.stat().st_size)
            cmd.append(str(image))
        cmd = [args.micropython, "-X", f"heapsize={heap}", *cmd]
        return asyncio.run(supervise(args, cmd, data))
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def main(argv=None):
    args = parse_args(argv)
    if args.board == "emu_pico":
        import emu_sim

        sys.exit(emu_sim.run(args))
    sys.exit(run(args))


if __name__ == "__main__":
    main()
