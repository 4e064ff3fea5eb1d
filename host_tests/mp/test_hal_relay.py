# hal.relay (contactor and cable lock) on the fake `machine` Pin: levels written, feedback read.
import asyncio
import sys
import time

sys.path.insert(0, "../fakes")  # cwd is host_tests/mp: the fakes shadow the built-in machine

import machine  # noqa: E402

from hal.relay import Lock, Relay  # noqa: E402

Pin = machine.Pin


def test_relay_starts_open_and_follows_set():
    r = Relay(12)
    pin = Pin._all[12]
    assert pin.mode == Pin.OUT and pin.value() == 0 and r.value is False
    r.set(True)
    assert pin.value() == 1 and r.value is True
    r.set(0)
    assert pin.value() == 0 and r.value is False
    assert 1 not in pin.log[:1], pin.log  # never closed before the first set(True)
    assert r.feedback is None  # no auxiliary contact on this board


def test_active_low_relay_driver():
    r = Relay(13, active_high=False)
    pin = Pin._all[13]
    assert pin.value() == 1 and pin.log[0] == 1, pin.log  # open = high from the start
    r.set(True)
    assert pin.value() == 0
    r.set(False)
    assert pin.value() == 1


def test_feedback_contact_reports_a_weld():
    r = Relay(14, feedback_pin=35)
    fb = Pin._all[35]
    assert fb.mode == Pin.IN
    r.set(True)
    fb.drive(1)
    assert r.feedback is True
    r.set(False)
    fb.drive(0)
    assert r.feedback is False
    fb.drive(1)  # welded: still closed while commanded open
    assert r.value is False and r.feedback is True
    r2 = Relay(15, feedback_pin=36, feedback_active_high=False)
    Pin._all[36].drive(0)
    assert r2.feedback is True


def _both_high(a, b):
    level = {a: 0, b: 0}
    for pid, v in Pin.events:
        if pid in level:
            level[pid] = v
            if level[a] and level[b]:
                return True
    return False


async def test_lock_pulses_the_motor_then_stops():
    Pin.events.clear()
    lk = Lock(16, 17, feedback_pin=34, pulse_ms=40)
    a, b, fb = Pin._all[16], Pin._all[17], Pin._all[34]
    assert a.value() == 0 and b.value() == 0 and lk.feedback is False
    t0 = time.ticks_ms()
    lk.set(True)
    assert a.value() == 1 and b.value() == 0 and lk.running and lk.value is True
    fb.drive(1)  # the position switch closes
    await lk.settle()
    took = time.ticks_diff(time.ticks_ms(), t0)
    assert 40 <= took < 200, took
    assert a.value() == 0 and b.value() == 0 and not lk.running
    assert lk.feedback is True
    lk.set(False)
    assert a.value() == 0 and b.value() == 1 and lk.value is False
    await asyncio.sleep_ms(80)  # nobody calls settle/poll: the stopper task ends the pulse
    assert b.value() == 0 and not lk.running
    assert not _both_high(16, 17)


async def test_lock_reversal_mid_pulse_never_shorts_the_bridge():
    Pin.events.clear()
    lk = Lock(18, 19, pulse_ms=50)
    lk.set(True)
    await asyncio.sleep_ms(10)
    lk.set(False)  # reverse while the lock pulse still runs
    assert Pin._all[18].value() == 0 and Pin._all[19].value() == 1
    assert not _both_high(18, 19), Pin.events
    t0 = time.ticks_ms()
    await lk.settle()
    assert time.ticks_diff(time.ticks_ms(), t0) >= 35  # a full pulse from the reversal
    assert Pin._all[19].value() == 0
    assert lk.feedback is None


def test_lock_poll_without_event_loop():
    lk = Lock(20, 21, pulse_ms=20)
    lk.set(True)
    assert lk.poll() is True and Pin._all[20].value() == 1
    time.sleep_ms(25)
    assert lk.poll() is False and Pin._all[20].value() == 0


def test_lock_rejects_bad_pulse():
    for ms in (0, 9, 6000):
        try:
            Lock(22, 23, pulse_ms=ms)
        except ValueError:
            continue
        raise AssertionError(ms)
