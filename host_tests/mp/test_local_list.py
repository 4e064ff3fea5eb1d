# The Local Authorization List store (cp.local_list), its handlers (cp.localauth.h_locallist) and the
# resident reference main.LocalListRef: versions, Full / Differential, limits, case-insensitive
# keys, the file format, atomic replacement and RAM that does not grow with the list.
import asyncio
import gc
import os
import random

import mptmp
from cp import clock
from cp.config import Config
from cp.localauth import local_list as ll
from cp.localauth.h_locallist import get_local_list_version, send_local_list
from main import LocalListRef
from store import atomic

PATH = mptmp.path("mp_test_local_list.bin")
CONFIG = mptmp.path("mp_test_local_list_config.json")
BIG = 100000


def fresh():
    atomic.remove(PATH)
    atomic.remove(PATH + ll.TMP_SUFFIX)


def entry(tag, status="Accepted", expiry=None, parent=None):
    info = {"status": status}
    if expiry:
        info["expiryDate"] = expiry
    if parent:
        info["parentIdTag"] = parent
    return {"idTag": tag, "idTagInfo": info}


def tags(prefix, n, start=0):
    return [entry("%s%05d" % (prefix, i)) for i in range(start, start + n)]


async def full(version, entries, max_send=BIG, max_total=BIG):
    return await ll.update(PATH, version, True, entries, max_send, max_total)


async def diff(version, entries, max_send=BIG, max_total=BIG):
    return await ll.update(PATH, version, False, entries, max_send, max_total)


def content():
    return [(k, i["status"]) for k, i in ll.records(PATH)]


def file_bytes():
    with open(PATH, "rb") as f:
        return f.read()


# --- lookups and versions --------------------------------------------------------------------
async def test_missing_list_is_empty_with_version_0():
    fresh()
    assert ll.version(PATH) == 0 and ll.count(PATH) == 0 and ll.get(PATH, "A") is None
    assert list(ll.records(PATH)) == []


async def test_full_list_lookup_is_case_insensitive_and_keeps_idtaginfo():
    fresh()
    exp = "2031-02-03T04:05:06Z"
    entries = [entry("tagB", "Blocked"), entry("TagA", expiry=exp, parent="Fleet-1"), entry("c", "Expired")]
    assert await full(7, entries) == "Accepted"
    assert ll.version(PATH) == 7 and ll.count(PATH) == 3
    assert ll.get(PATH, "taga") == {"status": "Accepted", "expiryDate": exp, "parentIdTag": "Fleet-1"}
    assert ll.get(PATH, "TAGB") == {"status": "Blocked"}
    assert ll.get(PATH, "C") == {"status": "Expired"}
    assert ll.get(PATH, "TAG") is None and ll.get(PATH, "TAGAA") is None and ll.get(PATH, "") is None
    assert [k for k, _ in ll.records(PATH)] == ["C", "TAGA", "TAGB"]  # sorted normalised keys
    assert len(file_bytes()) == ll.HEAD + 3 * ll.REC


async def test_full_replaces_the_whole_list_and_empty_full_means_version_0():
    fresh()
    assert await full(3, tags("A", 5)) == "Accepted"
    assert await full(4, tags("B", 2)) == "Accepted"
    assert [k for k, _ in ll.records(PATH)] == ["B00000", "B00001"] and ll.version(PATH) == 4
    assert await full(9, []) == "Accepted"
    assert ll.version(PATH) == 0 and ll.count(PATH) == 0  # TC_042_2: empty list -> 0
    assert await full(2, tags("C", 1)) == "Accepted"  # a Full may lower the version
    assert ll.version(PATH) == 2


async def test_differential_adds_replaces_and_deletes():
    fresh()
    assert await full(3, [entry("A"), entry("B"), entry("D")]) == "Accepted"
    # C added, A deleted (no idTagInfo), B replaced, a deletion of an unlisted tag is no change
    upd = [entry("c"), {"idTag": "a"}, entry("B", "Blocked", parent="P"), {"idTag": "ZZ"}]
    assert await diff(4, upd) == "Accepted"
    assert ll.version(PATH) == 4
    assert content() == [("B", "Blocked"), ("C", "Accepted"), ("D", "Accepted")]
    assert ll.get(PATH, "b")["parentIdTag"] == "P" and ll.get(PATH, "A") is None
    assert await diff(5, []) == "Accepted"  # no entries: only the version moves
    assert ll.version(PATH) == 5 and ll.count(PATH) == 3


async def test_differential_not_newer_is_version_mismatch_and_changes_nothing():
    fresh()
    assert await full(2, [entry("A")]) == "Accepted"
    assert await diff(5, [entry("B")]) == "Accepted"
    before = file_bytes()
    assert await diff(4, [entry("C")]) == "VersionMismatch"  # TC_043_2
    assert await diff(5, [entry("C")]) == "VersionMismatch"  # equal is not newer
    assert file_bytes() == before and ll.version(PATH) == 5


async def test_differential_on_an_empty_list_starts_from_version_0():
    fresh()
    assert await diff(0, [entry("A")]) == "VersionMismatch"
    assert await diff(1, [entry("A")]) == "Accepted"
    assert ll.version(PATH) == 1 and content() == [("A", "Accepted")]
    assert await diff(2, [{"idTag": "A"}]) == "Accepted"
    assert ll.version(PATH) == 0 and ll.count(PATH) == 0  # emptied: version 0 again


# --- refused messages: Failed, nothing changed ------------------------------------------------
async def test_refused_messages_leave_list_and_version_unchanged():
    fresh()
    assert await full(3, tags("A", 10)) == "Accepted"
    before = file_bytes()
    refused = [
        full(4, tags("B", 11), max_send=10),  # more than SendLocalListMaxLength
        diff(4, tags("B", 11), max_send=10),
        full(4, tags("B", 11), max_total=10),  # more than LocalAuthListMaxLength
        diff(4, tags("B", 1), max_total=10),  # the merged list would exceed it
        full(4, [entry("X"), entry("x")]),  # an idTag twice (case-insensitive)
        diff(4, [entry("X"), {"idTag": "X"}]),
        full(4, [entry("X"), {"idTag": "Y"}]),  # a Full entry without idTagInfo
        full(4, [entry("X" * 21)]),  # longer than an IdToken
        full(4, [entry("Ä" * 11)]),  # 22 bytes once encoded
        full(4, [entry("X", parent="P" * 21)]),
        full(4, [entry("X", expiry="tomorrow")]),
        full(0, [entry("X")]),  # version 0 means an empty list
        full(-1, [entry("X")]),
    ]
    for i, call in enumerate(refused):
        assert await call == "Failed", i
        assert file_bytes() == before, i
    # within the limits: a replacement and a deletion keep the count, so a full list takes them
    assert await diff(4, [entry("A00000", "Blocked"), {"idTag": "A00001"}], max_total=10) == "Accepted"
    assert await diff(5, [entry("B")], max_total=10) == "Accepted"
    assert ll.count(PATH) == 10


async def test_flash_failure_is_failed_and_keeps_the_old_list():
    fresh()
    assert await full(3, tags("A", 4)) == "Accepted"
    before = file_bytes()
    os.mkdir(PATH + ll.TMP_SUFFIX)  # the temp file cannot be created
    try:
        assert await full(4, tags("B", 2)) == "Failed"
        assert await diff(4, tags("B", 2)) == "Failed"
    finally:
        os.rmdir(PATH + ll.TMP_SUFFIX)
    assert file_bytes() == before


async def test_damaged_file_reads_as_an_empty_list():
    fresh()
    with open(PATH, "wb") as f:
        f.write(b"garbage!garbage!")
    assert ll.version(PATH) == 0 and ll.get(PATH, "garbage!") is None
    assert await full(1, [entry("A")]) == "Accepted" and ll.get(PATH, "A") is not None


# --- a long list, chunked like a backend sends it -----------------------------------------------
async def test_chunked_full_list_and_random_differentials_match_a_model():
    fresh()
    random.seed(5)
    model = {}
    for v in range(1, 9):
        chunk = tags("T", 100, (v - 1) * 100)
        chunk.sort(key=lambda e: random.getrandbits(16))  # the backend's order does not matter
        update = full if v == 1 else diff
        assert await update(v, chunk, max_send=100, max_total=10000) == "Accepted"
        for e in chunk:
            model[e["idTag"]] = "Accepted"
    upd = []
    for i in range(100):
        tag = "T%05d" % random.getrandbits(10)
        if any(e["idTag"].upper() == tag for e in upd):
            continue
        if i % 2:
            upd.append({"idTag": tag})
            model.pop(tag, None)
        else:
            upd.append(entry(tag.lower(), "Blocked"))
            model[tag] = "Blocked"
    assert await diff(100, upd, max_send=100, max_total=10000) == "Accepted"
    assert ll.version(PATH) == 100 and ll.count(PATH) == len(model)
    n = 0
    for (k, info), want in zip(ll.records(PATH), sorted(model)):  # streamed: the list is long
        assert k == want and info["status"] == model[want], (k, want)
        n += 1
    assert n == len(model)
    for tag, status in model.items():
        assert ll.get(PATH, tag.lower())["status"] == status


def _allocated(coro):
    # RAM allocated while the update runs (collector off: an upper bound of its peak).
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        result = asyncio.run(coro)
        return result, gc.mem_alloc() - before
    finally:
        gc.enable()


def test_differential_ram_does_not_grow_with_the_list():
    fresh()
    upd = [entry("U%05d" % i) for i in range(100)]
    asyncio.run(full(1, tags("A", 100)))
    small = _allocated(diff(2, upd))
    fresh()
    asyncio.run(full(1, tags("A", 100)))
    for v in range(2, 22):
        asyncio.run(diff(v, tags("A", 100, v * 100)))
    large = _allocated(diff(30, upd))
    assert small[0] == large[0] == "Accepted"
    assert ll.count(PATH) == 2200
    # 20x the list, the same allocations: they depend on the update, not on the records copied
    assert large[1] < small[1] + 512, (small[1], large[1])


def test_lookup_allocates_little():
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        info = ll.get(PATH, "a01000")
        used = gc.mem_alloc() - before
    finally:
        gc.enable()
    assert info == {"status": "Accepted"}
    assert used < 1500, used


# --- handlers and the resident reference ----------------------------------------------------------
class FakeCp:
    def __init__(self, **keys):
        atomic.remove(CONFIG)
        self.config = Config(CONFIG)
        for name, value in keys.items():
            assert self.config.change(name, value) == "Accepted", name
        self.local_list = LocalListRef(PATH, self.config)
        self.status = [("Available", "NoError", None), ("Charging", "NoError", None)]
        self.sent = []

    def send_later(self, action, payload):
        self.sent.append((action, payload))


def send(version, kind, entries=None):
    payload = {"listVersion": version, "updateType": kind}
    if entries is not None:
        payload["localAuthorizationList"] = entries
    return payload


async def test_handlers_answer_versions_and_statuses():
    fresh()
    cp = FakeCp()
    assert await get_local_list_version(cp, {}) == {"listVersion": 0}
    assert await send_local_list(cp, send(1, "Full")) == {"status": "Accepted"}  # TC_042_2
    assert await get_local_list_version(cp, {}) == {"listVersion": 0}
    assert await send_local_list(cp, send(2, "Full", [entry("A")])) == {"status": "Accepted"}
    assert await send_local_list(cp, send(5, "Differential", [entry("B")])) == {"status": "Accepted"}
    assert await send_local_list(cp, send(4, "Differential", [entry("C")])) == {"status": "VersionMismatch"}
    assert await get_local_list_version(cp, {}) == {"listVersion": 5}
    too_many = tags("M", 101)  # SendLocalListMaxLength = 100
    assert await send_local_list(cp, send(6, "Full", too_many)) == {"status": "Failed"}
    assert await get_local_list_version(cp, {}) == {"listVersion": 5}
    assert cp.local_list.get("a") == {"status": "Accepted"} and cp.local_list.get("C") is None


async def test_disabled_list_is_not_supported_and_not_consulted():
    fresh()
    cp = FakeCp()
    assert await send_local_list(cp, send(3, "Full", [entry("A")])) == {"status": "Accepted"}
    assert cp.config.change("LocalAuthListEnabled", "false") == "Accepted"
    assert await get_local_list_version(cp, {}) == {"listVersion": -1}  # TC_042_1
    assert await send_local_list(cp, send(4, "Full", [])) == {"status": "NotSupported"}
    assert cp.local_list.get("A") is None
    assert cp.config.change("LocalAuthListEnabled", "true") == "Accepted"
    assert cp.local_list.get("A") == {"status": "Accepted"}  # kept meanwhile
    assert await get_local_list_version(cp, {}) == {"listVersion": 3}


def test_conflict_is_a_status_notification_on_connector_0():
    cp = FakeCp()
    assert not ll.report_conflict(cp, {"status": "Accepted"}, {"status": "Accepted"})
    past = clock.iso(clock.now() - 60)
    assert not ll.report_conflict(cp, {"status": "Accepted", "expiryDate": past}, {"status": "Expired"})
    assert cp.sent == []
    assert ll.report_conflict(cp, {"status": "Accepted"}, {"status": "Blocked"})
    assert ll.report_conflict(cp, {"status": "Accepted", "expiryDate": past}, {"status": "Accepted"})
    action, payload = cp.sent[0]
    assert action == "StatusNotification" and len(cp.sent) == 2
    assert payload["connectorId"] == 0 and payload["errorCode"] == "LocalListConflict"
    assert payload["status"] == "Available" and clock.parse_iso(payload["timestamp"]) is not None
