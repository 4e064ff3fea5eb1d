"""`make run ARGS="--tls"`: a test PKI, wss:// with security profile 2 (Basic auth with the same
AuthorizationKey on both sides) or 3 (a client certificate); tools/csms_pki.py's command line."""

import subprocess
import sys

from test_run import ROOT, RunSession


def test_tls_profile_2_basic_auth_over_wss(built, tmp_path):
    run = RunSession(tmp_path, "--tls")
    try:
        run.expect("run", "security profile 2: TLS + HTTP Basic auth")
        key = run.expect("run", "AuthorizationKey").split("AuthorizationKey ")[1].split()[0]
        assert len(key) == 40
        connected = run.expect("csms CP001 ** connected")
        assert "'tls': True" in connected and "'client_cert': None" in connected
        run.expect("CP001 ->", '"Accepted"')
        run.send("getconf SecurityProfile")
        run.expect("SecurityProfile", "RW", "2")
        run.quit()
    finally:
        run.close()
    assert (tmp_path / "data" / "pki" / "ca.pem").exists()
    assert not any("** refused" in line for line in run.seen)


def test_tls_profile_3_client_certificate(built, tmp_path):
    run = RunSession(tmp_path, "--tls", "--profile", "3")
    try:
        run.expect("run", "security profile 3: TLS + client certificate")
        connected = run.expect("csms CP001 ** connected")
        assert "'tls': True" in connected and "'commonName': 'CP001'" in connected
        run.expect("CP001 ->", '"Accepted"')
        run.quit()
    finally:
        run.close()


def test_external_wss_csms_with_ca_passed_through(built, tmp_path):
    """--csms wss://... --ca/--cert/--key go to the charger (here: a CSMS simulator of our own)."""
    from csms import CsmsSimulator
    from csms_pki import make_pki

    pki = make_pki(tmp_path / "pki", cp_ids=("CP001",))
    cp = pki["cp"]["CP001"]
    server = CsmsSimulator(port=0, certfile=pki["server_cert"], keyfile=pki["server_key"], cafile=pki["ca"])
    with server:
        run = RunSession(
            tmp_path, "--csms", server.url, "--ca", pki["ca"], "--cert", cp["cert"], "--key", cp["key"],
            "--profile", "3",
        )  # fmt: skip
        try:
            info = server.wait_for_connection("CP001", timeout=30)
            assert info["tls"] and info["client_cert"]["commonName"] == "CP001"
            run.expect("fw", "> ", '"BootNotification"')  # an external CSMS: the firmware's frames
            run.quit()
        finally:
            run.close()


def test_csms_pki_command_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "tools/csms_pki.py", str(tmp_path / "pki"), "--id", "CP7"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in ("ca.pem", "ca.der", "server.pem", "server.key", "cp0.pem", "cp0.key", "cp0.key.der"):
        assert (tmp_path / "pki" / name).exists(), name
        assert str(tmp_path / "pki" / name) in out, name
    assert "CP7 client certificate" in out and "localhost, 127.0.0.1" in out

    from cryptography import x509

    cert = x509.load_pem_x509_certificate((tmp_path / "pki" / "server.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
