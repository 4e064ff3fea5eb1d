# Fake `rp2` for the MicroPython Unix port: rp2.DMA as MicroPython documents it (rp2.DMA.rst:
# DMA(), config(read, write, count, ctrl, trigger), pack_ctrl(**fields), unpack_ctrl(), active(),
# close(), channel), with the CTRL register layout of the RP2040 datasheet (2.5.7 CH0_CTRL_TRIG).
# Transfers really move data: from an int address through the fake machine.mem32 (the ADC FIFO
# among them) or from a buffer, into an int address or a buffer, honouring size, inc_read and
# inc_write; a write past the end of a buffer raises (on a board it would corrupt the heap).
# Pacing: treq_sel 0x3f (permanent) runs at once; DREQ_ADC (36) runs while machine.adc_dreq()
# says the ADC FIFO has data; any other treq_sel is refused. The transfer progresses when the
# driver polls active() (no threads, no wall time).
# NEVER deploy this to a board: it would shadow the real module.
import machine
import uctypes

_CHANNELS = 12
_claimed = [False] * _CHANNELS
_FIELDS = (
    # name, bit offset, width
    ("enable", 0, 1),
    ("high_pri", 1, 1),
    ("size", 2, 2),
    ("inc_read", 4, 1),
    ("inc_write", 5, 1),
    ("ring_size", 6, 4),
    ("ring_sel", 10, 1),
    ("chain_to", 11, 4),
    ("treq_sel", 15, 6),
    ("irq_quiet", 21, 1),
    ("bswap", 22, 1),
    ("sniff_en", 23, 1),
    ("busy", 24, 1),
    ("write_err", 29, 1),
    ("read_err", 30, 1),
    ("ahb_err", 31, 1),
)
_READ_ONLY = ("busy", "ahb_err")
TREQ_PERMANENT = 0x3F
DREQ_ADC = 36


def _field(name):
    """(bit offset, width) of a CTRL field."""
    for fname, off, width in _FIELDS:
        if fname == name:
            return off, width
    raise TypeError(f"unknown DMA ctrl field {name!r}")


def _view(obj):
    """(bytes view, length in bytes) of a buffer object."""
    n = len(bytearray(obj))  # buffer length in bytes, whatever the item size
    return uctypes.bytearray_at(uctypes.addressof(obj), n), n


class DMA:
    transfers = 0  # bus transfers done by all channels (tests check the DMA did the work)

    def __init__(self):
        ch = 0
        while ch < _CHANNELS and _claimed[ch]:
            ch += 1
        if ch == _CHANNELS:
            raise OSError("no free DMA channel")
        _claimed[ch] = True
        self.channel = ch
        self.ctrl = self.pack_ctrl(enable=False)
        self.read = 0
        self.write = 0
        self.count = 0
        self.configs = 0  # config() calls (tests)
        self._busy = False
        self._closed = False
        self._rbuf = self._wbuf = None  # last buffer objects and their cached byte views
        self._rview = self._wview = None
        self._rlen = self._wlen = 0
        self._rpos = self._wpos = 0

    def _check(self):
        if self._closed:
            raise ValueError("DMA channel closed")

    def pack_ctrl(self, default=None, **kw):
        v = 0
        if default is None:
            for name, val in (
                ("enable", 1),
                ("size", 2),
                ("inc_read", 1),
                ("inc_write", 1),
                ("chain_to", self.channel),
                ("treq_sel", TREQ_PERMANENT),
                ("irq_quiet", 1),
            ):
                kw.setdefault(name, val)
        else:
            v = default
        for name, val in kw.items():
            off, width = _field(name)
            if name in _READ_ONLY:
                continue
            val = int(val)
            if not 0 <= val < (1 << width):
                raise ValueError(f"{name} out of range")
            mask = ((1 << width) - 1) << off
            v = (v & ~mask) | (val << off)
        return v

    @staticmethod
    def unpack_ctrl(value):
        return {name: (value >> off) & ((1 << width) - 1) for name, off, width in _FIELDS}

    def config(self, read=None, write=None, count=None, ctrl=None, trigger=False):
        self._check()
        self.configs += 1
        if read is not None:
            self.read = read
            self._rpos = 0
            if not isinstance(read, int) and read is not self._rbuf:
                self._rbuf = read
                self._rview, self._rlen = _view(read)
        if write is not None:
            self.write = write
            self._wpos = 0
            if not isinstance(write, int) and write is not self._wbuf:
                self._wbuf = write
                self._wview, self._wlen = _view(write)
        if count is not None:
            self.count = count
        if ctrl is not None:
            self.ctrl = ctrl
        if trigger:
            self._busy = True
            self._run()

    def active(self, value=None):
        self._check()
        if value is None:
            if self._busy:
                self._run()
            return self._busy
        self._busy = bool(value) and self.count > 0
        if self._busy:
            self._run()
        return None

    def close(self):
        if not self._closed:
            self._closed = True
            self._busy = False
            _claimed[self.channel] = False

    def _run(self):
        c = self.ctrl
        if not c & 1:  # EN off: the channel does nothing
            return
        size = 1 << ((c >> 2) & 3)
        inc_r = (c >> 4) & 1
        inc_w = (c >> 5) & 1
        treq = (c >> 15) & 0x3F
        if treq != TREQ_PERMANENT and treq != DREQ_ADC:
            raise ValueError(f"fake rp2.DMA: treq_sel {treq} not emulated")
        mask = (1 << (8 * size)) - 1
        while self.count > 0:
            if treq == DREQ_ADC and not machine.adc_dreq():
                return  # waits for the peripheral; still busy
            v = self._load(size) & mask
            self._store(v, size)
            if inc_r:
                self._rpos += size
            if inc_w:
                self._wpos += size
            self.count -= 1
            DMA.transfers += 1
        self._busy = False

    def _load(self, size):
        if isinstance(self.read, int):
            return machine.mem32[self.read + self._rpos]
        pos = self._rpos
        if pos + size > self._rlen:
            raise OSError("DMA read past the end of the source buffer")
        view = self._rview
        v = 0
        i = size
        while i:
            i -= 1
            v = (v << 8) | view[pos + i]
        return v

    def _store(self, v, size):
        if isinstance(self.write, int):
            machine.mem32[self.write + self._wpos] = v
            return
        pos = self._wpos
        if pos + size > self._wlen:
            raise OSError("DMA write past the end of the destination buffer")
        view = self._wview
        i = 0
        while i < size:
            view[pos + i] = v & 0xFF
            v >>= 8
            i += 1
