# The emulated Raspberry Pi Pico (RP2040, no Wi-Fi) of tools/emu/: the real rp2 port in rp2040js,
# one Type 2 socket; imported as `board`. Same pins and drivers as boards/pico_w.py; what differs:
#
# - Network: there is no radio. The websocket's TCP connection is carried over UART0, which the
#   emulator bridges to a host TCP socket; tools/emu_boot.py is the host end and opens the real
#   connection to the CSMS. One connection at a time, framed (both directions):
#       [type: 1 byte][length: 2 bytes, big-endian][payload: length bytes]
#   board -> host: b"C" connect, payload "host:port" (ASCII); b"D" data; b"X" close.
#   host -> board: b"O" connected (empty); b"E" connect failed, payload the errno (ASCII);
#                  b"D" data; b"X" the peer closed (or the host dropped the connection).
#   A "C" ends whatever connection the host still had; the board skips every frame before the
#   answer ("O"/"E") to its "C", so bytes of an old connection never reach a new one. Flow control
#   is the UART's: the driver feeds the RX FIFO only while it has room, and the rp2 port stops
#   draining the FIFO while its ring buffer is full.
# - UART1 is the rest of the world, one ASCII line each way (ticks = time.ticks_ms()):
#   host -> board: "?" -> the status line "EMU STAT ms=<ticks_ms> free=<gc.mem_free()>
#                  alloc=<gc.mem_alloc()> connect_ms=<ticks_ms at the first connect> connects=<n>"
#                  (after gc.collect()). With site.json "host_world": true (tools/emu_sim.py, the
#                  `tools/sim.py --board emu_pico` supervisor) also:
#                  "s ID" snapshot request -> "S ID free used peak {snapshot JSON}" (heap figures
#                  at most 1 s old: a sample costs the board tens of ms);
#                  "h" sample the heap (peak); "x" restart the maxima (heap peak, the safety
#                  loop's iteration and period, reported in the snapshot's "safety");
#                  "m WH W cA cA cA dV dV dV" the meter's registers; "q" orderly stop: the app's
#                  task is cancelled (main.run closes the websocket), then "Q" is sent;
#                  "c TAG" a card at the reader; "n 0|1" the network link; "f BITS" injected faults
#                  (overtemp 8 and meter 16 act here; rcd, weld and lock reach the pins through the
#                  host's board model, tools/emu/charger_model.mjs); "P {preset JSON}" the answer
#                  to the board's "P" (below).
#   board -> host (host_world only): "P" at every start, in Board(): the host answers with the
#                  configuration keys to apply (the sim's preset: --csms, --id, --set), written to
#                  <flash>/preset.json, which the boot stub applies; "R ticks size used platform"
#                  once the firmware runs (its snapshot is published); "e ticks [kind, c, value]"
#                  board.event(); "d ticks c permille" the pilot duty the firmware set; "k" a
#                  card was taken from the reader.
# - Without host_world: no meter, no watchdog unless site.json sets wdt_ms, link_up() always
#   True, no SNTP. With it: the meter reads the pushed registers, rfid_read() the pushed cards,
#   link_up() the pushed link, temperature_c() 31..33 degC (92..94 with the overtemp fault).
import asyncio
import gc
import json
import time

import machine
from micropython import const

from hal.mcu_board import McuBoard

NAME = "emu_pico"

PINS = {
    "pilot_pwm": 16,  # PWM slice 0 A, 1 kHz into the pilot generator (modelled by the host)
    "pilot_adc": 26,  # ADC0: pilot sense divider
    "pp_adc": 27,  # ADC1: PP node under the pull-up
    "relay": 15,
    "relay_fb": 14,
    "rcd_fault": 13,
    "rcd_test": 12,
    "lock_a": 10,
    "lock_b": 11,
    "lock_fb": 9,
    "net_uart": 0,  # the network bridge (see above)
    "net_tx": 0,
    "net_rx": 1,
    "ctl_uart": 1,  # the rest of the world (see above)
    "ctl_tx": 4,
    "ctl_rx": 5,
    "s0": 3,
    "spi": 0,  # an MFRC522 is not emulated: rfid_read() retries every 10 s and returns None
    "spi_sck": 18,
    "spi_mosi": 19,
    "spi_miso": 20,
    "rfid_cs": 17,
    "rfid_rst": 21,
    "led": 25,  # the Pico's LED is a plain GPIO
    "temp_adc": None,
}
CAPS = {"connectors": 1, "fixed_cable": False, "meter": None, "meter_model": None}

# Same divider and ADC as the Pico W board (boards/pico_w.py, docs/BOARDS.md).
ADC_FULL_MV = 3300
PILOT_MV_PER_COUNT = 12 * ADC_FULL_MV / 65535
PILOT_OFFSET_MV = -15000
PP_PULLUP_OHMS = 1000
PP_VREF_MV = 3300
ADC_ATTEN = None

_BAUD = const(115200)  # no pacing in the emulator: bytes leave at once whatever the rate
_RXBUF = const(2048)
_TXBUF = const(1024)
_MAX_FRAME = const(1024)  # data frame payload at most (board -> host)
_CONNECT_MS = const(15000)  # the host's answer to a connect request
_CTLBUF = const(1024)
_HELLO_MS = const(5000)  # the host's answer to "P" at most
_HEAP_MAX_AGE_MS = const(1000)  # `s` resamples the heap figures when they are older than this
_MAX_CARDS = const(8)
_HOT = const(8)  # fault bits of the "f" line (tools/sim_world.py FAULT_BITS)
_METER = const(16)
EHOSTUNREACH = const(113)
ETIMEDOUT = const(110)
EBADF = const(9)


class UartLink:
    """The UART0 end of the network bridge: frames out, a frame parser in. One stream at a time."""

    def __init__(self, uart_id, tx, rx):
        self.uart = machine.UART(
            uart_id, _BAUD, tx=machine.Pin(tx), rx=machine.Pin(rx), rxbuf=_RXBUF, txbuf=_TXBUF, timeout=0
        )
        self.reader = asyncio.StreamReader(self.uart)
        self._hdr = bytearray(3)
        self.stream = None  # the open UartStream
        self.connects = 0

    def send(self, kind, payload=b""):
        h = self._hdr
        n = len(payload)
        h[0] = kind
        h[1] = n >> 8
        h[2] = n & 0xFF
        self._write(h)
        if n:
            self._write(payload)

    def _write(self, buf):
        mv = memoryview(buf)
        while mv:  # UART.write may take less than all when its buffer is full
            k = self.uart.write(mv)
            if k:
                mv = mv[k:]

    async def header(self):
        """(type, length) of the next frame from the host."""
        h = await self.reader.readexactly(3)
        return h[0], h[1] << 8 | h[2]

    async def skip(self, n):
        while n > 0:
            k = min(n, 64)
            await self.reader.readexactly(k)
            n -= k

    async def open(self, host, port):
        if self.stream is not None:
            self.stream._end()
        self.send(0x43, ("%s:%d" % (host, port)).encode())  # "C"
        while True:
            kind, n = await self.header()
            if kind == 0x4F:  # "O"
                await self.skip(n)
                break
            if kind == 0x45:  # "E"
                e = await self.reader.readexactly(n) if n else b""
                try:
                    errno = int(e)
                except ValueError:
                    errno = EHOSTUNREACH
                raise OSError(errno, "bridge: connect failed")
            await self.skip(n)  # a frame of an old connection
        self.connects += 1
        self.stream = UartStream(self)
        return self.stream


class UartStream:
    """The stream interface ws.py uses (readinto, write, drain, wait_closed) over a UartLink."""

    def __init__(self, link):
        self._l = link
        self._left = 0  # bytes of the current data frame not read yet
        self._eof = False
        self._closed = False

    def _end(self):
        # Local close (or a new connection replaces this one): tell the host once.
        if not self._closed:
            self._closed = True
            if not self._eof:
                self._l.send(0x58)  # "X"
            if self._l.stream is self:
                self._l.stream = None

    async def readinto(self, buf):
        if self._closed:
            raise OSError(EBADF)
        if self._eof:
            return 0
        link = self._l
        while self._left == 0:
            kind, n = await link.header()
            if self._closed:
                raise OSError(EBADF)
            if kind == 0x44:  # "D"
                self._left = n
            elif kind == 0x58:  # "X": the peer closed
                await link.skip(n)
                self._eof = True
                return 0
            else:
                await link.skip(n)
        k = min(self._left, len(buf))
        mv = memoryview(buf)
        got = None
        while not got:  # None: nothing there after all (a spurious wake-up)
            got = await link.reader.readinto(mv[:k] if k < len(buf) else mv)
            if got == 0:
                self._eof = True
                return 0
        self._left -= got
        return got

    async def readexactly(self, n):
        out = bytearray(n)
        mv = memoryview(out)
        p = 0
        while p < n:
            k = await self.readinto(mv[p:])
            if not k:
                raise EOFError
            p += k
        return bytes(out)

    def write(self, buf):
        if self._closed or self._eof:
            raise OSError(EBADF)
        mv = memoryview(buf)
        while mv:
            k = min(len(mv), _MAX_FRAME)
            self._l.send(0x44, mv[:k])  # "D"
            mv = mv[k:]

    async def drain(self):
        await asyncio.sleep_ms(0)

    def close(self):
        self._end()

    async def wait_closed(self):
        self._end()


class _Meter:
    """The energy meter the host's world pushes over UART1: read() like SdmMeter.read()."""

    def __init__(self, b):
        self._b = b

    def read(self):
        b = self._b
        if b._mtr is None or b._faults & _METER:
            raise OSError(5, "meter not responding")  # EIO, like a Modbus timeout
        return b._mtr


class Board(McuBoard):
    name = NAME
    pins = PINS
    caps = CAPS
    vendor = "MicroEVSE"
    model = "EMU-PICO-AC1"
    adc_full_mv = ADC_FULL_MV
    pilot_mv_per_count = PILOT_MV_PER_COUNT
    pilot_offset_mv = PILOT_OFFSET_MV
    pp_pullup_ohms = PP_PULLUP_OHMS
    pp_vref_mv = PP_VREF_MV
    adc_atten = ADC_ATTEN
    pilot_dma = True  # ADC FIFO + rp2.DMA: the emulator runs both at hardware timing
    hard_irq = True

    def __init__(self, settings=None):
        s = dict(settings or {})
        s.pop("wifi_ssid", None)  # no radio
        s.setdefault("wdt_ms", 0)  # the emulator has the watchdog; site.json may ask for it
        s.setdefault("ntp_host", None)
        host = s.pop("host_world", False) is True
        super().__init__(s)
        self._net = None
        self.connect_ms = None  # ticks_ms of the first connect request
        self._u = None  # UART1
        self.host = host
        self._link = True
        self._faults = 0
        self._mtr = None  # the meter's last pushed reading
        self._cards = []
        self.heap_peak = self.heap_used = self.heap_free = 0
        self.heap_ms = None  # ticks_ms of the last sample_heap()
        self._app = None  # the task running main.run (publish)
        # the safety loop as seen from here: from its pilot burst to its alive("safety") (one
        # iteration, us), and between two check-ins (its period: 20 ms unless held up)
        self._t_burst = 0
        self._t_alive = None
        self.step_us = self.step_max_us = self.gap_max_us = self.steps = 0
        if host:
            self._hello()

    # ---- UART1 ----

    def _ctl(self):
        u = self._u
        if u is None:
            p = self.pins
            u = self._u = machine.UART(
                p["ctl_uart"], _BAUD, tx=machine.Pin(p["ctl_tx"]), rx=machine.Pin(p["ctl_rx"]),
                rxbuf=_CTLBUF, txbuf=_CTLBUF, timeout=0,
            )  # fmt: skip
        return u

    def _send(self, *parts):
        u = self._ctl()
        for part in parts:
            if isinstance(part, str):
                part = part.encode()
            mv = memoryview(part)
            while mv:  # UART.write may take less than all when its buffer is full
                k = u.write(mv)
                if k:
                    mv = mv[k:]

    def _hello(self):
        """Ask the host for the configuration keys of this start (the sim's preset) and write them
        where the boot stub applies them; without an answer the flash stays as it is."""
        u = self._ctl()
        t0 = time.ticks_ms()
        asked = None
        line = bytearray()
        while time.ticks_diff(time.ticks_ms(), t0) < _HELLO_MS:
            if asked is None or time.ticks_diff(time.ticks_ms(), asked) >= 500:
                u.write(b"P\n")
                asked = time.ticks_ms()
            if not u.any():
                time.sleep_ms(2)
                continue
            c = u.read(1)
            if c != b"\n":
                line.extend(c)
                continue
            if line[:2] == b"P ":
                preset = json.loads(line[2:])
                if isinstance(preset, dict) and preset:
                    with open(self.flash + "/preset.json", "w") as f:
                        json.dump(preset, f)
                return
            line = bytearray()  # a line of an earlier boot's conversation

    def sample_heap(self):
        """gc.mem_alloc() right after a collection (tracks the peak); also keeps .heap_free.
        Costly on this chip: a collection of ~80 KB live plus the allocation-table scans of
        mem_alloc()/mem_free() take about 20-30 ms of CPU on a 240 KB heap."""
        gc.collect()
        used = gc.mem_alloc()
        self.heap_free = gc.mem_free()
        self.heap_ms = time.ticks_ms()
        if used > self.heap_peak:
            self.heap_peak = used
        self.heap_used = used
        return used

    # ---- the board interface, host_world variants ----

    def event(self, kind, connector, value):
        super().event(kind, connector, value)
        if not self.host:
            return
        try:
            data = json.dumps((kind, connector, value))
        except Exception:  # a value JSON cannot carry: its repr
            data = json.dumps((str(kind), connector, repr(value)))
        self._send(b"e %d " % time.ticks_ms(), data, b"\n")

    def publish(self, fn):
        super().publish(fn)
        if self.host:
            self._app = asyncio.current_task()  # main.run publishes from its own task
            used = self.sample_heap()
            self._send(b"R %d %d %d 0\n" % (time.ticks_ms(), gc.mem_free() + used, used))

    def _make_pilot(self):
        p = super()._make_pilot()
        if self.host:
            set_duty = p.set_duty

            def report(permille):
                old = p.duty
                set_duty(permille)
                if p.duty != old:
                    self._send(b"d %d 1 %d\n" % (time.ticks_ms(), p.duty))

            p.set_duty = report
            burst = p.burst

            def timed(buf):
                self._t_burst = time.ticks_us()
                burst(buf)

            p.burst = timed
        return p

    def alive(self, name):
        super().alive(name)
        if name == "safety" and self.host:
            now = time.ticks_us()
            dt = time.ticks_diff(now, self._t_burst)
            self.step_us = dt
            if dt > self.step_max_us:
                self.step_max_us = dt
            if self._t_alive is not None:
                gap = time.ticks_diff(now, self._t_alive)
                if gap > self.gap_max_us:
                    self.gap_max_us = gap
            self._t_alive = now
            self.steps += 1

    def meter(self, c):
        if not self.host:
            return super().meter(c)
        self._check(c)
        return self._get("meter", "_make_host_meter")

    def _make_host_meter(self):
        return _Meter(self)

    def rfid_read(self):
        if not self.host:
            return super().rfid_read()
        if not self._cards:
            return None
        self._send(b"k\n")
        return self._cards.pop(0)

    def temperature_c(self, c):
        if not self.host:
            return super().temperature_c(c)
        self._check(c)
        return (92 if self._faults & _HOT else 31) + time.ticks_ms() % 3

    def link_up(self):
        return self._link

    async def open_connection(self, host, port, ssl_ctx=None, server_hostname=None):
        """The websocket opener: a TCP connection carried over UART0 by the host."""
        if ssl_ctx is not None:
            raise OSError(EHOSTUNREACH, "bridge: no TLS on emu_pico")
        if not self._link:
            await asyncio.sleep_ms(500)
            raise OSError(EHOSTUNREACH, "no network")
        if self._net is None:
            p = self.pins
            self._net = UartLink(p["net_uart"], p["net_tx"], p["net_rx"])
        if self.connect_ms is None:
            self.connect_ms = time.ticks_ms()
        try:
            return await asyncio.wait_for_ms(self._net.open(host, port), _CONNECT_MS)
        except asyncio.TimeoutError:
            raise OSError(ETIMEDOUT, "bridge: no answer")

    def start(self):
        tasks = super().start()
        tasks.append(asyncio.create_task(self._control()))
        return tasks

    async def _control(self):
        r = asyncio.StreamReader(self._ctl())
        while True:
            line = await r.readline()
            if not line:
                await asyncio.sleep_ms(10)
                continue
            try:
                self._line(line)
            except Exception as e:  # a bad line must not end the bus
                self.event("bus", 0, repr(e))

    async def _quit(self):
        t = self._app
        if t is not None:
            t.cancel()  # main.run's finally closes the websocket
            try:
                await t
            except BaseException:  # CancelledError, or what the app ended with
                pass
        self._send(b"Q\n")

    def _line(self, line):
        op = line[:1]
        if op == b"?":
            used = self.sample_heap()
            net = self._net
            self._send(
                "EMU STAT ms=%d free=%d alloc=%d connect_ms=%s connects=%d\n"
                % (time.ticks_ms(), gc.mem_free(), used, self.connect_ms, 0 if net is None else net.connects)
            )
            return
        if not self.host:
            return
        if op == b"s":
            # the heap figures of the last second: a sample costs tens of ms of CPU (above) and a
            # test polling `state` every 50 ms must not load the board that much
            if self.heap_ms is None or time.ticks_diff(time.ticks_ms(), self.heap_ms) > _HEAP_MAX_AGE_MS:
                self.sample_heap()
            fn = self._publish
            if fn is None:
                data = "null"
            else:
                try:
                    snap = fn()
                    if not isinstance(snap, dict):
                        snap = {"error": "snapshot: not a dict"}
                    snap["safety"] = {
                        "last_us": self.step_us,
                        "max_us": self.step_max_us,
                        "gap_max_us": self.gap_max_us,
                        "n": self.steps,
                    }
                    data = json.dumps(snap)
                except Exception as e:  # a broken snapshot must not take the bus down
                    data = json.dumps({"error": repr(e)})
            rid = int(line[2:])
            self._send(b"S %d %d %d %d " % (rid, self.heap_free, self.heap_used, self.heap_peak), data, b"\n")
        elif op == b"h":
            self.sample_heap()
        elif op == b"q":  # orderly stop (the supervisor's SIGTERM): main.run says goodbye
            asyncio.create_task(self._quit())
        elif op == b"x":  # restart the maxima (heap peak, safety loop)
            self.heap_peak = self.heap_used
            self.step_max_us = self.gap_max_us = 0
        elif op == b"m":
            v = [int(x) for x in line[2:].split()]
            self._mtr = {
                "energy_wh": v[0],
                "power_w": v[1],
                "current_a": [v[2] / 100, v[3] / 100, v[4] / 100],
                "voltage_v": [v[5] / 10, v[6] / 10, v[7] / 10],
            }
        elif op == b"c":
            tag = line[2:].strip().decode()
            if tag and len(self._cards) < _MAX_CARDS:
                self._cards.append(tag)
        elif op == b"n":
            self._link = line[2:3] == b"1"
        elif op == b"f":
            self._faults = int(line[2:])
