# hal.mfrc522 on the fake machine.SPI with an emulated MFRC522 register file and one ISO 14443-A
# card (4- or 7-byte UID) in front of it.
import sys

sys.path.insert(0, "../fakes")  # cwd is host_tests/mp: the fakes shadow the built-in machine

import machine  # noqa: E402

from hal.mfrc522 import Mfrc522, crc_a  # noqa: E402


def with_crc(b):
    c = crc_a(b, len(b))
    return bytes(b) + bytes((c & 0xFF, c >> 8))


class Card:
    def __init__(self, uid):
        self.uid = bytes(uid)
        self.halted = False
        self.present = True

    def answer(self, frame, bits):
        """The card's reply to one frame, or None (silence)."""
        if not self.present or self.halted and frame != b"\x52":
            return None
        if bits == 7 and frame in (b"\x26", b"\x52"):
            return b"\x44\x00" if len(self.uid) == 7 else b"\x04\x00"
        levels = [self.uid] if len(self.uid) == 4 else [b"\x88" + self.uid[:3], self.uid[3:]]
        for i, cmd in enumerate((0x93, 0x95)):
            if i >= len(levels) or frame[0] != cmd:
                continue
            part = levels[i]
            bcc = part[0] ^ part[1] ^ part[2] ^ part[3]
            if frame[1] == 0x20:
                return part + bytes((bcc,))
            if frame[1] == 0x70 and frame[2:7] == part + bytes((bcc,)) and crc_a(frame, 9) == 0:
                return with_crc(bytes((0x04 if i + 1 < len(levels) else 0x08,)))
            return None
        if frame == with_crc(b"\x50\x00"):
            self.halted = True
        return None


class Chip:
    """The MFRC522 side of the SPI bus: the registers the driver uses, the FIFO, Transceive."""

    def __init__(self, card=None, version=0x92):
        self.regs = bytearray(64)
        self.regs[0x37] = version
        self.regs[0x01] = 0x10  # PowerDown until the soft reset completes
        self.fifo = bytearray()
        self.card = card
        self.frames = []

    def xfer(self, tx):
        addr = (tx[0] >> 1) & 0x3F
        if tx[0] & 0x80:
            return bytes((0, self.read(addr)))
        self.write(addr, tx[1])
        return bytes(len(tx))

    def read(self, a):
        if a == 0x09:
            if not self.fifo:
                return 0
            v = self.fifo[0]
            self.fifo = self.fifo[1:]
            return v
        if a == 0x0A:
            return len(self.fifo)
        return self.regs[a]

    def write(self, a, v):
        if a == 0x01 and v == 0x0F:  # SoftReset: done at once
            self.regs[0x01] = 0
            return
        if a == 0x04:  # ComIrqReg: bit 7 clear -> the 1 bits are cleared
            if not v & 0x80:
                self.regs[4] &= ~v & 0x7F
            return
        if a == 0x0A:
            if v & 0x80:
                self.fifo = bytearray()
            return
        if a == 0x09:
            self.fifo.append(v)
            return
        self.regs[a] = v
        if a == 0x0D and v & 0x80 and self.regs[0x01] == 0x0C:
            frame = bytes(self.fifo)
            bits = v & 7
            self.fifo = bytearray()
            self.frames.append(frame)
            ans = self.card.answer(frame, bits) if self.card else None
            if ans is None:
                self.regs[4] |= 0x01  # TimerIRq: no answer
            else:
                self.fifo = bytearray(ans)
                self.regs[4] |= 0x30  # RxIRq | IdleIRq


def reader(card, version=0x92):
    spi = machine.SPI(1)
    spi.device = Chip(card, version)
    return spi.device, Mfrc522(spi, 15, rst_pin=16)


def test_crc_a_known_vector():
    assert with_crc(b"\x50\x00") == b"\x50\x00\x57\xcd"  # HLTA as on the air
    assert crc_a(b"\x50\x00\x57\xcd", 4) == 0


def test_init_sequence_and_version():
    chip, r = reader(None)
    assert r.version == 0x92
    assert chip.regs[0x2A] == 0x8D and chip.regs[0x2B] == 0x3E and chip.regs[0x2D] == 30
    assert chip.regs[0x14] & 0x03 == 0x03  # antenna on
    assert chip.regs[0x11] == 0x3D and chip.regs[0x15] == 0x40
    assert machine.Pin._all[15].value() == 1  # chip select released


def test_no_chip_on_the_bus_is_an_error():
    try:
        reader(None, version=0xFF)
    except OSError as e:
        assert e.errno == 19
    else:
        raise AssertionError("no error")


def test_no_card_is_none():
    chip, r = reader(None)
    assert r.read_uid() is None
    assert chip.frames == [b"\x26"]


def test_four_byte_uid_once_per_presentation():
    card = Card(b"\xde\xad\xbe\xef")
    chip, r = reader(card)
    assert r.read_uid() == "DEADBEEF"
    assert chip.frames[1] == b"\x93\x20"
    assert chip.frames[2][:2] == b"\x93\x70" and len(chip.frames[2]) == 9
    assert card.halted
    assert r.read_uid() is None  # still in the field, but halted: not read twice
    card.halted = False  # taken away and presented again
    assert r.read_uid() == "DEADBEEF"


def test_seven_byte_uid():
    card = Card(b"\x04\x1a\x2b\x3c\x4d\x5e\x80")
    chip, r = reader(card)
    assert r.read_uid() == "041A2B3C4D5E80"
    assert [f[:2] for f in chip.frames[1:5]] == [b"\x93\x20", b"\x93\x70", b"\x95\x20", b"\x95\x70"]


def test_corrupted_answer_is_none():
    card = Card(b"\x11\x22\x33\x44")
    orig = card.answer

    def bad_bcc(frame, bits):
        ans = orig(frame, bits)
        if ans is not None and frame == b"\x93\x20":
            ans = ans[:4] + bytes((ans[4] ^ 1,))
        return ans

    card.answer = bad_bcc
    _, r = reader(card)
    assert r.read_uid() is None
    card.answer = orig
    assert r.read_uid() == "11223344"
