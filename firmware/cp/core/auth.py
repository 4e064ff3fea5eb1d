# Authorization of an identifier (idTag), OCPP 1.6 §3.5: the backend when online; the Local
# Authorization List and the Authorization Cache when offline or, with LocalPreAuthorize, at once.
#
# The cache (cp/core/auth_cache.py) learns from Authorize.conf here and, through update(), from
# StartTransaction.conf and StopTransaction.conf. It never holds identifiers of the local list
# (the list has priority).
import lazy
from ocpp.rpc import CallError, CallTimeout
from ocpp.ws import ConnectionClosed


def _same(a, b):
    # IdToken is a case-insensitive string.
    return bool(a) and bool(b) and a.upper() == b.upper()


class Auth:
    def __init__(self, cp, path):
        self._cp = cp
        self._path = path
        # the Local Authorization List: get(id_tag) -> idTagInfo or None (the charge point's)
        self.local_list = getattr(cp, "local_list", None)
        self._store = lazy.load("cp.core.auth_cache")  # lives as long as this object
        self._cache = self._store.Cache(path)

    # --- local lookups -------------------------------------------------------------------------
    def local(self, id_tag):
        """idTagInfo from the local list, else the cache (if enabled), or None. Expired entries
        read as status Expired."""
        info = self._listed(id_tag)
        if info is not None:
            return self._store.as_expired(info)
        return self._cache.get(id_tag) if self._cache_on() else None

    def _listed(self, id_tag):
        # The list's get() answers None while the list is disabled (LocalAuthListEnabled false).
        return self.local_list.get(id_tag) if self.local_list is not None else None

    def _cache_on(self):
        return self._cp.config.get("AuthorizationCacheEnabled")

    # --- authorization -------------------------------------------------------------------------
    async def authorize(self, id_tag):
        """The idTagInfo that decides whether id_tag may charge. Never raises for network trouble."""
        if not self._store.usable(id_tag):
            return {"status": "Invalid"}
        cfg = self._cp.config
        hit = None
        if cfg.get("LocalPreAuthorize"):  # else the local data matter only without an answer
            hit = self.local(id_tag)
            if hit is not None and hit["status"] == "Accepted":
                return hit
        # Online a not-valid local entry is not trusted: the backend is asked again.
        if self._cp.online() is not None:
            info = await self._ask(id_tag)
            if info is not None:
                return info
        hit = self.local(id_tag)  # (again: the list or the cache may have changed meanwhile)
        # Offline. A known not-valid identifier is refused even with AllowOfflineTxForUnknownId
        # (§3.5.4); a valid one authorizes only with LocalAuthorizeOffline, else it counts as unknown.
        if hit is not None and (hit["status"] != "Accepted" or cfg.get("LocalAuthorizeOffline")):
            return hit
        return {"status": "Accepted" if cfg.get("AllowOfflineTxForUnknownId") else "Invalid"}

    async def _ask(self, id_tag):
        """Authorize.req: the backend's idTagInfo (now in the cache), or None when it did not answer."""
        rpc = self._cp.online()
        if rpc is None:
            return None
        try:
            conf = await rpc.call("Authorize", {"idTag": id_tag}, self._cp.config.get("MessageTimeout"))
        except (CallError, CallTimeout, ConnectionClosed):
            return None
        info = conf["idTagInfo"]
        listed = self._listed(id_tag)
        if listed is not None:  # the backend disagrees with the list: LocalListConflict (§3.5.3)
            lazy.load("cp.localauth.local_list").report_conflict(self._cp, listed, info)
        self.update(id_tag, info)
        return info

    async def parent_of(self, id_tag):
        """parentIdTag of id_tag from the list or cache, else from an Authorize.req when online;
        None when it has none or it cannot be known."""
        if not self._store.usable(id_tag):
            return None
        info = self.local(id_tag)
        if info is None:
            info = await self._ask(id_tag)
            if info is None:
                return None
        return info.get("parentIdTag")

    async def may_stop(self, start_tag, start_parent, presented):
        """May `presented` stop a transaction started by start_tag (whose parentIdTag was
        start_parent)? The same identifier, or one with the same parentIdTag (§4.10, TC_069).
        Without a start parent no Authorize.req is sent for another identifier (TC_068)."""
        if _same(presented, start_tag):
            return True
        if not start_parent:
            return False
        return _same(await self.parent_of(presented), start_parent)

    # --- the cache -----------------------------------------------------------------------------
    def update(self, id_tag, id_tag_info):
        """Record the backend's latest idTagInfo for id_tag (Authorize, StartTransaction and
        StopTransaction.conf); list entries are never cached."""
        if self._cache_on() and self._listed(id_tag) is None:
            self._cache.put(id_tag, id_tag_info)

    def clear_cache(self):
        self._cache.clear()
