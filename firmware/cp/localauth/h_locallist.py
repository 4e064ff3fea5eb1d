# SendLocalList and GetLocalListVersion (OCPP 1.6 §5.15, §5.10; the store: cp/localauth/local_list.py).
# With LocalAuthListEnabled false the list is not used: SendLocalList answers NotSupported and
# GetLocalListVersion -1 (TC_042_1), the list on flash is kept for when it is enabled again.
import lazy


def _enabled(cp):
    return cp.local_list is not None and cp.config.get("LocalAuthListEnabled")


async def send_local_list(cp, payload):
    if not _enabled(cp):
        return {"status": "NotSupported"}
    cfg = cp.config
    status = await lazy.load("cp.localauth.local_list").update(
        cp.local_list.path,
        payload["listVersion"],
        payload["updateType"] == "Full",
        payload.get("localAuthorizationList") or (),
        cfg.get("SendLocalListMaxLength"),
        cfg.get("LocalAuthListMaxLength"),
    )
    return {"status": status}


async def get_local_list_version(cp, payload):
    if not _enabled(cp):
        return {"listVersion": -1}
    return {"listVersion": lazy.load("cp.localauth.local_list").version(cp.local_list.path)}
