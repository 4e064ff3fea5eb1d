"""tools/provision.py: the site settings and certificates a board gets, and the inputs it refuses."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import provision

ROOT = Path(__file__).resolve().parent.parent


def _pki(tmp_path):
    """A test CA and a CP001 certificate (tools/csms_pki.py), as PEM files."""
    from csms_pki import make_pki

    return make_pki(tmp_path / "pki", cp_ids=("CP001",))


def _cert(path):
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


BASE = ["--ssid", "site", "--password", "pw", "--id", "CP001"]


def test_profile_3_writes_settings_and_der_certificates(tmp_path):
    pki = _pki(tmp_path)
    ca_pem, cp_pem, cp_key = pki["ca"], pki["cp"]["CP001"]["cert"], pki["cp"]["CP001"]["key"]
    ca, cp = _cert(ca_pem), _cert(cp_pem)
    out = tmp_path / "board"
    args = [*BASE, "--url", "wss://csms.example/ocpp", "--profile", "3", "--key", "0123456789abcdef0123"]
    args += ["--ca", str(ca_pem), "--cert", str(cp_pem), "--cert-key", str(cp_key), "--out", str(out)]
    assert provision.main(args) == 0
    site = json.loads((out / "flash/site.json").read_text())
    assert site == {"wifi_ssid": "site", "wifi_password": "pw"}
    preset = json.loads((out / "flash/preset.json").read_text())
    assert preset == {
        "CentralSystemURL": "wss://csms.example/ocpp",
        "ChargePointId": "CP001",
        "SecurityProfile": 3,
        "AuthorizationKey": "0123456789abcdef0123",
    }
    certs = out / "flash/certs"
    assert x509.load_der_x509_certificate((certs / "csms_root.der").read_bytes()) == ca
    assert x509.load_der_x509_certificate((certs / "cp_cert.der").read_bytes()) == cp
    key = serialization.load_der_private_key((certs / "cp_key.der").read_bytes(), None)
    assert key.public_key().public_numbers() == cp.public_key().public_numbers()


def test_profile_0_writes_no_certificates(tmp_path):
    out = tmp_path / "board"
    assert provision.main([*BASE, "--url", "ws://10.0.0.2:9000/ocpp", "--ntp", "", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["preset.json", "site.json"]
    assert json.loads((out / "flash/site.json").read_text())["ntp_host"] is None


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--url", "http://csms/ocpp"], "ws://"),
        (["--url", "ws://csms/ocpp", "--id", "a/b"], "--id"),
        (["--url", "ws://csms/ocpp", "--id", "x" * 49], "--id"),
        (["--url", "ws://csms/ocpp", "--profile", "1", "--key", "short"], "16..40"),
        (["--url", "ws://csms/ocpp", "--profile", "1"], "needs --key"),
        (["--url", "ws://csms/ocpp", "--profile", "4"], "0, 1, 2 or 3"),
        (["--url", "ws://csms/ocpp", "--profile", "2", "--key", "k" * 16], "wss://"),
        (["--url", "ws://csms/ocpp", "--profile", "3", "--key", "k" * 16, "--ca", "CA"], "wss://"),
        (["--url", "wss://csms/ocpp", "--profile", "1", "--key", "k" * 16], "--profile 2"),
        (["--url", "wss://csms/ocpp", "--profile", "2", "--key", "k" * 16], "--ca"),
        (["--url", "wss://csms/ocpp", "--profile", "3", "--key", "k" * 16, "--ca", "CA"], "--cert"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(tmp_path, capsys, extra, message):
    out = tmp_path / "board"
    ca = tmp_path / "root.pem"
    ca.write_text("x")
    argv = [*BASE, *[str(ca) if a == "CA" else a for a in extra], "--out", str(out)]
    # a later --id wins in argparse: the parametrised one replaces BASE's
    assert provision.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists(), "nothing is written when the input is refused"


def test_a_file_that_is_not_a_certificate_is_refused(tmp_path, capsys):
    bad = tmp_path / "root.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    argv = [*BASE, "--url", "wss://c/o", "--profile", "2", "--key", "k" * 16, "--ca", str(bad), "--out", "x"]
    assert provision.main(argv) == 2
    assert "not an X.509 certificate" in capsys.readouterr().err


def test_dry_run_prints_the_files_and_the_mpremote_command(tmp_path):
    ca_pem = _pki(tmp_path)["ca"]
    res = subprocess.run(
        [sys.executable, "tools/provision.py", *BASE, "--url", "wss://c/o", "--profile", "2"]
        + ["--key", "k" * 16, "--ca", str(ca_pem), "--port", "/dev/ttyUSB0", "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = res.stdout.splitlines()
    assert [line.split()[1] for line in lines[:-1]] == [
        ":/flash/site.json",
        ":/flash/preset.json",
        ":/flash/certs/csms_root.der",
    ]
    command = lines[-1]
    assert command.startswith("command:") and "connect /dev/ttyUSB0" in command
    assert command.count(" fs cp ") == 3 and command.endswith("soft-reset")
    assert "k" * 16 not in res.stdout, "the dry run does not print secrets"


def test_dry_run_shows_what_would_be_written_with_secrets_masked(tmp_path, capsys):
    pki = _pki(tmp_path)
    key = "0123456789abcdef0123"
    argv = [*BASE[:3], "wifi-secret", *BASE[4:], "--url", "wss://csms.example/ocpp", "--profile", "3"]
    argv += ["--key", key, "--ca", str(pki["ca"]), "--cert", str(pki["cp"]["CP001"]["cert"])]
    argv += ["--cert-key", str(pki["cp"]["CP001"]["key"]), "--dry-run"]
    assert provision.main(argv) == 0
    out = capsys.readouterr().out
    assert "wifi-secret" not in out and key not in out
    shown = {line.split()[1]: line.split(None, 2)[2] for line in out.splitlines()[:-1]}
    assert json.loads(shown[":/flash/site.json"]) == {"wifi_ssid": "site", "wifi_password": provision.MASK}
    assert json.loads(shown[":/flash/preset.json"]) == {
        "CentralSystemURL": "wss://csms.example/ocpp",
        "ChargePointId": "CP001",
        "SecurityProfile": 3,
        "AuthorizationKey": provision.MASK,
    }
    assert shown[":/flash/certs/csms_root.der"].startswith("certificate ")
    assert "CN=CP001" in shown[":/flash/certs/cp_cert.der"]
    assert "not shown" in shown[":/flash/certs/cp_key.der"]
    assert "BEGIN" not in out


def test_profile_0_may_use_wss_and_profile_1_ws(tmp_path):
    ca = _pki(tmp_path)["ca"]
    out = tmp_path / "board"
    assert provision.main([*BASE, "--url", "wss://c/o", "--ca", str(ca), "--out", str(out)]) == 0
    assert (
        provision.main([*BASE, "--url", "ws://c/o", "--profile", "1", "--key", "k" * 16, "--out", str(out)])
        == 0
    )
