# hal.modbus (Modbus RTU client) and hal.meter_sdm (Eastron meters) against an emulated SDM meter
# on the far end of the fake machine.UART.
import asyncio
import struct
import sys
import time

sys.path.insert(0, "../fakes")  # cwd is host_tests/mp: the fakes shadow the built-in machine

import machine  # noqa: E402

from hal.meter_sdm import SdmMeter  # noqa: E402
from hal.modbus import ETIMEDOUT, ModbusError, ModbusRtu, crc16  # noqa: E402


def with_crc(frame):
    c = crc16(frame)
    return bytes(frame) + bytes((c & 0xFF, c >> 8))


class SdmEmulator:
    """The meter side: answers function 4 from a float register table, like an SDM630."""

    def __init__(self, unit=1, de=None):
        self.unit = unit
        self.regs = {}  # register address -> float (occupies addr and addr + 1)
        self.de = de
        self.de_seen = []
        self.mode = "ok"  # ok | silent | badcrc | exception | otherunit | short

    def set(self, addr, value):
        self.regs[addr] = value

    def __call__(self, req):
        if self.de is not None:
            self.de_seen.append(self.de.value())
        assert len(req) == 8 and crc16(req, 6) == req[6] | req[7] << 8, req
        if req[0] != self.unit or self.mode == "silent":
            return None
        addr = req[2] << 8 | req[3]
        count = req[4] << 8 | req[5]
        if self.mode == "exception" or req[1] != 4:
            return with_crc(bytes((self.unit, req[1] | 0x80, 2)))
        data = bytearray(2 * count)
        for a in range(addr, addr + count, 2):
            struct.pack_into(">f", data, 2 * (a - addr), self.regs.get(a, 0.0))
        out = with_crc(bytes((self.unit if self.mode != "otherunit" else 9, 4, 2 * count)) + data)
        if self.mode == "badcrc":
            out = out[:-1] + bytes((out[-1] ^ 0x55,))
        if self.mode == "short":
            out = out[:-3]
        return out


def rig(unit=1, timeout_ms=100):
    uart = machine.UART(1, baudrate=9600)
    de = machine.Pin(4, machine.Pin.OUT)
    dev = SdmEmulator(unit, de)
    uart.peer = dev
    return uart, de, dev, ModbusRtu(uart, de, baudrate=9600, timeout_ms=timeout_ms)


def test_crc16_known_vectors():
    assert crc16(b"123456789") == 0x4B37  # CRC-16/MODBUS check value
    assert with_crc(b"\x01\x04\x00\x00\x00\x02")[-2:] == b"\x71\xcb"
    assert crc16(b"\x01\x03\x00\x00\x00\x0a") == 0xCDC5  # 01 03 00 00 00 0A C5 CD
    assert crc16(b"\x01\x04\x00\x00\x00\x02\x71\xcb") == 0  # a frame with its CRC checks to 0


async def test_request_frame_and_driver_enable():
    uart, de, dev, mb = rig()
    dev.set(0, 231.5)
    machine.Pin.events.clear()
    data = await mb.read_input_registers(1, 0, 2)
    assert uart.written == [b"\x01\x04\x00\x00\x00\x02\x71\xcb"], uart.written
    assert struct.unpack(">f", bytes(data))[0] == 231.5
    assert dev.de_seen == [1]  # DE high while the frame went out
    assert de.value() == 0  # and released for the answer
    assert [v for p, v in machine.Pin.events if p == 4] == [1, 0]


async def test_exception_response_is_a_clear_error():
    _, de, dev, mb = rig()
    dev.mode = "exception"
    try:
        await mb.read_input_registers(1, 0x0100, 2)
    except ModbusError as e:
        assert e.code == 2 and e.unit == 1, (e.code, e.unit)
        assert "exception 2" in str(e), str(e)
        assert isinstance(e, OSError)
    else:
        raise AssertionError("no error")
    assert de.value() == 0


async def _expect_oserror(coro, errno=None):
    try:
        await coro
    except OSError as e:
        if errno is not None:
            assert e.errno == errno, e
        return e
    raise AssertionError("no error")


async def test_timeout_crc_and_wrong_unit():
    _, _, dev, mb = rig(timeout_ms=60)
    dev.mode = "silent"
    t0 = time.ticks_ms()
    await _expect_oserror(mb.read_input_registers(1, 0, 2), ETIMEDOUT)
    took = time.ticks_diff(time.ticks_ms(), t0)
    assert 60 <= took < 300, took
    dev.mode = "badcrc"
    assert "CRC" in str(await _expect_oserror(mb.read_input_registers(1, 0, 2), 5))
    dev.mode = "otherunit"
    await _expect_oserror(mb.read_input_registers(1, 0, 2), 5)
    dev.mode = "short"
    assert "cut short" in str(await _expect_oserror(mb.read_input_registers(1, 0, 2), 5))
    dev.mode = "ok"
    dev.set(6, 16.0)
    data = await mb.read_input_registers(1, 6, 2)  # recovers: stale bytes were flushed
    assert struct.unpack(">f", bytes(data))[0] == 16.0


async def test_answer_arriving_in_pieces():
    uart, _, dev, mb = rig()
    dev.set(0x48, 1.25)
    answer = dev(with_crc(b"\x01\x04\x00\x48\x00\x02"))
    uart.peer = None  # the answer comes later, in two pieces

    async def trickle():
        await asyncio.sleep_ms(10)
        uart.feed(answer[:4])
        await asyncio.sleep_ms(10)
        uart.feed(answer[4:])

    t = asyncio.create_task(trickle())
    data = await mb.read_input_registers(1, 0x48, 2)
    await t
    assert struct.unpack(">f", bytes(data))[0] == 1.25


async def test_bad_requests_are_refused():
    _, _, _, mb = rig()
    for args in ((0, 0, 2), (248, 0, 2), (1, -1, 2), (1, 0x10000, 2), (1, 0, 0), (1, 0, 126)):
        try:
            await mb.read_input_registers(*args)
        except ValueError:
            continue
        raise AssertionError(args)


def load_meter(dev):
    for addr, v in ((0, 230.1), (2, 231.2), (4, 229.9), (6, 15.97), (8, 16.02), (10, 0.0)):
        dev.set(addr, v)
    dev.set(0x34, 7345.6)
    dev.set(0x48, 1234.567)


async def test_sdm630_reading():
    _, _, dev, mb = rig(unit=3)
    load_meter(dev)
    m = SdmMeter(mb, unit=3, model="SDM630")
    assert await m.poll() is True
    r = m.read()
    assert r["energy_wh"] == 1234567, r
    assert r["power_w"] == 7346, r
    assert r["current_a"] == [15.97, 16.02, 0.0], r
    assert r["voltage_v"] == [230.1, 231.2, 229.9], r


async def test_sdm72_reading_and_not_responding():
    _, _, dev, mb = rig(unit=2, timeout_ms=30)
    load_meter(dev)
    m = SdmMeter(mb, unit=2, model="SDM72D-M", max_misses=3)
    try:
        m.read()
    except OSError:
        pass
    else:
        raise AssertionError("a reading before the first poll")
    assert await m.poll()
    dev.mode = "silent"
    for i in range(2):
        assert await m.poll() is False
        assert m.read()["energy_wh"] == 1234567  # short gaps keep the last reading
    assert await m.poll() is False
    try:
        m.read()
    except OSError as e:
        assert "not responding" in str(e), e
    else:
        raise AssertionError("no error after 3 missed polls")
    dev.mode = "ok"
    dev.set(0x48, 1240.0)
    assert await m.poll()
    assert m.read()["energy_wh"] == 1240000


def test_unknown_model_is_refused():
    try:
        SdmMeter(None, 1, "SDM120")
    except ValueError:
        return
    raise AssertionError("accepted")
