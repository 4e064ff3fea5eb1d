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
