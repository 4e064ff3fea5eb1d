#!/usr/bin/env python3
"""Run the firmware on the MicroPython Unix port with the simulated board (`sim`).

This is the supervisor (CPython). It prepares --data, picks the control port, converts
certificates to DER, makes sure build/sim is up to date, and starts
`micropython -m sim_boot DATA/sim_args.json`, which prints `SIM READY control=HOST:PORT`
on stdout when the control socket listens and the firmware runs (and again after every
in-process restart).

Signals: SIGTERM/SIGINT = orderly shutdown (the child's stdin is closed, it unmounts the
flash and exits; killed after 5 s), exit status 0. SIGKILL of the process group = power cut.
The child is killed by the kernel if this process dies (PR_SET_PDEATHSIG).
The exit status is the child's when it ends by itself.

Test hook: the environment variable SIM_EXTRA_PATH (colon-separated directories) is put in
front of build/sim on MICROPYPATH, so a test can substitute its own `main`.
"""

import argparse
import ctypes
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = Path(sys.executable).parent / "micropython"
BUILD = ROOT / "build" / "sim"
DEFAULT_HEAP = "512K"  # the firmware's budget (~110 KB x 1.5 on 64 bit) + TLS + the sim's own world
FLASH_BLOCKS = 512  # 2 MiB of 4 KiB blocks
STOP_TIMEOUT_S = 5.0
CERT_NAMES = {"ca": "csms_root.der", "cert": "cp_cert.der", "key": "cp_key.der"}
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)  # resolved before fork: the child only calls prctl


class Stop(Exception):
    """Raised by the SIGTERM/SIGINT handler to leave the wait for the child."""


def host_port(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def heap_size(text):
    if not re.fullmatch(r"[1-9][0-9]*[KkMm]?", text):
        raise argparse.ArgumentTypeError(f"expected a size like 512K or 2M, got {text!r}")
    return text


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
    args = ap.parse_args(argv)
    if args.csms and not re.match(r"wss?://", args.csms):
        ap.error("--csms must be a ws:// or wss:// URL")
    return args


def free_port(host):
    """A free TCP port (MicroPython sockets cannot report the port they were given)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


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


def build_firmware():
    """Bring build/sim up to date; a lock keeps parallel sims from compiling over each other."""
    sys.path.insert(0, str(ROOT / "tools"))
    import build

    lock_path = ROOT / "build" / ".sim-build.lock"
    lock_path.parent.mkdir(exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        build.build("sim", quiet=True)


def prepare_data(args, data, host, port):
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
        "control_host": host,
        "control_port": port,
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


def _on_signal(signum, frame):
    raise Stop()


def run(args):
    host, port = args.control
    if port == 0:
        port = free_port(host)
    temp = None
    if args.data:
        data = Path(args.data).resolve()
    else:
        temp = data = Path(tempfile.mkdtemp(prefix="evse-sim-"))
    child = None
    try:
        build_firmware()
        args_file = prepare_data(args, data, host, port)
        cmd = [str(MICROPYTHON), "-X", f"heapsize={args.heap}", "-m", "sim_boot", str(args_file)]
        child = subprocess.Popen(cmd, stdin=subprocess.PIPE, env=child_env(), cwd=data, preexec_fn=_in_child)
        rc = child.wait()
        return rc if rc >= 0 else 128 - rc
    except Stop:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        if child is not None:
            try:
                child.stdin.close()  # the child's orderly shutdown
            except OSError:
                pass
            try:
                child.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        return 0
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def main(argv=None):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    sys.exit(run(args))


if __name__ == "__main__":
    main()
