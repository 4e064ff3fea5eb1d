# Minimal Modbus RTU client (function codes 3 and 4) over a machine.UART with an RS485
# transceiver whose driver-enable (DE, tied to /RE) is a GPIO. One request at a time (a lock),
# preallocated frame buffers, async while waiting for the answer.
import asyncio
import time

from micropython import const

MAX_REGS = const(125)  # Modbus limit per read request
_RX_MAX = const(5 + 2 * MAX_REGS)
ETIMEDOUT = const(110)
EIO = const(5)


class ModbusError(OSError):
    """The device answered with a Modbus exception: .code (1 illegal function, 2 illegal data
    address, 3 illegal data value, 4 device failure, ...). An OSError so that callers treat
    every failed read alike."""

    def __init__(self, code, unit):
        super().__init__(EIO, "modbus exception %d from unit %d" % (code, unit))
        self.code = code
        self.unit = unit


def crc16(data, n=None):
    """Modbus CRC-16 (poly 0xA001 reflected, init 0xFFFF) of data[:n]; bitwise, no table (saves
    512 bytes of RAM; 8 bytes of request take well under a millisecond)."""
    crc = 0xFFFF
    if n is None:
        n = len(data)
    i = 0
    while i < n:
        crc ^= data[i]
        b = 0
        while b < 8:
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
            b += 1
        i += 1
    return crc


class ModbusRtu:
    """ModbusRtu(uart, de_pin=None, baudrate=9600, timeout_ms=300)

    uart: a configured machine.UART (8N1 at `baudrate`). de_pin: machine.Pin driving the
    transceiver's DE (high while sending), None for auto-direction transceivers.
    await read_input_registers(unit, addr, count) / read_holding_registers(...) -> memoryview of
    the 2 * count data bytes (big-endian registers), valid until the next request.
    Errors: OSError(ETIMEDOUT) no answer within timeout_ms, OSError(EIO) garbled/CRC/mismatched
    answer, ModbusError (an OSError) for an exception response, ValueError for bad arguments."""

    def __init__(self, uart, de_pin=None, baudrate=9600, timeout_ms=300):
        self._uart = uart
        self._de = de_pin
        if de_pin is not None:
            de_pin.value(0)  # listen by default: never hold the bus
        # one character = 11 bit times (start, 8 data, parity or 2nd stop, stop), in us
        self._char_us = 11000000 // baudrate
        # inter-frame silence: 3.5 characters, fixed at 1750 us above 19200 baud (spec)
        self._gap_us = 1750 if baudrate > 19200 else self._char_us * 7 // 2
        self.timeout_ms = timeout_ms
        self._tx = bytearray(8)
        self._rx = bytearray(_RX_MAX)
        self._rxv = memoryview(self._rx)
        self._lock = asyncio.Lock()
        self._idle_since = time.ticks_us()

    async def read_input_registers(self, unit, addr, count):
        return await self._read(4, unit, addr, count)

    async def read_holding_registers(self, unit, addr, count):
        return await self._read(3, unit, addr, count)

    async def _read(self, fc, unit, addr, count):
        if not 1 <= unit <= 247 or not 0 <= addr <= 0xFFFF or not 1 <= count <= MAX_REGS:
            raise ValueError("bad modbus request")
        async with self._lock:
            tx = self._tx
            tx[0] = unit
            tx[1] = fc
            tx[2] = addr >> 8
            tx[3] = addr & 0xFF
            tx[4] = count >> 8
            tx[5] = count & 0xFF
            crc = crc16(tx, 6)
            tx[6] = crc & 0xFF  # CRC goes low byte first
            tx[7] = crc >> 8
            await self._send(tx)
            n = await self._receive(5 + 2 * count)
            self._idle_since = time.ticks_us()
            rx = self._rx
            if crc16(rx, n - 2) != rx[n - 2] | rx[n - 1] << 8:
                raise OSError(EIO, "modbus CRC error")
            if rx[0] != unit or rx[1] & 0x7F != fc:
                raise OSError(EIO, "modbus answer from unit %d fc %d" % (rx[0], rx[1]))
            if rx[1] & 0x80:
                raise ModbusError(rx[2], unit)
            if rx[2] != 2 * count:
                raise OSError(EIO, "modbus byte count %d" % rx[2])
            return self._rxv[3 : 3 + 2 * count]

    async def _send(self, frame):
        uart = self._uart
        while uart.any():  # a late or stray answer from before: not ours
            uart.read()
        wait = self._gap_us - time.ticks_diff(time.ticks_us(), self._idle_since)
        if wait > 0:
            await asyncio.sleep_ms((wait + 999) // 1000)
        de = self._de
        if de is not None:
            de.value(1)
        try:
            uart.write(frame)
            # Wait for the last stop bit before releasing DE. Synchronous on purpose: the slave
            # may answer 3.5 characters after our frame, and a scheduler delay here (another task,
            # the pilot burst) would keep DE high into its answer. 8 bytes at 9600 baud: ~9 ms.
            t0 = time.ticks_us()
            limit = self._char_us * (len(frame) + 2)
            if hasattr(uart, "txdone"):
                while not uart.txdone() and time.ticks_diff(time.ticks_us(), t0) < limit:
                    pass
            else:
                uart.flush()
        finally:
            if de is not None:
                de.value(0)

    async def _receive(self, want):
        """Read one answer frame into self._rx: `want` bytes, or 5 for an exception answer."""
        uart = self._uart
        rxv = self._rxv
        got = 0
        deadline = time.ticks_add(time.ticks_ms(), self.timeout_ms)
        while got < want:
            if uart.any():
                k = uart.readinto(rxv[got:want])
                if k:
                    got += k
                    if got >= 2 and rxv[1] & 0x80:
                        want = 5
                    continue
            if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                if got:
                    raise OSError(EIO, "modbus answer cut short (%d bytes)" % got)
                raise OSError(ETIMEDOUT, "modbus timeout")
            await asyncio.sleep_ms(2)
        return want
