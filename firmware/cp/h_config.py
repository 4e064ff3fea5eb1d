# GetConfiguration / ChangeConfiguration over the configuration registry.
from ocpp.rpc import CallError


async def get_configuration(cp, payload):
    names = payload.get("key") or None
    if names and len(names) > cp.config.get("GetConfigurationMaxKeys"):
        raise CallError("OccurenceConstraintViolation", "more keys than GetConfigurationMaxKeys")
    known = []
    unknown = []
    for name, readonly, value, found in cp.config.entries(names):
        if not found:
            unknown.append(name)
            continue
        entry = {"key": name, "readonly": readonly}
        if value is not None:
            entry["value"] = value
        known.append(entry)
    result = {"configurationKey": known}
    if unknown:
        result["unknownKey"] = unknown
    return result


# Keys whose new value is used by reconnecting at once (security white paper A01: a new
# AuthorizationKey -> disconnect and reconnect with it), after the confirmation is sent.
_RECONNECT_KEYS = ("AuthorizationKey",)


async def change_configuration(cp, payload):
    status = cp.config.change(payload["key"], payload["value"])
    if status == "Accepted" and payload["key"] in _RECONNECT_KEYS and cp.link is not None:
        return {"status": status}, cp.link.reconnect
    return {"status": status}
