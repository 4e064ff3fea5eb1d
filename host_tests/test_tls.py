"""Security profiles 2 and 3 end to end: wss:// verified against the CSMS root on flash."""

import time

import pytest

KEY = "0123456789abcdef0123"
PROFILE_2 = {"SecurityProfile": 2, "AuthorizationKey": KEY}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from csms_pki import make_pki

    d = tmp_path_factory.mktemp("pki")
    return make_pki(d / "good", cp_ids=("CP1",)), make_pki(d / "other", cp_ids=("CP1",))


def _server(pki, client_certs=False, **kw):
    from csms import CsmsSimulator

    return CsmsSimulator(
        port=0,
        certfile=pki["server_cert"],
        keyfile=pki["server_key"],
        cafile=pki["ca"] if client_certs else None,
        **kw,
    )


def test_profile_2_tls_with_basic_auth(built, make_sim, pki):
    good, _ = pki
    with _server(good, basic_auth={"CP1": KEY}) as server:
        assert server.url.startswith("wss://")
        make_sim(
            csms=server.url,
            cp_id="CP1",
            ca=good["ca_der"],
            sets=PROFILE_2,
        )
        info = server.wait_for_connection("CP1", timeout=20)
        assert info["tls"]
        server.wait_for_call("CP1", "BootNotification")


def test_profile_3_client_certificate(built, make_sim, pki):
    good, _ = pki
    cp = good["cp"]["CP1"]
    with _server(good, client_certs=True) as server:
        make_sim(
            csms=server.url,
            cp_id="CP1",
            ca=good["ca_der"],
            cert=cp["cert_der"],
            key=cp["key_der"],
            sets={"SecurityProfile": 3},
        )
        info = server.wait_for_connection("CP1", timeout=20)
        assert "CP1" in str(info["client_cert"])
        server.wait_for_call("CP1", "BootNotification")


def test_unknown_server_certificate_is_refused(built, make_sim, pki):
    good, other = pki
    with _server(good, basic_auth={"CP1": KEY}) as server:
        sim = make_sim(
            csms=server.url,
            cp_id="CP1",
            ca=other["ca_der"],
            sets=PROFILE_2,
        )
        time.sleep(3)
        assert not server.connected("CP1") and server.connection_count("CP1") == 0
        assert not sim.state()["connected"]
        assert "not correctly signed by the trusted CA" in sim.log_tail()


def test_profile_3_without_client_certificate_fails(built, make_sim, pki):
    good, _ = pki
    with _server(good, client_certs=True) as server:
        sim = make_sim(csms=server.url, cp_id="CP1", ca=good["ca_der"], sets={"SecurityProfile": 3})
        time.sleep(3)
        assert server.connection_count("CP1") == 0
        assert not sim.state()["connected"]
