# UTC clock and ISO 8601 timestamps; waiting for an epoch second without allocating.
import mptmp
from cp import clock
from heapcheck import allocated

T_ALIGNED = 1795558500  # 2026-11-24T22:15:00Z


def test_format_and_parse_round_trip():
    t = 1795558514  # 2026-11-24T22:15:14Z
    assert clock.iso(t) == "2026-11-24T22:15:14Z"
    assert clock.parse_iso("2026-11-24T22:15:14Z") == t
    assert clock.parse_iso("2026-11-24T22:15:14.123Z") == t
    assert clock.parse_iso("2026-11-24T23:15:14+01:00") == t
    assert clock.parse_iso("2026-11-24T21:45:14-00:30") == t
    assert clock.parse_iso("1970-01-01T00:00:00Z") == 0
    assert clock.parse_iso("2000-02-29T00:00:00Z") == 951782400


def test_rejects_garbage():
    for bad in ("", "yesterday", "2026-13-01T00:00:00Z", "2026-11-24T25:00:00Z", "2026-11-24T22:15:14+0100"):
        assert clock.parse_iso(bad) is None, bad


def test_set_from_backend():
    clock.set_utc(2000000000)
    assert abs(clock.now() - 2000000000) <= 1
    assert clock.synced()
    assert clock.iso().startswith("2033-05-18T03:3")


# --- waiting for an epoch second on a hot path (32-bit ports: epoch seconds are heap ints) --------
def _no_allocation(fn, n=200):
    def loop():
        for _ in range(n):
            fn()

    return allocated(loop) == 0


def test_due_waits_in_ticks_without_allocating():
    saved = clock.now()
    try:
        clock.set_utc(T_ALIGNED + 10)
        d = clock.Due()
        soon = clock.now() + 30
        assert d.reached(soon) is None  # reads the clock once
        assert _no_allocation(lambda: d.reached(soon))
        assert d.reached(soon) is None
        past = clock.now() - 5
        t = d.reached(past)  # another second: read at once
        assert t is not None and t >= past + 5
        assert d.reached(soon) is None
        clock.set_utc(soon + 100)  # a clock step: noticed at once, not a minute later
        assert d.reached(soon) is not None
    finally:
        clock.set_utc(saved)


class _Board:
    connectors = 2
    flash = mptmp.path("mp_test_clock_flash")

    def meter(self, c):
        return None


class _Safety:
    def faults(self, c):
        return 0


def test_charging_tick_waits_without_allocating():
    # What cp/charging.py checks on every tick (200 ms) against epoch seconds: Sample.Periodic,
    # Sample.Clock, the charging profiles' next evaluation, a reservation's expiry. Between
    # those instants a tick compares ticks only.
    from cp import charging, config
    from cp.reservation.reservations import Reservations
    from store import atomic

    saved = clock.now()
    atomic.makedirs(_Board.flash)
    atomic.remove(_Board.flash + "/config.json")
    cfg = config.Config(_Board.flash + "/config.json")
    cfg.preset({"MeterValueSampleInterval": 60, "ClockAlignedDataInterval": 900})
    try:
        clock.set_utc(T_ALIGNED + 10)  # 890 s before the next clock-aligned instant
        ch = charging.Charging(None, _Board(), cfg, _Safety(), None)
        tx = ch.tx[1] = charging.Tx(1, "TAG", None, clock.now(), 0)
        ch._sample(1, tx)  # first call: the next sample is a minute away
        ch._aligned()  # first call: the next aligned instant
        assert tx.next_sample > clock.now() and ch._next_aligned == T_ALIGNED + 900
        ch.smart_due = clock.now() + 300
        ch.reservations = Reservations(ch, [[7, 2, "TAG", None, clock.now() + 600]])

        def tick():
            ch._sample(1, tx)
            ch._aligned()
            ch._check_limits()
            ch.reservations.check()

        tick()
        assert _no_allocation(tick)
        assert ch.reservations.items and ch.smart_due is not None
    finally:
        clock.set_utc(saved)
