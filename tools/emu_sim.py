"""`tools/sim.py --board emu_pico`: the simulated-board contract on the real MicroPython rp2 port
in the RP2040 emulator (tools/emu/emu_pico.mjs running ../shared/rp2040/firmware.bin).

This is the supervisor (CPython), the emu_pico counterpart of tools/sim.py's: the same command
line, `SIM READY control=HOST:PORT`, the control socket (tools/sim_control.py's ControlServer),
the physical world and the hardware event log (tools/sim_world.py's World). What differs is the
twin: instead of a MicroPython Unix-port child it runs the emulator driver (node) with

- the app as the ROMFS image build/emu_pico.romfs, littlefs on the emulated flash kept in
  DATA/flash.bin (write-through: SIGKILL is a power cut; reusing --data is a reboot);
- the charger's electrical model in the driver (tools/emu/charger_model.mjs): the EV's
  resistors and diode and the cable's PP resistor make each ADC conversion from the PWM pin's
  level at that instant, so the firmware's real pilot sampling (ADC + DMA) and classification
  run; relay and lock feedback and the RCD output follow on the pins. Its parameters go to the
  driver's stdin, the relay and lock outputs come back on its stdout (lines starting with RS);
- the OCPP byte stream over UART0 (tools/emu_boot.py's Bridge: this process opens the TCP
  connection to the CSMS);
- the rest of the world over UART1 (boards/emu_pico.py, site.json "host_world"): the preset
  at each start, the meter's registers, cards, link, faults, snapshot requests; the firmware's
  events, duty changes, `R` (running) and snapshots come back.

A fresh --data is provisioned once through the raw REPL (/main.py = the boot stub, site.json);
the configuration keys (--csms, --id, --set) are handed to the board at every start over UART1.
A Reset from the CSMS reboots the emulated board inside the same driver: the outputs drop to
their power-on state, `boot` is logged, `SIM READY` is printed again once the firmware runs.
SIGTERM/SIGINT: orderly: "q" over UART1 cancels main.run (it closes the websocket, code 1001),
then the driver is stopped; exit 0. The driver is in this process's process group and gets
SIGKILL when this process dies (PR_SET_PDEATHSIG): SIGKILL of the group is a power cut.
A firmware that crashes inside the emulator is rebooted by the boot stub (5 s later) as on a
board; a driver that dies is restarted after 1 s, and after 3 such ends within 30 s of their
start the supervisor gives up with its status.

Events carry, besides the contract's fields, `emu_ms`: the emulated time of the event (the
board's ticks_ms for its events, the instant the relay/lock pin moved for those), which restarts
at 0 at every boot. Emulated time never runs ahead of the wall clock but falls behind it while
the firmware is busy, so intervals are best measured in emu_ms.
"""

import asyncio
import ctypes
import fcntl
import hashlib
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

import emu_boot  # noqa: E402
import sim  # noqa: E402
from sim_control import ControlServer  # noqa: E402
from sim_world import PP_OHMS, EventLog, World  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DRIVER = ROOT / "tools" / "emu" / "emu_pico.mjs"
MODEL = ROOT / "tools" / "emu" / "charger_model.mjs"
RS = b"\x1e"
SIM_DEFAULT_HEAP = 512 * 1024  # tools/sim.py's default --heap: on emu_pico the whole RAM
MAX_HEAP = 240_000  # gc.mem_free() of the unrestricted image after boot (240,560 B)
TICK_S = 0.1
METER_PUSH_MAX_S = 1.0
HEAP_SAMPLE_S = 5.0  # the peak's sampling: a heap sample costs the board 20-30 ms of CPU
SNAPSHOT_TIMEOUT_S = 2.0  # the emulated board is ~125x slower than the host
QUICK_CRASH_S = 30.0
PROVISION_TIMEOUT_S = 60
PR_SET_PDEATHSIG = 1
HEAP_FIELDS = ("free", "used", "peak", "size", "sim", "platform")
SITE = {"wdt_ms": 0, "host_world": True}

_libc = ctypes.CDLL(None, use_errno=True)


def _in_child():
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor handles Ctrl-C


def warn(text):
    sys.stderr.write(f"emu_sim: {text}\n")
    sys.stderr.flush()


class EmuClock:
    """The world's clock (ms): the board's emulated time while a machine runs, the wall clock
    otherwise, continuous across boots. Emulated time never runs ahead of the wall clock but falls
    behind it while the firmware is busy (the emulator is ~2.7 times slower than an RP2040), so
    the world (the EV's ramps, the meter's energy, every event's t_ms) keeps the board's time,
    as on a real charger: an interval between two events is what the board lived through."""

    def __init__(self):
        self.base = None  # world ms at the running machine's emulated 0
        self.emu = 0.0  # the running machine's emulated ms, as last reported
        self._t = 0.0
        self._wall = time.monotonic() * 1000

    def __call__(self):
        if self.base is not None:
            return self.base + self.emu
        return self._t + time.monotonic() * 1000 - self._wall

    def machine_started(self):
        self.base = self()
        self.emu = 0.0

    def machine_stopped(self):
        self._t = self()
        self._wall = time.monotonic() * 1000
        self.base = None

    def advance(self, emu_ms):
        if emu_ms > self.emu:
            self.emu = emu_ms

    def world_ms(self, world, emu_ms):
        """The world time (ms since it began) of the running machine's emulated ms."""
        if self.base is None:
            return None
        return int(self.base + emu_ms - world.t0)


class EmuEventLog(EventLog):
    """The World's event log plus each event's emulated time (`emu_ms`) where it has one."""

    def __init__(self, size=4096):
        super().__init__(size)
        self.emu = {}
        self.next_emu = None  # set around a World call that may log one event

    def add(self, t_ms, kind, connector, value):
        seq = super().add(t_ms, kind, connector, value)
        if self.next_emu is not None:
            self.emu[seq] = self.next_emu
            self.next_emu = None
            if len(self.emu) > 2 * self.size:
                first = self.first()
                self.emu = {s: v for s, v in self.emu.items() if s >= first}
        return seq

    def since(self, seq):
        events, dropped = super().since(seq)
        for e in events:
            v = self.emu.get(e["seq"])
            if v is not None:
                e["emu_ms"] = v
        return events, dropped


class EmuTwin:
    """The supervisor's end of the emulated board: what ControlServer needs (snapshot(), boots,
    last_cp) and what the supervision loop drives (run(), stop(), kill(), tick())."""

    def __init__(self, world, args, data, image):
        self.world = world
        self.clock = world.clock
        self.world.log = self.log = EmuEventLog(world.log.size)
        self.args = args
        self.data = data
        self.image = image
        self.flash = data / "flash.bin"
        self.marker = data / "emu_provisioned.json"
        self.preset = {}
        if args.csms:
            self.preset["CentralSystemURL"] = args.csms
        if args.id:
            self.preset["ChargePointId"] = args.id
        self.preset.update(dict(args.set))
        self.heap_limit = args.heap
        self.proc = None
        self.bridge = None
        self.ready = False
        self.boots = 0
        self.started_s = 0.0
        self.heap = dict.fromkeys(HEAP_FIELDS)
        self.last_cp = [None] * (world.n + 1)
        self._snap = None
        self._waiting = {}
        self._next_id = 0
        self._u1 = None  # (reader, writer) of the UART1 bridge
        self._meter_sent = None
        self._heap_s = 0.0
        self._on_ready = None
        self._quit = None  # set while an orderly stop waits for the board's "Q"
        self._provisioning = False
        self._tasks = []
        self.safety = None  # the safety loop's figures from the last snapshot (boards/emu_pico.py)
        self._pilot_seqs = []  # seq of the world event behind each `p` line sent to the model
        world.listener = self._on_input

    # ---- provisioning ----

    def _stub(self):
        return (ROOT / "build" / emu_boot.BOARD / "main.py").read_text()

    def _fingerprint(self):
        text = self._stub() + json.dumps(SITE, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def _needs_provision(self):
        if not self.flash.exists():
            return True
        try:
            return json.loads(self.marker.read_text()).get("fingerprint") != self._fingerprint()
        except (OSError, ValueError):
            return True

    # ---- lifecycle ----

    def _cmd(self):
        cmd = ["node", str(DRIVER), "--flash", str(self.flash), "--romfs", str(self.image)]
        cmd += ["--uart0", "127.0.0.1:0", "--uart1", "127.0.0.1:0", "--model", str(MODEL), "--console-stderr"]
        if self.heap_limit:
            cmd += ["--heap", str(self.heap_limit)]
        firmware = os.environ.get("EMU_PICO_FIRMWARE")
        if firmware:
            cmd += ["--firmware", firmware]
        self._provisioning = self._needs_provision()
        if self._provisioning:
            script = self.data / "emu_provision.py"
            script.write_text(emu_boot.provision_script(self._stub(), SITE))
            cmd += ["--exec", str(script)]
        return cmd

    async def run(self, on_ready):
        """Start the driver and serve it until it exits; returns its exit status (128 + signal)."""
        self._on_ready = on_ready
        self.ready = False
        self._snap = None
        self.started_s = time.monotonic()
        self.proc = await asyncio.create_subprocess_exec(
            *self._cmd(),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            preexec_fn=_in_child,
            limit=1 << 20,
        )
        self._pilot_seqs = []
        self._model_pilot()
        self._model_faults()
        try:
            await self._pump_driver()
            rc = await self.proc.wait()
        finally:
            self.ready = False
            self.clock.machine_stopped()
            for t in self._tasks:
                t.cancel()
            self._tasks = []
            if self.bridge is not None:
                self.bridge.close()
                self.bridge = None
            if self._u1 is not None:
                self._u1[1].close()
                self._u1 = None
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_result(None)
            self._waiting.clear()
        return rc if rc >= 0 else 128 - rc

    async def stop(self, timeout):
        """Orderly shutdown: the firmware is stopped over UART1 ("q": main.run closes the
        websocket, the board answers "Q"), then the driver gets SIGTERM (SIGKILL after timeout)."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        if self.ready and self._u1 is not None:
            # The board's "Q" may never come: once the app's task ends, the boot stub's
            # asyncio.run ends too. The websocket's close (the bridge loses its connection)
            # says the goodbye is done; without a connection there is nothing to wait for long.
            self._quit = asyncio.get_running_loop().create_future()
            self._u1_write("q")
            bridge = self.bridge
            had = bridge is not None and bridge._tcp is not None
            end = time.monotonic() + (min(timeout, 3.0) if had else 0.5)
            while time.monotonic() < end and not self._quit.done():
                if had and bridge._tcp is None:
                    await asyncio.sleep(0.05)  # the close frame's last bytes
                    break
                await asyncio.sleep(0.02)
            self._quit = None
        try:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), timeout)
        except ProcessLookupError:
            pass
        except TimeoutError:
            self.kill()
            await proc.wait()

    def kill(self):
        if self.proc is not None and self.proc.returncode is None:
            try:
                self.proc.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass

    # ---- the driver's stdout: EMU READY, --exec output, the model's lines ----

    async def _pump_driver(self):
        out = self.proc.stdout
        while True:
            line = await out.readline()
            if not line:
                return
            i = line.find(RS)
            if i < 0:
                self._driver_text(line.decode(errors="replace").rstrip("\r\n"))
                continue
            if i > 0:
                self._driver_text(line[:i].decode(errors="replace"))
            try:
                self._model_line(line[i + 1 :].decode().split())
            except (ValueError, IndexError) as e:
                warn(f"bad model line {line[:80]!r}: {e}")

    def _driver_text(self, text):
        if text.startswith("EMU READY"):
            m = re.search(r"uart0=(\S+) uart1=(\S+)", text)
            self._tasks.append(asyncio.create_task(self._attach(m.group(1), m.group(2))))
        elif "PROVISIONED" in text:
            self.marker.write_text(json.dumps({"fingerprint": self._fingerprint()}))
            self._provisioning = False
        elif text.strip():
            sys.stderr.write(text + "\n")  # --exec output we do not expect: the log

    async def _attach(self, uart0, uart1):
        loop = asyncio.get_running_loop()
        try:
            addr = emu_boot._addr(uart0)
            self.bridge = await loop.run_in_executor(None, lambda: emu_boot.Bridge(addr, log=warn))
            self.bridge.set_link(self.world.link_up)
            host, port = emu_boot._addr(uart1)
            reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        except OSError as e:  # the driver went away meanwhile: run() sees it exit
            warn(f"cannot reach the emulator's UARTs: {e}")
            return
        self._u1 = (reader, writer)
        self._tasks.append(asyncio.create_task(self._pump_uart1(reader)))

    def _model_line(self, f):
        w = self.world
        op = f[0]
        if op == "B":  # a machine powered up
            if self._provisioning:
                return  # the provisioning boot: not the firmware
            self.clock.machine_started()
            if self.ready or self.boots:
                w.power_off()  # a reset: the outputs drop (the first boot starts from power-on)
            self.ready = False
            self._snap = None
            self.last_cp = [None] * (w.n + 1)
            self.heap = dict.fromkeys(HEAP_FIELDS)
            self.boots += 1
            w.event("boot", 0, self.boots)
        elif op == "a":  # the pilot change of the oldest unanswered `p` reached the pins
            if self._pilot_seqs:
                seq = self._pilot_seqs.pop(0)
                if seq is not None:
                    self.log.emu[seq] = int(f[1]) / 1000
        elif op == "t":
            self.clock.advance(int(f[1]) / 1000)
        elif op in ("r", "l"):
            on = f[1] == "1"
            emu = int(f[2]) / 1000
            self.clock.advance(emu)
            self.log.next_emu = emu
            try:
                (w.set_relay if op == "r" else w.set_lock)(1, on, self.clock.world_ms(w, emu))
            finally:
                self.log.next_emu = None

    # ---- UART1: the board's world bus ----

    def _u1_write(self, text):
        if self._u1 is None:
            return
        try:
            self._u1[1].write(text.encode() + b"\n")
        except (OSError, RuntimeError):
            pass

    async def _pump_uart1(self, reader):
        while True:
            try:
                line = await reader.readline()
            except (OSError, ValueError):
                return
            if not line:
                return
            try:
                self._uart1_line(line.rstrip(b"\r\n"))
            except (ValueError, IndexError, TypeError, UnicodeDecodeError) as e:
                warn(f"bad UART1 line {line[:80]!r}: {e}")

    def _uart1_line(self, line):
        w = self.world
        op = line[:1]
        if op == b"P":  # the board starts: its configuration keys, then the world as it is
            self._u1_write("P " + json.dumps(self.preset, separators=(",", ":")))
            self._u1_write(f"n {int(w.link_up)}")
            self._u1_write(f"f {w.conns[1].fault_bits()}")
            for tag in w.cards:
                self._u1_write("c " + tag)
            self._push_meter(force=True)
        elif op == b"R":
            ticks, size, used = (int(x) for x in line.split()[1:4])
            self.heap.update(free=size - used, used=used, peak=used, size=size, sim=0, platform=0)
            self.ready = True
            self._push_meter(force=True)
            if self._on_ready:
                self._on_ready()
        elif op == b"e":
            _, ticks, data = line.split(b" ", 2)
            kind, c, value = json.loads(data)
            if not isinstance(c, int) or isinstance(c, bool) or not 0 <= c <= 255:
                c = 0
            if kind == "cp" and 1 <= c <= w.n:
                self.last_cp[c] = value
            self.log.next_emu = int(ticks)
            try:
                w.event(str(kind), c, value, self.clock.world_ms(w, int(ticks)))
            finally:
                self.log.next_emu = None
        elif op == b"d":
            _, ticks, c, v = line.split()
            self.log.next_emu = int(ticks)
            try:
                w.set_duty(int(c), int(v), self.clock.world_ms(w, int(ticks)))
            finally:
                self.log.next_emu = None
        elif op == b"k":
            w.take_card()
        elif op == b"Q":
            if self._quit is not None and not self._quit.done():
                self._quit.set_result(True)
        elif op == b"S":
            _, rid, free, used, peak, data = line.split(b" ", 5)
            snap = json.loads(data)
            self._snap = snap if isinstance(snap, dict) else None
            if self._snap is not None and isinstance(self._snap.get("safety"), dict):
                self.safety = self._snap.pop("safety")
            self.heap.update(free=int(free), used=int(used), peak=int(peak), size=int(free) + int(used))
            fut = self._waiting.get(int(rid))
            if fut is not None and not fut.done():
                fut.set_result(True)
        # "P" requests repeated, "EMU STAT" answers: nothing to do

    # ---- world -> board ----

    def _model_write(self, text):
        proc = self.proc
        if proc is None or proc.returncode is not None or proc.stdin.is_closing():
            return False
        try:
            proc.stdin.write(text.encode() + b"\n")
        except (OSError, RuntimeError):
            return False
        return True

    def _model_pilot(self, seq=None):
        k = self.world.conns[1]
        ohms, diode = k.pilot_circuit()
        pp = PP_OHMS[k.cable_amps] if k.plugged else 0
        if self._model_write(f"p {ohms} {int(diode)} {pp}"):
            self._pilot_seqs.append(seq)

    def _model_faults(self):
        self._model_write(f"f {self.world.conns[1].fault_bits()}")

    def _on_input(self, kind, c):
        w = self.world
        if kind == "pilot":
            # the world logged the plug/unplug/ev event just before telling us: it gets the
            # emulated time at which the model applied it (the model's `a` line)
            self._model_pilot(self.log.seq)
        elif kind == "fault":
            self._model_faults()
            self._u1_write(f"f {w.conns[1].fault_bits()}")
        elif kind == "network":
            self._u1_write(f"n {int(w.link_up)}")
            if self.bridge is not None:
                self.bridge.set_link(w.link_up)
        elif kind == "card":
            self._u1_write("c " + w.cards[-1])
        elif kind == "meter":
            self._push_meter(force=True)

    def _push_meter(self, force=False):
        k = self.world.conns[1]
        key = (k.energy_wh(), round(k.current_a, 2))
        now = time.monotonic()
        last = self._meter_sent
        if not force and last and last[0] == key and now - last[1] < METER_PUSH_MAX_S:
            return
        try:
            r = self.world.meter_reading(1)
        except OSError:
            return  # the board raises on its own while the meter fault is set
        amps = [round(a * 100) for a in r["current_a"]]
        volts = [round(v * 10) for v in r["voltage_v"]]
        regs = " ".join(map(str, amps + volts))
        self._u1_write(f"m {int(r['energy_wh'])} {int(r['power_w'])} {regs}")
        self._meter_sent = (key, now)

    async def tick(self):
        while True:
            await asyncio.sleep(TICK_S)
            self.world.update()
            if self.ready:
                self._push_meter()
                now = time.monotonic()
                if now - self._heap_s >= HEAP_SAMPLE_S:
                    self._heap_s = now
                    self._u1_write("h")

    async def snapshot(self):
        if not self.ready or self._u1 is None:
            return self._snap, dict(self.heap)
        self._next_id += 1
        rid = self._next_id
        fut = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        self._u1_write(f"s {rid}")
        try:
            await asyncio.wait_for(asyncio.shield(fut), SNAPSHOT_TIMEOUT_S)
        except TimeoutError:
            pass
        finally:
            self._waiting.pop(rid, None)
        return self._snap, dict(self.heap)


class EmuControl(ControlServer):
    """The contract's control socket; `state` also carries `emu`: the safety loop's figures
    (last_us, max_us: one iteration in emulated us; n: iterations) and the boot count."""

    async def _cmd_emu_reset_max(self, req):
        """{"cmd": "emu_reset_max"} (emu_pico only): restart the heap peak and the safety loop's
        maxima on the board."""
        self.twin._u1_write("x")
        return {"ok": True}

    async def _cmd_state(self, req):
        resp = await super()._cmd_state(req)
        resp["emu"] = {"safety": self.twin.safety, "boots": self.twin.boots}
        return resp


def check_args(args):
    """The options emu_pico cannot honour yet: an error message, or None."""
    if args.connectors != 1:
        return "--board emu_pico has one connector (the Pico's pin map): --connectors must be 1"
    if args.ca or args.cert or args.key or (args.csms and args.csms.startswith("wss://")):
        return "--board emu_pico: TLS over the UART bridge is not done yet (no --ca/--cert/--key, no wss://)"
    if args.heap != SIM_DEFAULT_HEAP and args.heap > MAX_HEAP:
        return f"--board emu_pico: --heap is at most {MAX_HEAP} (the RP2040's GC heap)"
    if args.app != "romfs":
        return "--board emu_pico runs the app from its ROMFS image only (--app romfs)"
    return None


def build_image():
    lock_path = ROOT / "build" / ".emu-build.lock"
    lock_path.parent.mkdir(exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return emu_boot.build_image()


async def supervise(args, data, image):
    world = World(1, seed=args.seed, clock=EmuClock())
    twin = EmuTwin(world, args, data, image)
    if args.heap == SIM_DEFAULT_HEAP:
        twin.heap_limit = None
    control = EmuControl(world, twin)
    return await sim.serve(args, world, twin, control, "the emulator", quick_crash_s=QUICK_CRASH_S)


def run(args):
    """Entry point from tools/sim.py (its parsed options); returns the exit status."""
    why = check_args(args)
    if why:
        warn(why)
        return 2
    why = emu_boot.missing()
    if why:
        warn(f"the emulator cannot run here: {why}")
        return 2
    temp = None
    if args.data:
        data = Path(args.data).resolve()
    else:
        temp = data = Path(tempfile.mkdtemp(prefix="evse-emu-"))
    data.mkdir(parents=True, exist_ok=True)
    try:
        image = build_image()
        return asyncio.run(supervise(args, data, image))
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
