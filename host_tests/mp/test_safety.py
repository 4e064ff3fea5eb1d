# The safety loop (evse.safety) owning the contactor on the sim board twin: when it closes (every
# IEC 61851-1 condition, one test per missing one), when it opens (C->B, unplug, E, diode, each
# fault, the 6 s after the PWM stopped), the fault monitors (RCD, weld, lock, temperature), the
# offer's limits, the hardware event log and the allocation-free steady state. Time is faked
# through SafetyLoop.clock; the EV and the faults are set with the twin's bus pushes.
import json

import board

from evse import pilot
from evse.safety import (
    FAULT_LOCK,
    FAULT_OVERTEMP,
    FAULT_RCD,
    FAULT_WELD,
    LOCK_MS,
    PERIOD_MS,
    PWM_OFF_MS,
    WELD_MS,
    SafetyLoop,
)
from heapcheck import allocated

EV_OHMS = {"B": 2740, "C": 882, "D": 246}  # as tools/sim_world.py: R2, R2 || 1.3 k, R2 || 270
PP_OHMS = {13: 1500, 20: 680, 32: 220, 63: 100}
OFF = pilot.NOT_OFFERING


def push(b, *msg):
    assert b.feed(json.dumps(msg)), msg


class Rig:
    """A sim board, a safety loop on a fake clock, and what the loop reported."""

    def __init__(self, connectors=1, fixed=False, temps=None, **kw):
        self.sent = bytearray()
        b = self.b = board.Board({"connectors": connectors}, self.sent.extend)
        if fixed:
            b.fixed_cable = True
        if temps is not None:  # a sensor the test sets: temps[c] (None = no reading)
            self.temp_reads = 0

            def temperature_c(c):
                self.temp_reads += 1
                return temps[c]

            b.temperature_c = temperature_c
        self.t = t = [1000]
        self.changes = []
        self.fault_calls = []
        self.loop = SafetyLoop(
            b,
            on_change=lambda c, s: self.changes.append((c, s)),
            on_fault=lambda c, bit, on: self.fault_calls.append((c, bit, on)),
            **kw,
        )
        self.loop.clock = lambda: t[0]
        self.loop.start()
        self.step()

    def now(self):
        return self.t[0]

    def step(self, ms=PERIOD_MS):
        self.t[0] += ms
        self.loop.step()

    def run(self, ms):
        end = self.t[0] + ms
        while self.t[0] < end:
            self.step()

    def until(self, cond, max_ms=3000):
        """Step until cond(); the fake milliseconds it took."""
        t0 = self.t[0]
        while not cond():
            assert self.t[0] - t0 <= max_ms, "timed out"
            self.step()
        return self.t[0] - t0

    def closed(self, c=1):
        assert self.loop.relay_closed(c) == self.b.relay(c).value
        return self.b.relay(c).value

    def held_open(self, ms=1500, c=1):
        end = self.t[0] + ms
        while self.t[0] < end:
            self.step()
            assert not self.closed(c), self.t[0]

    def ev(self, state, c=1, amps=32):
        """The EV side: A (unplugged), B/C/D, E (short), diode_fault (the resistor stays C)."""
        if state == "A":
            push(self.b, "p", c, -1, 1, 0)
        elif state == "E":
            push(self.b, "p", c, 0, 1, PP_OHMS[amps])
        elif state == "diode_fault":
            push(self.b, "p", c, EV_OHMS["C"], 0, PP_OHMS[amps])
        else:
            push(self.b, "p", c, EV_OHMS[state], 1, PP_OHMS[amps])

    def faults(self, bits, c=1):
        push(self.b, "f", c, bits)

    def events(self, *kinds):
        out = []
        for line in bytes(self.sent).split(b"\n"):
            if line.startswith(b"\x1ee "):
                k, c, v = json.loads(line.split(b" ", 2)[2])
                if k in kinds:
                    out.append((k, c, v))
        return out


def ready(rig, c=1, lock=True):
    """Everything a session needs except the EV asking for current: plugged (B), allowed, 16 A."""
    rig.ev("B", c)
    rig.loop.offer(c, 16)
    rig.loop.allow(c, True)
    if lock:
        rig.loop.lock(c, True)
    rig.until(lambda: rig.loop.state(c) == "B")


def charging(**kw):
    rig = Rig(**kw)
    ready(rig)
    rig.ev("C")
    rig.until(rig.closed)
    assert rig.loop.state(1) == "C" and rig.loop.duty(1) == 266
    return rig


# ---- closing ----


def test_closes_when_every_condition_is_met():
    rig = Rig()
    ready(rig)
    assert not rig.closed() and rig.loop.duty(1) == 266 and rig.loop.locked(1)
    rig.ev("C")
    ms = rig.until(rig.closed)
    assert ms <= 140, ms  # STABLE_MS to confirm C, then the next iteration
    assert rig.loop.state(1) == "C" and rig.loop.faults(1) == 0 and rig.loop.diode_ok(1)
    rig.run(1000)
    assert rig.closed()


def test_stays_open_without_permission():
    rig = Rig()
    ready(rig)
    rig.loop.allow(1, False)
    assert rig.loop.duty(1) == OFF
    rig.ev("C")
    rig.held_open()
    assert rig.loop.duty(1) == OFF
    rig.loop.allow(1, True)
    assert rig.loop.duty(1) == 266
    assert rig.until(rig.closed) <= PERIOD_MS


def test_stays_open_with_an_offer_below_6_amps():
    rig = Rig()
    ready(rig)
    rig.loop.offer(1, 5)
    rig.ev("C")
    rig.held_open()
    assert rig.loop.duty(1) == OFF and rig.loop.offered_amps(1) == 0
    rig.loop.offer(1, 6)
    rig.until(rig.closed)
    assert rig.loop.duty(1) == 100


def test_stays_open_while_the_ev_is_in_b():
    rig = Rig()
    ready(rig)
    rig.held_open()
    assert rig.loop.duty(1) == 266  # B: the EV is told what it may draw
    rig.ev("C")
    rig.until(rig.closed)


def test_state_d_charges_only_with_ventilation():
    rig = Rig()
    ready(rig)
    rig.ev("D")
    rig.until(lambda: rig.loop.state(1) == "D")
    rig.held_open()
    assert rig.loop.duty(1) == OFF  # no ventilation: x1, the EV must not wait for power
    rig.loop.ventilation = True
    rig.until(rig.closed)
    assert rig.loop.duty(1) == 266
    rig.loop.ventilation = False
    rig.step()
    assert not rig.closed() and rig.loop.duty(1) == OFF


def test_stays_open_until_the_lock_is_commanded():
    rig = Rig()
    ready(rig, lock=False)
    rig.ev("C")
    rig.held_open()
    assert not rig.loop.locked(1)
    rig.loop.lock(1, True)
    assert rig.loop.locked(1)
    assert rig.until(rig.closed) <= PERIOD_MS


def test_stays_open_with_a_fault():
    rig = Rig()
    ready(rig)
    rig.faults(FAULT_OVERTEMP)
    rig.until(lambda: rig.loop.faults(1), 1000)  # the temperature is read once a second
    rig.ev("C")
    rig.held_open()
    assert rig.loop.faults(1) == FAULT_OVERTEMP and rig.loop.duty(1) == OFF
    rig.faults(0)
    rig.until(rig.closed, 1100)  # the temperature is read once a second


def test_stays_open_with_a_diode_fault_until_replugged():
    rig = Rig()
    ready(rig)
    rig.ev("diode_fault")
    rig.step()
    assert rig.loop.state(1) == "F" and not rig.loop.diode_ok(1)
    rig.held_open()
    assert rig.loop.duty(1) == OFF
    rig.ev("A")
    rig.step()
    rig.ev("C")
    rig.until(rig.closed)


def test_fixed_cable_closes_without_a_lock():
    rig = Rig(fixed=True, max_amps=16)
    rig.ev("C")
    rig.loop.offer(1, 32)
    rig.loop.allow(1, True)
    rig.until(rig.closed)
    assert rig.loop.cable_amps(1) == 16 and rig.loop.duty(1) == 266
    rig.loop.lock(1, True)
    rig.loop.lock(1, False)  # no socket lock: nothing moves, the contactor stays closed
    assert rig.b.lock(1).value is False and rig.loop.locked(1) and rig.closed()
    rig.run(LOCK_MS + 100)
    assert rig.loop.faults(1) == 0 and rig.closed()


# ---- opening ----


def test_opens_when_the_ev_goes_to_b_in_the_same_step():
    rig = charging()
    rig.ev("B")
    rig.step()
    assert rig.loop.state(1) == "B" and not rig.closed()
    assert rig.loop.duty(1) == 266  # still allowed: the EV may ask again
    rig.ev("C")
    rig.until(rig.closed)


def test_a_held_up_burst_decides_nothing():
    rig = charging()
    pilot = rig.b.pilot(1)
    real = pilot.burst

    def held_up(buf):  # samples without the high plateau, flagged as not to be trusted
        for i in range(len(buf)):
            buf[i] = -12000
        return False

    pilot.burst = held_up
    rig.run(200)
    assert rig.loop.state(1) == "C" and rig.closed(), "a held-up burst looked like state F"
    pilot.burst = real
    rig.ev("B")
    rig.step()
    assert rig.loop.state(1) == "B" and not rig.closed()


def test_opens_on_unplug_in_the_same_step():
    rig = charging()
    rig.ev("A")
    rig.step()
    assert rig.loop.state(1) == "A" and not rig.closed() and rig.loop.duty(1) == OFF


def test_opens_on_state_e_in_the_same_step():
    rig = charging()
    rig.ev("E")
    rig.step()
    assert rig.loop.state(1) == "E" and not rig.closed() and rig.loop.duty(1) == OFF


def test_opens_on_a_diode_fault_in_the_same_step():
    rig = charging()
    rig.ev("diode_fault")
    rig.step()
    assert rig.loop.state(1) == "F" and not rig.closed() and rig.loop.duty(1) == OFF


def test_opens_on_each_fault_in_the_iteration_that_sees_it():
    def lock_switch_opens(rig):  # the lock's position switch reports unlocked (sim: _fl slot 3)
        rig.b._fl[4 * 1 + 3] = 0

    cases = (
        (FAULT_RCD, lambda rig: rig.faults(FAULT_RCD)),
        (FAULT_OVERTEMP, lambda rig: rig.faults(FAULT_OVERTEMP)),
        (FAULT_LOCK, lock_switch_opens),
    )
    for bit, inject in cases:
        rig = charging()
        inject(rig)
        t0 = rig.now()
        while not rig.loop.faults(1):
            assert rig.closed(), bit  # nothing opens it before the fault is seen
            assert rig.now() - t0 <= LOCK_MS + PERIOD_MS, bit
            rig.step()
        assert rig.loop.faults(1) == bit and not rig.closed(), bit
        assert rig.loop.duty(1) == OFF and rig.fault_calls == [(1, bit, True)], bit


def test_pwm_stopped_gives_the_ev_6_s_then_forces_the_contactor_open():
    rig = charging()
    rig.loop.allow(1, False)
    assert rig.loop.duty(1) == OFF and rig.closed()  # the PWM stops at once, the load does not
    t0 = rig.now()
    rig.until(lambda: not rig.closed(), PWM_OFF_MS + PERIOD_MS)
    assert PWM_OFF_MS <= rig.now() - t0 <= PWM_OFF_MS + PERIOD_MS
    assert rig.loop.state(1) == "C"
    rig.held_open(500)  # the EV still in C: no PWM, no contactor
    rig.loop.allow(1, True)
    rig.until(rig.closed, PERIOD_MS)
    rig.loop.offer(1, 0)  # an offer below 6 A stops the PWM just the same
    t0 = rig.now()
    rig.run(PWM_OFF_MS - 2 * PERIOD_MS)
    assert rig.closed()
    rig.until(lambda: not rig.closed(), 3 * PERIOD_MS)
    assert rig.now() - t0 >= PWM_OFF_MS


def test_pwm_stopped_opens_early_when_the_ev_goes_to_b():
    rig = charging()
    rig.loop.allow(1, False)
    rig.run(2000)
    assert rig.closed()
    rig.ev("B")
    rig.step()
    assert rig.loop.state(1) == "B" and not rig.closed()


# ---- fault monitors ----


def test_weld_fault_and_clear():
    rig = charging()
    rig.faults(FAULT_WELD)  # the contactor welds while closed: nothing to see yet
    rig.run(500)
    assert rig.loop.faults(1) == 0 and rig.closed()
    rig.ev("B")
    rig.step()
    assert not rig.closed() and rig.b.relay(1).feedback is True
    t0 = rig.now()
    rig.until(lambda: rig.loop.faults(1))
    assert WELD_MS <= rig.now() - t0 <= WELD_MS + PERIOD_MS
    assert rig.loop.faults(1) == FAULT_WELD and rig.fault_calls == [(1, FAULT_WELD, True)]
    assert rig.loop.duty(1) == OFF
    rig.ev("C")
    rig.held_open()
    rig.faults(0)  # repaired: the auxiliary contact reads open
    rig.step()
    assert rig.loop.faults(1) == 0 and rig.fault_calls[-1] == (1, FAULT_WELD, False)
    rig.until(rig.closed)


def test_a_welded_contactor_keeps_the_socket_locked():
    rig = charging()
    rig.faults(FAULT_WELD)
    rig.ev("B")
    rig.step()
    assert not rig.closed() and rig.loop.live(1)  # commanded open, the contacts still conduct
    rig.loop.lock(1, False)
    assert rig.loop.locked(1) and rig.b.lock(1).value, "a live socket released its plug"
    rig.until(lambda: rig.loop.faults(1))
    rig.loop.lock(1, False)
    assert rig.loop.locked(1)
    rig.faults(0)  # repaired
    rig.step()
    assert not rig.loop.live(1)
    rig.loop.lock(1, False)
    assert not rig.loop.locked(1)


def test_no_weld_check_without_a_feedback_input():
    class NoFeedback:  # a real board's relay without an auxiliary contact input
        feedback = None

        def __init__(self, port):
            self.port = port

        def set(self, on):
            self.port.set(on)

        @property
        def value(self):
            return self.port.value

    rig = Rig()
    relay = NoFeedback(rig.b.relay(1))
    rig.b.relay = lambda c: relay
    ready(rig)
    rig.ev("C")
    rig.until(rig.closed)
    rig.faults(FAULT_WELD)
    rig.ev("B")
    rig.run(2000)
    assert rig.loop.faults(1) == 0 and not rig.closed()


def test_rcd_trip_opens_at_once_and_clears_with_the_input():
    rig = charging()
    rig.faults(FAULT_RCD)
    rig.step()
    assert not rig.closed() and rig.loop.faults(1) == FAULT_RCD and rig.loop.duty(1) == OFF
    rig.held_open(1000)
    rig.faults(0)
    rig.step()
    assert rig.loop.faults(1) == 0 and rig.loop.duty(1) == 266
    assert rig.fault_calls == [(1, FAULT_RCD, True), (1, FAULT_RCD, False)]
    rig.until(rig.closed, PERIOD_MS)  # still allowed and in C: charging resumes


def test_lock_failure_when_the_lock_fault_is_pushed():
    rig = Rig()
    ready(rig, lock=False)
    rig.ev("C")
    rig.faults(FAULT_LOCK)  # the actuator is stuck
    rig.loop.lock(1, True)
    t0 = rig.now()
    assert not rig.loop.locked(1)
    rig.until(lambda: rig.loop.faults(1))
    assert LOCK_MS <= rig.now() - t0 <= LOCK_MS + PERIOD_MS
    assert rig.loop.faults(1) == FAULT_LOCK and not rig.closed() and rig.loop.duty(1) == OFF
    rig.held_open()
    rig.faults(0)  # repaired: the lock catches up with the command
    rig.step()
    assert rig.loop.locked(1) and rig.loop.faults(1) == 0
    rig.until(rig.closed)
    assert rig.fault_calls == [(1, FAULT_LOCK, True), (1, FAULT_LOCK, False)]


def test_a_stuck_lock_clears_when_the_command_goes_back():
    rig = Rig()
    rig.faults(FAULT_LOCK)
    rig.loop.lock(1, True)
    rig.until(lambda: rig.loop.faults(1) == FAULT_LOCK)
    rig.loop.lock(1, False)  # what the charge point does when locking failed
    rig.step()
    assert rig.loop.faults(1) == 0 and not rig.loop.locked(1)


def test_unlocking_opens_the_contactor_first():
    rig = charging()
    rig.sent[:] = b""
    rig.loop.lock(1, False)
    assert not rig.closed() and rig.b.lock(1).value is False  # at once, not at the next step
    out = bytes(rig.sent)
    assert out.index(b"\x1er ") < out.index(b"\x1el "), out
    rig.held_open()


def test_locked_is_the_command_without_a_position_switch():
    class NoSwitch:
        feedback = None

        def set(self, on):
            self.value = on

    rig = Rig()
    lock = NoSwitch()
    rig.b.lock = lambda c: lock
    rig.loop.start()
    assert not rig.loop.locked(1)
    rig.loop.lock(1, True)
    assert lock.value is True and rig.loop.locked(1)
    rig.run(LOCK_MS * 2)
    assert rig.loop.faults(1) == 0


def test_start_unlocks_the_socket():
    rig = Rig()
    rig.loop.lock(1, True)
    assert rig.b.lock(1).value
    rig.loop.start()
    assert not rig.b.lock(1).value and not rig.loop.locked(1)


def test_overtemperature_with_hysteresis_read_once_a_second():
    temps = [None, 84]
    rig = Rig(temps=temps)
    rig.run(3000)
    assert rig.loop.faults(1) == 0
    assert 3 <= rig.temp_reads <= 4, rig.temp_reads  # once a second, not every 20 ms
    temps[1] = 85
    rig.until(lambda: rig.loop.faults(1), 1000)
    assert rig.loop.faults(1) == FAULT_OVERTEMP
    temps[1] = 75  # inside the hysteresis: still too hot
    rig.run(2000)
    assert rig.loop.faults(1) == FAULT_OVERTEMP
    temps[1] = 74.5
    rig.until(lambda: not rig.loop.faults(1), 1000)
    assert rig.fault_calls == [(1, FAULT_OVERTEMP, True), (1, FAULT_OVERTEMP, False)]


def test_no_temperature_check_without_a_reading():
    rig = Rig(temps=[None, None])
    rig.run(2000)
    assert rig.temp_reads >= 2 and rig.loop.faults(1) == 0

    class NoSensor(board.Board):
        temperature_c = None

    b = NoSensor({})
    push(b, "f", 1, FAULT_OVERTEMP)  # the sim's sensor would read hot: nobody reads it
    loop = SafetyLoop(b)
    loop.start()
    for _ in range(10):
        loop.step()
    assert loop.faults(1) == 0


def test_a_raising_monitor_fails_safe():
    rig = charging()

    def broken(c):
        raise OSError(5)

    rig.b.rcd_tripped = broken
    rig.step()
    assert not rig.closed()
    rig.held_open(500)
    del rig.b.rcd_tripped
    rig.until(rig.closed)


def test_a_raising_on_fault_callback_does_not_stop_the_loop():
    rig = charging()

    def on_fault(c, bit, active):
        raise RuntimeError("charge point bug")

    rig.loop._on_fault = on_fault
    rig.faults(FAULT_RCD)
    rig.step()
    assert rig.loop.faults(1) == FAULT_RCD and not rig.closed()
    rig.faults(0)
    rig.step()
    assert rig.loop.faults(1) == 0


# ---- the offer ----


def test_offer_is_clamped_by_cable_max_amps_and_set_max():
    rig = Rig()
    rig.ev("B", amps=20)
    rig.loop.offer(1, 32)
    rig.loop.allow(1, True)
    rig.until(lambda: rig.loop.state(1) == "B")
    assert rig.loop.cable_amps(1) == 20 and rig.loop.duty(1) == pilot.amps_to_permille(20)
    rig.loop.set_max(16)
    assert rig.loop.duty(1) == pilot.amps_to_permille(16)
    rig.loop.set_max(None)  # no installation limit: the cable again
    assert rig.loop.duty(1) == pilot.amps_to_permille(20)
    rig.loop.set_max(5)
    assert rig.loop.duty(1) == OFF
    rig.loop.set_max(63)
    rig.ev("A")
    rig.step()
    rig.ev("B", amps=63)
    rig.until(lambda: rig.loop.state(1) == "B")
    assert rig.loop.cable_amps(1) == 63 and rig.loop.duty(1) == pilot.amps_to_permille(32)  # max_amps
    rig = Rig(max_amps=13)
    ready(rig)
    rig.loop.set_max(20)  # the installation cannot raise the charger's rating
    assert rig.loop.duty(1) == pilot.amps_to_permille(13)
    for bad in (0, 2):
        for call in (rig.loop.allow, rig.loop.lock, rig.loop.offer):
            try:
                call(bad, True)
                raise AssertionError("connector %d accepted" % bad)
            except ValueError:
                pass


# ---- the event log and the heap ----


def test_pilot_and_fault_events_reach_the_hardware_log():
    rig = charging()
    rig.faults(FAULT_RCD)
    rig.step()
    rig.faults(0)
    rig.step()
    rig.faults(FAULT_WELD)
    rig.ev("A")
    rig.until(lambda: rig.loop.faults(1))
    rig.faults(0)
    rig.step()
    assert rig.events("cp", "fault", "fault_clear") == [
        ("cp", 1, "A"),
        ("cp", 1, "B"),
        ("cp", 1, "C"),
        ("fault", 1, "rcd"),
        ("fault_clear", 1, "rcd"),
        ("cp", 1, "A"),
        ("fault", 1, "weld"),
        ("fault_clear", 1, "weld"),
    ]
    assert rig.changes == [(1, "A"), (1, "B"), (1, "C"), (1, "A")]


def test_no_allocation_in_steady_state_with_the_contactor_closed():
    rig = charging(connectors=2)
    ready(rig, c=2)  # the other connector offers to an EV in B
    t = rig.t
    step = rig.loop.step

    def steps():
        for _ in range(300):  # 6 s: temperature reads, lock and weld checks included
            t[0] += PERIOD_MS
            step()

    assert allocated(steps) == 0
    assert rig.closed(1) and not rig.closed(2) and rig.loop.faults(1) == 0
