# The link's pure parts: URL, Basic password (cp/link_open.py), backoff, credentials per profile.
import os

import mptmp
from cp import config, link, link_open

PATH = mptmp.path("mp_test_link.json")


def cfg(**values):
    try:
        os.remove(PATH)
    except OSError:
        pass
    c = config.Config(PATH)
    for k, v in values.items():
        assert c.change(k, str(v), by_backend=False) in ("Accepted", "RebootRequired"), k
    return c


def test_url_is_base_plus_percent_encoded_id():
    c = cfg(CentralSystemURL="ws://csms.example:9000/ocpp/", ChargePointId="CP 1/\u00e9")
    assert link_open.connection_url(c) == "ws://csms.example:9000/ocpp/CP%201%2F%C3%A9"


def test_missing_url_is_a_config_problem():
    try:
        link_open.connection_url(cfg())
        raise AssertionError("no error")
    except ValueError:
        pass


def test_basic_password_hex_or_plain():
    assert link_open.basic_password("4F43415F4F4354545F61646D696E5F74657374") == b"OCA_OCTT_admin_test"
    assert link_open.basic_password("0123456789abcdef0123") == "0123456789abcdef0123"  # 20 chars: plain
    assert link_open.basic_password("zz" * 16) == "zz" * 16  # not hex: plain


def test_backoff_doubles_then_stops_with_jitter():
    c = cfg(RetryBackOffWaitMinimum=2, RetryBackOffRepeatTimes=3, RetryBackOffRandomRange=0)
    assert [link.backoff_s(c, a) for a in range(6)] == [2, 4, 8, 16, 16, 16]
    c.change("RetryBackOffRandomRange", "5")
    waits = {link.backoff_s(c, 0) for _ in range(200)}
    assert waits <= set(range(2, 8)) and len(waits) > 3, waits


def test_credentials_per_security_profile():
    key = "0011223344556677889900112233445566778899"
    c = cfg(CentralSystemURL="ws://h/ocpp", ChargePointId="CP1")
    assert link_open.prepare(c, "/flash") == ("ws://h/ocpp/CP1", None, None)
    c = cfg(CentralSystemURL="ws://h/ocpp", ChargePointId="CP1", SecurityProfile=1, AuthorizationKey=key)
    url, auth, ssl_ctx = link_open.prepare(c, "/flash")
    assert auth == ("CP1", bytes.fromhex(key)) and ssl_ctx is None
    c.change("AuthorizationKeyAsText", "true")  # a backend that takes the password as typed
    assert link_open.prepare(c, "/flash")[1] == ("CP1", key)
    for bad in (
        cfg(CentralSystemURL="ws://h/ocpp", SecurityProfile=1),  # no AuthorizationKey
        cfg(CentralSystemURL="ws://h/ocpp", SecurityProfile=2, AuthorizationKey=key),  # not wss://
        cfg(CentralSystemURL="http://h/ocpp"),
        cfg(CentralSystemURL="wss://h/ocpp", SecurityProfile=3),  # no certificates on this flash
    ):
        try:
            link_open.prepare(bad, "/nonexistent")
            raise AssertionError("accepted a configuration that cannot connect")
        except ValueError:
            pass
