"""The sim's physical world (tools/sim_world.py, in the CPython supervisor) and the supervisor's end
of the hardware bus (tools/sim_twin.py): EV current, meter integration, faults, event log, card
queue, and what the board twin in MicroPython makes of the pushes (pilot levels per EV state).
Time is stepped by hand through the world's clock."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim_twin import TwinProcess
from sim_world import PP_OHMS, World, ev_reads_amps

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = Path(sys.executable).parent / "micropython"


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def amps_to_permille(amps):
    """The duty an EVSE drives to offer `amps` (IEC 61851-1 Table A.7), as the firmware does."""
    return int(amps * 50 / 3 + 0.0001) if amps <= 51 else int(amps * 4 + 640 + 0.0001)


def charging_world(offer_amps=16, cable=32):
    clk = Clock()
    w = World(1, seed=3, clock=clk)
    w.plug(1, cable)
    w.set_ev(1, "C")
    w.set_duty(1, amps_to_permille(offer_amps))
    w.set_relay(1, True)
    return w, clk


def advance(w, clk, ms, step=100):
    end = clk.t + ms
    while clk.t < end:
        clk.t += step
        w.update()


def test_meter_integrates_energy_within_one_percent():
    w, clk = charging_world(16)
    seconds = 600
    advance(w, clk, seconds * 1000)
    expected = 3 * 230 * 16 * seconds / 3600  # 1840 Wh
    r = w.meter_reading(1)
    assert abs(r["energy_wh"] - expected) <= expected * 0.01, (r, expected)
    assert abs(r["power_w"] - 3 * 230 * 16) <= 3 * 230 * 16 * 0.01, r
    assert len(r["current_a"]) == 3 and len(r["voltage_v"]) == 3
    assert all(abs(v - 230) <= 1.0 for v in r["voltage_v"]), r
    assert all(abs(a - 16) <= 0.1 for a in r["current_a"]), r


def test_energy_is_integer_wh_and_never_decreases():
    w, clk = charging_world(6)  # 4140 W: 1.15 Wh per second
    last = 0
    for _ in range(20):
        advance(w, clk, 1000, step=37)
        wh = w.meter_reading(1)["energy_wh"]
        assert isinstance(wh, int) and wh >= last
        last = wh
    assert abs(last - 3 * 230 * 6 * 20 / 3600) <= 1, last


def test_ev_follows_the_offer_within_one_second():
    w, clk = charging_world(16)
    advance(w, clk, 1000)
    assert abs(w.conns[1].current_a - 15.96) < 0.01, w.conns[1].current_a
    w.set_duty(1, amps_to_permille(32))
    advance(w, clk, 1000)
    assert abs(w.conns[1].current_a - 31.98) < 0.01, w.conns[1].current_a
    w.set_duty(1, 1000)  # PWM stopped: the EV stops drawing
    advance(w, clk, 1000)
    assert w.conns[1].current_a == 0


def test_ev_follows_its_own_limit_and_the_cable_within_one_second():
    w, clk = charging_world(32)
    w.set_ev_limit(1, 10)
    advance(w, clk, 1000)
    assert w.conns[1].current_a == 10
    w.set_ev_limit(1, 6)
    advance(w, clk, 1000)
    assert w.conns[1].current_a == 6
    w.set_ev_limit(1, 32)
    advance(w, clk, 500)
    assert 6 < w.conns[1].current_a < 32  # ramping, not a step
    advance(w, clk, 500)
    assert abs(w.conns[1].current_a - 31.98) < 0.01
    w2, clk2 = charging_world(32, cable=13)
    advance(w2, clk2, 1000)
    assert w2.conns[1].current_a == 13


def test_no_current_with_relay_open_or_ev_in_b():
    w, clk = charging_world(16)
    w.set_relay(1, False)
    advance(w, clk, 5000)
    assert w.conns[1].current_a == 0 and w.meter_reading(1)["energy_wh"] == 0
    assert w.meter_reading(1)["power_w"] == 0
    w.set_relay(1, True)
    w.set_ev(1, "B")
    advance(w, clk, 5000)
    assert w.conns[1].current_a == 0 and w.meter_reading(1)["energy_wh"] == 0
    w.set_ev(1, "C")
    advance(w, clk, 1000)
    assert w.conns[1].current_a > 15
    w.unplug(1)
    advance(w, clk, 100)
    assert w.conns[1].current_a == 0


def test_welded_contactor_conducts():
    clk = Clock()
    w = World(1, clock=clk)
    w.plug(1, 32)
    w.set_ev(1, "C")
    w.set_duty(1, amps_to_permille(16))
    assert not w.conns[1].contact_closed()
    w.set_fault("weld", 1, True)
    assert w.conns[1].relay is False and w.conns[1].contact_closed()
    advance(w, clk, 1000)
    assert w.conns[1].current_a > 15  # current flows through the welded contacts


def test_faults_lock_and_meter():
    w = World(2)
    w.set_fault("meter", 2, True)
    with pytest.raises(OSError):
        w.meter_reading(2)
    w.meter_reading(1)
    w.set_fault("lock", 1, True)
    w.set_lock(1, True)
    assert w.conns[1].locked is True and w.conns[1].lock_feedback is False
    w.set_fault("lock", 1, False)
    assert w.conns[1].lock_feedback is True  # the actuator catches up once repaired
    assert w.conns[2].fault_bits() == 16 and w.conns[1].fault_bits() == 0
    w.set_fault("rcd", 1, True)
    w.set_fault("overtemp", 1, True)
    assert w.conns[1].fault_bits() == 1 + 8


def test_ev_reads_the_iec_duty_table():
    for permille, amps in (
        (50, 0),
        (80, 6),
        (100, 6),
        (160, 9.6),
        (533, 31.98),
        (850, 51),
        (900, 65),
        (960, 80),
    ):
        assert abs(ev_reads_amps(permille) - amps) < 0.01, (permille, amps)
    assert ev_reads_amps(1000) == 0 and ev_reads_amps(0) == 0 and ev_reads_amps(980) == 0


def test_bad_world_requests_raise_valueerror():
    w = World(2)
    for fn, args in (
        (w.plug, (3, 32)),
        (w.plug, (1, 16)),
        (w.plug, (1, True)),
        (w.set_ev, (1, "C")),  # not plugged
        (w.set_ev, (0, "C")),
        (w.set_fault, ("smoke", 1, True)),
        (w.set_ev_limit, (1, 200)),
        (w.set_ev_limit, (1, "many")),
        (w.set_duty, (1, 1001)),
    ):
        with pytest.raises(ValueError):
            fn(*args)


def test_event_log_is_a_bounded_ring_with_monotonic_times():
    clk = Clock()
    w = World(1, clock=clk, log_size=8)
    for i in range(20):
        clk.t += 5
        w.event("x", 1, i)
    log = w.log
    assert log.seq == 20 and log.first() == 13
    events, dropped = log.since(10)
    assert dropped == 2 and [e["value"] for e in events] == list(range(12, 20))
    assert events[0] == {"seq": 13, "t_ms": 65, "kind": "x", "connector": 1, "value": 12}
    assert log.since(20) == ([], 0)
    w.event("late", 1, None, t_ms=3)  # stamped before the last event: it keeps time order
    assert log.since(20)[0][0]["t_ms"] == 100
    w.event("future", 1, None, t_ms=10_000)  # never after now
    assert log.since(21)[0][0]["t_ms"] == 100


def test_card_queue_is_bounded():
    w = World(1)
    for i in range(8):
        w.present_card(f"T{i}")
    with pytest.raises(ValueError):
        w.present_card("T8")
    assert w.take_card() == "T0" and len(w.cards) == 7


def test_power_off_drops_the_outputs():
    w = World(2)
    w.set_duty(2, 533)
    w.set_relay(2, True)
    w.set_lock(1, True)
    seq = w.log.seq
    w.power_off()
    k1, k2 = w.conns[1], w.conns[2]
    assert (k2.duty, k2.relay, k1.locked) == (1000, False, False)
    kinds = [(e["kind"], e["connector"], e["value"]) for e in w.log.since(seq)[0]]
    assert kinds == [("lock", 1, False), ("relay", 2, False), ("pwm", 2, 100)]


# ---- the supervisor's end of the bus, without a child ----


def test_pushes_follow_the_world():
    w = World(2, seed=1)
    twin = TwinProcess(w, cmd=[])
    sent = []
    twin._write = sent.append
    w.plug(2, 20)
    w.set_ev(2, "C")
    w.set_ev(2, "diode_fault")
    w.set_ev(2, "E")
    w.unplug(2)
    w.set_fault("weld", 1, True)
    w.set_link(False)
    w.present_card("TAG1")
    assert sent == [
        ["p", 2, 2740, 1, 680],
        ["p", 2, 882, 1, 680],
        ["p", 2, 882, 0, 680],
        ["p", 2, 0, 1, 680],
        ["p", 2, -1, 1, 0],
        ["f", 1, 2],
        ["n", False],
        ["c", "TAG1"],
    ]
    state = list(twin._initial_state())
    assert state[:2] == [["p", 1, -1, 1, 0], ["f", 1, 2]] and state[2][:4] == ["m", 1, 0, 0]
    assert state[-2:] == [["n", False], ["c", "TAG1"]]


def test_child_lines_drive_the_world_and_the_log():
    clk = Clock()
    w = World(1, clock=clk)
    twin = TwinProcess(w, cmd=[])
    twin._write = lambda obj: None
    ready = []
    base = int(w.t0)
    twin._handle(b"R %d 131072 15000 90000 9000" % (base + 5), lambda: ready.append(1))
    clk.t += 50
    assert (
        ready == [1]
        and twin.ready
        and twin.heap["sim"] == 15000
        and twin.heap["platform"] == 9000
        and twin._use_child_clock
    )
    twin._handle(b"d %d 1 533" % (base + 20), None)
    twin._handle(b"r %d 1 1" % (base + 30), None)
    twin._handle(b"l %d 1 1" % (base + 30), None)
    twin._handle(b'e %d ["cp", 1, "C"]' % (base + 40), None)
    twin._handle(b'e %d ["preset", 0, {"a": 1}]' % (base + 40), None)
    twin._handle(b'e %d ["odd", 1, <X object at 7f00>]' % (base + 40), None)  # MicroPython's json
    w.present_card("X")
    twin._handle(b"k", None)
    k = w.conns[1]
    assert (k.duty, k.relay, k.locked) == (533, True, True) and not w.cards
    evs = [(e["t_ms"], e["kind"], e["connector"], e["value"]) for e in w.log.since(0)[0]]
    assert evs == [
        (20, "pwm", 1, 53.3),  # stamped with the child's clock, not on arrival (50)
        (30, "relay", 1, True),
        (30, "lock", 1, True),
        (40, "cp", 1, "C"),
        (40, "preset", 0, {"a": 1}),
        (40, "odd", 1, "<X object at 7f00>"),
        (50, "rfid", 0, "X"),
    ]
    assert twin.last_cp[1] == "C"
    with pytest.raises(ValueError):
        twin._handle(b"Z 1 2", None)


# ---- what the board twin (MicroPython) makes of the pushes ----

_TWIN_LEVELS = """
import sys, json, board
from array import array
from evse import pilot
b = board.Board({})
buf = array("h", bytes(200))
for line in sys.stdin.buffer:
    b.feed(line)
    hi, lo = b._st[5], b._st[6]
    b.pilot(1).burst(buf)
    ph, pl = pilot.plateaus(buf)
    print(json.dumps([hi, lo, b.proximity(1).read_ohms(), pilot.classify(ph, pl, False)]))
"""


def test_twin_pilot_levels_follow_the_ev():
    """Pilot plateaus the twin computes from the pushes for each EV state (1 kHz PWM off)."""
    w = World(1)
    twin = TwinProcess(w, cmd=[])
    sent = []
    twin._write = sent.append
    w.plug(1, 32)
    for state in ("C", "D", "E", "B", "diode_fault"):
        w.set_ev(1, state)
    w.unplug(1)
    lines = "".join(json.dumps(m) + "\n" for m in sent)
    env = dict(os.environ, MICROPYPATH=f"{ROOT / 'build' / 'sim'}:.frozen")
    res = subprocess.run(
        [str(MICROPYTHON), "-c", _TWIN_LEVELS], input=lines.encode(), capture_output=True, env=env, timeout=20
    )
    assert res.returncode == 0, res.stderr.decode()
    got = [json.loads(x) for x in res.stdout.decode().splitlines()]
    hi = [g[0] for g in got]
    # B 9 V, C 6 V, D 3 V (diode drop included), E 0 V, B again, then no diode: +/- symmetric
    for h, want in zip(hi, (9000, 6000, 3000, 0, 9000), strict=False):
        assert abs(h - want) < 150, (h, want)
    assert [g[1] for g in got[:5]] == [-12000, -12000, -12000, 0, -12000]
    assert got[5][:2] == [12000 * 2740 // 3740, -(12000 * 2740 // 3740)]  # no diode: divider both ways
    assert got[6][:2] == [12000, -12000] and got[6][2] is None  # unplugged: the generator alone
    assert [g[3] for g in got[:5]] == ["B", "C", "D", "E", "B"]
    assert all(abs(g[2] - PP_OHMS[32]) <= 3 for g in got[:6])  # 220 ohm +/- 1 %
