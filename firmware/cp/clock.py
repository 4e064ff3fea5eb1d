# UTC wall clock for OCPP timestamps. Internally: integer seconds since 1970-01-01 UTC, whatever
# the port's epoch (unix and rp2 count from 1970, ESP32 from 2000). The backend's currentTime
# sets it; until then it runs from the board's RTC. Epoch seconds exceed the 31-bit small ints
# of 32-bit ports (each now() is a heap integer, and a float on ports with a float time.time()):
# hot paths wait for an epoch second with a Due, in ticks, and call now() only near it.
import time

_EPOCH_SHIFT = 0 if time.gmtime(0)[0] == 1970 else 946684800
_adjust = 0
_synced = False
_steps = 0  # set_utc calls: a Due recomputes after a clock step


def now():
    return int(time.time()) + _EPOCH_SHIFT + _adjust


def synced():
    return _synced


def set_utc(epoch_s):
    """Set the clock (seconds since 1970 UTC) from the backend's currentTime."""
    global _adjust, _synced, _steps
    _adjust = epoch_s - int(time.time()) - _EPOCH_SHIFT
    _synced = True
    _steps += 1


class Due:
    """Has the clock reached an epoch second? For checks on every iteration of a loop: while
    the awaited second is more than a second away, a call compares ticks only (no allocation);
    now() is read again at most a minute later (drift, wrap of the ticks), within the last
    second before it, and after set_utc."""

    def __init__(self):
        self._epoch = None  # the second waited for
        self._steps = -1
        self._ms = 0  # ticks_ms when now() was last read for it
        self._wait = 0  # ms from then during which it cannot have come

    def reached(self, epoch_s):
        """now() once it is >= epoch_s, else None."""
        if (
            epoch_s == self._epoch
            and self._steps == _steps
            and 0 <= time.ticks_diff(time.ticks_ms(), self._ms) < self._wait
        ):
            return None
        t = now()
        if t >= epoch_s:
            self._wait = 0
            return t
        left = epoch_s - t  # now() is the floor: epoch_s comes in more than left - 1 s
        self._epoch = epoch_s
        self._steps = _steps
        self._ms = time.ticks_ms()
        self._wait = (left - 1 if left <= 60 else 60) * 1000
        return None


def _days_from_civil(y, m, d):
    # Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def iso(epoch_s=None):
    """'2026-11-24T22:14:13Z' for the given (or current) time."""
    if epoch_s is None:
        epoch_s = now()
    t = time.gmtime(epoch_s - _EPOCH_SHIFT)
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (t[0], t[1], t[2], t[3], t[4], t[5])


def parse_iso(text):
    """Seconds since 1970 UTC of an ISO 8601 date-time (fractions and offsets accepted), or None."""
    try:
        if len(text) < 19 or text[4] != "-" or text[7] != "-" or text[10] not in "Tt ":
            return None
        y, mo, d = int(text[0:4]), int(text[5:7]), int(text[8:10])
        h, mi, s = int(text[11:13]), int(text[14:16]), int(text[17:19])
        if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 61):
            return None
        rest = text[19:]
        if rest[:1] == ".":
            i = 1
            while i < len(rest) and rest[i].isdigit():
                i += 1
            rest = rest[i:]
        offset = 0
        if rest in ("Z", "z", ""):
            pass
        elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
            offset = int(rest[1:3]) * 3600 + int(rest[4:6]) * 60
            if rest[0] == "-":
                offset = -offset
        else:
            return None
        return _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset
    except ValueError:
        return None
