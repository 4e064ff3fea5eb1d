# OCPP 1.6-J payload validation against the compact schema tables of ocpp/schema_tables.py.
#
#   check(action, "req" | "conf", payload) -> None, or raises Invalid(code, text) / UnknownAction
#
# The tables are generated from the official JSON schemas by tools/gen_schemas.py (its docstring
# documents the format). One table is decoded on first use of an action; the last
# _CACHE_MAX tables stay decoded so rarely used actions do not hold RAM. Validating against a loaded
# table allocates nothing on success, except two transient floats per multipleOf number and one
# short bytes object per date-time or uri string.
#
# CALLERROR codes (OCPP-J 1.6 section 4.2.3; the spec's spellings "OccurenceConstraintViolation"
# and "FormationViolation" are kept, as the OCPP-J errata sheet 5.1/5.2 says):
#   FormationViolation            the payload is not a JSON object; a property the schema does not
#                                 declare (additionalProperties false): the payload does not
#                                 conform to the PDU structure.
#   OccurenceConstraintViolation  a required property is missing; an array has fewer than
#                                 minItems or more than maxItems elements.
#   TypeConstraintViolation       a value has the wrong JSON type ("connectorId": "1"). Integers
#                                 are JSON numbers without fraction or exponent: 1.0 is a number,
#                                 not an integer (as jsonschema's Draft 4 decides). Booleans are
#                                 neither integers nor numbers.
#   PropertyConstraintViolation   the type is right, the value is not: enum value not allowed,
#                                 string longer than maxLength (counted in characters), below
#                                 minimum / above maximum, not a multiple of multipleOf, bad
#                                 date-time or uri; integers outside 32 bits and non-finite
#                                 numbers (OCPP integers are 32-bit; 1e999 decodes to inf).
# The mobilityhouse `ocpp` package answers a missing required field with ProtocolError and a too
# long string with TypeConstraintViolation; we follow the OCPP-J definitions above instead.
#
# Formats (light checks, no regular expressions):
#   date-time  YYYY-MM-DDThh:mm:ss[.f{1,9}][Z | +hh:mm | -hh:mm | +hhmm | -hhmm], real calendar
#              dates, seconds up to 60. A missing zone is accepted (OCPP says UTC; some backends
#              leave the "Z" out and rejecting their BootNotification answer helps nobody).
#   uri        a scheme (letter, then letters, digits, "+", "-", ".") and ":", at least one more
#              character, and only printable ASCII (no spaces, controls or raw non-ASCII).
#
# Error texts name the field path, e.g. "csChargingProfiles.chargingSchedule.chargingSchedulePeriod[2].limit:
# missing". Names taken from the payload (unknown properties) are cut to _NAME_MAX characters.
#
# Depth: validation only descends where the table does, so a hostile deeply nested value is
# rejected at the first level the table does not expect it (a type check), and recursion depth is
# bounded by the table depth (at most 6 in OCPP 1.6); _MAX_DEPTH guards against a damaged table.
import json

from micropython import const

from ocpp.schema_tables import TABLES

TYPE = "TypeConstraintViolation"
PROPERTY = "PropertyConstraintViolation"
OCCURENCE = "OccurenceConstraintViolation"
FORMATION = "FormationViolation"

_OBJECT = const(0)
_OBJECT_OPEN = const(1)
_ARRAY = const(2)
_STRING = const(3)
_DATETIME = const(4)
_URI = const(5)
_ENUM = const(6)
_INTEGER = const(7)
_NUMBER = const(8)
_BOOLEAN = const(9)
_ANY = const(10)

_CACHE_MAX = const(2)  # a call and its answer; each more table is ~1 KB of RAM
_MAX_DEPTH = const(16)
_NAME_MAX = const(24)
_ACTION_MAX = const(48)
_INT_MAX = 2147483647
_INT_MIN = -2147483648
# multipleOf is checked with a tolerance relative to v / step: 7.3 / 0.1 is 72.99999999999999 in
# doubles. The error of that quotient is a few units in the last place: below 1e-15 relative in
# doubles (host), about 2e-7 in the single-precision floats of ESP32 and RP2040 builds. The
# tolerance must stay well under the 0.5 that separates 7.3 from 7.35, which single precision
# allows up to |v / step| of about 1e6 (a 100 kW limit in W); beyond that it cannot tell anyway.
_EPS = 1e-9 if 1.0 + 1e-12 != 1.0 else 4e-7
# (-bound, bound on q, tolerance, 1 - tolerance) per power of ten, precomputed: floats are heap
# objects here (even -x makes one), and the check runs for every period of a charging schedule.
# Made on the first multipleOf check (a charging schedule): ~1 KB of floats not held before.
_tiers = None
_INF = float("inf")
_NINF = -_INF


class Invalid(Exception):
    # code: the CALLERROR errorCode to answer with; text: short errorDescription naming the field.
    def __init__(self, code, text):
        super().__init__(code, text)
        self.code = code
        self.text = text


class UnknownAction(Exception):
    pass


_cache = []  # [[action, kind, table], ...], most recently used first
_path = []  # field path of the node being checked: names and array indices


def clear_cache():
    # Drop every decoded table (e.g. before a large allocation); they reload on demand.
    del _cache[:]


def _table(action, kind):
    if kind != "req" and kind != "conf":
        raise ValueError("kind must be 'req' or 'conf'")
    if type(action) is not str or not action or len(action) > _ACTION_MAX or not action.isalpha():
        # Letters only: an action name from the network can never match across a table's line.
        raise UnknownAction(action)
    for i in range(len(_cache)):
        entry = _cache[i]
        if entry[0] == action and entry[1] == kind:
            if i:
                _cache.pop(i)
                _cache.insert(0, entry)
            return entry[2]
    at = TABLES.find("\n" + action + "." + kind + " ")
    if at < 0:
        raise UnknownAction(action)
    at += len(action) + len(kind) + 3
    table = json.loads(TABLES[at : TABLES.find("\n", at)])
    if len(_cache) >= _CACHE_MAX:
        _cache.pop()
    _cache.insert(0, [action, kind, table])
    return table


def check(action, kind, payload):
    """Validate a decoded payload: None if valid, else raise Invalid(code, text) or UnknownAction."""
    table = _table(action, kind)
    if _path:  # left over by a failed check (a slice delete allocates: skip it when empty)
        del _path[:]
    if type(payload) is not dict:
        raise Invalid(FORMATION, "payload: not a JSON object")
    _check(table, payload, 0)


def _fail(code, what):
    out = ""
    for seg in _path:
        if type(seg) is int:
            out += "[%d]" % seg
        else:
            out += ("." + seg) if out else seg
    raise Invalid(code, (out or "payload") + ": " + what)


def _check(node, v, depth):
    if depth > _MAX_DEPTH:
        _fail(FORMATION, "nested too deep")
    if type(node) is int:
        kind = node
    else:
        kind = node[0]
    t = type(v)
    if kind <= _OBJECT_OPEN:
        if t is not dict:
            _fail(TYPE, "expected object")
        _object(node, v, depth)
    elif kind == _ARRAY:
        if t is not list:
            _fail(TYPE, "expected array")
        n = len(v)
        if n < node[1]:
            _fail(OCCURENCE, "fewer than %d items" % node[1])
        if node[2] >= 0 and n > node[2]:
            _fail(OCCURENCE, "more than %d items" % node[2])
        item = node[3]
        _path.append(0)
        for i in range(n):
            _path[-1] = i
            _check(item, v[i], depth + 1)
        _path.pop()
    elif kind <= _URI:
        if t is not str:
            _fail(TYPE, "expected string")
        if type(node) is not int:
            n = len(v)
            if node[1] >= 0 and n > node[1]:
                _fail(PROPERTY, "longer than %d" % node[1])
            if len(node) > 2 and n < node[2]:
                _fail(PROPERTY, "shorter than %d" % node[2])
        if kind == _DATETIME:
            if not _datetime_ok(v):
                _fail(PROPERTY, "bad date-time")
        elif kind == _URI:
            if not _uri_ok(v):
                _fail(PROPERTY, "bad uri")
    elif kind == _ENUM:
        if t is not str:
            _fail(TYPE, "expected string")
        if not _in_enum(v, node[1]):
            _fail(PROPERTY, "value not allowed")
    elif kind == _INTEGER:
        if t is not int:
            _fail(TYPE, "expected integer")
        if v > _INT_MAX or v < _INT_MIN:
            _fail(PROPERTY, "out of 32-bit range")
        if type(node) is not int:
            _bounds(node, v)
    elif kind == _NUMBER:
        if t is int:
            if v > _INT_MAX or v < _INT_MIN:
                _fail(PROPERTY, "out of 32-bit range")
        elif t is float:
            if v != v or v == _INF or v == _NINF:
                _fail(PROPERTY, "not a finite number")
        else:
            _fail(TYPE, "expected number")
        if type(node) is not int:
            _bounds(node, v)
            step = node[3]
            if step is not None:
                if not _multiple(v, step):
                    _fail(PROPERTY, "not a multiple of %s" % step)
    elif kind == _BOOLEAN:
        if t is not bool:
            _fail(TYPE, "expected boolean")
    elif kind != _ANY:
        _fail(FORMATION, "bad schema table")


def _multiple(v, step):
    # Is v / step within rounding error of an integer? Makes two floats (q and r).
    global _tiers
    if _tiers is None:
        _tiers = tuple((-(10.0**k), 10.0**k, _EPS * 10.0**k, 1.0 - _EPS * 10.0**k) for k in range(1, 8))
    q = v / step
    r = q % 1.0  # in [0, 1); nan when q overflowed to inf, which fails every comparison
    for low, high, tol, tol_hi in _tiers:
        if low < q < high:
            return r <= tol or r >= tol_hi
    tol = _EPS * abs(q)
    return r <= tol or r >= 1.0 - tol


def _bounds(node, v):
    if node[1] is not None and v < node[1]:
        _fail(PROPERTY, "below %s" % node[1])
    if node[2] is not None and v > node[2]:
        _fail(PROPERTY, "above %s" % node[2])


def _object(node, v, depth):
    n = len(node)
    required = node[1]
    if node[0] == _OBJECT:
        # Every key must be declared: count the declared ones present, look closer on a mismatch.
        present = 0
        for i in range(2, n, 2):
            if node[i] in v:
                present += 1
        if present != len(v):
            for key in v:
                found = False
                for i in range(2, n, 2):
                    if node[i] == key:
                        found = True
                        break
                if not found:
                    if type(key) is str and len(key) > _NAME_MAX:
                        key = key[:_NAME_MAX] + "..."
                    _path.append(str(key))
                    _fail(FORMATION, "unknown property")
    bit = 1
    _path.append(None)
    for i in range(2, n, 2):
        name = node[i]
        _path[-1] = name
        if name in v:
            _check(node[i + 1], v[name], depth + 1)
        elif required & bit:
            _fail(OCCURENCE, "missing")
        bit <<= 1
    _path.pop()


def _in_enum(v, joined):
    # joined is "|A|B|C|": v matches when found with a "|" on both sides. No allocation.
    n = len(v)
    if not n or n > len(joined) or "|" in v:
        return False
    i = joined.find(v)
    while i > 0:
        if joined.startswith("|", i - 1) and joined.startswith("|", i + n):
            return True
        i = joined.find(v, i + 1)
    return False


_DIM = b"\x1f\x1c\x1f\x1e\x1f\x1e\x1f\x1f\x1e\x1f\x1e\x1f"  # days per month, February fixed below


def _digits(b, i, n):
    # Value of the n ASCII digits at b[i:], or -1.
    x = 0
    for j in range(i, i + n):
        c = b[j] - 48
        if c < 0 or c > 9:
            return -1
        x = x * 10 + c
    return x


def _datetime_ok(s):
    n = len(s)
    if n < 19 or n > 40:
        return False
    b = s.encode()
    if len(b) != n:  # not ASCII
        return False
    y = _digits(b, 0, 4)
    mo = _digits(b, 5, 2)
    d = _digits(b, 8, 2)
    h = _digits(b, 11, 2)
    mi = _digits(b, 14, 2)
    sec = _digits(b, 17, 2)
    if b[4] != 45 or b[7] != 45 or (b[10] != 84 and b[10] != 116) or b[13] != 58 or b[16] != 58:
        return False
    if y < 0 or mo < 1 or mo > 12 or d < 1 or h < 0 or h > 23 or mi < 0 or mi > 59 or sec < 0 or sec > 60:
        return False
    dim = _DIM[mo - 1]
    if mo == 2 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0):
        dim = 29
    if d > dim:
        return False
    i = 19
    if i < n and b[i] == 46:  # "." fraction, 1 to 9 digits
        j = i + 1
        while j < n and 48 <= b[j] <= 57:
            j += 1
        if j == i + 1 or j - i - 1 > 9:
            return False
        i = j
    if i == n:
        return True  # no zone: taken as UTC
    c = b[i]
    if c == 90 or c == 122:  # Z z
        return i + 1 == n
    if c != 43 and c != 45:  # + -
        return False
    rest = n - i - 1
    if rest == 5 and b[i + 3] == 58:
        oh, om = _digits(b, i + 1, 2), _digits(b, i + 4, 2)
    elif rest == 4:
        oh, om = _digits(b, i + 1, 2), _digits(b, i + 3, 2)
    else:
        return False
    return 0 <= oh <= 23 and 0 <= om <= 59


def _uri_ok(s):
    b = s.encode()
    n = len(b)
    i = 0
    while i < n and b[i] != 58:  # scheme up to ":"
        c = b[i] | 32  # ASCII lower case
        if not (97 <= c <= 122 or (i and (48 <= b[i] <= 57 or b[i] == 43 or b[i] == 45 or b[i] == 46))):
            return False
        i += 1
    if i == 0 or i >= n - 1:
        return False
    for c in b:
        if c <= 32 or c >= 127:  # spaces, controls and non-ASCII: a URI is printable ASCII
            return False
    return True
