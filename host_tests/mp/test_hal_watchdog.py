# hal.watchdog: fed only while every liveness source checks in; a fake WDT records the feeds.
import asyncio
import sys

sys.path.insert(0, "../fakes")  # cwd is host_tests/mp: the fakes shadow the built-in machine

import machine  # noqa: E402

from hal.watchdog import RP2040_MAX_MS, Watchdog, clamp_timeout  # noqa: E402

_made = []


def _fake(timeout_ms):
    w = machine.WDT(timeout=timeout_ms)
    _made.append(w)
    return w


def test_timeout_is_clamped_to_the_port_limits():
    assert clamp_timeout(20000, "rp2") == RP2040_MAX_MS == 8388
    assert clamp_timeout(20000, "esp32") == 20000
    assert clamp_timeout(100, "esp32") == 1000  # ESP32: 1 s minimum
    assert clamp_timeout(5000, "rp2") == 5000
    assert Watchdog(60000, platform="rp2").timeout_ms == 8388


async def _beat(wd, name, every_ms, count):
    for _ in range(count):
        wd.alive(name)
        await asyncio.sleep_ms(every_ms)


async def test_feeds_while_all_sources_check_in():
    wd = Watchdog(1000, wdt_factory=_fake)  # feeds every 250 ms
    wd.register("safety", 100)
    wd.register("loop", 300)
    a = asyncio.create_task(_beat(wd, "safety", 20, 60))
    b = asyncio.create_task(_beat(wd, "loop", 100, 12))
    t = asyncio.create_task(wd.run())
    await asyncio.sleep_ms(1100)
    t.cancel()
    a.cancel()
    b.cancel()
    w = _made[-1]
    assert w.timeout == 1000
    assert w.feeds == wd.feeds and 4 <= w.feeds <= 6, w.feeds
    assert wd.stopped_by is None


async def test_stops_feeding_for_good_when_a_source_is_stale():
    wd = Watchdog(1000, wdt_factory=_fake)
    wd.register("safety", 100)
    wd.alive("loop")  # an unknown name registers itself (default period 2000 ms)
    wd.register("loop", 5000)
    hung = asyncio.create_task(_beat(wd, "safety", 20, 20))  # stalls after ~400 ms
    t = asyncio.create_task(wd.run())
    await asyncio.sleep_ms(700)
    w = _made[-1]
    assert wd.stopped_by == "safety"
    fed = w.feeds
    assert 1 <= fed <= 3, fed
    # the source comes back, but a board whose safety loop stalled is reset: no more feeds
    back = asyncio.create_task(_beat(wd, "safety", 20, 30))
    await asyncio.sleep_ms(600)
    assert w.feeds == fed
    for x in (t, hung, back):
        x.cancel()


def test_stale_names_the_overdue_source():
    wd = Watchdog(1000, wdt_factory=_fake)
    wd.register("a", 10000)
    assert wd.stale() is None
    wd.register("b", 1)
    import time

    time.sleep_ms(5)
    assert wd.stale() == "b"
    wd.alive("b")
    assert wd.stale() is None
    try:
        wd.register("c", 0)
    except ValueError:
        return
    raise AssertionError("a zero period must be refused")
