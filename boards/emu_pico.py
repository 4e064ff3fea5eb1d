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
# - UART1 answers a status request: the host writes b"?" and gets one line
#   "EMU STAT ms=<ticks_ms> free=<gc.mem_free()> alloc=<gc.mem_alloc()> connect_ms=<ticks_ms at
#   the first connect> connects=<n>\n" (after gc.collect()).
# - No meter, no watchdog unless site.json sets wdt_ms, link_up() always True, no SNTP.
import asyncio

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
    "ctl_uart": 1,  # status requests from the host
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
        super().__init__(s)
        self._net = None
        self.connect_ms = None  # ticks_ms of the first connect request

    def link_up(self):
        return True

    async def open_connection(self, host, port, ssl_ctx=None, server_hostname=None):
        """The websocket opener: a TCP connection carried over UART0 by tools/emu_boot.py."""
        if ssl_ctx is not None:
            raise OSError(EHOSTUNREACH, "bridge: no TLS on emu_pico")
        if self._net is None:
            p = self.pins
            self._net = UartLink(p["net_uart"], p["net_tx"], p["net_rx"])
        if self.connect_ms is None:
            import time

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
        import gc
        import time

        p = self.pins
        u = machine.UART(
            p["ctl_uart"], _BAUD, tx=machine.Pin(p["ctl_tx"]), rx=machine.Pin(p["ctl_rx"]), timeout=0
        )
        r = asyncio.StreamReader(u)
        while True:
            c = await r.read(1)
            if c == b"?":
                gc.collect()
                net = self._net
                u.write(
                    "EMU STAT ms=%d free=%d alloc=%d connect_ms=%s connects=%d\n"
                    % (
                        time.ticks_ms(),
                        gc.mem_free(),
                        gc.mem_alloc(),
                        self.connect_ms,
                        0 if net is None else net.connects,
                    )
                )
