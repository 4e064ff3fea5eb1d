"""Cross-check: the firmware validator (firmware/ocpp/validate.py on MicroPython, reading the generated
tables) against jsonschema's Draft4Validator on the official OCPP 1.6 schemas.

For every action and direction a small generator walks the schema and builds valid payloads (all
properties, only the required ones, random subsets), then mutates them one fault at a time: drop a
required field, wrong JSON type, value outside the enum, string one character too long, undeclared
property, bad date-time, bad uri, number off the multipleOf grid, array below minItems, payload that
is not an object. All cases run in ONE micropython process (cases in a file, verdicts back in a file).

Verdicts must agree with jsonschema (which validates the payload and schema decoded with
Decimal floats, as the `ocpp` package does for multipleOf), and each rejection must carry the CALLERROR
code documented in validate.py and name the mutated field. jsonschema has no date-time/uri checker
installed here, so the reference checkers below implement the grammar documented in validate.py
independently (regular expressions and the calendar module). The generator stays inside what both
sides define alike: integers within 32 bits and finite numbers (validate.py's extra rules for those
are covered in host_tests/mp/test_validate.py).
"""

import calendar
import copy
import functools
import json
import random
import re
import subprocess
from decimal import Decimal

import pytest
from jsonschema import Draft4Validator, FormatChecker

import gen_schemas
from mp_plugin import MICROPYTHON, ROOT, micropython_env

FORMATION = "FormationViolation"
OCCURENCE = "OccurenceConstraintViolation"
TYPE = "TypeConstraintViolation"
PROPERTY = "PropertyConstraintViolation"

VALID_DATETIMES = [
    "2024-05-01T12:00:00Z",
    "2024-02-29T23:59:59.999Z",
    "2023-12-31T23:59:60z",
    "2024-05-01T12:00:00.123456+02:00",
    "2024-05-01T00:00:00-0530",
    "2024-05-01t08:30:00",
]
BAD_DATETIMES = [
    "2023-02-29T12:00:00Z",
    "2024-05-01",
    "2024-05-01 12:00:00Z",
    "2024-05-32T12:00:00Z",
    "2024-05-01T12:00:00+25:00",
    "2024-05-01T12:00:00.Z",
    "01/05/2024 12:00",
    "now",
]
VALID_URIS = [
    "https://cs.example.com/upload",
    "ftp://user:pw@10.1.2.3:21/diag/",
    "urn:example:x",
    "s3+https://b/k",
]
BAD_URIS = ["no scheme", "/relative/path", "1http://x", "http://a b/", "https:", "h\u00e9://x"]
CHARS = "aZ09-_ \u00e9\u20ac\U0001d11e"  # ASCII, 2-, 3- and 4-byte UTF-8: maxLength counts characters

_DT_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?(.*)", re.S
)
_ZONE_RE = re.compile(r"|[Zz]|[+-]([0-9]{2}):?([0-9]{2})", re.S)
_URI_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[\x21-\x7e]+", re.S)


def ref_datetime(value):
    if not isinstance(value, str):
        return True
    m = _DT_RE.fullmatch(value)
    if not m:
        return False
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    zone = _ZONE_RE.fullmatch(m.group(8))
    if not zone or not 1 <= mo <= 12 or not 1 <= d <= calendar.monthrange(y, mo)[1]:
        return False
    if h > 23 or mi > 59 or s > 60:
        return False
    if zone.group(1) is not None:
        return int(zone.group(1)) <= 23 and int(zone.group(2)) <= 59
    return True


def ref_uri(value):
    return not isinstance(value, str) or _URI_RE.fullmatch(value) is not None


def _format_checker():
    checker = FormatChecker(formats=())
    checker.checks("date-time")(ref_datetime)
    checker.checks("uri")(ref_uri)
    return checker


def test_reference_format_checkers_match_the_documented_grammar():
    assert all(ref_datetime(s) for s in VALID_DATETIMES)
    assert not any(ref_datetime(s) for s in BAD_DATETIMES)
    assert all(ref_uri(s) for s in VALID_URIS)
    assert not any(ref_uri(s) for s in BAD_URIS)


# --- payload generation ------------------------------------------------------------------------


def _resolve(node, root):
    while "$ref" in node:
        node = root["definitions"][node["$ref"].split("/")[-1]]
    return node


def _text(rng, lo, hi):
    n = rng.choice([lo, hi, rng.randint(lo, hi)])
    return "".join(rng.choice(CHARS) for _ in range(n))


def generate(schema, rng, mode):
    """A valid payload and its sites: (path, schema node) of every generated value."""
    sites = []

    def gen(node, path):
        node = _resolve(node, schema)
        sites.append((path, node))
        kind = node.get("type")
        if kind == "object":
            out = {}
            required = node.get("required", [])
            for name, sub in node.get("properties", {}).items():
                if name in required or mode == "all" or (mode == "some" and rng.random() < 0.5):
                    out[name] = gen(sub, (*path, name))
            return out
        if kind == "array":
            lo = node.get("minItems", 0)
            count = rng.randint(lo, min(node.get("maxItems", lo + 3), lo + 3))
            if mode == "all":
                count = max(count, 1)
            return [gen(node["items"], (*path, i)) for i in range(count)]
        if kind == "string":
            if "enum" in node:
                return rng.choice(node["enum"])
            fmt = node.get("format")
            if fmt == "date-time":
                return rng.choice(VALID_DATETIMES)
            if fmt == "uri":
                return rng.choice(VALID_URIS)
            return _text(rng, node.get("minLength", 0), min(node.get("maxLength", 40), 6000))
        if kind == "integer":
            return rng.choice([0, 1, -1, 2**31 - 1, -(2**31), rng.randint(-1000, 100000)])
        if kind == "number":
            if "multipleOf" in node:
                assert node["multipleOf"] == 0.1
                return rng.choice([0, 16, round(rng.randint(-100000, 100000) / 10, 1), 7.3, 0.3])
            return rng.choice([0, 2.5, rng.uniform(-1e6, 1e6)])
        if kind == "boolean":
            return rng.choice([True, False])
        raise AssertionError(f"generator lacks type {kind!r}")

    return gen(schema, ()), sites


WRONG_TYPES = {
    "object": ["x", [], 1, None],
    "array": [{}, "x", 0],
    "string": [12, True, None, [], {"a": 1}],
    "integer": ["1", 1.5, 2.0, True, None, []],
    "number": ["7.3", True, None, {}],
    "boolean": [0, 1, "true", None],
}


def mutations(payload, sites, rng):
    """(mutated payload, expected code, expected path, expected text end) for one fault each."""
    out = []
    for path, node in sites:
        kind = node.get("type")
        if kind == "object":
            value = _get(payload, path)
            for name in node.get("required", []):
                if name in value:
                    out.append((_without(payload, path, name), OCCURENCE, (*path, name), ": missing"))
            extra = (*path, "unexpectedField")
            out.append((_set(payload, extra, 1), FORMATION, extra, ": unknown property"))
        if path:
            for bad in rng.sample(WRONG_TYPES[kind], 2):
                out.append((_set(payload, path, bad), TYPE, path, ": expected " + kind))
        if kind == "string" and "enum" in node:
            good = _get(payload, path)
            near = ["NoSuchValue", good.lower(), good + " ", good[:-1], good[1:], good + "|" + good, ""]
            for bad in [b for b in near if b not in node["enum"]]:
                out.append((_set(payload, path, bad), PROPERTY, path, ": value not allowed"))
        elif kind == "string" and "maxLength" in node:
            hi = node["maxLength"]
            out.append((_set(payload, path, "\u00e9" * hi), None, path, None))  # 2*hi bytes: valid
            bad = "".join(rng.choice(CHARS) for _ in range(hi + 1))
            out.append((_set(payload, path, bad), PROPERTY, path, f": longer than {hi}"))
        if node.get("format") == "date-time":
            out.append((_set(payload, path, rng.choice(BAD_DATETIMES)), PROPERTY, path, ": bad date-time"))
        if node.get("format") == "uri":
            out.append((_set(payload, path, rng.choice(BAD_URIS)), PROPERTY, path, ": bad uri"))
        if "multipleOf" in node:
            off = round(rng.randint(-10000, 10000) / 10, 1) + rng.choice([0.05, 0.01, 0.07])
            out.append((_set(payload, path, round(off, 2)), PROPERTY, path, ": not a multiple of 0.1"))
        if kind == "array" and node.get("minItems", 0) > 0:
            out.append((_set(payload, path, []), OCCURENCE, path, f": fewer than {node['minItems']} items"))
    return out


def _get(value, path):
    for seg in path:
        value = value[seg]
    return value


def _set(payload, path, new):
    out = copy.deepcopy(payload)
    _get(out, path[:-1])[path[-1]] = new
    return out


def _without(payload, path, name):
    out = copy.deepcopy(payload)
    del _get(out, path)[name]
    return out


def path_text(path):
    out = ""
    for seg in path:
        out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else seg)
    return out or "payload"


def build_cases(seed=1606):
    rng = random.Random(seed)
    cases = []  # (action, kind, payload, expected code or None, path, text end, label)
    for action, kind, _ in gen_schemas.actions():
        schema, _ = gen_schemas.load_schema(action, kind)
        for mode in ("all", "all", "required", "some", "some", "some", "some", "some"):
            payload, sites = generate(schema, rng, mode)
            cases.append((action, kind, payload, None, (), None, "valid/" + mode))
        for _ in range(2):
            payload, sites = generate(schema, rng, "all")
            muts = mutations(payload, sites, rng)
            if len(muts) > 80:
                muts = rng.sample(muts, 80)
            for mutated, code, path, end in muts:
                cases.append((action, kind, mutated, code, path, end, "mutation"))
        for bad in ([], "payload", None, 3):
            cases.append((action, kind, bad, FORMATION, (), ": not a JSON object", "not-object"))
    return cases


MP_DRIVER = """
import sys, json
from ocpp import validate
out = open(sys.argv[2], "w")
with open(sys.argv[1]) as f:
    while True:
        line = f.readline()
        if not line:
            break
        action, kind, payload = json.loads(line)
        try:
            validate.check(action, kind, payload)
            out.write("null\\n")
        except validate.Invalid as e:
            out.write(json.dumps([e.code, e.text]) + "\\n")
out.close()
"""


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    from build import build

    build("sim", quiet=True)
    cases = build_cases()
    tmp = tmp_path_factory.mktemp("crosscheck")
    (tmp / "driver.py").write_text(MP_DRIVER)
    with open(tmp / "cases.jsonl", "w", encoding="utf-8") as f:
        for action, kind, payload, *_ in cases:
            f.write(json.dumps([action, kind, payload], ensure_ascii=False) + "\n")
    proc = subprocess.run(
        [str(MICROPYTHON), str(tmp / "driver.py"), str(tmp / "cases.jsonl"), str(tmp / "out.jsonl")],
        env=micropython_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line) for line in (tmp / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(results) == len(cases)
    return cases, results


@functools.cache
def _reference(action, kind):
    schema, _ = gen_schemas.load_schema(action, kind, parse_float=Decimal)
    return Draft4Validator(schema, format_checker=_format_checker())


def test_verdicts_agree_with_jsonschema(verdicts):
    cases, results = verdicts
    disagreements = []
    for (action, kind, payload, _code, _path, _end, label), got in zip(cases, results, strict=True):
        reference = _reference(action, kind).is_valid(json.loads(json.dumps(payload), parse_float=Decimal))
        if reference != (got is None):
            case = f"{action}.{kind} {label}: jsonschema valid={reference}, firmware {got} for {payload!r}"
            disagreements.append(case[:400])
    summary = f"{len(disagreements)} of {len(cases)} disagree:\n"
    assert not disagreements, summary + "\n".join(disagreements[:20])
    assert len(cases) > 3000
    assert sum(r is None for r in results) > 700  # the valid side is exercised too


def test_rejections_carry_the_documented_code_and_field(verdicts):
    cases, results = verdicts
    wrong = []
    for (action, kind, _payload, code, path, end, label), got in zip(cases, results, strict=True):
        if code is None:
            continue
        if got is None:
            wrong.append(f"{action}.{kind} {label}: accepted, want {code} at {path_text(path)}")
            continue
        got_code, text = got
        want_text = path_text(path) + end
        if got_code != code or text != want_text:
            wrong.append(f"{action}.{kind}: got {got_code} {text!r}, want {code} {want_text!r}")
        assert len(text) <= 160, text
    assert not wrong, f"{len(wrong)} wrong:\n" + "\n".join(wrong[:20])


def test_every_action_and_direction_is_covered(verdicts):
    cases, _ = verdicts
    covered = {(a, k) for a, k, *_ in cases}
    assert len(covered) == 78
    for action in ("SignedUpdateFirmware", "InstallCertificate", "GetLog", "ExtendedTriggerMessage"):
        assert (action, "req") in covered and (action, "conf") in covered


# --- the generator ---------------------------------------------------------------------------------


def test_committed_tables_match_a_fresh_generation():
    wanted = gen_schemas.generate()
    assert len(wanted) == 78
    assert gen_schemas.OUT.read_text() == gen_schemas.module_text(wanted), "stale: run `make schemas`"


def _break(action, kind, breaker):
    shipped, applied = gen_schemas.load_schema(action, kind)
    assert applied == [], "ocpp 2.1.0 ships this schema corrected"
    broken = copy.deepcopy(shipped)
    breaker(broken)
    try:  # the mistake changes the table, or makes the schema one the generator refuses
        assert gen_schemas.compile_node(broken, broken) != gen_schemas.compile_node(shipped, shipped)
    except gen_schemas.SchemaError:
        pass
    fixed = [fix.__name__ for fix in gen_schemas.ERRATA[(action, kind)] if fix(broken)]
    assert fixed, "the erratum was not detected"
    assert gen_schemas.compile_node(broken, broken) == gen_schemas.compile_node(shipped, shipped)


def test_errata_repair_the_published_schema_mistakes():
    def boot(s):
        s["properties"]["interval"]["type"] = "number"

    def update_firmware(s):
        s["properties"]["retries"]["type"] = "number"
        s["properties"]["retryInterval"]["type"] = "number"

    def stop_reason(s):
        s["required"].append("reason")
        unit = s["properties"]["transactionData"]["items"]["properties"]["sampledValue"]["items"]
        unit["properties"]["unit"]["enum"].remove("Celsius")

    def meter_celsius(s):
        unit = s["properties"]["meterValue"]["items"]["properties"]["sampledValue"]["items"]
        unit["properties"]["unit"]["enum"].remove("Celsius")

    def send_local_list(s):
        # As published: the two optional fields beside "properties", one of them misnamed.
        info = s["properties"]["localAuthorizationList"]["items"]["properties"]["idTagInfo"]
        info["expirationDate"] = info["properties"].pop("expiryDate")
        info["parentIdTag"] = info["properties"].pop("parentIdTag")

    _break("BootNotification", "conf", boot)
    _break("UpdateFirmware", "req", update_firmware)
    _break("StopTransaction", "req", stop_reason)
    _break("MeterValues", "req", meter_celsius)
    _break("SendLocalList", "req", send_local_list)


def test_generator_refuses_what_it_cannot_encode():
    for node in (
        {"type": "string", "pattern": "^a"},
        {"type": ["string", "null"]},
        {"type": "string", "enum": ["A|B"]},
        {"type": "object", "properties": {}, "required": ["x"]},
        {"type": "array", "items": [{"type": "string"}]},
        {"$ref": "http://example.com/x"},
        {"type": "number", "exclusiveMinimum": True, "minimum": 0},
    ):
        with pytest.raises(gen_schemas.SchemaError):
            gen_schemas.compile_node(node, {"definitions": {}})
    assert gen_schemas.compile_node({"type": "integer", "minimum": 0, "maximum": 9}, {}) == [7, 0, 9]
    assert gen_schemas.compile_node({"type": "string", "maxLength": 5, "minLength": 1}, {}) == [3, 5, 1]
