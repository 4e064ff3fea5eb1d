# hal.pilot (the real-board control pilot driver) on the fake `machine` (host_tests/fakes): a
# synthetic 1 kHz pilot signal on the fake ADC, decoded by evse.pilot as the safety loop does.
import sys
import time
from array import array

sys.path.insert(0, "../fakes")  # cwd is host_tests/mp: the fakes shadow the built-in machine

import machine  # noqa: E402

from evse import pilot  # noqa: E402
from hal.pilot import Pilot, fixed_point  # noqa: E402
from heapcheck import allocated  # noqa: E402

PWM_PIN = 25
ADC_PIN = 34
MV_PER_COUNT = 0.4  # board divider: raw 0..65535 -> -13.0 .. +13.2 V
OFFSET_MV = -13000
BURSTS = 20

# The signal: (duty permille, high mV, low mV, noise mV, edge us); the xorshift state (30 bits:
# small ints on 32-bit ports too, as boards/sim.py's).
_sig = array("i", [1000, 12000, -12000, 150, 5])
_rng = array("i", [316050594])


def _raw(mv):
    r = (mv - OFFSET_MV) * 5 // 2  # inverse of the divider mapping (1 / 0.4 mV per count)
    return 0 if r < 0 else 65535 if r > 65535 else r


def signal(t_us):
    """Pilot line at time t: PWM between the plateaus with linear edges and noise. No allocation."""
    duty = _sig[0]  # one by one: a 5-tuple unpack would build a tuple (an allocation)
    hi = _sig[1]
    lo = _sig[2]
    noise = _sig[3]
    edge = _sig[4]
    t = t_us % 1000
    if duty >= 1000:
        v = hi
    elif duty <= 0:
        v = lo
    elif t < duty:
        v = hi if t >= edge else lo + (hi - lo) * t // edge
    else:
        e = t - duty
        v = lo if e >= edge else hi + (lo - hi) * e // edge
    x = _rng[0]
    x ^= (x & 0x1FFFF) << 13
    x ^= x >> 19
    x ^= (x & 0x7FFFF) << 11
    _rng[0] = x
    return _raw(v + (x & 1023) * noise // 512 - noise)


def make(cls=Pilot, **kw):
    machine.set_adc(ADC_PIN, signal)
    return cls(PWM_PIN, ADC_PIN, MV_PER_COUNT, OFFSET_MV, **kw)


def setsig(duty, hi, lo, noise=150):
    _sig[0] = duty
    _sig[1] = hi
    _sig[2] = lo
    _sig[3] = noise


def states(p, duty, hi, lo, n=100):
    """The classified state and diode check of BURSTS bursts, each decoded on its own. A burst
    the host held up (burst() False: a whole plateau may be missing) decides nothing, as in the
    safety loop; most must be whole."""
    setsig(duty, hi, lo)
    buf = array("h", bytes(2 * n))
    out = array("i", bytes(8))
    seen = set()
    diode = set()
    pwm = pilot.pwm_on(duty)
    held_up = 0
    for _ in range(BURSTS):
        if p.burst(buf) is False:
            held_up += 1
            continue
        pilot.plateaus(buf, out)
        seen.add(pilot.classify(out[0], out[1], pwm, None))
        diode.add(pilot.diode_ok(out[1], pwm))
    assert held_up <= BURSTS // 2, "%d of %d bursts held up" % (held_up, BURSTS)
    return seen, diode


def test_fake_machine_is_in_use():
    assert hasattr(machine, "set_adc"), machine  # the built-in unix machine has no ADC at all


def test_pwm_starts_at_steady_plus_12v_then_follows_set_duty():
    p = make()
    pwm = machine.PWM._all[PWM_PIN]
    assert pwm.calls == [("freq", 1000), ("duty_u16", 65535)], pwm.calls
    assert p.duty == 1000
    p.set_duty(533)
    assert pwm.freq() == 1000
    assert pwm.duty_u16() == round(0.533 * 65535) == 34930, pwm.duty_u16()
    assert p.duty == 533
    p.set_duty(0)
    assert pwm.duty_u16() == 0  # steady -12 V: state F
    p.set_duty(1000)
    assert pwm.duty_u16() == 65535
    n = len(pwm.calls)
    p.set_duty(1000)  # unchanged: no write to the peripheral
    assert len(pwm.calls) == n


def test_set_duty_rejects_bad_values_and_keeps_the_last_duty():
    p = make()
    p.set_duty(250)
    for bad in (-1, 1001, 50.0, None, "500"):
        try:
            p.set_duty(bad)
        except ValueError:
            pass
        else:
            raise AssertionError("accepted %r" % (bad,))
    assert p.duty == 250
    assert machine.PWM._all[PWM_PIN].duty_u16() == (250 * 65535 + 500) // 1000


def test_inverting_output_stage():
    p = make(invert=True)
    pwm = machine.PWM._all[PWM_PIN]
    assert pwm.duty_u16() == 0  # inverted +12 V
    p.set_duty(100)
    assert pwm.duty_u16() == 65535 - 6554


def test_raw_to_millivolts_uses_the_board_mapping():
    machine.set_adc(ADC_PIN, [0, 32500, 65535, 2500, 62500])
    p = Pilot(PWM_PIN, ADC_PIN, MV_PER_COUNT, OFFSET_MV)
    buf = array("h", bytes(10))
    p.burst(buf)
    want = (-13000, 0, 13214, -12000, 12000)
    for i in range(5):
        assert abs(buf[i] - want[i]) <= 1, (i, buf[i], want[i])
    # a realistic ESP32 divider (24 V over the 11 dB range) and an inverting front end
    for mvpc in (0.3663, 1.5, -0.37, 7.9):
        scale, shift = fixed_point(mvpc)
        assert 65535 * abs(scale) + (1 << shift) < 1 << 30, mvpc  # a small int on a 32-bit port
        assert shift >= 10, (mvpc, shift)
        bound = 65535 / (1 << (shift + 1)) + 0.5
        for raw in (1, 1000, 40000, 65535):
            got = (raw * scale + (1 << (shift - 1))) >> shift
            assert abs(got - raw * mvpc) <= bound, (mvpc, raw, got)


def test_out_of_range_readings_clamp_instead_of_wrapping():
    machine.set_adc(ADC_PIN, [65535])
    p = Pilot(PWM_PIN, ADC_PIN, 1.0, 0)
    buf = array("h", bytes(4))
    p.burst(buf)
    assert buf[0] == 32767 and buf[1] == 32767, buf


def test_bad_calibration_is_refused():
    for mvpc in (0, 20000):
        try:
            Pilot(PWM_PIN, ADC_PIN, mvpc, 0)
        except ValueError:
            continue
        raise AssertionError(mvpc)
    try:
        Pilot(PWM_PIN, ADC_PIN, 0.4, 0, span_us=500)
    except ValueError:
        pass
    else:
        raise AssertionError("a burst shorter than a PWM period was accepted")


def test_burst_spans_two_pwm_periods_or_as_configured():
    p = make()
    setsig(1000, 12000, 12000)
    buf = array("h", bytes(200))
    p.burst(buf)
    assert 1980 <= p.last_burst_us < 50000, p.last_burst_us
    p = make(span_us=1000)
    p.burst(buf)
    assert 990 <= p.last_burst_us < 50000, p.last_burst_us


def test_ev_states_at_several_duties():
    for cls in (Pilot,):  # the RP2040's DMA capture: test_hal_pilot_rp2.py
        p = make(cls)
        for duty in (100, 530, 900):
            p.set_duty(duty)
            for state, hi in (("B", 9000), ("C", 6000), ("D", 3000)):
                seen, diode = states(p, duty, hi, -12000)
                assert seen == {state}, (duty, state, seen)
                assert diode == {True}, (duty, state)


def test_no_pwm_plus_12v_is_state_a():
    p = make()
    p.set_duty(1000)
    seen, diode = states(p, 1000, 12000, 12000)
    assert seen == {"A"}, seen
    assert diode == {True}


def test_ev_on_steady_plus_12v_is_b_without_pwm():
    p = make()
    seen, _ = states(p, 1000, 9000, 9000)
    assert seen == {"B"}, seen


def test_missing_diode_is_a_fault():
    p = make()
    p.set_duty(530)
    seen, diode = states(p, 530, 9000, -9000)  # no diode: the negative half sees the EV resistor
    assert diode == {False}, diode
    assert seen == {"F"}, seen


def test_short_to_pe_is_e_and_steady_minus_12v_is_f():
    p = make()
    p.set_duty(530)
    seen, _ = states(p, 530, 0, 0)
    assert seen == {"E"}, seen
    p.set_duty(0)
    seen, _ = states(p, 0, -12000, -12000)
    assert seen == {"F"}, seen


def test_a_burst_held_up_every_try_is_reported():
    def slow(t_us):  # every read stalls past GAP_US: as an interrupt storm or the host would
        time.sleep_us(300)
        return signal(t_us)

    machine.set_adc(ADC_PIN, slow)
    p = Pilot(PWM_PIN, ADC_PIN, MV_PER_COUNT, OFFSET_MV)
    buf = array("h", bytes(40))
    assert p.burst(buf) is False
    assert p.disturbed == 3  # TRIES
    machine.set_adc(ADC_PIN, signal)
    assert p.burst(buf) is True


def test_burst_allocates_nothing():
    p = make()
    p.set_duty(530)
    setsig(530, 6000, -12000)
    buf = array("h", bytes(200))
    p.burst(buf)  # warm-up

    def five_bursts():
        for _ in range(5):
            p.burst(buf)

    used = allocated(five_bursts)
    assert used == 0, used
