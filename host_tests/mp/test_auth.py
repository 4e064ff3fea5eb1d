# Authorization (cp.core.auth) and the ClearCache handler: backend, cache, local list, offline rules.
import os

import mptmp
from cp import clock
from cp.config import Config
from cp.core.auth import Auth
from cp.core.auth_cache import CACHE_MAX
from cp.core.h_cache import clear_cache
from ocpp.rpc import CallError, CallTimeout
from ocpp.ws import ConnectionClosed
from store import atomic

CONFIG = mptmp.path("mp_test_auth_config.json")
CACHE = mptmp.path("mp_test_auth_cache.json")


def accepted(parent=None, expiry=None):
    info = {"status": "Accepted"}
    if parent:
        info["parentIdTag"] = parent
    if expiry:
        info["expiryDate"] = expiry
    return info


def conf(info):
    return {"idTagInfo": info}


def later(s):
    return clock.iso(clock.now() + s)


class FakeRpc:
    """Answers call() from a script: a payload is returned, an exception raised, a function run
    and its result used."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    async def call(self, action, payload, timeout_s=30):
        self.calls.append((action, payload, timeout_s))
        answer = self.answers.pop(0)
        if callable(answer):  # something happening while the request is out
            answer = answer()
        if isinstance(answer, Exception):
            raise answer
        return answer


class FakeList:
    def __init__(self, entries):
        self.entries = entries

    def get(self, id_tag):
        return self.entries.get(id_tag)


class FakeCp:
    def __init__(self, rpc=None, keep_cache=False, **keys):
        atomic.remove(CONFIG)
        if not keep_cache:
            atomic.remove(CACHE)
        self.config = Config(CONFIG)
        for name, value in keys.items():
            assert self.config.change(name, value) in ("Accepted", "RebootRequired"), name
        self.rpc = rpc
        self.a = Auth(self, CACHE)  # the charge point makes one per use; tests keep one
        self.status = [("Available", "NoError", None)]
        self.sent = []

    def send_later(self, action, payload):
        self.sent.append((action, payload))

    def auth(self):
        return self.a

    def online(self):  # the charge point's: the connection once registered (Accepted)
        return self.rpc


def stored():
    return atomic.read_json(CACHE, None)


# --- online ----------------------------------------------------------------------------------
async def test_online_asks_backend_with_message_timeout_and_caches_the_answer():
    expiry = later(3600)
    rpc = FakeRpc(conf(accepted("P1", expiry)))
    cp = FakeCp(rpc, MessageTimeout="7")
    info = await cp.a.authorize("TAG1")
    assert info == accepted("P1", expiry)
    assert rpc.calls == [("Authorize", {"idTag": "TAG1"}, 7)]
    assert cp.a.local("TAG1") == accepted("P1", expiry)
    assert Auth(cp, CACHE).local("TAG1") == accepted("P1", expiry)  # on flash at once


async def test_not_valid_answer_is_cached_too():
    cp = FakeCp(FakeRpc(conf({"status": "Blocked"})))
    assert await cp.a.authorize("BAD") == {"status": "Blocked"}
    assert cp.a.local("BAD") == {"status": "Blocked"}


async def test_without_local_pre_authorize_a_cached_tag_is_still_asked():
    rpc = FakeRpc(conf({"status": "Invalid"}))
    cp = FakeCp(rpc)
    cp.a.update("TAG1", accepted())
    assert await cp.a.authorize("TAG1") == {"status": "Invalid"}
    assert len(rpc.calls) == 1
    assert cp.a.local("TAG1") == {"status": "Invalid"}  # the backend's newer answer replaced it


async def test_local_pre_authorize_valid_hit_starts_without_a_request():
    rpc = FakeRpc()
    cp = FakeCp(rpc, LocalPreAuthorize="true")
    cp.a.update("TAG1", accepted("P1"))
    assert await cp.a.authorize("TAG1") == accepted("P1")
    assert rpc.calls == []  # TC_007: no Authorize.req for a cached tag


async def test_local_pre_authorize_not_valid_hit_is_asked_again_online():
    rpc = FakeRpc(conf(accepted()))
    cp = FakeCp(rpc, LocalPreAuthorize="true")
    cp.a.update("TAG1", {"status": "Blocked"})
    assert await cp.a.authorize("TAG1") == accepted()
    assert len(rpc.calls) == 1
    assert cp.a.local("TAG1") == accepted()


async def test_expired_entry_reads_expired_and_is_asked_again():
    past = clock.iso(clock.now() - 10)
    rpc = FakeRpc(conf(accepted(expiry=later(3600))))
    cp = FakeCp(rpc, LocalPreAuthorize="true")
    cp.a.update("TAG1", accepted(expiry=past))
    assert cp.a.local("TAG1") == {"status": "Expired", "expiryDate": past}
    assert (await cp.a.authorize("TAG1"))["status"] == "Accepted"
    assert len(rpc.calls) == 1


async def test_entry_expires_while_cached():
    cp = FakeCp(LocalPreAuthorize="true")
    cp.a.update("TAG1", accepted(expiry=later(60)))
    assert cp.a.local("TAG1")["status"] == "Accepted"
    saved = clock.now()
    clock.set_utc(saved + 90)  # presented 90 s later, offline
    try:
        assert (await cp.a.authorize("TAG1"))["status"] == "Expired"
    finally:
        clock.set_utc(saved)


# --- offline and failed requests -------------------------------------------------------------
async def test_offline_cached_valid_tag_is_accepted():
    cp = FakeCp()  # LocalAuthorizeOffline defaults to true
    cp.a.update("TAG1", accepted("P1"))
    assert await cp.a.authorize("TAG1") == accepted("P1")


async def test_offline_expired_tag_is_refused_as_expired():
    cp = FakeCp(AllowOfflineTxForUnknownId="true")
    cp.a.update("TAG1", accepted(expiry=clock.iso(clock.now() - 1)))
    assert (await cp.a.authorize("TAG1"))["status"] == "Expired"


async def test_offline_known_not_valid_tag_is_refused_even_with_unknown_allowed():
    for local_offline in ("true", "false"):
        cp = FakeCp(AllowOfflineTxForUnknownId="true", LocalAuthorizeOffline=local_offline)
        cp.a.update("BAD", {"status": "Blocked"})
        assert await cp.a.authorize("BAD") == {"status": "Blocked"}


async def test_offline_unknown_tag():
    cp = FakeCp()
    assert await cp.a.authorize("NEW") == {"status": "Invalid"}
    cp = FakeCp(AllowOfflineTxForUnknownId="true")
    assert await cp.a.authorize("NEW") == {"status": "Accepted"}
    assert cp.a.local("NEW") is None  # an offline decision is not the backend's: not cached


async def test_offline_without_local_authorize_offline_a_cached_tag_counts_as_unknown():
    cp = FakeCp(LocalAuthorizeOffline="false")
    cp.a.update("TAG1", accepted())
    assert await cp.a.authorize("TAG1") == {"status": "Invalid"}
    cp = FakeCp(LocalAuthorizeOffline="false", AllowOfflineTxForUnknownId="true")
    cp.a.update("TAG1", accepted())
    assert await cp.a.authorize("TAG1") == {"status": "Accepted"}


async def test_failed_request_falls_back_to_offline_rules():
    for failure in (CallTimeout("Authorize"), CallError("InternalError", "x"), ConnectionClosed(1006)):
        rpc = FakeRpc(failure, failure)
        cp = FakeCp(rpc)
        cp.a.update("TAG1", accepted("P1"))
        assert await cp.a.authorize("TAG1") == accepted("P1")
        assert await cp.a.authorize("NEW") == {"status": "Invalid"}
        assert len(rpc.calls) == 2


async def test_failed_request_uses_the_cache_as_it_is_after_the_wait():
    def cleared_then_timeout():
        cp.a.clear_cache()  # a ClearCache arrived while Authorize.req was waiting
        return CallTimeout("Authorize")

    cp = FakeCp(FakeRpc(cleared_then_timeout))
    cp.a.update("TAG1", accepted())
    assert await cp.a.authorize("TAG1") == {"status": "Invalid"}


async def test_unusable_id_tag_is_invalid_without_a_request():
    rpc = FakeRpc()
    cp = FakeCp(rpc, AllowOfflineTxForUnknownId="true")
    assert await cp.a.authorize("") == {"status": "Invalid"}
    assert await cp.a.authorize("X" * 21) == {"status": "Invalid"}
    assert rpc.calls == []


# --- cache enabled / disabled, persistence, eviction -----------------------------------------
async def test_cache_disabled_is_neither_used_nor_written():
    cp = FakeCp(FakeRpc(conf(accepted())))
    cp.a.update("OLD", accepted())
    cp.config.change("AuthorizationCacheEnabled", "false")
    atomic.remove(CACHE)
    assert await cp.a.authorize("TAG1") == accepted()
    cp.a.update("TAG2", accepted())
    assert stored() is None
    assert cp.a.local("TAG1") is None and cp.a.local("OLD") is None
    cp.rpc = None
    assert await cp.a.authorize("OLD") == {"status": "Invalid"}


def test_cache_persists_across_a_new_auth():
    expiry = later(3600)
    cp = FakeCp()
    cp.a.update("TAG1", accepted("P1", expiry))
    cp.a.update("BAD", {"status": "Blocked"})
    again = Auth(cp, CACHE)
    assert again.local("TAG1") == accepted("P1", expiry)
    assert again.local("BAD") == {"status": "Blocked"}
    assert again.local("NEW") is None


def test_cards_of_one_fleet_share_one_parent_string():
    cp = FakeCp()
    cp.a.update("C1", accepted("FLEET" + "1"))
    cp.a.update("C2", accepted("FLEET" + "1"))
    assert cp.a.local("C1")["parentIdTag"] is cp.a.local("C2")["parentIdTag"]
    again = Auth(cp, CACHE)
    assert again.local("C1")["parentIdTag"] is again.local("C2")["parentIdTag"]


def test_damaged_cache_file_keeps_the_good_rows():
    with open(CACHE, "w") as f:
        f.write(
            '{"A":["Accepted",0,null,1],"B":["NoSuch",0,null,2],"C":[1,2],"D":"x","E":["Blocked","soon",null,3]}'
        )
    cp = FakeCp(keep_cache=True)
    assert cp.a.local("A") == {"status": "Accepted"}
    for tag in ("B", "C", "D", "E"):
        assert cp.a.local(tag) is None
    with open(CACHE, "w") as f:
        f.write("[[not json")
    assert Auth(cp, CACHE).local("A") is None


def test_same_answer_again_writes_no_flash():
    cp = FakeCp()
    cp.a.update("TAG1", accepted("P1"))
    os.remove(CACHE)
    cp.a.update("TAG1", accepted("P1"))
    assert stored() is None
    cp.a.update("TAG1", accepted("P2"))
    assert Auth(cp, CACHE).local("TAG1") == accepted("P2")


def fill(auth, n, start=0):
    for i in range(start, start + n):
        auth.update("T%d" % i, accepted())


def test_full_cache_drops_not_valid_entries_first_oldest_first():
    cp = FakeCp()
    auth = cp.a
    fill(auth, 10)
    auth.update("BAD1", {"status": "Blocked"})
    auth.update("OLDEXP", accepted(expiry=clock.iso(clock.now() - 5)))  # expired = not valid
    fill(auth, CACHE_MAX - 12, 10)
    auth.update("BAD2", {"status": "Invalid"})  # replaces T10..: full again
    assert auth.local("BAD2") is not None
    assert auth.local("BAD1") is None  # the oldest not-valid entry went first
    assert auth.local("T0") is not None and auth.local("OLDEXP") is not None
    auth.update("NEW1", accepted())
    assert auth.local("OLDEXP") is None
    auth.update("NEW2", accepted())
    assert auth.local("BAD2") is None  # the newest not-valid one before any valid one
    assert auth.local("T0") is not None
    auth.update("NEW3", accepted())
    assert auth.local("T0") is None  # only valid entries left: the oldest goes
    assert len(stored()) == CACHE_MAX


def test_updated_entry_becomes_young_and_order_survives_reload():
    cp = FakeCp()
    fill(cp.a, CACHE_MAX)
    cp.a.update("T0", accepted("P"))  # T0 is now the most recent
    again = Auth(cp, CACHE)
    again.update("NEW", accepted())
    assert again.local("T0") == accepted("P")
    assert again.local("T1") is None
    assert again.local("NEW") is not None


def test_oversized_cache_file_keeps_the_newest_entries():
    atomic.write_json(CACHE, {"T%d" % i: ["Accepted", 0, None, i + 1] for i in range(CACHE_MAX + 5)})
    cp = FakeCp(keep_cache=True)
    assert cp.a.local("T4") is None
    assert cp.a.local("T5") is not None and cp.a.local("T%d" % (CACHE_MAX + 4)) is not None


# --- local list ------------------------------------------------------------------------------
async def test_local_list_has_priority_and_is_never_cached():
    rpc = FakeRpc(conf({"status": "Blocked"}))
    cp = FakeCp(rpc, LocalPreAuthorize="true")
    cp.a.update("L1", {"status": "Invalid"})
    cp.a.local_list = FakeList({"L1": accepted("G"), "L2": accepted(expiry=clock.iso(clock.now() - 1))})
    assert cp.a.local("L1") == accepted("G")
    assert await cp.a.authorize("L1") == accepted("G")  # pre-authorized from the list (TC_008)
    assert rpc.calls == []
    assert cp.a.local("L2")["status"] == "Expired"
    assert await cp.a.authorize("L2") == {"status": "Blocked"}  # asked; the answer not cached
    cp.a.update("L2", accepted())
    cp.a.local_list = None
    assert cp.a.local("L2") is None
    assert cp.a.local("L1") == {"status": "Invalid"}  # the old cache entry, untouched


async def test_offline_local_list_entry():
    cp = FakeCp(AllowOfflineTxForUnknownId="true")
    cp.a.local_list = FakeList({"L1": accepted(), "L2": {"status": "Blocked"}})
    assert await cp.a.authorize("L1") == accepted()
    assert await cp.a.authorize("L2") == {"status": "Blocked"}


# --- parent and stop rules -------------------------------------------------------------------
async def test_parent_of():
    rpc = FakeRpc(conf(accepted("G2")))
    cp = FakeCp(rpc)
    cp.a.update("C1", accepted("G1"))
    cp.a.update("C0", accepted())
    cp.a.local_list = FakeList({"L1": accepted("G3")})
    assert await cp.a.parent_of("C1") == "G1"
    assert await cp.a.parent_of("C0") is None
    assert await cp.a.parent_of("L1") == "G3"
    assert rpc.calls == []
    assert await cp.a.parent_of("C2") == "G2"  # unknown locally: Authorize.req
    assert len(rpc.calls) == 1
    assert cp.a.local("C2") == accepted("G2")
    cp.rpc = None
    assert await cp.a.parent_of("C3") is None
    cp.rpc = FakeRpc(CallTimeout("Authorize"))
    assert await cp.a.parent_of("C3") is None


async def test_may_stop_same_tag_without_a_request():
    rpc = FakeRpc()
    cp = FakeCp(rpc)
    assert await cp.a.may_stop("TAG1", None, "TAG1")
    assert await cp.a.may_stop("abc1", "G", "ABC1")  # IdToken is case-insensitive
    assert rpc.calls == []


async def test_may_stop_other_tag_without_start_parent_sends_nothing():
    rpc = FakeRpc()
    cp = FakeCp(rpc)
    assert not await cp.a.may_stop("TAG1", None, "TAG2")  # TC_068
    assert not await cp.a.may_stop("TAG1", "", "TAG2")
    assert rpc.calls == []


async def test_may_stop_other_tag_with_the_same_parent():
    rpc = FakeRpc(conf(accepted("G1")), conf(accepted("G9")))
    cp = FakeCp(rpc)
    assert await cp.a.may_stop("TAG1", "G1", "TAG2")  # TC_069: Authorize.req for TAG2
    assert rpc.calls[0][:2] == ("Authorize", {"idTag": "TAG2"})
    assert await cp.a.may_stop("TAG1", "G1", "TAG2")  # now from the cache
    assert len(rpc.calls) == 1
    assert not await cp.a.may_stop("TAG1", "G1", "TAG3")  # another parent
    cp.rpc = None
    assert not await cp.a.may_stop("TAG1", "G1", "TAG4")  # unknown offline


# --- ClearCache --------------------------------------------------------------------------------
async def test_clear_cache_handler_accepted_empties_the_cache():
    rpc = FakeRpc(conf(accepted()))
    cp = FakeCp(rpc, LocalPreAuthorize="true")
    cp.a.update("TAG1", accepted())
    assert await clear_cache(cp, {}) == {"status": "Accepted"}
    assert cp.a.local("TAG1") is None
    assert stored() is None
    assert Auth(cp, CACHE).local("TAG1") is None
    assert await cp.a.authorize("TAG1") == accepted()  # TC_061: asked again
    assert len(rpc.calls) == 1


async def test_clear_cache_handler_rejected_when_the_cache_is_disabled():
    cp = FakeCp()
    cp.a.update("TAG1", accepted())
    cp.config.change("AuthorizationCacheEnabled", "false")
    assert await clear_cache(cp, {}) == {"status": "Rejected"}
    cp.config.change("AuthorizationCacheEnabled", "true")
    assert cp.a.local("TAG1") == accepted()
