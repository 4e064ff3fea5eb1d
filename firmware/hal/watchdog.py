# Hardware watchdog fed by a supervisor that checks the liveness of the key tasks.
#
# machine.WDT cannot be stopped or reconfigured once started, and resets the board when it is not
# fed in time. Feeding it from a timer would hide a hung safety loop, so it is fed only while
# every registered liveness source (the safety loop calls alive("safety"), the board's heartbeat
# task alive("loop")) has checked in within its own period. Once a source is stale, feeding
# stops for good (the task may come back, but a board whose safety loop stalled is reset) and the
# WDT resets the board within timeout_ms.
#
# Limits (micropython-platform.md section 7): RP2040 at most 8388 ms (the 24-bit counter;
# machine.WDT raises ValueError above), ESP32 at least 1000 ms. The timeout is clamped into
# [MIN_MS, max] where max is RP2040_MAX_MS on rp2. Blocking calls (DNS, TLS handshake on rp2,
# flash erase) must fit inside it.
import asyncio
import sys
import time

from micropython import const

from log import log

MIN_MS = const(1000)
RP2040_MAX_MS = const(8388)


def clamp_timeout(timeout_ms, platform=sys.platform):
    hi = RP2040_MAX_MS if platform == "rp2" else 0x3FFFFFFF
    return max(MIN_MS, min(int(timeout_ms), hi))


class Watchdog:
    """Watchdog(timeout_ms=8000, default_period_ms=2000, wdt_factory=None, platform=sys.platform)

    register(name, period_ms): a source that must call alive(name) at least every period_ms.
    alive(name): check in; an unknown name registers itself with default_period_ms.
    stale() -> name of the first overdue source or None. await run(): starts the hardware WDT
    (machine.WDT unless wdt_factory(timeout_ms) gives another) and feeds it every timeout/4 while
    no source is stale. .timeout_ms (clamped), .feeds, .stopped_by (the stale source, or None)."""

    def __init__(self, timeout_ms=8000, default_period_ms=2000, wdt_factory=None, platform=sys.platform):
        self.timeout_ms = clamp_timeout(timeout_ms, platform)
        self._default = default_period_ms
        self._factory = wdt_factory
        self._names = []
        self._period = []
        self._last = []
        self.feeds = 0
        self.stopped_by = None
        self.wdt = None

    def register(self, name, period_ms):
        if not 0 < period_ms < 0x10000000:  # ticks_diff() range
            raise ValueError("liveness period out of range")
        if name in self._names:
            i = self._names.index(name)
            self._period[i] = period_ms
        else:
            self._names.append(name)
            self._period.append(period_ms)
            self._last.append(time.ticks_ms())

    def alive(self, name):
        try:
            self._last[self._names.index(name)] = time.ticks_ms()
        except ValueError:
            self.register(name, self._default)

    def stale(self):
        now = time.ticks_ms()
        for i in range(len(self._names)):
            if time.ticks_diff(now, self._last[i]) > self._period[i]:
                return self._names[i]
        return None

    async def run(self):
        if self.wdt is None:
            if self._factory is None:
                from machine import WDT

                self.wdt = WDT(timeout=self.timeout_ms)
            else:
                self.wdt = self._factory(self.timeout_ms)
        interval = self.timeout_ms // 4
        while True:
            if self.stopped_by is None:
                name = self.stale()
                if name is None:
                    self.wdt.feed()
                    self.feeds += 1
                else:
                    self.stopped_by = name  # latched: the WDT will reset the board
                    log("watchdog: stale source, feeding stops:", name)
            await asyncio.sleep_ms(interval)
