# hal.proximity on the fake `machine` ADC: the PP divider of each cable coding resistor.
import sys

sys.path.insert(0, "../fakes")  # cwd is host_tests/mp: the fakes shadow the built-in machine

import machine  # noqa: E402

from evse import pilot  # noqa: E402
from hal.proximity import Proximity  # noqa: E402

PIN = 27
CABLES = ((1500, 13), (680, 20), (220, 32), (100, 63))


def divider_raw(rc, pullup, vref_mv, full_scale_mv, noise=(0, 90, -90, 40, -40, 0, 60, -60)):
    """Raw read_u16 values of the PP node with a little ADC noise (zero mean)."""
    v = vref_mv * rc / (rc + pullup)
    return [max(0, min(65535, int(v / full_scale_mv * 65535) + n)) for n in noise]


def test_fake_machine_is_in_use():
    assert hasattr(machine, "set_adc"), machine


def test_cable_codings_ratiometric_rp2040():
    for rc, amps in CABLES:
        machine.set_adc(PIN, divider_raw(rc, 1000, 3300, 3300))
        pp = Proximity(PIN, 1000, 3300, samples=8)
        ohms = pp.read_ohms()
        assert abs(ohms - rc) <= rc * 0.02 + 1, (rc, ohms)
        assert pilot.cable_amps(ohms) == amps, (rc, ohms)


def test_cable_codings_with_adc_calibration_esp32():
    # ADC full scale 2450 mV (11 dB), pull-up 2.7 kohm to 3.3 V: the node stays below 2.45 V
    for rc, amps in CABLES:
        machine.set_adc(PIN, divider_raw(rc, 2700, 3300, 2450))
        pp = Proximity(PIN, 2700, 3300, samples=8, mv_per_count=2450 / 65535)
        ohms = pp.read_ohms()
        assert abs(ohms - rc) <= rc * 0.02 + 1, (rc, ohms)
        assert pilot.cable_amps(ohms) == amps, (rc, ohms)


def test_no_cable_is_none_and_a_short_is_zero():
    machine.set_adc(PIN, [65535, 65500, 65535])
    pp = Proximity(PIN, 1000, 3300, samples=3)
    assert pp.read_ohms() is None
    assert pilot.cable_amps(pp.read_ohms()) == 0
    machine.set_adc(PIN, [0])
    assert Proximity(PIN, 1000, 3300).read_ohms() == 0
    assert pilot.cable_amps(0) == 0


def test_bad_calibration_is_refused():
    for args in ((0, 3300), (1000, 0)):
        try:
            Proximity(PIN, *args)
        except ValueError:
            continue
        raise AssertionError(args)
