# Eastron SDM630 / SDM72D-M energy meters over Modbus RTU (hal.modbus), in the board's meter
# interface: read() -> {"energy_wh", "power_w", "current_a": [3], "voltage_v": [3]}.
#
# Register map: input registers (function code 4), each value an IEEE 754 float32 over two
# registers, high word first. Addresses (0-based PDU address, "3xxxx" parameter number - 30001):
#   0x0000/0x0002/0x0004  phase 1/2/3 line-to-neutral voltage (V)   30001/30003/30005
#   0x0006/0x0008/0x000A  phase 1/2/3 current (A)                   30007/30009/30011
#   0x0034                total system power (W)                    30053
#   0x0048                total import active energy (kWh)          30073
# Source: Eastron "SDM630 Modbus Protocol" and "SDM72D-M Modbus Protocol" input register tables
# (both models use the same numbers for these six quantities; from those documents as recalled,
# cross-checked against public SDM630 register tables; not yet checked on a real SDM72D-M).
import struct

from micropython import const

_V_I = const(0x0000)  # 12 registers: V1 V2 V3 I1 I2 I3
_POWER = const(0x0034)
_IMPORT = const(0x0048)

MODELS = {
    # model: (first V/I register, power register, import energy register)
    "SDM630": (_V_I, _POWER, _IMPORT),
    "SDM72D-M": (_V_I, _POWER, _IMPORT),
}


class SdmMeter:
    """SdmMeter(modbus, unit=1, model="SDM630", max_misses=3)

    await poll(): one reading (3 requests); True on success, False when the meter did not answer
    (the error is kept in .error). read(): the last reading; raises OSError once the meter has
    not answered for max_misses polls in a row, or before the first answer."""

    def __init__(self, modbus, unit=1, model="SDM630", max_misses=3):
        if model not in MODELS:
            raise ValueError("unknown meter model %r" % (model,))
        self._mb = modbus
        self.unit = unit
        self.model = model
        self._regs = MODELS[model]
        self._max = max_misses
        self.misses = 0
        self.error = None
        self._last = None

    async def poll(self):
        vi, pw, en = self._regs
        try:
            d = await self._mb.read_input_registers(self.unit, vi, 12)
            f = struct.unpack_from(">6f", d)
            d = await self._mb.read_input_registers(self.unit, pw, 2)
            power = struct.unpack_from(">f", d)[0]
            d = await self._mb.read_input_registers(self.unit, en, 2)
            kwh = struct.unpack_from(">f", d)[0]
        except OSError as e:
            self.misses += 1
            self.error = e
            return False
        self.misses = 0
        self.error = None
        self._last = {
            "energy_wh": int(kwh * 1000 + 0.5),
            "power_w": int(power + 0.5) if power >= 0 else -int(-power + 0.5),
            "current_a": [round(f[3], 2), round(f[4], 2), round(f[5], 2)],
            "voltage_v": [round(f[0], 1), round(f[1], 1), round(f[2], 1)],
        }
        return True

    def read(self):
        if self._last is None:
            raise OSError(5, "meter not read yet")
        if self.misses >= self._max:
            raise OSError(5, "meter not responding (%d polls)" % self.misses)
        return self._last
