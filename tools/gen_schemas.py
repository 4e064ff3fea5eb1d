"""Generate the compact OCPP 1.6 schema tables in firmware/ocpp/schemas/ from the official JSON schemas.

Source: the OCPP 1.6-J JSON schemas shipped in the installed `ocpp` package (ocpp/v16/schemas/*.json:
39 actions x request/response, security extension included), with the OCPP-J 1.6 schema errata applied
where a shipped file still has the published mistake (see ERRATA below; ocpp 2.1.0 already ships all
of them corrected, so there they change nothing).

Output: one file per action and direction, `<Action>.req.json` and `<Action>.conf.json`, each one
line of compact JSON holding the table of the payload's root object. firmware/ocpp/validate.py reads
a file with `json.load` on first use; the decoded table is lists, small ints and the strings it must
compare with anyway, so it costs little RAM, and validating against it allocates nothing.

Table format. A node is either a bare small int (a kind without parameters) or a list whose first
item is the kind:

    kind  meaning         bare form        list form
    0     object, closed  -                [0, required_mask, name_0, node_0, name_1, node_1, ...]
    1     object, open    -                [1, required_mask, name_0, node_0, ...]
    2     array           -                [2, min_items, max_items, item_node]      max_items -1: none
    3     string          3                [3, max_length, min_length]               -1: no limit
    4     date-time       4                [4, max_length, min_length]               string, ISO 8601
    5     uri             5                [5, max_length, min_length]               string, light URI
    6     enum (strings)  -                [6, "|Value1|Value2|...|"]
    7     integer         7                [7, minimum, maximum]                     null: no bound
    8     number          8                [8, minimum, maximum, multiple_of]        null: none
    9     boolean         9                -
    10    any value       10               -

"Closed" objects have `additionalProperties: false`. Bit i of required_mask is set when property i
(in table order, which is the schema's order) is required. Enum values are joined with "|" and
framed by "|" so that one string holds the whole enum (the generator refuses values containing
"|" or empty ones). `$ref` to `#/definitions/...` is inlined. Keywords that do not constrain a
value (title, description, $schema, $id, javaType, `additionalProperties` on non-objects,
`additionalItems` beside a single `items` schema) are dropped; any other keyword stops the
generator, so a schema change can never be silently ignored.

Usage:
    tools/gen_schemas.py            write the tables (removes tables of actions that disappeared)
    tools/gen_schemas.py --check    exit 1 if the committed tables differ from a fresh generation
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "firmware" / "ocpp" / "schemas"
SUFFIX = ".json"

K_OBJECT, K_OBJECT_OPEN, K_ARRAY, K_STRING, K_DATETIME, K_URI, K_ENUM = 0, 1, 2, 3, 4, 5, 6
K_INTEGER, K_NUMBER, K_BOOLEAN, K_ANY = 7, 8, 9, 10

# Keywords that carry no constraint on the value.
IGNORED = {"$schema", "$id", "id", "title", "description", "javaType", "comment", "tsEnumNames"}
STRING_FORMATS = {None: K_STRING, "date-time": K_DATETIME, "uri": K_URI}


class SchemaError(Exception):
    pass


def schema_dir():
    import ocpp

    return Path(ocpp.__file__).resolve().parent / "v16" / "schemas"


def actions():
    """Sorted (action, kind, file name) for every shipped schema; kind is "req" or "conf"."""
    out = []
    for path in sorted(schema_dir().glob("*.json")):
        name = path.stem
        if name.endswith("Response"):
            out.append((name[: -len("Response")], "conf", path.name))
        else:
            out.append((name, "req", path.name))
    return out


# --- OCPP-J 1.6 errata sheet, section 2: published schema mistakes ---------------------------------
# Each fix looks for the mistake and repairs it; on a corrected file it does nothing.


def _fix_boot_interval(schema):
    # Erratum 2.4: BootNotificationResponse "interval" was "number", must be "integer".
    prop = schema.get("properties", {}).get("interval")
    if prop and prop.get("type") == "number":
        prop["type"] = "integer"
        return True
    return False


def _fix_update_firmware_ints(schema):
    # Erratum 2.5: UpdateFirmware "retries" and "retryInterval" were "number", must be "integer".
    changed = False
    for name in ("retries", "retryInterval"):
        prop = schema.get("properties", {}).get(name)
        if prop and prop.get("type") == "number":
            prop["type"] = "integer"
            changed = True
    return changed


def _fix_stop_reason(schema):
    # Erratum 2.6: StopTransaction "reason" was wrongly listed as required.
    req = schema.get("required", [])
    if "reason" in req:
        req.remove("reason")
        return True
    return False


def _fix_celsius(schema):
    # Erratum 2.1 (2025-04): the unit enum must hold both "Celcius" (as published) and "Celsius".
    changed = False

    def walk(node):
        nonlocal changed
        if isinstance(node, dict):
            enum = node.get("enum")
            if isinstance(enum, list) and ("Celcius" in enum) != ("Celsius" in enum):
                at = enum.index("Celcius" if "Celcius" in enum else "Celsius")
                enum[at : at + 1] = ["Celcius", "Celsius"]
                changed = True
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return changed


def _fix_send_local_list(schema):
    # Erratum 2.3: in localAuthorizationList[].idTagInfo, "expiryDate" (published as
    # "expirationDate") and "parentIdTag" sat beside "properties" instead of inside it.
    try:
        info = schema["properties"]["localAuthorizationList"]["items"]["properties"]["idTagInfo"]
    except (KeyError, TypeError):
        return False
    changed = False
    props = info.setdefault("properties", {})
    for stray, name in (
        ("expirationDate", "expiryDate"),
        ("expiryDate", "expiryDate"),
        ("parentIdTag", None),
    ):
        if stray in info and isinstance(info[stray], dict) and "type" in info[stray]:
            props.setdefault(name or stray, info.pop(stray))
            changed = True
    if changed:
        # Keep the documented field order: expiryDate, parentIdTag, status.
        order = ["expiryDate", "parentIdTag", "status"]
        info["properties"] = {k: props[k] for k in order if k in props} | {
            k: v for k, v in props.items() if k not in order
        }
        info["additionalProperties"] = False
    return changed


ERRATA = {
    ("BootNotification", "conf"): [_fix_boot_interval],
    ("UpdateFirmware", "req"): [_fix_update_firmware_ints],
    ("StopTransaction", "req"): [_fix_stop_reason, _fix_celsius],
    ("MeterValues", "req"): [_fix_celsius],
    ("SendLocalList", "req"): [_fix_send_local_list],
}


def load_schema(action, kind, parse_float=float):
    """The official schema for (action, kind) with the errata applied: (schema dict, fixes applied)."""
    name = action + ("Response" if kind == "conf" else "") + ".json"
    schema = json.loads((schema_dir() / name).read_text(encoding="utf-8"), parse_float=parse_float)
    applied = [fix.__name__ for fix in ERRATA.get((action, kind), []) if fix(schema)]
    return schema, applied


# --- schema -> table -----------------------------------------------------------------------------


def _resolve(node, root, seen):
    ref = node.get("$ref")
    if ref is None:
        return node
    if not ref.startswith("#/definitions/") or len(node) != 1:
        raise SchemaError(f"unsupported $ref {ref!r}")
    if ref in seen:
        raise SchemaError(f"recursive $ref {ref!r}")
    seen.add(ref)
    target = root.get("definitions", {}).get(ref[len("#/definitions/") :])
    if target is None:
        raise SchemaError(f"dangling $ref {ref!r}")
    return _resolve(target, root, seen)


def _take(node, allowed, where):
    unknown = set(node) - allowed - IGNORED - {"type"}
    if unknown:
        raise SchemaError(f"{where}: unsupported keywords {sorted(unknown)}")


def _bound(value, where, what):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SchemaError(f"{where}: {what} must be a number")
    return value


def compile_node(node, root, where="payload", depth=0):
    """One schema node -> table node (see the module docstring)."""
    if depth > 12:
        raise SchemaError(f"{where}: schema nested too deep")
    if not isinstance(node, dict):
        raise SchemaError(f"{where}: schema node is not an object")
    node = _resolve(node, root, set())
    kind = node.get("type")
    if kind is None:
        _take(node, set(), where)
        return K_ANY
    if not isinstance(kind, str):
        raise SchemaError(f"{where}: type lists are not supported")
    if kind == "object":
        _take(node, {"properties", "required", "additionalProperties", "definitions"}, where)
        props = node.get("properties", {})
        required = node.get("required", [])
        missing = [r for r in required if r not in props]
        if missing:
            raise SchemaError(f"{where}: required but not declared: {missing}")
        extra = node.get("additionalProperties", True)
        if extra not in (True, False):
            raise SchemaError(f"{where}: additionalProperties must be true or false")
        mask = 0
        out = [K_OBJECT if extra is False else K_OBJECT_OPEN, 0]
        for i, (name, sub) in enumerate(props.items()):
            if name in required:
                mask |= 1 << i
            out += [name, compile_node(sub, root, f"{where}.{name}", depth + 1)]
        out[1] = mask
        return out
    if kind == "array":
        _take(node, {"items", "minItems", "maxItems", "additionalItems"}, where)
        items = node.get("items")
        if not isinstance(items, dict):
            raise SchemaError(f"{where}: items must be one schema")
        lo, hi = node.get("minItems", 0), node.get("maxItems", -1)
        return [K_ARRAY, lo, hi, compile_node(items, root, f"{where}[]", depth + 1)]
    if kind == "string":
        _take(node, {"enum", "maxLength", "minLength", "format", "additionalProperties"}, where)
        enum = node.get("enum")
        hi, lo = node.get("maxLength", -1), node.get("minLength", 0)
        if enum is not None:
            if "format" in node:
                raise SchemaError(f"{where}: enum with format is not supported")
            for value in enum:
                if not isinstance(value, str) or not value or "|" in value:
                    raise SchemaError(f"{where}: enum value {value!r} not encodable")
                if len(value) < lo or (hi >= 0 and len(value) > hi):
                    raise SchemaError(f"{where}: enum value {value!r} breaks the length limits")
            return [K_ENUM, "|" + "|".join(enum) + "|"]
        fmt = node.get("format")
        if fmt not in STRING_FORMATS:
            raise SchemaError(f"{where}: unsupported format {fmt!r}")
        code = STRING_FORMATS[fmt]
        if hi < 0 and lo == 0:
            return code
        return [code, hi, lo] if lo else [code, hi]
    if kind in ("integer", "number"):
        _take(node, {"minimum", "maximum", "multipleOf", "additionalProperties"}, where)
        lo = _bound(node.get("minimum"), where, "minimum")
        hi = _bound(node.get("maximum"), where, "maximum")
        step = _bound(node.get("multipleOf"), where, "multipleOf")
        if step is not None and step <= 0:
            raise SchemaError(f"{where}: multipleOf must be positive")
        code = K_INTEGER if kind == "integer" else K_NUMBER
        if kind == "integer" and step is not None:
            raise SchemaError(f"{where}: multipleOf on integers is not supported")
        if lo is None and hi is None and step is None:
            return code
        return [code, lo, hi] if code == K_INTEGER else [code, lo, hi, step]
    if kind == "boolean":
        _take(node, {"additionalProperties"}, where)
        return K_BOOLEAN
    raise SchemaError(f"{where}: unsupported type {kind!r}")


def table_file(action, kind):
    return f"{action}.{kind}{SUFFIX}"


def generate():
    """{file name: file text} for every action and direction."""
    out = {}
    for action, kind, name in actions():
        if not action.isalpha():
            raise SchemaError(f"{name}: action names must be letters only")
        schema, _ = load_schema(action, kind)
        try:
            table = compile_node(schema, schema)
        except SchemaError as e:
            raise SchemaError(f"{name}: {e}") from None
        if table[0] not in (K_OBJECT, K_OBJECT_OPEN):
            raise SchemaError(f"{name}: the payload must be an object")
        out[table_file(action, kind)] = json.dumps(table, separators=(",", ":"), ensure_ascii=True) + "\n"
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed tables, write nothing")
    args = ap.parse_args()
    wanted = generate()
    present = {p.name: p for p in OUT_DIR.glob("*" + SUFFIX)} if OUT_DIR.exists() else {}
    if args.check:
        stale = sorted(n for n, text in wanted.items() if n not in present or present[n].read_text() != text)
        extra = sorted(set(present) - set(wanted))
        for n in stale:
            print(f"out of date: {OUT_DIR.relative_to(ROOT)}/{n}")
        for n in extra:
            print(f"not generated: {OUT_DIR.relative_to(ROOT)}/{n}")
        if stale or extra:
            print("run `make schemas` (tools/gen_schemas.py) and commit the result")
            return 1
        print(f"{len(wanted)} schema tables up to date")
        return 0
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in wanted.items():
        path = OUT_DIR / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    for name in set(present) - set(wanted):
        present[name].unlink()
    for action, kind, _ in actions():
        _, applied = load_schema(action, kind)
        if applied:
            print(f"{action}.{kind}: errata applied: {', '.join(applied)}")
    size = sum(len(t) for t in wanted.values())
    print(f"{len(wanted)} tables, {size} bytes in {OUT_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
