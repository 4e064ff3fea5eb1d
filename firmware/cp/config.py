# The configuration registry: one table of keys, persisted on flash.
#
# Every configuration key of the charge point is one row of KEYS. A row says everything the
# firmware, the OCPP handlers (GetConfiguration / ChangeConfiguration) and the local UI need:
#   name, type, default, flags, profile, check, label
# type:  INT, BOOL, STR, CSL (comma-separated list, value stored as the string)
# flags: R readable by the backend, W writable by the backend, REBOOT a change takes effect after
#        a reboot, SECRET write-only (never shown: AuthorizationKey)
# check: INT -> (min, max); STR -> (min_len, max_len); CSL -> tuple of allowed items; or None
# Values that differ from the default are stored in one JSON file, written atomically.
from micropython import const

from store import atomic

INT = const(0)
BOOL = const(1)
STR = const(2)
CSL = const(3)

R = const(1)
W = const(2)
REBOOT = const(4)
SECRET = const(8)
RW = const(3)

ACCEPTED = "Accepted"
REJECTED = "Rejected"
REBOOT_REQUIRED = "RebootRequired"
NOT_SUPPORTED = "NotSupported"

_I32 = (0, 2147483647)

# fmt: off
KEYS = (
    # name, type, default, flags, profile, check, UI label
    ("ChargePointId", STR, "CP001", RW | REBOOT, "Vendor", (1, 48), "ChargePoint ID"),
    ("CentralSystemURL", STR, "", RW | REBOOT, "Vendor", (0, 256), "Backend URL (ws:// or wss://)"),
    ("SecurityProfile", INT, 0, RW | REBOOT, "Security", (0, 3),
     "Security profile (0 none, 1 Basic auth, 2 TLS + Basic auth, 3 TLS + client certificate)"),
    ("AuthorizationKey", STR, "", W | SECRET, "Security", (16, 40),
     "HTTP Basic Authentication password"),
    ("HeartbeatInterval", INT, 300, RW, "Core", _I32, "Heartbeat interval (s)"),
    ("WebSocketPingInterval", INT, 60, RW, "Core", _I32, "WebSocket ping interval (s, 0 = off)"),
    ("WebSocketPongTimeout", INT, 15, RW, "Vendor", (1, 3600), "WebSocket pong timeout (s)"),
    ("MessageTimeout", INT, 30, RW, "Vendor", (1, 3600), "OCPP call timeout (s)"),
    ("RetryBackOffWaitMinimum", INT, 3, RW, "Vendor", (1, 3600), "Reconnect: first wait (s)"),
    ("RetryBackOffRandomRange", INT, 10, RW, "Vendor", (0, 3600), "Reconnect: random extra wait (s)"),
    ("RetryBackOffRepeatTimes", INT, 5, RW, "Vendor", (0, 20), "Reconnect: times the wait doubles"),
    ("NumberOfConnectors", INT, 1, R, "Core", None, "Number of connectors"),
    ("GetConfigurationMaxKeys", INT, 100, R, "Core", None, "Maximum keys in one GetConfiguration"),
)
# fmt: on


def _row(name):
    for row in KEYS:
        if row[0] == name:
            return row
    return None


def parse(row, text):
    """The typed value of `text` for key `row`, or None when it is not a valid value."""
    kind, check = row[1], row[5]
    if not isinstance(text, str):
        return None
    if kind == INT:
        t = text.strip()
        if not t or not (t.isdigit() or (t[0] == "-" and t[1:].isdigit())):
            return None
        value = int(t)
        if check and not (check[0] <= value <= check[1]):
            return None
        return value
    if kind == BOOL:
        # "true"/"false" as OCPP writes them; 1/0 too, for backends that send integers for booleans.
        t = text.strip().lower()
        if t in ("true", "1"):
            return True
        if t in ("false", "0"):
            return False
        return None
    if kind == CSL:
        items = [i.strip() for i in text.split(",") if i.strip()]
        if check and any(i not in check for i in items):
            return None
        return ",".join(items)
    if check and not (check[0] <= len(text) <= check[1]):
        return None
    return text


def render(row, value):
    """The OCPP string form of a typed value."""
    if row[1] == BOOL:
        return "true" if value else "false"
    return str(value)


class Config:
    def __init__(self, path, fixed=None):
        # fixed: values the hardware decides (NumberOfConnectors), never stored.
        self._path = path
        self._fixed = fixed or {}
        self._values = atomic.read_json(path, None)
        if not isinstance(self._values, dict):
            self._values = {}
        self._listeners = []

    def get(self, name):
        if name in self._fixed:
            return self._fixed[name]
        if name in self._values:
            return self._values[name]
        row = _row(name)
        if row is None:
            raise KeyError(name)
        return row[2]

    def on_change(self, fn):
        """fn(name, value) runs after a key changed and was stored."""
        self._listeners.append(fn)

    def change(self, name, text, by_backend=True):
        """Apply a ChangeConfiguration. Returns the OCPP status string."""
        row = _row(name)
        if row is None or name in self._fixed:
            return NOT_SUPPORTED if row is None else REJECTED
        if by_backend and not row[3] & W:
            return REJECTED
        value = parse(row, text)
        if value is None:
            return REJECTED
        if self.get(name) != value:
            if value == row[2]:
                self._values.pop(name, None)
            else:
                self._values[name] = value
            atomic.write_json(self._path, self._values)
            for fn in self._listeners:
                fn(name, value)
        return REBOOT_REQUIRED if row[3] & REBOOT else ACCEPTED

    def preset(self, values):
        """Write keys before boot (site provisioning, the sim's --set). Returns rejected names."""
        bad = []
        for name, text in values.items():
            if self.change(name, str(text), by_backend=False) in (NOT_SUPPORTED, REJECTED):
                bad.append(name)
        return bad

    def entries(self, names=None):
        """Yield (name, readonly, value-or-None, known) for GetConfiguration."""
        if not names:
            for row in KEYS:
                if row[3] & R:
                    yield row[0], not row[3] & W, render(row, self.get(row[0])), True
            return
        for name in names:
            row = _row(name)
            if row is None:
                yield name, True, None, False
            elif row[3] & SECRET:
                yield name, False, None, True  # known, but its value is never read back
            else:
                yield name, not row[3] & W, render(row, self.get(name)), True
