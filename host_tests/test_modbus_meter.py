"""hal.modbus + hal.meter_sdm (MicroPython) against a real Modbus RTU server (pymodbus) holding
SDM630 input registers, over a pseudo-terminal: pymodbus opens the pty slave as its serial port,
the MicroPython child gets the master end through the fake machine.UART (FAKE_UART_FD)."""

import asyncio
import json
import logging
import os
import struct
import subprocess
import sys
import tty
from pathlib import Path

from pymodbus import FramerType
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import ModbusSerialServer

from mp_plugin import micropython_env

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = Path(sys.executable).parent / "micropython"
FAKES = ROOT / "host_tests" / "fakes"
UNIT = 3

READINGS = {  # register -> float, as an SDM630 holds them
    0x0000: 230.1,
    0x0002: 231.2,
    0x0004: 229.9,
    0x0006: 15.97,
    0x0008: 16.02,
    0x000A: 0.0,
    0x0034: 7345.6,
    0x0048: 1234.567,
}

MP_CODE = """
import asyncio, json
from machine import UART, Pin
from hal.modbus import ModbusRtu, ModbusError
from hal.meter_sdm import SdmMeter

async def main():
    mb = ModbusRtu(UART(1, baudrate=9600), Pin(4, Pin.OUT), baudrate=9600, timeout_ms=1500)
    m = SdmMeter(mb, unit=%d, model=%r)
    ok = await m.poll()
    print(json.dumps({"ok": ok, "err": str(m.error), "reading": m.read() if ok else None}))
    try:
        await mb.read_input_registers(%d, 0x7000, 2)
        print(json.dumps({"exc": None}))
    except ModbusError as e:
        print(json.dumps({"exc": e.code}))

asyncio.run(main())
"""


def registers():
    regs = [0] * 0x4A
    for addr, value in READINGS.items():
        hi, lo = struct.unpack(">HH", struct.pack(">f", value))
        regs[addr], regs[addr + 1] = hi, lo
    return regs


async def run_against_server(model):
    master, slave = os.openpty()
    tty.setraw(slave)
    slave_path = os.ttyname(slave)
    device = ModbusDeviceContext(ir=ModbusSequentialDataBlock(1, registers()))  # 1 -> address 0
    server = ModbusSerialServer(
        ModbusServerContext(devices={UNIT: device}),
        framer=FramerType.RTU,
        port=slave_path,
        baudrate=9600,
    )
    await server.serve_forever(background=True)
    env = micropython_env(extra=[FAKES])
    env["FAKE_UART_FD"] = str(master)
    try:
        proc = await asyncio.create_subprocess_exec(
            str(MICROPYTHON),
            "-c",
            MP_CODE % (UNIT, model, UNIT),
            env=env,
            pass_fds=[master],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 15)
    finally:
        await server.shutdown()
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, (out + err).decode()
    return [json.loads(line) for line in out.decode().splitlines()]


def test_sdm630_over_a_pty_against_pymodbus():
    logging.getLogger("pymodbus").setLevel(logging.ERROR)  # deprecation notes of the datastore API
    first, second = asyncio.run(run_against_server("SDM630"))
    assert first["ok"] is True, first
    r = first["reading"]
    assert r["energy_wh"] == 1234567
    assert r["power_w"] == 7346
    assert r["current_a"] == [15.97, 16.02, 0.0]
    assert r["voltage_v"] == [230.1, 231.2, 229.9]
    assert second == {"exc": 2}  # an unmapped register: ILLEGAL DATA ADDRESS from the server
