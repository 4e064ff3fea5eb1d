# hal.meter_s0 (S0 pulse meter) with the fake machine.Pin firing its IRQ handler on edges.
import sys
import time

sys.path.insert(0, "../fakes")  # cwd is host_tests/mp: the fakes shadow the built-in machine

import machine  # noqa: E402

from hal.meter_s0 import S0Meter  # noqa: E402

PIN = 5


def pulse(pin, low_ms=2):
    pin.drive(0)  # the opto pulls the input low: falling edge
    time.sleep_ms(low_ms)
    pin.drive(1)


def make(**kw):
    m = S0Meter(PIN, **kw)
    pin = machine.Pin._all[PIN]
    pin.drive(1)  # idle high through the pull-up
    return m, pin


def test_counts_pulses_into_energy():
    m, pin = make(pulses_per_kwh=1000, energy_wh=5000)
    assert pin.pull == machine.Pin.PULL_UP
    assert m.read() == {"energy_wh": 5000, "power_w": 0, "current_a": [None] * 3, "voltage_v": [None] * 3}
    for _ in range(7):
        pulse(pin)
        time.sleep_ms(20)
    assert m.pulses == 7
    assert m.read()["energy_wh"] == 5007


def test_power_from_the_pulse_interval_and_decay():
    m, pin = make(pulses_per_kwh=10000)  # 0.1 Wh per pulse
    pulse(pin)
    assert m.power_w() == 0  # one pulse: no interval yet
    time.sleep_ms(98)
    pulse(pin)  # ~100 ms apart: 0.1 Wh / 0.1 s = 3600 W
    p = m.power_w()
    assert 3000 <= p <= 3700, p
    time.sleep_ms(400)  # no pulse since: the load dropped, the estimate follows (<= 0.1 Wh / 0.4 s)
    p = m.power_w()
    assert 500 <= p <= 900, p


def test_bounce_and_rising_edges_are_not_pulses():
    m, pin = make(pulses_per_kwh=1000)
    pin.drive(0)
    pin.drive(1)
    pin.drive(0)  # contact bounce right after the edge
    pin.drive(1)
    assert m.pulses == 1
    time.sleep_ms(30)
    pulse(pin)
    assert m.pulses == 2


def test_bad_pulse_rate_is_refused():
    for ppk in (0, 100001):
        try:
            S0Meter(6, pulses_per_kwh=ppk)
        except ValueError:
            continue
        raise AssertionError(ppk)
