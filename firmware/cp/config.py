# The configuration registry: one table of keys, persisted on flash.
#
# Every configuration key of the charge point is one line of _TABLE, fields separated by "|":
#   name | type | default | access | profile | check | UI label
# type:    int, bool, str, csl (comma-separated list; stored as its string)
# access:  R (the backend reads it), W (the backend writes it), reboot (a change takes effect
#          after a reboot), secret (write-only: never read back; AuthorizationKey)
# check:   int "min..max"; str "minlen..maxlen"; csl the allowed items "A,B,C"; or empty
# The table is one string constant, not tuples: on a 64-bit port a row of tuples and string
# objects costs ~370 bytes of heap, a line of this string ~80. A row is split when a key is
# looked up; the typed current values are cached.
# Values that differ from the default are stored in one JSON file, written atomically.
from store import atomic

# fmt: off
_TABLE = """
ChargePointId|str|CP001|RW reboot|Vendor|1..48|ChargePoint ID
CentralSystemURL|str||RW reboot|Vendor|0..256|Backend URL (ws:// or wss://)
SecurityProfile|int|0|RW reboot|Security|0..3|Security profile (0 none, 1 Basic auth, 2 TLS + Basic auth, 3 TLS + client certificate)
AuthorizationKey|str||W secret|Security|16..40|HTTP Basic Authentication password
HeartbeatInterval|int|300|RW|Core|0..2147483647|Heartbeat interval (s)
WebSocketPingInterval|int|60|RW|Core|0..2147483647|WebSocket ping interval (s, 0 = off)
WebSocketPongTimeout|int|15|RW|Vendor|1..3600|WebSocket pong timeout (s)
MessageTimeout|int|30|RW|Vendor|1..3600|OCPP call timeout (s)
RetryBackOffWaitMinimum|int|3|RW|Vendor|1..3600|Reconnect: first wait (s)
RetryBackOffRandomRange|int|10|RW|Vendor|0..3600|Reconnect: random extra wait (s)
RetryBackOffRepeatTimes|int|5|RW|Vendor|0..20|Reconnect: times the wait doubles
NumberOfConnectors|int|1|R|Core||Number of connectors
GetConfigurationMaxKeys|int|100|R|Core||Maximum keys in one GetConfiguration
"""
# fmt: on

NAME = 0
TYPE = 1
DEFAULT = 2
ACCESS = 3
PROFILE = 4
CHECK = 5
LABEL = 6

ACCEPTED = "Accepted"
REJECTED = "Rejected"
REBOOT_REQUIRED = "RebootRequired"
NOT_SUPPORTED = "NotSupported"


def row(name):
    """The table line of `name` as a list of its 7 fields, or None for an unknown key."""
    if not name or "|" in name or "\n" in name:
        return None
    i = _TABLE.find("\n" + name + "|")
    if i < 0:
        return None
    return _TABLE[i + 1 : _TABLE.find("\n", i + 1)].split("|")


def names():
    """Every key name, in table order (one small string at a time)."""
    i = 0
    while True:
        j = _TABLE.find("|", i)
        if j < 0:
            return
        yield _TABLE[i + 1 : j]
        i = _TABLE.find("\n", j)


def _range(check):
    lo, _, hi = check.partition("..")
    return int(lo), int(hi)


def parse(r, text):
    """The typed value of `text` for key row `r`, or None when it is not a valid value."""
    kind, check = r[TYPE], r[CHECK]
    if not isinstance(text, str):
        return None
    if kind == "int":
        t = text.strip()
        if not t or not (t.isdigit() or (t[0] == "-" and t[1:].isdigit())):
            return None
        value = int(t)
        if check:
            lo, hi = _range(check)
            if not lo <= value <= hi:
                return None
        return value
    if kind == "bool":
        # "true"/"false" as OCPP writes them; 1/0 too, for backends that send integers for booleans.
        t = text.strip().lower()
        if t in ("true", "1"):
            return True
        if t in ("false", "0"):
            return False
        return None
    if kind == "csl":
        items = [i.strip() for i in text.split(",") if i.strip()]
        if check and any(i not in check.split(",") for i in items):
            return None
        return ",".join(items)
    if check:
        lo, hi = _range(check)
        if not lo <= len(text) <= hi:
            return None
    return text


def render(r, value):
    """The OCPP string form of a typed value."""
    if r[TYPE] == "bool":
        return "true" if value else "false"
    return str(value)


def _has(r, flag):
    return flag in r[ACCESS].split(" ")


def writable(r):
    return "W" in r[ACCESS].split(" ")[0]


def readable(r):
    return "R" in r[ACCESS].split(" ")[0]


class Config:
    def __init__(self, path, fixed=None):
        # fixed: values the hardware decides (NumberOfConnectors), never stored.
        self._path = path
        self._fixed = fixed or {}
        self._stored = atomic.read_json(path, None)
        if not isinstance(self._stored, dict):
            self._stored = {}
        self._cache = {}
        self._listeners = []

    def get(self, name):
        value = self._cache.get(name)
        if value is not None:
            return value
        if name in self._fixed:
            value = self._fixed[name]
        elif name in self._stored:
            value = self._stored[name]
        else:
            r = row(name)
            if r is None:
                raise KeyError(name)
            value = parse(r, r[DEFAULT])
            if value is None:  # an empty default means "not set" (AuthorizationKey)
                value = r[DEFAULT]
        self._cache[name] = value
        return value

    def on_change(self, fn):
        """fn(name, value) runs after a key changed and was stored."""
        self._listeners.append(fn)

    def change(self, name, text, by_backend=True):
        """Apply a ChangeConfiguration. Returns the OCPP status string."""
        r = row(name)
        if r is None:
            return NOT_SUPPORTED
        if name in self._fixed or (by_backend and not writable(r)):
            return REJECTED
        value = parse(r, text)
        if value is None:
            return REJECTED
        if self.get(name) != value:
            if render(r, value) == r[DEFAULT]:
                self._stored.pop(name, None)
            else:
                self._stored[name] = value
            atomic.write_json(self._path, self._stored)
            self._cache[name] = value
            for fn in self._listeners:
                fn(name, value)
        return REBOOT_REQUIRED if _has(r, "reboot") else ACCEPTED

    def preset(self, values):
        """Write keys before boot (site provisioning, the sim's --set). Returns refused names."""
        bad = []
        for name, text in values.items():
            if self.change(name, str(text), by_backend=False) in (NOT_SUPPORTED, REJECTED):
                bad.append(name)
        return bad

    def entries(self, wanted=None):
        """Yield (name, readonly, value-or-None, known) for GetConfiguration."""
        for name in wanted or names():
            r = row(name)
            if r is None:
                yield name, True, None, False
            elif _has(r, "secret"):
                if wanted:  # known, but its value is never read back; absent from the full list
                    yield name, False, None, True
            elif readable(r):
                yield name, not writable(r), render(r, self.get(name)), True
            elif wanted:
                yield name, False, None, True
