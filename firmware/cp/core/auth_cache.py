# The Authorization Cache on flash (OCPP 1.6 §3.5.1), loaded when it is read or written and
# dropped after (cp/core/auth.py reads it; a StartTransaction.conf or StopTransaction.conf only
# writes it, without the authorization rules).
#
# The cache holds the latest idTagInfo of every identifier presented (valid or not). It keeps
# at most CACHE_MAX entries, is written atomically on every change and reloaded at boot.
# An entry is idTag -> (status, until, parentIdTag or None, age): status is one of the _STATUSES
# constants; until is the expiryDate in seconds since 2020 (0 = none), a small int on 32-bit ports
# until 2054 where epoch seconds would be a boxed one; age orders entries for eviction (larger =
# more recently updated). The file is this dict as JSON, streamed by json.dump: saving builds no
# copy of the cache in RAM.
from micropython import const

from cp import clock
from store import atomic

CACHE_MAX = const(64)
ID_TAG_MAX_LEN = const(20)  # OCPP 1.6 IdToken: CiString20Type

_EPOCH_2020 = const(1577836800)
_STATUSES = ("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx")

_STATUS = const(0)
_UNTIL = const(1)
_PARENT = const(2)
_AGE = const(3)


def usable(id_tag):
    return isinstance(id_tag, str) and 0 < len(id_tag) <= ID_TAG_MAX_LEN


def _until(info):
    """The expiryDate of an idTagInfo in seconds since 2020 (at least 1), or 0 without one."""
    text = info.get("expiryDate")
    t = clock.parse_iso(text) if isinstance(text, str) else None
    if t is None:
        return 0
    return max(t - _EPOCH_2020, 1)


def _past(until):
    return until and until <= clock.now() - _EPOCH_2020


def as_expired(info):
    """An idTagInfo whose expiryDate has passed reads as Expired (the original is not changed)."""
    if info.get("status") != "Expired" and _past(_until(info)):
        info = dict(info)
        info["status"] = "Expired"
    return info


class Cache:
    def __init__(self, path):
        self._path = path
        self._cache = {}
        self._age = 0
        self._load()

    def get(self, id_tag):
        """The cached idTagInfo of id_tag (status Expired once its expiryDate passed), or None."""
        e = self._cache.get(id_tag)
        if e is None:
            return None
        info = {"status": "Expired" if _past(e[_UNTIL]) else e[_STATUS]}
        if e[_UNTIL]:
            info["expiryDate"] = clock.iso(e[_UNTIL] + _EPOCH_2020)
        if e[_PARENT] is not None:
            info["parentIdTag"] = e[_PARENT]
        return info

    def put(self, id_tag, id_tag_info):
        """Record the backend's latest idTagInfo for id_tag."""
        if not isinstance(id_tag_info, dict) or not usable(id_tag):
            return
        e = self._entry(id_tag_info.get("status"), _until(id_tag_info), id_tag_info.get("parentIdTag"))
        old = self._cache.get(id_tag)
        if old is None and len(self._cache) >= CACHE_MAX:
            self._evict()
        self._cache[id_tag] = e
        # The same answer again only refreshes the age in RAM: no flash write for every card tap.
        if old is None or old[:_AGE] != e[:_AGE]:
            self._save()

    def clear(self):
        self._cache = {}
        atomic.remove(self._path)

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
            if not usable(tag) or not isinstance(row, list) or len(row) != 4:
                continue
            status, until, parent, age = row
            if status not in _STATUSES or not isinstance(until, int) or not isinstance(age, int):
                continue
            self._cache[tag] = self._entry(status, max(until, 0), parent, age)
            if len(self._cache) > CACHE_MAX:  # a file from a build with a larger cache
                self._evict()
