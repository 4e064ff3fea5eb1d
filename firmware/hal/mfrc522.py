# NXP MFRC522 13.56 MHz reader over SPI: reads the UID (4 or 7 bytes) of one ISO 14443-A card.
# Board interface: read_uid() -> upper-case hex id tag or None, once per presentation (the card
# is sent to HALT after a read, so it stays silent until it leaves the field and comes back).
# A collision (two cards in the field) reads as None: bit-wise anticollision is not implemented.
import time

from machine import Pin
from micropython import const

_COMMAND = const(0x01)
_COM_IRQ = const(0x04)
_ERROR = const(0x06)
_FIFO_DATA = const(0x09)
_FIFO_LEVEL = const(0x0A)
_CONTROL = const(0x0C)
_BIT_FRAMING = const(0x0D)
_COLL = const(0x0E)
_MODE = const(0x11)
_TX_CONTROL = const(0x14)
_TX_ASK = const(0x15)
_T_MODE = const(0x2A)
_T_PRESCALER = const(0x2B)
_T_RELOAD_H = const(0x2C)
_T_RELOAD_L = const(0x2D)
_VERSION = const(0x37)

_IDLE = const(0x00)
_TRANSCEIVE = const(0x0C)
_SOFT_RESET = const(0x0F)

_REQA = const(0x26)
_HLTA = const(0x50)
_CASCADE_TAG = const(0x88)
_WAIT_MS = const(40)  # the chip's own timer gives up after 15 ms (set in init)


def crc_a(data, n):
    """ISO 14443-3 CRC_A of data[:n] (init 0x6363, reflected poly 0x8408), low byte first on air."""
    crc = 0x6363
    i = 0
    while i < n:
        b = (data[i] ^ crc) & 0xFF
        b = (b ^ (b << 4)) & 0xFF
        crc = (crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)
        i += 1
    return crc


class Mfrc522:
    """Mfrc522(spi, cs_pin, rst_pin=None): spi a configured machine.SPI (mode 0, <= 10 MHz).
    init() (called by the constructor) raises OSError(19) when no chip answers. read_uid()."""

    def __init__(self, spi, cs_pin, rst_pin=None):
        self._spi = spi
        self._cs = Pin(cs_pin, Pin.OUT, value=1) if isinstance(cs_pin, int) else cs_pin
        self._cs.value(1)
        if rst_pin is not None:
            rst = Pin(rst_pin, Pin.OUT, value=1) if isinstance(rst_pin, int) else rst_pin
            rst.value(1)
        self._tx = bytearray(2)
        self._rx = bytearray(2)
        self._frame = bytearray(9)  # the longest frame sent: SELECT (9 bytes)
        self._buf = bytearray(16)  # answer bytes from the FIFO
        self.init()

    def _write(self, reg, val):
        self._tx[0] = (reg << 1) & 0x7E
        self._tx[1] = val
        self._cs.value(0)
        self._spi.write(self._tx)
        self._cs.value(1)

    def _read(self, reg):
        self._tx[0] = 0x80 | (reg << 1)
        self._tx[1] = 0
        self._cs.value(0)
        self._spi.write_readinto(self._tx, self._rx)
        self._cs.value(1)
        return self._rx[1]

    def init(self):
        self._write(_COMMAND, _SOFT_RESET)
        t0 = time.ticks_ms()
        while self._read(_COMMAND) & 0x10:  # PowerDown bit: set until the oscillator runs
            if time.ticks_diff(time.ticks_ms(), t0) > 50:
                raise OSError(19, "MFRC522 does not come out of reset")
            time.sleep_ms(1)
        self.version = self._read(_VERSION)
        if self.version in (0x00, 0xFF):
            raise OSError(19, "no MFRC522 on the SPI bus")
        self._write(_T_MODE, 0x8D)  # timer starts after each transmission; prescaler 0xD3E
        self._write(_T_PRESCALER, 0x3E)  # -> 2 kHz timer
        self._write(_T_RELOAD_H, 0)
        self._write(_T_RELOAD_L, 30)  # 30 ticks = 15 ms answer timeout
        self._write(_TX_ASK, 0x40)  # 100 % ASK modulation
        self._write(_MODE, 0x3D)  # CRC preset 0x6363 (ISO 14443-A)
        self._write(_TX_CONTROL, self._read(_TX_CONTROL) | 0x03)  # antenna drivers on

    def _transceive(self, n, last_bits=0):
        """Send self._frame[:n]; the answer goes to self._buf. Its length, or -1 without one."""
        self._write(_COMMAND, _IDLE)
        self._write(_COM_IRQ, 0x7F)  # clear all interrupt flags
        self._write(_FIFO_LEVEL, 0x80)  # flush the FIFO
        i = 0
        while i < n:
            self._write(_FIFO_DATA, self._frame[i])
            i += 1
        self._write(_COMMAND, _TRANSCEIVE)
        self._write(_BIT_FRAMING, 0x80 | last_bits)  # StartSend
        t0 = time.ticks_ms()
        while True:
            irq = self._read(_COM_IRQ)
            if irq & 0x30:  # RxIRq or IdleIRq: an answer (or the command ended)
                break
            if irq & 0x01 or time.ticks_diff(time.ticks_ms(), t0) > _WAIT_MS:  # TimerIRq
                return -1
        self._write(_BIT_FRAMING, 0)
        if self._read(_ERROR) & 0x1B:  # buffer overflow, collision, parity or protocol error
            return -1
        k = self._read(_FIFO_LEVEL)
        if k > len(self._buf):
            return -1
        i = 0
        while i < k:
            self._buf[i] = self._read(_FIFO_DATA)
            i += 1
        return k

    def _select(self, level, uid, k):
        """Anticollision + SELECT of one cascade level; appends to uid; (k, more_levels) or None."""
        f = self._frame
        f[0] = level
        f[1] = 0x20
        if self._transceive(2) != 5:
            return None
        b = self._buf
        if b[0] ^ b[1] ^ b[2] ^ b[3] != b[4]:  # BCC
            return None
        f[1] = 0x70
        f[2:7] = b[0:5]
        crc = crc_a(f, 7)
        f[7] = crc & 0xFF
        f[8] = crc >> 8
        if self._transceive(9) != 3 or crc_a(b, 3) != 0:  # SAK + CRC_A
            return None
        more = b[0] & 0x04 != 0  # SAK "UID not complete"
        if more:
            if f[2] != _CASCADE_TAG:
                return None
            uid[k : k + 3] = f[3:6]
            return k + 3, True
        uid[k : k + 4] = f[2:6]
        return k + 4, False

    def read_uid(self):
        """UID of a card in the field as upper-case hex (8 or 14 digits), or None."""
        self._write(_COLL, self._read(_COLL) & 0x7F)  # ValuesAfterColl off
        self._frame[0] = _REQA
        if self._transceive(1, 7) != 2:  # ATQA; REQA is a 7-bit short frame
            return None
        uid = bytearray(10)
        k = 0
        for level in (0x93, 0x95, 0x97):
            r = self._select(level, uid, k)
            if r is None:
                return None
            k, more = r
            if not more:
                break
        else:
            return None
        f = self._frame
        f[0] = _HLTA
        f[1] = 0
        crc = crc_a(f, 2)
        f[2] = crc & 0xFF
        f[3] = crc >> 8
        self._transceive(4)  # a halted card does not answer
        return "".join("%02X" % uid[i] for i in range(k))
