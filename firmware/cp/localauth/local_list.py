# The Local Authorization List on flash (OCPP 1.6 §3.5.3, §5.15, §6.41), loaded for a lookup or
# an update and dropped after; the resident part is the tiny LocalListRef of main.py.
#
# One file: a 12-byte header (magic, listVersion, entry count) and the entries as fixed-width
# records sorted by their key, so a lookup is a binary search by seek (about 14 reads of 20 bytes
# at 10,000 entries) and nothing of the list is held in RAM. A record (REC bytes):
#   key     20  the idTag normalised for the case-insensitive IdToken (upper case), NUL padded
#   status   1  index in _STATUSES
#   until    4  expiryDate in seconds since 2020 (big-endian, 0 = none, 1 = already past)
#   parent  20  parentIdTag as the backend sent it, NUL padded (empty = none)
# The version is in the same file as the entries: both change together. Every update writes a
# temp file and renames it over the list (littlefs renames atomically): a power cut leaves the
# old list with its version or the new one, never a mix. A Differential update merges the sorted
# file with the sorted update into the temp file, copying the unchanged runs a buffer at a time:
# its RAM does not grow with the list.
#
# Lists longer than SendLocalListMaxLength: OCPP 1.6 lets a SendLocalList carry at most that many
# entries, so a backend sends a long list as a Full with the first chunk and then Differentials
# with increasing versions. Each message is applied on its own and atomically: after a power cut
# the list is the one of the last message answered Accepted (or of the one being applied, if its
# rename happened), with that message's version; GetLocalListVersion tells the backend where to
# resume. An empty list has version 0 (GetLocalListVersion answers 0 for it, TC_042_2).
import asyncio
import os
import struct

from micropython import const

from cp import clock

KEY = const(20)  # IdToken: CiString20Type
REC = const(45)  # KEY + 1 + 4 + KEY
HEAD = const(12)
_MAGIC = b"LAL1"
_HEAD_FMT = ">4siI"
_EPOCH_2020 = const(1577836800)
_STATUSES = ("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx")
_COPY_RECORDS = const(22)  # records per buffer while merging (~1 KB)
TMP_SUFFIX = ".tmp"  # store/atomic's suffix: main removes a temp file a power cut left


def _pad(data):
    return data + b"\0" * (KEY - len(data))


def key(id_tag):
    """The normalised, padded key of id_tag, or None when it cannot be in the list."""
    if not isinstance(id_tag, str) or not id_tag:
        return None
    k = id_tag.upper().encode()
    return _pad(k) if len(k) <= KEY else None


def _header(f):
    """(version, count) of an open list file, or None when it is not a list file."""
    head = f.read(HEAD)
    if len(head) != HEAD:
        return None
    magic, version, count = struct.unpack(_HEAD_FMT, head)
    return (version, count) if magic == _MAGIC else None


def _open(path):
    """(file, version, count) or None: a missing or unreadable file is an empty list."""
    try:
        f = open(path, "rb")
    except OSError:
        return None
    h = _header(f)
    if h is None:
        f.close()
        return None
    return f, h[0], h[1]


def _find(f, count, k, buf):
    """(index, found): where key k is, or would be inserted, among the count records of f."""
    lo, hi = 0, count
    while lo < hi:
        mid = (lo + hi) // 2
        f.seek(HEAD + mid * REC)
        f.readinto(buf)
        if buf == k:
            return mid, True
        if buf < k:
            lo = mid + 1
        else:
            hi = mid
    return lo, False


def _size(path):
    # (listVersion, entries) of the stored list; (0, 0) when it is empty or missing.
    o = _open(path)
    if o is None:
        return 0, 0
    o[0].close()
    return o[1], o[2]


def version(path):
    """The listVersion of the stored list; 0 when it is empty or missing."""
    return _size(path)[0]


def count(path):
    return _size(path)[1]


def _text(field):
    end = field.find(b"\0")
    return bytes(field if end < 0 else field[:end]).decode()


def info(rec):
    """The idTagInfo of a record (the stored status; cp/core/auth.py reads a past expiryDate as Expired)."""
    result = {"status": _STATUSES[rec[KEY]] if rec[KEY] < len(_STATUSES) else "Invalid"}
    until = struct.unpack_from(">I", rec, KEY + 1)[0]
    if until:
        result["expiryDate"] = clock.iso(until + _EPOCH_2020)
    parent = _text(rec[KEY + 5 :])
    if parent:
        result["parentIdTag"] = parent
    return result


def get(path, id_tag):
    """The idTagInfo of id_tag in the list, or None when it is not listed."""
    k = key(id_tag)
    if k is None:
        return None
    o = _open(path)
    if o is None:
        return None
    f, _, n = o
    with f:
        i, found = _find(f, n, k, bytearray(KEY))
        if not found:
            return None
        rec = bytearray(REC)
        f.seek(HEAD + i * REC)
        f.readinto(rec)
        return info(rec)


def lookup(ref, id_tag):
    """main.LocalListRef.get: None while LocalAuthListEnabled is false (the list is kept)."""
    return get(ref.path, id_tag) if ref.config.get("LocalAuthListEnabled") else None


def records(path):
    """Every (idTag key as str, idTagInfo) in key order, one at a time (tests, the bench)."""
    o = _open(path)
    if o is None:
        return
    f, _, n = o
    rec = bytearray(REC)
    with f:
        for _ in range(n):
            f.readinto(rec)
            yield _text(rec[:KEY]), info(rec)


# --- updates -----------------------------------------------------------------------------------
def record(id_tag, id_tag_info):
    """The record of one SendLocalList entry; its bare key for a deletion (no idTagInfo);
    None when it cannot be stored (an idTag or parentIdTag over 20 bytes, a bad expiryDate)."""
    k = key(id_tag)
    if k is None or not isinstance(id_tag_info, dict):
        return k
    status = id_tag_info.get("status")
    if status not in _STATUSES:
        return None
    until = 0
    expiry = id_tag_info.get("expiryDate")
    if expiry is not None:
        t = clock.parse_iso(expiry) if isinstance(expiry, str) else None
        if t is None:
            return None
        until = min(max(t - _EPOCH_2020, 1), 0xFFFFFFFF)
    parent = id_tag_info.get("parentIdTag") or ""
    if not isinstance(parent, str):
        return None
    parent = parent.encode()
    if len(parent) > KEY:
        return None
    return k + struct.pack(">BI", _STATUSES.index(status), until) + _pad(parent)


def _prepare(entries, full):
    """The sorted records (and keys to delete) of a message, or None when it cannot be applied:
    an entry that cannot be stored, an idTag twice, a Full entry without idTagInfo."""
    recs = []
    for e in entries:
        r = record(e.get("idTag"), e.get("idTagInfo"))
        if r is None or (full and len(r) == KEY):
            return None
        recs.append(r)
    recs.sort()
    for i in range(1, len(recs)):
        if recs[i][:KEY] == recs[i - 1][:KEY]:
            return None
    return recs


def _write_header(f, version, n):
    f.write(struct.pack(_HEAD_FMT, _MAGIC, version if n else 0, n))


async def update(path, list_version, full, entries, max_send, max_total):
    """Apply one SendLocalList: its UpdateStatus (Accepted, Failed, VersionMismatch). Anything
    but Accepted leaves the list and its version as they were."""
    if len(entries) > max_send:
        return "Failed"
    if not full and list_version <= version(path):
        return "VersionMismatch"
    recs = _prepare(entries, full)
    if recs is None or (recs and list_version < 1):  # 0 and -1 mean empty / no list (errata §3.52)
        return "Failed"
    tmp = path + TMP_SUFFIX
    try:
        if full:
            if len(recs) > max_total:
                return "Failed"
            with open(tmp, "wb") as out:
                _write_header(out, list_version, len(recs))
                for r in recs:
                    out.write(r)
        elif not await _merge(path, tmp, list_version, recs, max_total):
            return "Failed"
        os.rename(tmp, path)
    except OSError:  # flash full or failing: the old list stays
        try:
            os.remove(tmp)
        except OSError:
            pass
        return "Failed"
    return "Accepted"


async def _merge(path, tmp, list_version, recs, max_total):
    """Write the list with a Differential's sorted records applied to tmp; False (nothing
    written) when the result would exceed max_total entries. Yields to the safety loop and the
    link between buffers: a 10,000-entry copy takes a while on a board's flash."""
    o = _open(path)
    f, _, n = o if o is not None else (None, 0, 0)
    try:
        buf = bytearray(REC * _COPY_RECORDS)
        kbuf = bytearray(KEY)
        places = []
        total = n
        for r in recs:
            i, found = _find(f, n, r[:KEY], kbuf) if f is not None else (0, False)
            places.append((i, found))
            if len(r) == KEY:
                total -= found
            elif not found:
                total += 1
        if total > max_total:
            return False
        with open(tmp, "wb") as out:
            _write_header(out, list_version, total)
            done = 0  # records of the old list written or dropped so far
            for j in range(len(recs)):
                i, found = places[j]
                await _copy(f, out, done, i, buf)
                if len(recs[j]) == REC:
                    out.write(recs[j])
                done = i + 1 if found else i  # a replaced or deleted record is skipped
            await _copy(f, out, done, n, buf)
        return True
    finally:
        if f is not None:
            f.close()


async def _copy(f, out, start, end, buf):
    """Copy records [start, end) of the old list to out."""
    if start >= end:
        return
    f.seek(HEAD + start * REC)
    left = (end - start) * REC
    while left >= len(buf):  # whole buffers: no slice allocated
        f.readinto(buf)
        out.write(buf)
        left -= len(buf)
        await asyncio.sleep_ms(0)
    if left:
        part = memoryview(buf)[:left]
        f.readinto(part)
        out.write(part)


def report_conflict(cp, listed, backend):
    """OCPP 1.6 §3.5.3: the backend's idTagInfo for a listed idTag disagrees with the list entry
    (`listed`, as get() answered): a StatusNotification on connector 0 with errorCode
    LocalListConflict (the connector's status as it is; the list is not changed). True if sent."""
    mine = listed.get("status")
    expiry = listed.get("expiryDate")
    if mine != "Expired" and expiry:
        t = clock.parse_iso(expiry)
        if t is not None and t <= clock.now():
            mine = "Expired"
    if mine == backend.get("status"):
        return False
    cp.send_later(
        "StatusNotification",
        {
            "connectorId": 0,
            "status": cp.status[0][0],
            "errorCode": "LocalListConflict",
            "timestamp": clock.iso(),
        },
    )
    return True
