# UTC wall clock for OCPP timestamps. Internally: integer seconds since 1970-01-01 UTC, whatever
# the port's epoch (unix and rp2 count from 1970, ESP32 from 2000). The backend's currentTime
# sets it; until then it runs from the board's RTC.
import time

_EPOCH_SHIFT = 0 if time.gmtime(0)[0] == 1970 else 946684800
_adjust = 0
_synced = False


def now():
    return int(time.time()) + _EPOCH_SHIFT + _adjust


def synced():
    return _synced


def set_utc(epoch_s):
    """Set the clock (seconds since 1970 UTC) from the backend's currentTime."""
    global _adjust, _synced
    _adjust = epoch_s - int(time.time()) - _EPOCH_SHIFT
    _synced = True


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
