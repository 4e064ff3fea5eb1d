# The configuration registry: one table of keys (cp/keys.py), values persisted on flash.
#
# Every configuration key of the charge point is one line of keys.TABLE, fields separated by "|":
#   name | type | default | access | profile | check | UI label
# type:    int, bool, str, csl (comma-separated list; stored as its string)
# access:  R (the backend reads it), W (the backend writes it), reboot (a change takes effect
#          after a reboot), secret (write-only: never read back; AuthorizationKey)
# check:   int "min..max"; str "minlen..maxlen"; csl the allowed items "A,B,C" or "$name" for a
#          list of _LISTS; or empty
# The table is one string constant (cp/keys.py): with the app in ROMFS or frozen it stays in
# flash, and a row is sliced out when a key is first looked up (the typed values are cached).
# As tuples each row would cost ~370 bytes of heap on a 64-bit port.
# Values that differ from the default are stored in one JSON file, written atomically.
from cp.keys import TABLE
from store import atomic

# Named item lists for csl checks (shared by several keys).
# Measurands cp/core/metering.py reports on every board (a test keeps it equal to metering.MEASURANDS;
# config does not import metering, which is not needed to read a key).
_LISTS = {
    "$measurand": "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage,"
    "Current.Offered,Temperature",
}
MAX_CSL_ITEMS = 8  # the ...MaxLength keys of the measurand lists

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


def _line(start):
    """The row that starts at offset `start` of the table, as a list of its 7 fields."""
    return TABLE[start : TABLE.find("\n", start)].split("|")


def rows():
    """Every key's row (a list of its 7 fields), in table order, one at a time."""
    start = 1  # TABLE opens and closes with a newline
    while start < len(TABLE):
        end = TABLE.find("\n", start)
        yield TABLE[start:end].split("|")
        start = end + 1


def row(name):
    """The table line of `name` as a list of its 7 fields, or None for an unknown key."""
    if not name or "|" in name or "\n" in name:
        return None
    at = TABLE.find("\n" + name + "|")
    return None if at < 0 else _line(at + 1)


def names():
    """Every key name, in table order."""
    for r in rows():
        yield r[NAME]


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
        items = []
        for i in text.split(","):
            i = i.strip()
            if i and i not in items:  # a measurand twice would be reported twice
                items.append(i)
        if len(items) > MAX_CSL_ITEMS:
            return None
        allowed = _LISTS.get(check, check).split(",")
        if check and any(i not in allowed for i in items):
            return None
        return ",".join(items)
    if check:
        lo, hi = _range(check)
        if not lo <= len(text) <= hi:
            return None
    return text


def render(r, value, integer_booleans=False):
    """The OCPP string form of a typed value (booleans as 1/0 for backends that want integers)."""
    if r[TYPE] == "bool":
        if integer_booleans:
            return "1" if value else "0"
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
        self._boot = {}  # reboot keys the backend changed: the value in force until the reboot

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

    def value_of(self, r):
        """The value of the key of row `r`, without caching it (GetConfiguration reads every key:
        the cache keeps only what the firmware itself uses)."""
        name = r[NAME]
        if name in self._cache:
            return self._cache[name]
        if name in self._fixed:
            return self._fixed[name]
        if name in self._stored:
            return self._stored[name]
        value = parse(r, r[DEFAULT])
        return r[DEFAULT] if value is None else value

    def boot_value(self, name):
        """The value in force: for a key whose change needs a reboot (RebootRequired), the value
        it had when the firmware started."""
        return self._boot[name] if name in self._boot else self.get(name)

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
        old = self.get(name)
        if old != value:
            if by_backend and _has(r, "reboot") and name not in self._boot:
                self._boot[name] = old
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
