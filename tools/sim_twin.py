"""The supervisor's end of the hardware bus: the MicroPython process that runs the firmware on the
board twin (boards/sim.py, started as `micropython -m sim_boot ARGS.json`).

Pushes go to the child's stdin, one JSON array per line: ["p", c, ev_ohms, diode, pp_ohms],
["f", c, fault_bits], ["m", c, wh, w, cA x3, dV x3], ["n", up], ["c", tag], ["h"] (sample the
heap), ["s", id] (snapshot request), ["g"] (end of the initial state). The child answers on its
stdout with lines starting with \\x1e (RS): R (firmware started), d/r/l (duty, relay, lock set),
e (board.event), k (card taken), S (snapshot). Other stdout lines are not the bus: they go to
stderr. docs/SIM.md has the details.
"""

import asyncio
import json
import re
import signal
import sys
import time

from sim_world import PP_OHMS, World

RS = b"\x1e"
EXIT_RESET = 3  # boards/sim_boot.py: main.run returned "reset"
METER_PUSH_MAX_S = 1.0  # the meter's registers are pushed at least this often (voltage noise)
TICK_S = 0.1  # world physics, meter pushes and heap sampling
SNAPSHOT_TIMEOUT_S = 1.0
MAX_BUS_LINE = 1 << 20
HEAP_FIELDS = ("free", "used", "peak", "size", "sim", "platform")
CLOCK_SKEW_MAX_MS = 1000  # the child's ticks_ms must be our monotonic clock (both CLOCK_MONOTONIC)


class TwinProcess:
    def __init__(self, world: World, cmd, env=None, cwd=None, preexec_fn=None):
        self.world = world
        self.cmd = cmd
        self.env = env
        self.cwd = cwd
        self.preexec_fn = preexec_fn
        self.proc = None
        self.ready = False  # the firmware runs in the current child (its R line arrived)
        self.boots = 0
        self.started_s = 0.0
        self.heap = dict.fromkeys(HEAP_FIELDS)
        self.last_cp = [None] * (world.n + 1)  # the firmware's last "cp" event per connector
        self._snap = None  # the last snapshot the firmware gave
        self._waiting = {}  # snapshot request id -> future
        self._next_id = 0
        self._use_child_clock = False
        self._meter_sent = {}  # c -> (key, time) of the last meter push
        world.listener = self._on_input

    # ---- lifecycle ----

    async def run(self, on_ready):
        """Start a child, feed it, pump its output until it exits; returns its exit status
        (128 + signal number when killed by a signal)."""
        self.ready = False
        self._snap = None
        self.last_cp = [None] * (self.world.n + 1)
        self._meter_sent = {}
        self.heap = dict.fromkeys(HEAP_FIELDS)
        self.boots += 1
        self.world.event("boot", 0, self.boots)
        self.started_s = time.monotonic()
        self.proc = await asyncio.create_subprocess_exec(
            *self.cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=self.env,
            cwd=self.cwd,
            preexec_fn=self.preexec_fn,
            limit=MAX_BUS_LINE,
        )
        for line in self._initial_state():
            self._write(line)
        self._write(["g"])
        try:
            await self._pump(on_ready)
            rc = await self.proc.wait()
        finally:
            self.ready = False
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_result(None)
            self._waiting.clear()
        return rc if rc >= 0 else 128 - rc

    async def stop(self, timeout):
        """Orderly shutdown: EOF on the child's stdin; SIGKILL after `timeout` seconds."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        try:
            proc.stdin.close()
        except (OSError, RuntimeError):
            pass
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            self.kill()
            await proc.wait()

    def kill(self):
        if self.proc is not None and self.proc.returncode is None:
            try:
                self.proc.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass

    # ---- supervisor -> child ----

    def _write(self, obj):
        proc = self.proc
        if proc is None or proc.returncode is not None or proc.stdin.is_closing():
            return
        try:
            proc.stdin.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n")
        except (OSError, RuntimeError):
            pass  # the child is exiting: the next one gets the whole state

    def _initial_state(self):
        w = self.world
        for c in range(1, w.n + 1):
            yield self._pilot(c)
            yield ["f", c, w.conns[c].fault_bits()]
            m = self._meter(c)
            if m:
                yield m
        yield ["n", w.link_up]
        for tag in w.cards:
            yield ["c", tag]

    def _pilot(self, c):
        k = self.world.conns[c]
        ohms, diode = k.pilot_circuit()
        return ["p", c, ohms, 1 if diode else 0, PP_OHMS[k.cable_amps] if k.plugged else 0]

    def _meter(self, c):
        try:
            r = self.world.meter_reading(c)
        except OSError:
            return None  # the twin raises on its own while the fault bit is set
        amps = [round(a * 100) for a in r["current_a"]]  # cA and dV: the twin keeps integers
        return ["m", c, r["energy_wh"], r["power_w"], *amps, *(round(v * 10) for v in r["voltage_v"])]

    def _on_input(self, kind, c):
        w = self.world
        if kind == "pilot":
            self._write(self._pilot(c))
        elif kind == "fault":
            self._write(["f", c, w.conns[c].fault_bits()])
        elif kind == "network":
            self._write(["n", w.link_up])
        elif kind == "card":
            self._write(["c", w.cards[-1]])
        elif kind == "meter":
            self._push_meter(c, force=True)

    def _push_meter(self, c, force=False):
        k = self.world.conns[c]
        key = (k.energy_wh(), round(k.current_a, 2))
        last = self._meter_sent.get(c)
        now = time.monotonic()
        if not force and last and last[0] == key and now - last[1] < METER_PUSH_MAX_S:
            return
        m = self._meter(c)
        if m:
            self._write(m)
            self._meter_sent[c] = (key, now)

    async def tick(self):
        """Every TICK_S: the physics advance, changed meter registers and a heap sample request
        go to the child (which tracks its heap peak)."""
        while True:
            await asyncio.sleep(TICK_S)
            self.world.update()
            if self.ready:
                for c in range(1, self.world.n + 1):
                    self._push_meter(c)
                self._write(["h"])

    async def snapshot(self):
        """(the firmware's published state or None, heap figures) as of now."""
        if not self.ready:
            return self._snap, dict(self.heap)
        self._next_id += 1
        rid = self._next_id
        fut = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        self._write(["s", rid])
        try:
            await asyncio.wait_for(asyncio.shield(fut), SNAPSHOT_TIMEOUT_S)
        except TimeoutError:
            pass  # the firmware is busy: the last snapshot it gave
        finally:
            self._waiting.pop(rid, None)
        return self._snap, dict(self.heap)

    # ---- child -> supervisor ----

    async def _pump(self, on_ready):
        out = self.proc.stdout
        while True:
            try:
                line = await out.readline()
            except ValueError:  # longer than MAX_BUS_LINE: dropped
                sys.stderr.write("sim: an over-long line from the firmware process was dropped\n")
                continue
            if not line:
                return
            i = line.find(RS)
            if i < 0:
                _stray(line)
                continue
            if i > 0:
                _stray(line[:i] + b"\n")
            try:
                self._handle(line[i + 1 :].rstrip(b"\n"), on_ready)
            except (ValueError, IndexError, TypeError) as e:
                sys.stderr.write(f"sim: bad bus line {line[:80]!r}: {e}\n")

    def _stamp(self, ticks):
        """Event time (ms since the world began) of the child's time.ticks_ms() value."""
        if not self._use_child_clock:
            return None  # stamped on arrival
        return int(ticks - self.world.t0)

    def _handle(self, line, on_ready):
        op = line[:1]
        w = self.world
        if op in (b"d", b"r", b"l"):
            _, ticks, c, v = line.split()
            t = self._stamp(int(ticks))
            if op == b"d":
                w.set_duty(int(c), int(v), t)
            elif op == b"r":
                w.set_relay(int(c), v == b"1", t)
            else:
                w.set_lock(int(c), v == b"1", t)
        elif op == b"e":
            _, ticks, data = line.split(b" ", 2)
            kind, c, value = _event(data)
            if not isinstance(c, int) or isinstance(c, bool) or not 0 <= c <= 255:
                c = 0
            if kind == "cp" and 1 <= c <= w.n:
                self.last_cp[c] = value
            w.event(str(kind), c, value, self._stamp(int(ticks)))
        elif op == b"k":
            w.take_card()
        elif op == b"S":
            _, rid, free, used, peak, data = line.split(b" ", 5)
            snap = json.loads(data)
            self._snap = snap if isinstance(snap, dict) else None
            self.heap.update(free=int(free), used=int(used), peak=int(peak), size=int(free) + int(used))
            fut = self._waiting.get(int(rid))
            if fut is not None and not fut.done():
                fut.set_result(True)
        elif op == b"R":
            ticks, size, sim, used, platform = (int(x) for x in line.split()[1:6])
            self._use_child_clock = abs(ticks - self.world.clock()) < CLOCK_SKEW_MAX_MS
            self.heap.update(free=size - used, used=used, peak=used, size=size, sim=sim, platform=platform)
            self.ready = True
            # What the firmware sees must be current: the meter's registers right away.
            for c in range(1, w.n + 1):
                self._push_meter(c, force=True)
            on_ready()
        else:
            raise ValueError("unknown op")


_EVENT = re.compile(rb'\["((?:[^"\\]|\\.)*)", (-?\d+), (.*)\]\Z', re.S)


def _event(data):
    """(kind, connector, value) of an event line's JSON. MicroPython's json.dumps writes what it
    cannot encode as its repr (`<X object at ...>`): such a value is kept as that text."""
    try:
        kind, c, value = json.loads(data)
        return kind, c, value
    except ValueError:
        m = _EVENT.match(data)
        if m is None:
            raise
        return json.loads(b'"' + m.group(1) + b'"'), int(m.group(2)), m.group(3).decode(errors="replace")


def _stray(line):
    # Not a bus line (a print() in the firmware, say): it belongs in the log, not on the bus.
    sys.stderr.buffer.write(line)
    sys.stderr.flush()
