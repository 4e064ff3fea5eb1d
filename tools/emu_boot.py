"""Boot the firmware on the emulated Pico (board emu_pico) and be its network.

    python tools/emu_boot.py --url ws://127.0.0.1:9000/ocpp --cp-id EMU1 [--heap N] [--flash FILE]

What it does: builds build/emu_pico.romfs (tools/build.py), starts tools/emu/emu_pico.mjs with that
image and a fresh flash file (unless --flash names an existing one and --keep-flash is given),
provisions littlefs over the raw REPL (/main.py = the boot stub from build/emu_pico/main.py,
/flash/site.json, /flash/preset.json with CentralSystemURL and ChargePointId), resets the board
(the driver reboots it: main.py runs the app from /rom), and serves the UART0 network bridge
described in boards/emu_pico.py: a connect request opens a TCP connection from this host, bytes
are relayed both ways, closes are passed on. UART1 answers status requests (EmuBoot.stat()).

Module use (tests): `with EmuBoot(url, cp_id) as emu: ... emu.stat() ... emu.console`.
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EMU_DIR = ROOT / "tools" / "emu"
DRIVER = EMU_DIR / "emu_pico.mjs"
MODEL = EMU_DIR / "idle_model.mjs"
FIRMWARE = ROOT.parent / "shared" / "rp2040" / "firmware.bin"
BOARD = "emu_pico"

# Frame types of the bridge (boards/emu_pico.py)
CONNECT, OPENED, FAILED, DATA, CLOSE = b"C"[0], b"O"[0], b"E"[0], b"D"[0], b"X"[0]
_MAX_FRAME = 1024  # host -> board data frame payload at most

_PROVISION = """\
import os, machine
def _w(path, text):
    with open(path, "w") as f:
        f.write(text)
try:
    os.mkdir("/flash")
except OSError:
    pass
{writes}
print("PROVISIONED")
machine.reset()
"""


def provision_script(stub, site, preset=None):
    """MicroPython source for the raw REPL: /main.py (the boot stub), /flash/site.json and, when
    given, /flash/preset.json on littlefs, then a reset (the board boots into the stub)."""
    files = [("/main.py", stub), ("/flash/site.json", json.dumps(site))]
    if preset is not None:
        files.append(("/flash/preset.json", json.dumps(preset)))
    return _PROVISION.format(writes="\n".join(f"_w({path!r}, {text!r})" for path, text in files))


def missing():
    """Why the emulator cannot run here (a message), or None."""
    if not FIRMWARE.exists():
        return f"no MicroPython rp2 image at {FIRMWARE}"
    if not (EMU_DIR / "node_modules").is_dir():
        return "tools/emu/node_modules missing (npm ci --prefix tools/emu)"
    if shutil.which("node") is None:
        return "node is not installed"
    return None


def build_image(quiet=True):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import build
    finally:
        sys.path.pop(0)
    return build.romfs(BOARD, quiet=quiet)


def _addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


class Bridge:
    """The host end of the UART0 network bridge: one TCP connection at a time."""

    def __init__(self, addr, log=None):
        self._u = socket.create_connection(addr, timeout=10)
        self._u.settimeout(None)
        self._u.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._lock = threading.Lock()  # whole frames on the UART
        self._tcp = None
        self._gen = 0
        self._log = log or (lambda *a: None)
        self.connects = []  # (wall time, host, port, ok)
        self.bytes_up = 0  # board -> peer
        self.bytes_down = 0
        self._stop = False
        self.link = True  # False: the network is down (set_link): no connection gets through
        self._t = threading.Thread(target=self._run, name="emu-bridge", daemon=True)
        self._t.start()

    def _send(self, kind, payload=b""):
        with self._lock:
            self._u.sendall(bytes([kind, len(payload) >> 8, len(payload) & 0xFF]) + payload)

    def _recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self._u.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return bytes(buf)

    def _drop(self):
        with self._lock:
            self._gen += 1
            tcp, self._tcp = self._tcp, None
        if tcp is not None:
            try:
                tcp.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            tcp.close()

    def _run(self):
        try:
            while not self._stop:
                kind, hi, lo = self._recv_exact(3)
                payload = self._recv_exact(hi << 8 | lo) if hi or lo else b""
                if kind == CONNECT:
                    self._connect(payload.decode("ascii", "replace"))
                elif kind == DATA:
                    tcp = self._tcp
                    if tcp is not None:
                        try:
                            tcp.sendall(payload)
                            self.bytes_up += len(payload)
                        except OSError:
                            self._drop()
                            self._send(CLOSE)
                elif kind == CLOSE:
                    self._log("bridge: board closed")
                    self._drop()
        except (EOFError, OSError):
            pass
        finally:
            self._drop()

    def set_link(self, up):
        """The network link went down (False: the bridged connection is cut, as the board loses
        its Wi-Fi association, and connects fail) or came back (True)."""
        self.link = bool(up)
        if not up and self._tcp is not None:
            self._drop()
            try:
                self._send(CLOSE)
            except OSError:
                pass

    def _connect(self, target):
        self._drop()
        if not self.link:
            self.connects.append((time.time(), target, False))
            self._send(FAILED, b"113")  # EHOSTUNREACH
            return
        try:
            host, port = _addr(target)
            tcp = socket.create_connection((host, port), timeout=10)
            tcp.settimeout(None)
            tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, ValueError) as e:
            errno = getattr(e, "errno", None) or 113
            self.connects.append((time.time(), target, False))
            self._log(f"bridge: connect {target}: {e}")
            self._send(FAILED, str(errno).encode())
            return
        with self._lock:
            self._gen += 1
            gen = self._gen
            self._tcp = tcp
            self._u.sendall(bytes([OPENED, 0, 0]))
        self.connects.append((time.time(), target, True))
        self._log(f"bridge: connected {target}")
        threading.Thread(target=self._pump, args=(tcp, gen), name="emu-bridge-tcp", daemon=True).start()

    def _pump(self, tcp, gen):
        while True:
            try:
                data = tcp.recv(_MAX_FRAME)
            except OSError:
                data = b""
            with self._lock:
                if gen != self._gen:
                    return  # the board closed it or opened another one
                if not data:
                    self._u.sendall(bytes([CLOSE, 0, 0]))
                    self._gen += 1
                    self._tcp = None
                    break
                self._u.sendall(bytes([DATA, len(data) >> 8, len(data) & 0xFF]) + data)
                self.bytes_down += len(data)
        self._log("bridge: peer closed")
        tcp.close()

    def close(self):
        self._stop = True
        self._drop()
        try:
            self._u.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._u.close()


class EmuBoot:
    """EmuBoot(url, cp_id, heap=None, flash=None, keep_flash=False, site=None, preset=None,
    verbose=False). start() returns once the board was provisioned and reset (main.py runs)."""

    def __init__(
        self,
        url,
        cp_id,
        heap=None,
        flash=None,
        keep_flash=False,
        site=None,
        preset=None,
        verbose=False,
        build=True,
    ):
        self.url = url
        self.cp_id = cp_id
        self.heap = heap
        self.verbose = verbose
        self._build = build
        self._tmp = tempfile.mkdtemp(prefix="emu_pico_")
        self.flash = Path(flash) if flash else Path(self._tmp) / "flash.bin"
        self.keep_flash = keep_flash
        self.site = {"wdt_ms": 0} if site is None else site
        self.preset = {"CentralSystemURL": url, "ChargePointId": cp_id, "SecurityProfile": 0}
        self.preset.update(preset or {})
        self.console = []  # lines the firmware printed on USB CDC (after the reset)
        self.stderr = []
        self.proc = None
        self.bridge = None
        self.uart0 = self.uart1 = None
        self.t_start = None  # wall time the driver was started
        self.t_reset = None  # wall time the provisioning script said it resets the board
        self._cond = threading.Condition()

    def _log(self, *a):
        if self.verbose:
            print(*a, file=sys.stderr, flush=True)

    def start(self, timeout=60):
        image = build_image() if self._build else ROOT / "build" / f"{BOARD}.romfs"
        stub = (ROOT / "build" / BOARD / "main.py").read_text()
        if self.flash.exists() and not self.keep_flash:
            self.flash.unlink()
        script = Path(self._tmp) / "provision.py"
        script.write_text(
            provision_script(stub, self.site, self.preset),
        )
        cmd = ["node", str(DRIVER), "--flash", str(self.flash), "--romfs", str(image)]
        cmd += ["--uart0", "127.0.0.1:0", "--uart1", "127.0.0.1:0", "--exec", str(script)]
        cmd += ["--model", str(MODEL)]
        if self.heap:
            cmd += ["--heap", str(self.heap)]
        self.t_start = time.time()
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
        )
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()
        if not self.wait_console(lambda s: s.startswith("EMU READY"), timeout=20):
            raise RuntimeError("emulator did not start: " + "".join(self.stderr)[-2000:])
        ready = next(s for s in self.console if s.startswith("EMU READY"))
        m = re.search(r"uart0=(\S+) uart1=(\S+)", ready)
        self.uart0, self.uart1 = _addr(m.group(1)), _addr(m.group(2))
        self.bridge = Bridge(self.uart0, log=self._log)
        if not self.wait_console(lambda s: "PROVISIONED" in s, timeout=timeout):
            raise RuntimeError("provisioning failed: " + "".join(self.stderr)[-2000:])
        self.t_reset = time.time()
        return self

    def _read_out(self):
        for raw in iter(self.proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self._log("emu| " + line)
            with self._cond:
                self.console.append(line)
                self._cond.notify_all()

    def _read_err(self):
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace")
            self._log("emu! " + line.rstrip())
            with self._cond:
                self.stderr.append(line)

    def wait_console(self, pred, timeout=30):
        """The first console line matching pred, waiting for it; None after timeout."""
        deadline = time.time() + timeout
        with self._cond:
            while True:
                for line in self.console:
                    if pred(line):
                        return line
                left = deadline - time.time()
                if left <= 0 or (self.proc is not None and self.proc.poll() is not None):
                    return None
                self._cond.wait(min(left, 0.5))

    def stat(self, timeout=20):
        """The board's status line over UART1 as a dict (ms, free, alloc, connect_ms, connects)."""
        with socket.create_connection(self.uart1, timeout=timeout) as s:
            deadline = time.time() + timeout
            buf = b""
            s.sendall(b"?\n")
            while b"\n" not in buf:
                s.settimeout(max(0.1, deadline - time.time()))
                try:
                    chunk = s.recv(256)
                except TimeoutError:
                    if time.time() >= deadline:
                        raise TimeoutError("no status from the board over UART1") from None
                    s.sendall(b"?\n")  # the first byte may have come before the board listened
                    continue
                if not chunk:
                    raise EOFError("UART1 bridge closed")
                buf += chunk
        line = buf.split(b"\n")[0].decode()
        out = {}
        for kv in line.split()[2:]:
            k, v = kv.split("=", 1)
            out[k] = None if v == "None" else int(v)
        return out

    def stop(self):
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.keep_flash:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="CentralSystemURL (ws://...)")
    ap.add_argument("--cp-id", default="EMU1")
    ap.add_argument("--heap", type=int, help="gc.mem_free() at boot (emu_pico.mjs --heap)")
    ap.add_argument("--flash", help="flash image file (default: a fresh temporary one)")
    ap.add_argument("--keep-flash", action="store_true", help="boot an existing --flash as it is")
    args = ap.parse_args()
    why = missing()
    if why:
        raise SystemExit(why)
    emu = EmuBoot(args.url, args.cp_id, args.heap, args.flash, args.keep_flash, verbose=True)
    with emu:
        print(f"emu_boot: board reset after provisioning, {emu.t_reset - emu.t_start:.1f} s", file=sys.stderr)
        try:
            while emu.proc.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
