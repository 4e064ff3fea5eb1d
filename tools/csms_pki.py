"""A throwaway test PKI for wss:// (security profiles 2 and 3): a root CA, the CSMS server
certificate and charge point client certificates, as PEM (for the CSMS simulator and CPython) and
DER (for the firmware: the MicroPython Unix build cannot parse PEM).

    python tools/csms_pki.py DIR [--id CP001 ..] [--name localhost --name 127.0.0.1] [--days 30]

writes them into DIR and prints each file with what it is for. From Python:

    paths = make_pki(tmp_dir, server_names=("localhost", "127.0.0.1"), cp_ids=("CP001",))
    CsmsSimulator(certfile=paths["server_cert"], keyfile=paths["server_key"], cafile=paths["ca"])

Keys are EC P-256 with SHA-256 signatures (white paper A00.FR.5xx allows them, and they are the
cheapest for mbedTLS on a board).
"""

import argparse
import datetime
import ipaddress
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(common_name, organization):
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _san(names):
    entries = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _issue(subject, key, issuer, issuer_key, days, ca=False, extensions=()):
    # Valid from a day ago: a board whose clock is a little behind still accepts it.
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    usage = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    usage.update(key_cert_sign=ca, crl_sign=ca, digital_signature=not ca, key_agreement=not ca)
    builder = builder.add_extension(x509.KeyUsage(**usage), critical=True)
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(directory, stem, cert, key):
    paths = {}
    cert_pem = directory / f"{stem}.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    cert_der = directory / f"{stem}.der"
    cert_der.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    paths.update(cert=str(cert_pem), cert_der=str(cert_der))
    if key is not None:
        key_pem = directory / f"{stem}.key"
        key_pem.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_der = directory / f"{stem}.key.der"
        key_der.write_bytes(
            key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        paths.update(key=str(key_pem), key_der=str(key_der))
    return paths


def make_pki(
    directory, server_names=("localhost", "127.0.0.1"), cp_ids=("CP001",), organization="Test CPO", days=30
):
    """Write the PKI into `directory`. Returns the paths:
    {"ca", "ca_der", "server_cert", "server_key", "server_cert_der",
     "cp": {cp_id: {"cert", "cert_der", "key", "key_der"}}}.
    The server certificate's CN is server_names[0] and its subjectAltName lists all of them;
    a charge point certificate's CN is its id (white paper: the serial number) and O `organization`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Test CSMS Root CA", organization)
    ca_cert = _issue(ca_name, ca_key, ca_name, ca_key, days, ca=True)
    ca_paths = _write(directory, "ca", ca_cert, None)

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _issue(
        _name(server_names[0], organization),
        server_key,
        ca_name,
        ca_key,
        days,
        extensions=(_san(server_names), x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])),
    )
    server_paths = _write(directory, "server", server_cert, server_key)

    result = {
        "ca": ca_paths["cert"],
        "ca_der": ca_paths["cert_der"],
        "server_cert": server_paths["cert"],
        "server_cert_der": server_paths["cert_der"],
        "server_key": server_paths["key"],
        "cp": {},
    }
    for index, cp_id in enumerate(cp_ids):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(
            _name(cp_id, organization),
            key,
            ca_name,
            ca_key,
            days,
            extensions=(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),),
        )
        # The file stem is not the id itself: ids may hold characters a file name cannot.
        result["cp"][cp_id] = _write(directory, f"cp{index}", cert, key)
    return result


def describe(paths, server_names=("localhost", "127.0.0.1")):
    """Lines naming each file of make_pki's `paths` and what it is for."""
    rows = [
        (
            "CA certificate (trust anchor)",
            paths["ca"],
            paths["ca_der"],
            "the charger: --ca; the CSMS: --ca for profile 3",
        ),
        (
            "server certificate",
            paths["server_cert"],
            paths["server_cert_der"],
            "for " + ", ".join(server_names),
        ),
        ("server private key", paths["server_key"], None, "the CSMS: --cert/--key"),
    ]
    for cp_id, cp in paths["cp"].items():
        rows.append(
            (f"{cp_id} client certificate", cp["cert"], cp["cert_der"], "the charger: --cert (profile 3)")
        )
        rows.append(
            (f"{cp_id} client private key", cp["key"], cp["key_der"], "the charger: --key (profile 3)")
        )
    width = max(len(r[0]) for r in rows)
    lines = []
    for what, pem, der, use in rows:
        extra = f" (DER {der})" if der else ""
        lines.append(f"  {what:<{width}}  {pem}{extra}: {use}")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(prog="csms_pki.py", description="Write a throwaway test PKI for wss://.")
    ap.add_argument("dir", help="directory to write into (created; existing files are replaced)")
    ap.add_argument(
        "--id",
        action="append",
        dest="ids",
        metavar="CP",
        help="a charge point to certify (repeatable; default CP001)",
    )
    ap.add_argument(
        "--name", action="append", dest="names", metavar="HOST",
        help="a server name or IP address (repeatable; default localhost and 127.0.0.1)",
    )  # fmt: skip
    ap.add_argument("--days", type=int, default=30, help="validity in days (default %(default)s)")
    ap.add_argument("--organization", default="Test CPO")
    a = ap.parse_args(argv)
    if a.days < 1:
        ap.error("--days must be at least 1")
    names = tuple(a.names or ("localhost", "127.0.0.1"))
    ids = tuple(a.ids or ("CP001",))
    try:
        paths = make_pki(a.dir, server_names=names, cp_ids=ids, organization=a.organization, days=a.days)
    except OSError as e:
        sys.stderr.write(f"csms_pki.py: cannot write {a.dir}: {e.strerror or e}\n")
        return 1
    print(f"wrote a test PKI into {a.dir} (EC P-256, valid {a.days} days; PEM, and DER for the firmware):")
    print("\n".join(describe(paths, names)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
