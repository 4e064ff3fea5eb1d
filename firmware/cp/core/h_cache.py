# ClearCache (OCPP 1.6 §5.4): empty the Authorization Cache. A charge point whose cache is
# disabled answers Rejected (OCPP 1.6 errata §3.23); TC_061 expects Accepted with it enabled.


async def clear_cache(cp, payload):
    if not cp.config.get("AuthorizationCacheEnabled"):
        return {"status": "Rejected"}
    cp.auth().clear_cache()
    return {"status": "Accepted"}
