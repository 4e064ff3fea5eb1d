# OCPP 1.6 meter values (firmware/cp/core/metering.py) from the sim board's meter, checked field by field
# and against the MeterValues.req schema.
import json

import board

from cp import clock, config
from cp.core import metering
from ocpp import validate

E = "Energy.Active.Import.Register"
MIDNIGHT = 1795478400  # 2026-11-24T00:00:00Z
TS = MIDNIGHT + 80114  # 2026-11-24T22:15:14Z


def _board(connectors=1):
    b = board.Board({"connectors": connectors})
    # 12345 Wh, 7360 W, 32.00 / 32.10 / 31.90 A, 230.1 / 229.9 / 231.0 V
    assert b.feed(json.dumps(["m", 1, 12345, 7360, 3200, 3210, 3190, 2301, 2299, 2310]))
    return b


def _mv(b, measurands, context="Sample.Periodic", **kw):
    ts = kw.pop("ts", TS)
    mv = metering.meter_value(b, 1, measurands, context, ts=ts, **kw)
    validate.check("MeterValues", "req", {"connectorId": 1, "meterValue": [mv]})
    return mv


def _values(mv):
    return [sv["value"] for sv in mv["sampledValue"]]


def _raises_oserror(fn, *args):
    try:
        fn(*args)
    except OSError:
        return
    raise AssertionError("no OSError")


class _NoMeter:
    # A real board built without a meter or temperature sensor (hal.mcu_board: meter(c) is None).
    def meter(self, c):
        return None

    def temperature_c(self, c):
        return None


class _WithSoc(board.Board):
    soc_value = 57.6

    def soc(self, c):
        return self.soc_value


def test_measurands_are_the_ones_config_accepts():
    assert metering.MEASURANDS == config._LISTS["$measurand"]
    r = config.row("MeterValuesSampledData")
    assert config.parse(r, metering.MEASURANDS) == metering.MEASURANDS
    b = _board()
    for name in metering.MEASURANDS.split(","):
        got = {sv["measurand"] for sv in _mv(b, name)["sampledValue"]}
        assert got == {name}, name


def test_energy_register_fields():
    mv = _mv(_board(), E)
    assert mv == {
        "timestamp": "2026-11-24T22:15:14Z",
        "sampledValue": [
            {
                "value": "12345",
                "context": "Sample.Periodic",
                "measurand": E,
                "location": "Outlet",
                "unit": "Wh",
            }
        ],
    }


def test_empty_list_means_the_energy_register():
    assert _mv(_board(), "") == _mv(_board(), E)


def test_energy_is_the_raw_register_and_follows_the_meter():
    b = _board()
    assert _values(_mv(b, E)) == ["12345"]
    b.feed(json.dumps(["m", 1, 4000000, 0, 0, 0, 0, 2300, 2300, 2300]))
    assert _values(_mv(b, E)) == ["4000000"]


def test_power():
    (sv,) = _mv(_board(), "Power.Active.Import")["sampledValue"]
    assert sv == {
        "value": "7360",
        "context": "Sample.Periodic",
        "measurand": "Power.Active.Import",
        "location": "Outlet",
        "unit": "W",
    }


def test_current_one_entry_per_phase():
    svs = _mv(_board(), "Current.Import")["sampledValue"]
    assert [(sv["phase"], sv["value"], sv["unit"]) for sv in svs] == [
        ("L1", "32.0", "A"),
        ("L2", "32.1", "A"),
        ("L3", "31.9", "A"),
    ]
    assert all(sv["measurand"] == "Current.Import" and sv["location"] == "Outlet" for sv in svs)


def test_voltage_one_entry_per_phase_to_neutral():
    svs = _mv(_board(), "Voltage")["sampledValue"]
    assert [(sv["phase"], sv["value"], sv["unit"]) for sv in svs] == [
        ("L1-N", "230.1", "V"),
        ("L2-N", "229.9", "V"),
        ("L3-N", "231.0", "V"),
    ]
    assert all(sv["measurand"] == "Voltage" for sv in svs)


def test_phases_the_meter_does_not_measure_are_left_out():
    # An S0 pulse meter measures energy and power only: its current and voltage lists hold None.
    s0 = {"energy_wh": 77, "power_w": 1500, "current_a": [None] * 3, "voltage_v": [None] * 3}
    mv = _mv(_NoMeter(), E + ",Current.Import,Voltage,Power.Active.Import", reading=s0)
    assert [(sv["measurand"], sv["value"]) for sv in mv["sampledValue"]] == [
        (E, "77"),
        ("Power.Active.Import", "1500"),
    ]
    one = {"energy_wh": 1, "power_w": 0, "current_a": [16.04, None, None], "voltage_v": [None] * 3}
    (sv,) = _mv(_NoMeter(), "Current.Import", reading=one)["sampledValue"]
    assert (sv["phase"], sv["value"]) == ("L1", "16.0")


def test_current_offered():
    b = _board()
    (sv,) = _mv(b, "Current.Offered", offered_amps=16)["sampledValue"]
    assert sv == {
        "value": "16.0",
        "context": "Sample.Periodic",
        "measurand": "Current.Offered",
        "location": "Outlet",
        "unit": "A",
    }
    assert _values(_mv(b, "Current.Offered")) == ["0.0"]
    assert _values(_mv(b, "Current.Offered", offered_amps=6.5)) == ["6.5"]


def test_temperature_from_the_board_sensor():
    b = _board()
    (sv,) = _mv(b, "Temperature")["sampledValue"]
    assert sv["value"] in ("31.0", "32.0", "33.0")  # the sim's sensor: 31 + 0..2 C
    assert (sv["unit"], sv["location"], sv["measurand"]) == ("Celcius", "Body", "Temperature")
    b.feed(json.dumps(["f", 1, 8]))  # overtemperature
    assert _values(_mv(b, "Temperature"))[0] in ("92.0", "93.0", "94.0")


def test_soc_only_from_a_board_that_reads_it():
    b = _WithSoc({"connectors": 1})
    b.feed(json.dumps(["m", 1, 10, 0, 0, 0, 0, 2300, 2300, 2300]))
    mv = _mv(b, E + ",SoC")
    assert mv["sampledValue"][1] == {
        "value": "58",
        "context": "Sample.Periodic",
        "measurand": "SoC",
        "location": "EV",
        "unit": "Percent",
    }
    b.soc_value = None  # the EV does not tell
    assert [sv["measurand"] for sv in _mv(b, E + ",SoC")["sampledValue"]] == [E]
    assert [sv["measurand"] for sv in _mv(_board(), E + ",SoC")["sampledValue"]] == [E]


def test_every_measurand_in_configured_order():
    b = _board()
    mv = _mv(
        b, "Temperature,Voltage," + E + ",Current.Offered,Current.Import,Power.Active.Import", offered_amps=32
    )
    assert [sv["measurand"] for sv in mv["sampledValue"]] == [
        "Temperature",
        "Voltage",
        "Voltage",
        "Voltage",
        E,
        "Current.Offered",
        "Current.Import",
        "Current.Import",
        "Current.Import",
        "Power.Active.Import",
    ]


def test_context_on_every_value():
    b = _board()
    for ctx in ("Sample.Periodic", "Sample.Clock", "Transaction.Begin", "Transaction.End", "Trigger"):
        mv = _mv(b, metering.MEASURANDS, ctx, offered_amps=10)
        assert len(mv["sampledValue"]) == 10
        assert all(sv["context"] == ctx for sv in mv["sampledValue"]), ctx
        assert all("format" not in sv for sv in mv["sampledValue"])


def test_timestamp_defaults_to_now():
    mv = metering.meter_value(_board(), 1, E, "Trigger")
    assert abs(clock.parse_iso(mv["timestamp"]) - clock.now()) <= 1


def test_a_reading_already_taken_is_used_as_is():
    b = _board()
    b.feed(json.dumps(["f", 1, 16]))  # the meter stops answering: only the given reading can serve
    r = {"energy_wh": 999, "power_w": 11, "current_a": [1.0, 2.0, 3.0], "voltage_v": [230.0, 231.0, 232.0]}
    assert _values(_mv(b, E + ",Power.Active.Import,Current.Import", reading=r)) == [
        "999",
        "11",
        "1.0",
        "2.0",
        "3.0",
    ]


def test_meter_failure_raises_oserror():
    b = board.Board({"connectors": 2})
    _raises_oserror(metering.meter_value, b, 1, E, "Sample.Periodic")  # nothing read yet
    b.feed(json.dumps(["m", 2, 5, 0, 0, 0, 0, 2300, 2300, 2300]))
    assert _values(_mv(b, E, reading=b.meter(2).read())) == ["5"]
    b.feed(json.dumps(["f", 2, 16]))  # `meter` fault: Modbus timeout
    for name in (E, "Power.Active.Import", "Current.Import", "Voltage", ""):
        _raises_oserror(metering.meter_value, b, 2, name, "Sample.Periodic")
    _raises_oserror(metering.meter_value, _NoMeter(), 1, E, "Sample.Periodic")


def test_values_without_the_meter_need_no_meter():
    b = _board()
    b.feed(json.dumps(["f", 1, 16]))
    assert [
        sv["measurand"] for sv in _mv(b, "Current.Offered,Temperature", offered_amps=8)["sampledValue"]
    ] == [
        "Current.Offered",
        "Temperature",
    ]
    assert _values(_mv(_NoMeter(), "Current.Offered", offered_amps=8)) == ["8.0"]


def test_a_failing_sensor_drops_only_its_own_value():
    class _BrokenSensor(board.Board):
        def temperature_c(self, c):
            raise OSError(5, "1-wire timeout")

    b = _BrokenSensor({"connectors": 1})
    b.feed(json.dumps(["m", 1, 12345, 0, 0, 0, 0, 2300, 2300, 2300]))
    assert [sv["measurand"] for sv in _mv(b, "Temperature," + E)["sampledValue"]] == [E]


def test_nothing_measurable_raises_oserror():
    # A board without a temperature sensor asked for Temperature only: an empty sampledValue would
    # break the schema (minItems 1), so there is no MeterValue to send.
    _raises_oserror(metering.meter_value, _NoMeter(), 1, "Temperature", "Sample.Clock")
    _raises_oserror(metering.meter_value, _board(), 1, "SoC", "Sample.Clock")


def test_energy_wh():
    b = board.Board({"connectors": 2})
    assert metering.energy_wh(b, 1) is None  # no reading yet
    b.feed(json.dumps(["m", 1, 12345, 0, 0, 0, 0, 2300, 2300, 2300]))
    assert metering.energy_wh(b, 1) == 12345
    assert metering.energy_wh(b, 2) is None
    b.feed(json.dumps(["f", 1, 16]))
    assert metering.energy_wh(b, 1) is None
    b.feed(json.dumps(["f", 1, 0]))
    assert metering.energy_wh(b, 1) == 12345
    assert metering.energy_wh(_NoMeter(), 1) is None


def test_next_aligned_quarter_hours():
    na = metering.next_aligned
    assert na(TS, 900) == MIDNIGHT + 22 * 3600 + 30 * 60  # 22:15:14 -> 22:30
    assert na(MIDNIGHT + 22 * 3600 + 1800, 900) == MIDNIGHT + 22 * 3600 + 2700  # strictly after
    assert na(MIDNIGHT + 22 * 3600 + 1799, 900) == MIDNIGHT + 22 * 3600 + 1800
    assert clock.iso(na(TS, 900)) == "2026-11-24T22:30:00Z"


def test_next_aligned_across_midnight():
    na = metering.next_aligned
    assert na(MIDNIGHT - 1, 900) == MIDNIGHT
    assert na(MIDNIGHT - 100, 3600) == MIDNIGHT
    assert na(MIDNIGHT, 900) == MIDNIGHT + 900
    assert na(MIDNIGHT - 1, 86400) == MIDNIGHT
    assert na(MIDNIGHT + 5, 86400) == MIDNIGHT + 86400
    # 7 h does not divide the day: 00:00, 07:00, 14:00, 21:00, then midnight starts again
    assert na(MIDNIGHT - 3 * 3600 + 1, 7 * 3600) == MIDNIGHT
    assert na(MIDNIGHT + 1, 7 * 3600) == MIDNIGHT + 7 * 3600
    assert na(MIDNIGHT + 21 * 3600, 7 * 3600) == MIDNIGHT + 86400


def test_next_aligned_several_intervals():
    na = metering.next_aligned
    for interval in (1, 20, 60, 300, 900, 3600, 7 * 3600, 86400):
        t = TS
        for _ in range(5):
            n = na(t, interval)
            assert t < n <= t + interval, (interval, t, n)
            assert (n - MIDNIGHT) % 86400 % interval == 0 or n % 86400 == 0, (interval, n)
            t = n
    # OCTT TC_071 with 20 s: the seconds are 0, 20 or 40
    t = TS
    for _ in range(6):
        t = na(t, 20)
        assert clock.iso(t)[17:19] in ("00", "20", "40")
    assert na(TS, 0) is None
    assert na(TS, -60) is None


def test_meter_values_pass_the_schema_in_bulk():
    # One MeterValues.req carrying a MeterValue of each context, as StopTransaction data would.
    b = _WithSoc({"connectors": 1})
    b.feed(json.dumps(["m", 1, 12345, 7360, 3200, 3210, 3190, 2301, 2299, 2310]))
    every = metering.MEASURANDS + ",SoC"
    mvs = [
        metering.meter_value(b, 1, every, ctx, offered_amps=16, ts=TS + i * 60)
        for i, ctx in enumerate(("Transaction.Begin", "Sample.Periodic", "Sample.Clock", "Transaction.End"))
    ]
    validate.check("MeterValues", "req", {"connectorId": 1, "transactionId": 7, "meterValue": mvs})
    assert [len(mv["sampledValue"]) for mv in mvs] == [11] * 4
