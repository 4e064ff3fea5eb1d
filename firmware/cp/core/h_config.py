# GetConfiguration / ChangeConfiguration over the configuration registry.
import json

from cp import config as registry
from ocpp.rpc import CallError, Streamed


async def get_configuration(cp, payload):
    # The answer is streamed (one entry encoded at a time): every key's entry as dicts would be
    # ~12 KB of heap on a 64-bit port at once, the text another ~5 KB.
    names = payload.get("key") or None
    if names and len(names) > cp.config.get("GetConfigurationMaxKeys"):
        raise CallError("OccurenceConstraintViolation", "more keys than GetConfigurationMaxKeys")
    config = cp.config

    def parts():
        yield '{"configurationKey":['
        sep = ""
        for name, readonly, value, found in entries(config, names):
            if found:
                entry = {"key": name, "readonly": readonly}
                if value is not None:
                    entry["value"] = value
                yield sep
                yield json.dumps(entry)
                sep = ","
        yield "]"
        unknown = [n for n in names if registry.row(n) is None] if names else None
        if unknown:
            yield ',"unknownKey":'
            yield json.dumps(unknown)
        yield "}"

    return Streamed(parts)


# Keys whose new value is used by reconnecting at once (security white paper A01: a new
# AuthorizationKey -> disconnect and reconnect with it), after the confirmation is sent.
# AuthorizationKeyAsText changes the password on the wire just as much.
_RECONNECT_KEYS = ("AuthorizationKey", "AuthorizationKeyAsText")


async def change_configuration(cp, payload):
    status = cp.config.change(payload["key"], payload["value"])
    if status == "Accepted" and payload["key"] in _RECONNECT_KEYS and cp.link is not None:
        return {"status": status}, cp.link.reconnect
    return {"status": status}


def entries(config, wanted=None):
    """Yield (name, readonly, value-or-None, known) for GetConfiguration.

    Without `wanted`: every readable key; the Vendor keys only with ReportVendorKeys."""
    ints = config.get("IntegerBooleans")
    if wanted:
        for name in wanted:
            r = registry.row(name)
            if r is None:
                yield name, True, None, False
            else:
                yield _entry(config, r, True, ints)
        return
    vendor = config.get("ReportVendorKeys")
    for r in registry.rows():
        if vendor or r[registry.PROFILE] != "Vendor":
            e = _entry(config, r, False, ints)
            if e is not None:
                yield e


def _entry(config, r, asked, ints):
    name = r[registry.NAME]
    if "secret" in r[registry.ACCESS] or not registry.readable(r):
        # known, but never read back (AuthorizationKey): only when asked for by name
        return (name, False, None, True) if asked else None
    return name, not registry.writable(r), registry.render(r, config.value_of(r), ints), True
