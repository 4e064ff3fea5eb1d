# Fake `machine` for the MicroPython Unix port: the hardware the firmware/hal drivers touch, with
# hooks a test uses to play the outside world (an ADC signal, a UART peer, an IRQ edge) and logs
# of what the driver did (PWM settings, pin writes). Tests put host_tests/fakes first on sys.path;
# this file then shadows the built-in `machine` (micropython-platform.md 5.2).
# NEVER deploy this to a board: it would shadow the real module there too.
import time

# ---- the outside world, as the tests set it -------------------------------------------------

_adc_sources = {}  # pin id -> callable(t_us) -> raw u16, or a sequence replayed cyclically
_adc_pos = {}
_freq = 160000000
_resets = []


def set_adc(pin_id, source):
    """Install what ADC(pin_id).read_u16() returns: a callable of ticks_us(), or a sequence of
    raw values played in a loop (deterministic replay)."""
    _adc_sources[pin_id] = source
    _adc_pos[pin_id] = 0


def _pid(pin):
    return pin.id if isinstance(pin, Pin) else pin


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2

    _all = {}  # id -> last Pin object built for it (tests look pins up by id)
    events = []  # (id, value) of every write to any pin, in order (tests clear it)

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        self._v = 0 if value is None else (1 if value else 0)
        self.log = [] if value is None else [self._v]  # every value written, in order
        self._irq = None
        self._trigger = 0
        Pin._all[id] = self

    def init(self, mode=-1, pull=-1, value=None):
        if mode != -1:
            self.mode = mode
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = 1 if v else 0
        self.log.append(self._v)
        Pin.events.append((self.id, self._v))
        return None

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3, hard=False):
        self._irq = handler
        self._trigger = trigger

    def drive(self, v):
        """Test side: the outside world sets an input level; fires the IRQ on a matching edge."""
        v = 1 if v else 0
        old = self._v
        self._v = v
        if self._irq is not None and old != v:
            edge = Pin.IRQ_RISING if v else Pin.IRQ_FALLING
            if self._trigger & edge:
                self._irq(self)


class PWM:
    _all = {}  # pin id -> PWM

    def __init__(self, pin, freq=None, duty_u16=None, invert=False):
        self.pin = _pid(pin)
        self.invert = invert
        self.calls = []  # ("freq", hz) / ("duty_u16", v) in call order
        self._freq = 0
        self._duty = 0
        if freq is not None:
            self.freq(freq)
        if duty_u16 is not None:
            self.duty_u16(duty_u16)
        PWM._all[self.pin] = self

    def freq(self, hz=None):
        if hz is None:
            return self._freq
        self._freq = hz
        self.calls.append(("freq", hz))

    def duty_u16(self, v=None):
        if v is None:
            return self._duty
        if not 0 <= v <= 65535:
            raise ValueError("duty_u16 out of range")
        self._duty = v
        self.calls.append(("duty_u16", v))

    def deinit(self):
        self.calls.append(("deinit", 0))


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3

    def __init__(self, pin, atten=None):
        self.pin = _pid(pin)
        self.atten = atten

    def read_u16(self):
        src = _adc_sources[self.pin]  # KeyError: the test forgot set_adc(), which is its bug
        if callable(src):
            return src(time.ticks_us())
        i = _adc_pos[self.pin]
        _adc_pos[self.pin] = i + 1 if i + 1 < len(src) else 0
        return src[i]


class UART:
    """A UART whose far end is either a test-installed `peer`: peer(bytes_written) returns the
    bytes the device answers (or None), readable after the write; or, when the environment
    variable FAKE_UART_FD names an inherited file descriptor (a pty end), that descriptor."""

    def __init__(self, id, baudrate=9600, **kw):
        self.id = id
        self.baudrate = baudrate
        self.kw = kw
        self.peer = None
        self.written = []  # each write() as bytes
        self._rx = bytearray()
        self._f = None
        fd = __import__("os").getenv("FAKE_UART_FD")
        if fd:
            import select

            self._f = open(int(fd), "r+b")
            self._poll = select.poll()
            self._poll.register(self._f, select.POLLIN)
            self._one = bytearray(1)

    def _pump(self):
        # A blocking descriptor: read only what poll() says is there, one byte at a time
        # (readinto() of more would wait for the whole buffer).
        while self._poll.poll(0):
            if not self._f.readinto(self._one):
                break
            self._rx.append(self._one[0])

    def write(self, buf):
        data = bytes(buf)
        self.written.append(data)
        if self._f is not None:
            self._f.write(data)  # unbuffered; no flush(): it is fsync(), EINVAL on a tty
        elif self.peer is not None:
            ans = self.peer(data)
            if ans:
                self._rx.extend(ans)
        return len(data)

    def feed(self, data):
        """Test side: bytes arrive on RX."""
        self._rx.extend(data)

    def any(self):
        if self._f is not None:
            self._pump()
        return len(self._rx)

    def read(self, n=None):
        if not self.any():
            return None
        n = len(self._rx) if n is None else min(n, len(self._rx))
        out = bytes(self._rx[:n])
        self._rx = self._rx[n:]
        return out

    def readinto(self, buf, n=None):
        data = self.read(len(buf) if n is None else n)
        if not data:
            return None
        buf[: len(data)] = data
        return len(data)

    def flush(self):
        pass

    def txdone(self):
        return True


class SPI:
    """SPI bus whose device is a test-installed `device.xfer(tx_bytes) -> rx_bytes`."""

    def __init__(self, id, baudrate=1000000, **kw):
        self.id = id
        self.device = None

    def write_readinto(self, tx, rx):
        rx[:] = self.device.xfer(bytes(tx))

    def write(self, tx):
        self.device.xfer(bytes(tx))


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0

    def feed(self):
        self.feeds += 1


class RTC:
    def __init__(self):
        self._dt = (2000, 1, 1, 5, 0, 0, 0, 0)

    def datetime(self, dt=None):
        if dt is None:
            return self._dt
        self._dt = tuple(dt)


class Timer:
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id=-1, **kw):
        self.id = id
        self.callback = None
        if kw:
            self.init(**kw)

    def init(self, mode=1, period=-1, freq=-1, callback=None):
        self.mode = mode
        self.period = period
        self.callback = callback

    def fire(self):
        """Test side: the timer expires."""
        if self.callback is not None:
            self.callback(self)

    def deinit(self):
        self.callback = None


def unique_id():
    return b"\xfa\x6e\x01\x02\x03\x04"


def reset():
    _resets.append(time.ticks_ms())
    raise SystemExit("machine.reset()")


def soft_reset():
    raise SystemExit("machine.soft_reset()")


def freq(hz=None):
    global _freq
    if hz is None:
        return _freq
    _freq = hz


def idle():
    pass


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


# ---- RP2040 registers through machine.mem32 (hal/pilot_rp2.py) ------------------------------
# The ADC block (RP2040 datasheet 4.9: CS, RESULT, FCS, FIFO, DIV at 0x4004C000 + 0/4/8/C/10) as
# far as a free-running capture needs it; any other address is plain storage. A conversion takes
# its value from the set_adc() source of GP26 + CS.AINSEL (the u16 reading >> 4: 12 bits), at the
# time of its sample index: sample j of a START_MANY run is at t0 + j * (1 + INT + FRAC/256) / 48
# us, never wall time, so captures are deterministic. Each START_MANY run starts _ADC_GAP_NS after
# the previous one (a safety-loop period plus an odd phase step, so bursts see different phases).
# The 4-deep FIFO is filled on demand: whenever it is enabled (FCS.EN) and the ADC runs, a reader
# (the fake rp2.DMA through adc_dreq(), or mem32) always finds a result, because a DMA always
# outpaces the ADC. When START_MANY is cleared, the conversions made between the DMA's last
# transfer and the stop are modelled as a full FIFO with OVER set, which the driver must drain.
# Test hooks: mem_log (a list, or None) records every mem32 write as (address, value);
# adc_stalled = True makes the ADC never finish a conversion (a hardware fault).
ADC_BASE = 0x4004C000
_ADC_GAP_NS = 20137000
_adc = [0, 0, 0, 0, 0]  # CS, RESULT, FCS, FIFO (unused), DIV
_adc_fifo = [0, 0, 0, 0]
_adc_run = [0, 0, 0]  # FIFO level, samples taken in this run, run start time ns
_adc_clock = [0]  # start time (ns) of the last run
mem_log = None
adc_stalled = False


def _adc_sample():
    """The next conversion of the running ADC (12 bits), from its channel's source."""
    j = _adc_run[1]
    _adc_run[1] = j + 1
    div = _adc[4]
    cycles256 = ((div >> 8) & 0xFFFF) * 256 + (div & 0xFF) + 256
    if cycles256 < 96 * 256:
        cycles256 = 96 * 256  # a conversion takes 96 cycles: back-to-back at 500 kS/s
    t_us = (_adc_run[2] + j * cycles256 * 1000 // (48 * 256)) // 1000
    pin = 26 + ((_adc[0] >> 12) & 7)
    src = _adc_sources[pin]
    if callable(src):
        u = src(t_us)
    else:
        i = _adc_pos[pin]
        _adc_pos[pin] = i + 1 if i + 1 < len(src) else 0
        u = src[i]
    return u >> 4


def _adc_running():
    return (_adc[0] & 9) == 9 and not adc_stalled  # EN and START_MANY


def adc_dreq():
    """DREQ_ADC (36): FCS.DREQ_EN set and a result in the FIFO (or one on its way)."""
    fcs = _adc[2]
    if not fcs & 8:
        return False
    return _adc_run[0] > 0 or (bool(fcs & 1) and _adc_running())


def _fifo_pop():
    fcs = _adc[2]
    if _adc_run[0] > 0:
        v = _adc_fifo[0]
        _adc_fifo[0] = _adc_fifo[1]
        _adc_fifo[1] = _adc_fifo[2]
        _adc_fifo[2] = _adc_fifo[3]
        _adc_run[0] -= 1
    elif fcs & 1 and _adc_running():
        v = _adc_sample()
    else:
        _adc[2] = fcs | (1 << 10)  # UNDER
        return 0
    return v >> 4 if fcs & 2 else v  # SHIFT: 8-bit results


def _adc_read(off):
    if off == 0:
        cs = _adc[0] & ~(1 << 8)
        return cs if adc_stalled or not cs & 1 else cs | (1 << 8)  # READY unless stalled/off
    if off == 8:
        level = _adc_run[0]
        fcs = _adc[2] & ~((0xF << 16) | (3 << 8))
        return fcs | (level << 16) | ((1 << 8) if level == 0 else 0) | ((1 << 9) if level == 4 else 0)
    if off == 0xC:
        return _fifo_pop()
    if off == 4:
        return _adc[1]
    if off == 0x10:
        return _adc[4]
    return 0


def _adc_write(off, v):
    if off == 0:
        old = _adc[0]
        _adc[0] = v & ~(1 << 10)
        if v & 9 == 9 and old & 9 != 9:  # START_MANY on: a new run
            _adc_clock[0] += _ADC_GAP_NS
            _adc_run[1] = 0
            _adc_run[2] = _adc_clock[0]
        elif old & 9 == 9 and v & 9 != 9 and _adc[2] & 1 and not adc_stalled:
            # stopped: what the ADC made after the DMA stopped reading fills the FIFO
            while _adc_run[0] < 4:
                _adc_fifo[_adc_run[0]] = _adc_sample()
                _adc_run[0] += 1
            _adc[2] |= 1 << 11  # OVER
    elif off == 8:
        keep = _adc[2] & (3 << 10) & ~v  # UNDER/OVER: write 1 to clear
        _adc[2] = (v & 0x0F00000F) | keep
    elif off == 0x10:
        _adc[4] = v & 0xFFFFFF


class _Mem32:
    """machine.mem32: 32-bit register access by byte address."""

    def __init__(self):
        self._ram = {}

    def __getitem__(self, addr):
        off = addr - ADC_BASE
        if 0 <= off < 0x24:
            return _adc_read(off)
        return self._ram.get(addr, 0)

    def __setitem__(self, addr, v):
        v &= 0xFFFFFFFF
        if mem_log is not None:
            mem_log.append((addr, v))
        off = addr - ADC_BASE
        if 0 <= off < 0x24:
            _adc_write(off, v)
        else:
            self._ram[addr] = v


mem32 = _Mem32()


def adc_reset():
    """Test side: the ADC block back to its reset state (all registers 0, FIFO empty)."""
    for i in range(5):
        _adc[i] = 0
    _adc_run[0] = 0
    _adc_run[1] = 0
