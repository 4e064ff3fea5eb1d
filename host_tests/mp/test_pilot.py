# Pilot decoding (evse.pilot) on bursts from the sim board twin's circuit model, and the safety
# loop sampler (evse.safety) on the twin: states, debounce, PWM offer, relay, allocation.
# The EV is set through the twin's bus pushes (what tools/sim.py sends, docs/SIM.md).
import asyncio
import gc
import json
import time
from array import array

import board

from evse import pilot
from evse.safety import SafetyLoop

DUTIES = (100, 160, 530, 900, 1000, 0)  # permille: 10 %, 16 %, 53 %, 90 %, steady +12, steady -12
BURSTS = 40
EV_OHMS = {"B": 2740, "C": 882, "D": 246}  # as tools/sim_world.py: R2, R2 || 1.3 k, R2 || 270
PP_OHMS = {13: 1500, 20: 680, 32: 220, 63: 100}


def push(b, *msg):
    assert b.feed(json.dumps(msg)), msg


def plug(b, c, amps=32, state="B", diode=True):
    push(b, "p", c, EV_OHMS[state], 1 if diode else 0, PP_OHMS[amps])


def set_ev(b, c, state, amps=32):
    """The EV side of the pilot: B/C/D, E (short) or diode_fault (keeps the resistor: here D)."""
    if state == "E":
        push(b, "p", c, 0, 1, PP_OHMS[amps])
    elif state == "diode_fault":
        push(b, "p", c, EV_OHMS["D"], 0, PP_OHMS[amps])
    else:
        plug(b, c, amps, state)


def unplug(b, c):
    push(b, "p", c, -1, 1, 0)


def levels(b, c):
    """The twin's noiseless plateaus (mV) of connector c (its _st layout: duty, hi, lo, pp)."""
    return b._st[4 * c + 1], b._st[4 * c + 2]


def board_in(state, duty, seed=1, noise=150):
    """A 1-connector twin with the EV in `state` ("A" = nothing plugged) and the PWM at duty."""
    b = board.Board({"seed": seed})
    b.noise_mv = noise
    if state == "E":
        set_ev(b, 1, "E")
    elif state != "A":
        plug(b, 1, 32, state)
    b.pilot(1).set_duty(duty)
    return b


def read_state(b, duty, prev=None, buf=None):
    buf = buf or array("h", bytes(200))
    b.pilot(1).burst(buf)
    hi, lo = pilot.plateaus(buf)
    return pilot.classify(hi, lo, pilot.pwm_on(duty), prev), hi, lo


def test_every_state_at_every_duty_with_noise():
    for duty in DUTIES:
        for state in ("A", "B", "C", "D", "E"):
            b = board_in(state, duty, seed=duty + 7)
            if duty == 0:
                want = "E" if state == "E" else "F"  # the pilot is held at -12 V
            else:
                want = state
            for _ in range(BURSTS):
                got, hi, lo = read_state(b, duty)
                assert got == want, (duty, state, got, hi, lo)


def test_plateaus_ignore_the_edges_and_track_the_levels():
    b = board_in("C", 160, noise=0)
    buf = array("h", bytes(200))
    for _ in range(20):
        b.pilot(1).burst(buf)
        assert pilot.plateaus(buf) == levels(b, 1)
    out = array("i", bytes(8))
    assert pilot.plateaus(buf, out) is out and out[1] == -12000
    b = board_in("C", 530, noise=150)
    for _ in range(20):
        b.pilot(1).burst(buf)
        hi, lo = pilot.plateaus(buf)
        assert abs(hi - levels(b, 1)[0]) <= 150 and abs(lo + 12000) <= 150, (hi, lo)


def test_pilot_levels_follow_the_circuit():
    b = board.Board({})
    assert levels(b, 1) == (12000, -12000)  # nothing plugged: the generator itself
    plug(b, 1, 32)
    assert abs(levels(b, 1)[0] - 9000) < 150 and levels(b, 1)[1] == -12000
    set_ev(b, 1, "C")
    assert abs(levels(b, 1)[0] - 6000) < 150
    set_ev(b, 1, "D")
    assert abs(levels(b, 1)[0] - 3000) < 150
    set_ev(b, 1, "diode_fault")  # no diode: the divider works both ways
    hi, lo = levels(b, 1)
    assert lo == -hi and lo > -10000
    set_ev(b, 1, "E")
    assert levels(b, 1) == (0, 0)
    unplug(b, 1)
    assert levels(b, 1) == (12000, -12000)


def test_diode_fault_is_state_f_with_pwm_only():
    for duty in (100, 160, 530, 900):
        for resistor in ("B", "C", "D"):
            b = board_in(resistor, duty, seed=duty)
            push(b, "p", 1, EV_OHMS[resistor], 0, 220)  # diode fault, resistor as it was
            for _ in range(BURSTS):
                got, hi, lo = read_state(b, duty)
                assert got == "F", (duty, resistor, got, hi, lo)
                assert not pilot.diode_ok(lo, True)
    b = board_in("C", 1000)
    push(b, "p", 1, EV_OHMS["C"], 0, 220)  # no negative phase without PWM: the fault cannot be seen
    got, hi, lo = read_state(b, 1000)
    assert got == "C" and pilot.diode_ok(lo, False)


def test_hysteresis_holds_the_previous_state_near_a_threshold():
    edges = ((10500, "A", "B"), (7500, "B", "C"), (4500, "C", "D"), (1500, "D", "E"))
    for edge, upper, lower in edges:
        for prev in (upper, lower):
            state = prev
            for i in range(40):  # wander up to +/-480 mV around the threshold
                hi = edge + (400 if i % 2 else -400) - (i % 5) * 20
                state = pilot.classify(hi, -12000, True, state)
                assert state == prev, (edge, prev, hi, state)
        # a reading beyond the hysteresis band does move the state
        assert pilot.classify(edge + 600, -12000, True, lower) == upper
        assert pilot.classify(edge - 600, -12000, True, upper) == lower
    assert pilot.classify(7600, -12000, True, None) == "B"
    assert pilot.classify(7400, -12000, True, None) == "C"


def test_state_e_and_f_from_the_positive_plateau():
    assert pilot.classify(0, 0, True, "C") == "E"
    assert pilot.classify(-12000, -12000, False, "B") == "F"
    assert pilot.classify(-12000, -12000, True, None) == "F"


def test_duty_amps_round_trips_at_band_edges():
    expect = {6: 100, 16: 266, 32: 533, 51: 850, 52: 850, 80: 960}
    for amps, permille in expect.items():
        p = pilot.amps_to_permille(amps)
        assert p == permille, (amps, p)
        back = pilot.permille_to_amps(p)
        assert back <= amps, (amps, back)
        if amps == 52:
            assert back == 51  # no duty means 52 A: 85 % = 51 A, 85.1 % = 52.75 A
        else:
            assert amps - back < 0.1, (amps, back)
    assert pilot.amps_to_permille(53) == 852 and pilot.permille_to_amps(852) == 53
    assert pilot.amps_to_permille(5.9) == pilot.NOT_OFFERING
    assert pilot.amps_to_permille(0) == pilot.NOT_OFFERING
    assert pilot.amps_to_permille(None) == pilot.NOT_OFFERING
    assert pilot.amps_to_permille(100) == 960
    for p in (0, 50, 1000):
        assert pilot.permille_to_amps(p) == 0, p


def test_pp_ohms_to_cable_amps():
    for ohms, amps in ((1500, 13), (680, 20), (220, 32), (100, 63), (None, 0), (10000, 0), (20, 0)):
        assert pilot.cable_amps(ohms) == amps, (ohms, amps)
    b = board.Board({"seed": 5})
    for amps in (13, 20, 32, 63):
        plug(b, 1, amps)
        for _ in range(20):
            assert pilot.cable_amps(b.proximity(1).read_ohms()) == amps
    unplug(b, 1)
    assert b.proximity(1).read_ohms() is None


# ---- safety loop on the sim board ----


class Recorder:
    def __init__(self):
        self.changes = []

    def __call__(self, c, state):
        self.changes.append((c, state))


def steps_until(loop, cond, max_ms=1000):
    t0 = time.ticks_ms()
    while not cond():
        assert time.ticks_diff(time.ticks_ms(), t0) < max_ms, "timed out"
        loop.step()
        time.sleep_ms(10)
    return time.ticks_diff(time.ticks_ms(), t0)


def events(sent, kind):
    """(connector, value) of the `kind` events the twin sent on the bus (a bytearray)."""
    out = []
    for line in bytes(sent).split(b"\n"):
        if line.startswith(b"\x1ee "):
            k, c, v = json.loads(line.split(b" ", 2)[2])
            if k == kind:
                out.append((c, v))
    return out


def test_safety_reports_confirmed_states_and_events():
    sent = bytearray()
    b = board.Board({"connectors": 2}, sent.extend)
    rec = Recorder()
    loop = SafetyLoop(b, rec)
    loop.start()
    loop.step()
    assert loop.state(1) == "A" and loop.state(2) == "A"
    assert rec.changes == [(1, "A"), (2, "A")]
    plug(b, 2, 20)
    loop.step()
    assert loop.state(2) == "A"  # A -> B is debounced
    ms = steps_until(loop, lambda: loop.state(2) == "B")
    assert ms >= 80, ms  # STABLE_MS (100) minus one step
    assert loop.cable_amps(2) == 20
    set_ev(b, 2, "C", 20)
    steps_until(loop, lambda: loop.state(2) == "C")
    unplug(b, 2)
    loop.step()
    assert loop.state(2) == "A"  # unplug is confirmed at once
    assert rec.changes[2:] == [(2, "B"), (2, "C"), (2, "A")]
    cps = events(sent, "cp")
    assert cps == [(1, "A"), (2, "A"), (2, "B"), (2, "C"), (2, "A")], cps


def test_safety_offer_is_clamped_by_the_cable_and_applied_while_plugged():
    b = board.Board({})
    loop = SafetyLoop(b)
    loop.start()
    loop.step()
    loop.offer(1, 32)
    loop.allow(1, True)
    assert b.pilot(1).duty == pilot.NOT_OFFERING  # state A: nothing to offer to
    plug(b, 1, 20)
    steps_until(loop, lambda: loop.state(1) == "B")
    assert b.pilot(1).duty == pilot.amps_to_permille(20)
    assert abs(loop.offered_amps(1) - 20) < 0.1
    loop.offer(1, 10)
    assert b.pilot(1).duty == pilot.amps_to_permille(10)
    loop.offer(1, 0)
    assert b.pilot(1).duty == pilot.NOT_OFFERING and loop.offered_amps(1) == 0
    loop.offer(1, 16)
    unplug(b, 1)
    loop.step()
    assert b.pilot(1).duty == pilot.NOT_OFFERING
    try:
        loop.offer(2, 16)
        raise AssertionError("offer on a missing connector")
    except ValueError:
        pass


def test_safety_opens_a_closed_relay_when_the_ev_leaves_c():
    b = board.Board({})
    loop = SafetyLoop(b)
    loop.start()
    set_ev(b, 1, "C")
    loop.offer(1, 16)
    loop.allow(1, True)  # what the charging logic does once the transaction is authorized
    loop.lock(1, True)
    steps_until(loop, lambda: loop.relay_closed(1))
    assert loop.state(1) == "C"
    set_ev(b, 1, "B")
    t0 = time.ticks_us()
    loop.step()
    dt = time.ticks_diff(time.ticks_us(), t0)
    assert loop.state(1) == "B" and b.relay(1).value is False
    assert dt < 20000, dt  # one loop iteration, far under the 100 ms of IEC 61851-1


def test_safety_opens_the_relay_when_the_pilot_cannot_be_read():
    b = board.Board({"connectors": 2})
    loop = SafetyLoop(b)
    loop.start()
    set_ev(b, 1, "C")
    steps_until(loop, lambda: loop.state(1) == "C")
    b.relay(1).set(True)
    b.relay(2).set(True)
    port = b.pilot(1)

    def broken(buf):
        raise OSError(5)

    port.burst = broken  # the ADC of connector 1 fails
    loop.step()
    loop.step()
    assert b.relay(1).value is False  # fail safe
    assert b.relay(2).value is False and loop.state(2) == "A"  # the other connector still runs
    del port.burst
    loop.step()
    assert loop.state(1) == "C"


def test_safety_latches_a_diode_fault_until_unplug():
    b = board.Board({})
    loop = SafetyLoop(b)
    loop.start()
    plug(b, 1, 32)
    loop.offer(1, 16)
    loop.allow(1, True)  # the PWM runs: its negative phase shows the diode
    steps_until(loop, lambda: loop.state(1) == "B")
    push(b, "p", 1, EV_OHMS["B"], 0, 220)  # diode fault
    loop.step()
    assert loop.state(1) == "F" and not loop.diode_ok(1)
    assert b.pilot(1).duty == pilot.NOT_OFFERING  # no offer in F
    for _ in range(10):
        loop.step()
    assert loop.state(1) == "F"  # still F without PWM to re-check
    unplug(b, 1)
    loop.step()
    assert loop.state(1) == "A" and loop.diode_ok(1)
    plug(b, 1, 32)
    steps_until(loop, lambda: loop.state(1) == "B")


def test_safety_step_allocates_nothing_in_steady_state():
    b = board.Board({"connectors": 2})
    loop = SafetyLoop(b)
    loop.start()
    set_ev(b, 1, "C")
    loop.offer(1, 16)
    loop.allow(1, True)
    loop.lock(1, True)
    for _ in range(30):
        loop.step()
        time.sleep_ms(5)
    assert loop.state(1) == "C" and loop.state(2) == "A" and loop.relay_closed(1)
    n = 300
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        t0 = time.ticks_us()
        for _ in range(n):
            loop.step()
        us = time.ticks_diff(time.ticks_us(), t0)
        after = gc.mem_alloc()
    finally:
        gc.enable()
    assert after - before == 0, (after - before) / n
    assert us / n < 5000, us / n  # two connectors, 100-sample bursts


async def test_safety_run_loop_paces_and_cancels():
    b = board.Board({})
    loop = SafetyLoop(b)
    task = asyncio.create_task(loop.run())
    await asyncio.sleep_ms(300)
    task.cancel()
    await asyncio.sleep_ms(0)
    assert 5 <= loop.iterations <= 16, loop.iterations  # 20 ms period (fewer on a busy host)
    assert 0 < loop.max_us < 20000
    n = loop.iterations
    await asyncio.sleep_ms(60)
    assert loop.iterations == n  # cancelled: no more iterations
