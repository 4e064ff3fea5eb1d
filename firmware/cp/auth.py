# Authorization of an identifier (idTag), OCPP 1.6 §3.5: the backend when online; the Local
# Authorization List and the Authorization Cache when offline or, with LocalPreAuthorize, at once.
#
# The cache holds the latest idTagInfo of every identifier presented (valid or not), learnt from
# Authorize.conf and, through update(), from StartTransaction.conf and StopTransaction.conf. It
# never holds identifiers of the local list (the list has priority). It keeps at most CACHE_MAX
# entries, is written atomically on every change and reloaded at boot.
# An entry is idTag -> (status, until, parentIdTag or None, age): status is one of the _STATUSES
# constants; until is the expiryDate in seconds since 2020 (0 = none), a small int on 32-bit ports
# until 2054 where epoch seconds would be a boxed one; age orders entries for eviction (larger =
# more recently updated). The file is this dict as JSON, streamed by json.dump: saving builds no
# copy of the cache in RAM.
from micropython import const

from cp import clock
from ocpp.rpc import CallError, CallTimeout
from ocpp.ws import ConnectionClosed
from store import atomic

CACHE_MAX = const(64)
ID_TAG_MAX_LEN = const(20)  # OCPP 1.6 IdToken: CiString20Type

_EPOCH_2020 = const(1577836800)
_STATUSES = ("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx")

_STATUS = const(0)
_UNTIL = const(1)
_PARENT = const(2)
_AGE = const(3)


def _usable(id_tag):
    return isinstance(id_tag, str) and 0 < len(id_tag) <= ID_TAG_MAX_LEN


def _same(a, b):
    # IdToken is a case-insensitive string.
    return bool(a) and bool(b) and a.upper() == b.upper()


def _until(info):
    """The expiryDate of an idTagInfo in seconds since 2020 (at least 1), or 0 without one."""
    text = info.get("expiryDate")
    t = clock.parse_iso(text) if isinstance(text, str) else None
    if t is None:
        return 0
    return max(t - _EPOCH_2020, 1)


def _past(until):
    return until and until <= clock.now() - _EPOCH_2020


def _as_expired(info):
    """A list entry whose expiryDate has passed reads as Expired (the list itself is not changed)."""
    if info.get("status") != "Expired" and _past(_until(info)):
        info = dict(info)
        info["status"] = "Expired"
    return info


class Auth:
    def __init__(self, cp, path):
        self._cp = cp
        self._path = path
        # the Local Authorization List: get(id_tag) -> idTagInfo or None (the charge point's)
        self.local_list = getattr(cp, "local_list", None)
        self._cache = {}
        self._age = 0
        self._load()

    # --- local lookups -------------------------------------------------------------------------
    def local(self, id_tag):
        """idTagInfo from the local list, else the cache (if enabled), or None. Expired entries
        read as status Expired."""
        info = self._listed(id_tag)
        if info is not None:
            return _as_expired(info)
        if not self._cache_on():
            return None
        e = self._cache.get(id_tag)
        if e is None:
            return None
        info = {"status": "Expired" if _past(e[_UNTIL]) else e[_STATUS]}
        if e[_UNTIL]:
            info["expiryDate"] = clock.iso(e[_UNTIL] + _EPOCH_2020)
        if e[_PARENT] is not None:
            info["parentIdTag"] = e[_PARENT]
        return info

    def _listed(self, id_tag):
        # The list's get() answers None while the list is disabled (LocalAuthListEnabled false).
        return self.local_list.get(id_tag) if self.local_list is not None else None

    def _cache_on(self):
        return self._cp.config.get("AuthorizationCacheEnabled")

    # --- authorization -------------------------------------------------------------------------
    async def authorize(self, id_tag):
        """The idTagInfo that decides whether id_tag may charge. Never raises for network trouble."""
        if not _usable(id_tag):
            return {"status": "Invalid"}
        cfg = self._cp.config
        hit = self.local(id_tag)
        if hit is not None and hit["status"] == "Accepted" and cfg.get("LocalPreAuthorize"):
            return hit
        # Online a not-valid local entry is not trusted: the backend is asked again.
        if self._cp.online() is not None:
            info = await self._ask(id_tag)
            if info is not None:
                return info
            hit = self.local(id_tag)  # the list or the cache may have changed meanwhile
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
        self.update(id_tag, info)
        return info

    async def parent_of(self, id_tag):
        """parentIdTag of id_tag from the list or cache, else from an Authorize.req when online;
        None when it has none or it cannot be known."""
        if not _usable(id_tag):
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
        StopTransaction.conf)."""
        if not isinstance(id_tag_info, dict) or not _usable(id_tag) or not self._cache_on():
            return
        if self._listed(id_tag) is not None:
            return  # list entries are never cached
        e = self._entry(id_tag_info.get("status"), _until(id_tag_info), id_tag_info.get("parentIdTag"))
        old = self._cache.get(id_tag)
        if old is None and len(self._cache) >= CACHE_MAX:
            self._evict()
        self._cache[id_tag] = e
        # The same answer again only refreshes the age in RAM: no flash write for every card tap.
        if old is None or old[:_AGE] != e[:_AGE]:
            self._save()

    def _entry(self, status, until, parent, age=None):
        # The status as the shared constant; a parentIdTag as the string object an entry already
        # holds (cards of one fleet share their parent): no copies kept.
        status = _STATUSES[_STATUSES.index(status)] if status in _STATUSES else "Invalid"
        if not isinstance(parent, str):
            parent = None
        else:
            for e in self._cache.values():
                if e[_PARENT] == parent:
                    parent = e[_PARENT]
                    break
        if age is None:
            age = self._age + 1
        self._age = max(self._age, age)
        return (status, until, parent, age)

    def clear_cache(self):
        self._cache = {}
        atomic.remove(self._path)

    def _evict(self):
        # The oldest not-valid entry (not Accepted, or expired), else the oldest entry.
        victim = None
        victim_valid = True
        now = clock.now() - _EPOCH_2020  # once: the clock allocates on some ports (float time)
        for tag in self._cache:  # keys, not items(): no pair allocated per entry
            e = self._cache[tag]
            valid = e[_STATUS] == "Accepted" and not (e[_UNTIL] and e[_UNTIL] <= now)
            if (
                victim is None
                or (victim_valid and not valid)
                or (valid == victim_valid and e[_AGE] < self._cache[victim][_AGE])
            ):
                victim = tag
                victim_valid = valid
        del self._cache[victim]

    def _save(self):
        try:
            atomic.write_json(self._path, self._cache)
        except OSError:
            pass  # flash full or failing: the cache still works from RAM, the next change retries

    def _load(self):
        stored = atomic.read_json(self._path, None)
        if not isinstance(stored, dict):
            return
        for tag, row in stored.items():
            # A damaged entry is skipped, the others kept.
            if not _usable(tag) or not isinstance(row, list) or len(row) != 4:
                continue
            status, until, parent, age = row
            if status not in _STATUSES or not isinstance(until, int) or not isinstance(age, int):
                continue
            self._cache[tag] = self._entry(status, max(until, 0), parent, age)
            if len(self._cache) > CACHE_MAX:  # a file from a build with a larger cache
                self._evict()
