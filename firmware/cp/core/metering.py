# OCPP 1.6 meter values: one MeterValue ({"timestamp", "sampledValue"}) from the board's meter and
# sensors, for MeterValues.req and StopTransaction's transactionData; the clock-aligned schedule.
#
# Every sampledValue names its context, measurand, location and unit (format is left out: Raw is
# the default). Values are strings: Wh and W as integers, A and V with one decimal.
# Energy.Active.Import.Register is the meter's raw register, never rebased per transaction
# (OCPP errata 3.9/3.78: .Register values rise monotonically).
# Temperature's unit is "Celcius", OCPP 1.6's own spelling: the JSON schema accepts "Celsius" too,
# but the OCPP-J errata (2025-04, 2.1) advises charge points to keep sending "Celcius", which
# every 1.6 backend knows.
from cp import clock

# The measurands meter_value() reports (config's "$measurand" list); SoC is added by boards with
# a soc(c) reading.
MEASURANDS = (
    "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage,Current.Offered,Temperature"
)

_ENERGY = "Energy.Active.Import.Register"
_POWER = "Power.Active.Import"
_CURRENT = "Current.Import"
_VOLTAGE = "Voltage"
_OUTLET = "Outlet"
_DAY_S = 86400


def _read(board, c):
    m = board.meter(c)
    if m is None:
        raise OSError(19, "no meter")  # ENODEV: a board built without one
    return m.read()


def _sensor(board, name, c):
    # An optional board reading (temperature_c, soc): a number, or None when the board has no
    # such sensor or it fails; a missing sensor only drops its own measurand.
    fn = getattr(board, name, None)
    if fn is None:
        return None
    try:
        v = fn(c)
    except OSError:
        return None
    return v if isinstance(v, (int, float)) else None


def _add(out, value, context, measurand, unit, location=_OUTLET, phase=None):
    sv = {"value": value, "context": context, "measurand": measurand, "location": location, "unit": unit}
    if phase is not None:
        sv["phase"] = phase
    out.append(sv)


def _phases(out, values, context, measurand, unit, names):
    # One entry per phase the meter measures (an S0 meter measures none: its list holds None).
    for i in range(3):
        v = values[i]
        if v is not None:
            _add(out, "%.1f" % v, context, measurand, unit, phase=names[i])


def meter_value(board, c, measurands, context, offered_amps=0, ts=None, reading=None):
    """{"timestamp": ISO 8601, "sampledValue": [...]} for connector c.

    measurands: the configured comma-separated list ("" = Energy.Active.Import.Register, as OCTT
    expects); names this firmware cannot measure are left out. context: the ReadingContext
    ("Sample.Periodic", "Sample.Clock", "Transaction.Begin", "Transaction.End", "Trigger", ...).
    offered_amps: what the pilot offers (Current.Offered). ts: epoch seconds (default now).
    reading: a meter reading already taken (board.meter(c).read() form); else the meter is read
    here, only when a measurand needs it.
    Raises OSError when the meter cannot be read, or nothing at all could be measured."""
    out = []
    for name in (measurands or _ENERGY).split(","):
        if name in (_ENERGY, _POWER, _CURRENT, _VOLTAGE) and reading is None:
            reading = _read(board, c)
        if name == _ENERGY:
            _add(out, "%d" % round(reading["energy_wh"]), context, name, "Wh")
        elif name == _POWER:
            _add(out, "%d" % round(reading["power_w"]), context, name, "W")
        elif name == _CURRENT:
            _phases(out, reading["current_a"], context, name, "A", ("L1", "L2", "L3"))
        elif name == _VOLTAGE:
            _phases(out, reading["voltage_v"], context, name, "V", ("L1-N", "L2-N", "L3-N"))
        elif name == "Current.Offered":
            _add(out, "%.1f" % offered_amps, context, name, "A")
        elif name == "Temperature":
            t = _sensor(board, "temperature_c", c)
            if t is not None:
                _add(out, "%.1f" % t, context, name, "Celcius", "Body")
        elif name == "SoC":
            s = _sensor(board, "soc", c)
            if s is not None:
                _add(out, "%d" % round(s), context, name, "Percent", "EV")
    if not out:  # the schema wants at least one sampledValue
        raise OSError(19, "nothing to measure")
    return {"timestamp": clock.iso(clock.now() if ts is None else ts), "sampledValue": out}


def energy_wh(board, c):
    """The energy register (Wh, int) of connector c's meter, or None when it cannot be read."""
    try:
        return _read(board, c)["energy_wh"]
    except OSError:
        return None


def next_aligned(now_s, interval_s):
    """The first clock-aligned instant after now_s (epoch seconds): intervals run from midnight
    UTC (900 -> :00, :15, :30, :45), and every midnight starts them again, also when the interval
    does not divide the day. None when interval_s <= 0 (clock-aligned data off)."""
    if interval_s <= 0:
        return None
    midnight = now_s - now_s % _DAY_S
    t = midnight + ((now_s - midnight) // interval_s + 1) * interval_s
    return min(t, midnight + _DAY_S)
