# The configuration registry: one table of keys, persisted on flash.
#
# Every configuration key of the charge point is one line of _TABLE, fields separated by "|":
#   name | type | default | access | profile | check | UI label
# type:    int, bool, str, csl (comma-separated list; stored as its string)
# access:  R (the backend reads it), W (the backend writes it), reboot (a change takes effect
#          after a reboot), secret (write-only: never read back; AuthorizationKey)
# check:   int "min..max"; str "minlen..maxlen"; csl the allowed items "A,B,C" or "$name" for a
#          list of _LISTS; or empty
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
SupportedFeatureProfiles|str|Core|R|Core||Supported feature profiles
SupportedFeatureProfilesMaxLength|int|6|R|Core||Maximum feature profiles
AuthorizeRemoteTxRequests|bool|false|RW|Core||Authorize remote start requests like a card
AuthorizationCacheEnabled|bool|true|RW|Core||Authorization cache
LocalPreAuthorize|bool|false|RW|Core||Start at once on a valid cached card (no Authorize wait)
LocalAuthorizeOffline|bool|true|RW|Core||Authorize from the cache while offline
AllowOfflineTxForUnknownId|bool|false|RW|Core||Unknown cards may charge while offline
ConnectionTimeOut|int|60|RW|Core|1..3600|Time to plug in after identification (s)
StopTransactionOnInvalidId|bool|true|RW|Core||Stop a transaction the backend does not accept
MaxEnergyOnInvalidId|int|0|RW|Core|0..1000000|Energy allowed before an invalid card stops (Wh)
StopTransactionOnEVSideDisconnect|bool|true|RW|Core||Stop the transaction when the EV is unplugged
UnlockConnectorOnEVSideDisconnect|bool|true|RW|Core||Unlock the socket when the EV is unplugged
MinimumStatusDuration|int|0|RW|Core|0..3600|Minimum status duration before it is reported (s)
ConnectorPhaseRotation|str|0.RST|RW|Core|0..500|Phase rotation per connector
ConnectorPhaseRotationMaxLength|int|9|R|Core||Maximum phase rotation entries
ResetRetries|int|1|RW|Core|0..10|Reset retries
TransactionMessageAttempts|int|3|RW|Core|1..10|Transaction message attempts
TransactionMessageRetryInterval|int|60|RW|Core|1..86400|Transaction message retry interval (s)
MeterValueSampleInterval|int|60|RW|Core|0..86400|Meter value sample interval (s, 0 = off)
MeterValuesSampledData|csl|Energy.Active.Import.Register|RW|Core|$measurand|Sampled measurands
MeterValuesSampledDataMaxLength|int|8|R|Core||Maximum sampled measurands
ClockAlignedDataInterval|int|0|RW|Core|0..86400|Clock-aligned data interval (s, 0 = off)
MeterValuesAlignedData|csl|Energy.Active.Import.Register|RW|Core|$measurand|Clock-aligned measurands
MeterValuesAlignedDataMaxLength|int|8|R|Core||Maximum clock-aligned measurands
StopTxnSampledData|csl||RW|Core|$measurand|Sampled measurands in StopTransaction
StopTxnSampledDataMaxLength|int|8|R|Core||Maximum StopTransaction sampled measurands
StopTxnAlignedData|csl||RW|Core|$measurand|Clock-aligned measurands in StopTransaction
StopTxnAlignedDataMaxLength|int|8|R|Core||Maximum StopTransaction clock-aligned measurands
StopTransactionMaxMeterValues|int|24|R|Core||Meter values kept for StopTransaction
MaxCurrent|int|32|RW|Vendor|6..80|Installation maximum current per connector (A)
ChargingInStateDAllowed|bool|false|RW|Vendor||Charge EVs that need ventilation (state D)
FreeCharging|bool|false|RW|Vendor||Charge without authorization (no transaction)
IntegerBooleans|bool|false|RW|Vendor||Integer values for boolean configuration keys
ReportVendorKeys|bool|true|RW|Vendor||The backend receives all configurable parameters
"""
# fmt: on

# Named item lists for csl checks (shared by several keys).
# Measurands cp/metering.py reports on every board (a test keeps it equal to metering.MEASURANDS;
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

    def entries(self, wanted=None):
        """Yield (name, readonly, value-or-None, known) for GetConfiguration.

        Without `wanted`: every readable key; the Vendor keys only with ReportVendorKeys."""
        ints = self.get("IntegerBooleans")
        vendor = wanted or self.get("ReportVendorKeys")
        for name in wanted or names():
            r = row(name)
            if r is None:
                yield name, True, None, False
            elif _has(r, "secret"):
                if wanted:  # known, but its value is never read back; absent from the full list
                    yield name, False, None, True
            elif not vendor and r[PROFILE] == "Vendor":
                continue
            elif readable(r):
                yield name, not writable(r), render(r, self.get(name), ints), True
            elif wanted:
                yield name, False, None, True
