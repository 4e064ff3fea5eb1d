"""Write a board's site settings and certificates (Wi-Fi, backend, identity, security profile).

  tools/provision.py --port /dev/ttyUSB0 --ssid SITE --password PW --url wss://csms/ocpp \\
      --id CP001 --key 0123456789abcdef --profile 2 --ca root.pem
  ... --dry-run          print the files (secrets masked) and the mpremote command instead
  ... --out DIR          write the same files under DIR (DIR/flash/site.json, ...) instead

On the board (layout read by boards/boot_main.py and firmware/cp/link.py):
  /flash/site.json              board settings, read at every boot (wifi_ssid, wifi_password)
  /flash/preset.json            OCPP keys, applied once into /flash/config.json at the next boot
  /flash/certs/csms_root.der    CA that signs the backend's certificate (profiles 2, 3)
  /flash/certs/cp_cert.der      client certificate and key (profile 3)
  /flash/certs/cp_key.der
PEM input is converted to DER here: the board's TLS stack loads DER without a PEM parser.
"""

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

MPREMOTE = Path(sys.executable).parent / "mpremote"
FLASH = "flash"  # the data directory at the board's littlefs root
MAX_PEM = 64 * 1024  # a certificate or key file bigger than this is not what we want


class ProvisionError(ValueError):
    pass


def validate(url, cp_id, key, profile, ca, cert, pkey):
    """Raise ProvisionError with a clear message for settings the charger would refuse."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in ("ws", "wss") or len(url) > 256 or not url.split("://", 1)[1]:
        raise ProvisionError(f"--url must be ws://... or wss://... (at most 256 characters), got {url!r}")
    if not 1 <= len(cp_id) <= 48 or "/" in cp_id or not cp_id.isprintable():
        raise ProvisionError("--id must be 1..48 printable characters without '/'")
    if key is not None and not 16 <= len(key) <= 40:
        raise ProvisionError("--key (AuthorizationKey) must be 16..40 characters")
    if profile not in (0, 1, 2, 3):
        raise ProvisionError("--profile must be 0, 1, 2 or 3")
    if profile in (1, 2) and key is None:
        raise ProvisionError(f"profile {profile} (HTTP Basic) needs --key")
    if profile == 1 and scheme != "ws":
        # Profile 1 is Basic auth without TLS: over wss:// the site means profile 2 (which also
        # makes the charger check the backend's certificate against --ca).
        raise ProvisionError("profile 1 (Basic auth, no TLS) needs a ws:// URL; for wss:// use --profile 2")
    if profile >= 2 and (scheme != "wss" or ca is None):
        raise ProvisionError(f"profile {profile} needs a wss:// URL and --ca (the CSMS root certificate)")
    if profile == 3 and (cert is None or pkey is None):
        raise ProvisionError("profile 3 needs --cert and --cert-key (the charge point's certificate)")


def _read(path):
    p = Path(path)
    if not p.is_file() or p.stat().st_size > MAX_PEM:
        raise ProvisionError(f"{path}: not a file, or over {MAX_PEM} bytes")
    return p.read_bytes()


def cert_der(path):
    from cryptography import x509

    data = _read(path)
    try:
        c = (
            x509.load_pem_x509_certificate(data)
            if b"-----BEGIN" in data
            else x509.load_der_x509_certificate(data)
        )
    except ValueError as e:
        raise ProvisionError(f"{path}: not an X.509 certificate ({e})") from None
    from cryptography.hazmat.primitives.serialization import Encoding

    return c.public_bytes(Encoding.DER)


def key_der(path):
    from cryptography.hazmat.primitives import serialization as ser

    data = _read(path)
    try:
        load = ser.load_pem_private_key if b"-----BEGIN" in data else ser.load_der_private_key
        k = load(data, password=None)
    except (ValueError, TypeError) as e:
        raise ProvisionError(f"{path}: not an unencrypted private key ({e})") from None
    return k.private_bytes(ser.Encoding.DER, ser.PrivateFormat.PKCS8, ser.NoEncryption())


def files(args):
    """{path on the board (relative to its root): bytes} for these arguments."""
    validate(args.url, args.id, args.key, args.profile, args.ca, args.cert, args.cert_key)
    site = {"wifi_ssid": args.ssid, "wifi_password": args.password or ""}
    if args.ntp is not None:
        site["ntp_host"] = args.ntp or None
    preset = {"CentralSystemURL": args.url, "ChargePointId": args.id, "SecurityProfile": args.profile}
    if args.key is not None:
        preset["AuthorizationKey"] = args.key
    out = {
        f"{FLASH}/site.json": json.dumps(site).encode(),
        f"{FLASH}/preset.json": json.dumps(preset).encode(),
    }
    if args.ca:
        out[f"{FLASH}/certs/csms_root.der"] = cert_der(args.ca)
    if args.cert:
        out[f"{FLASH}/certs/cp_cert.der"] = cert_der(args.cert)
        out[f"{FLASH}/certs/cp_key.der"] = key_der(args.cert_key)
    return out


SECRETS = ("wifi_password", "AuthorizationKey")
MASK = "********"


def describe(rel, data):
    """What a dry run shows of one file: JSON with the secrets masked, a certificate's subject."""
    if rel.endswith(".json"):
        shown = json.loads(data)
        for name in SECRETS:
            if shown.get(name):
                shown[name] = MASK
        return json.dumps(shown)
    if rel.endswith("_key.der"):
        return "(private key, PKCS#8 DER, not shown)"
    from cryptography import x509

    return "certificate " + x509.load_der_x509_certificate(data).subject.rfc4514_string()


def mpremote_command(port, staged):
    """One mpremote run: make /flash and /flash/certs, copy each staged file, soft-reset."""
    cmd = [str(MPREMOTE), "connect", port]
    for d in (FLASH, f"{FLASH}/certs"):
        parent, name = d.rsplit("/", 1) if "/" in d else ("", d)
        cmd += ["exec", f"import os;'{name}' in os.listdir('/{parent}') or os.mkdir('/{d}')", "+"]
    for rel, src in staged:
        cmd += ["fs", "cp", str(src), ":/" + rel, "+"]
    return cmd + ["soft-reset"]


def write_tree(root, content):
    for rel, data in content.items():
        p = Path(root) / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", help="serial port of the board (or an mpremote shortcut)")
    ap.add_argument("--ssid", required=True, help="Wi-Fi network")
    ap.add_argument("--password", default="", help="Wi-Fi password")
    ap.add_argument("--ntp", help="SNTP server (default pool.ntp.org; '' for none)")
    ap.add_argument("--url", required=True, help="CentralSystemURL, ws://... or wss://...")
    ap.add_argument("--id", required=True, help="ChargePointId")
    ap.add_argument("--key", help="AuthorizationKey (profiles 1, 2)")
    ap.add_argument("--profile", type=int, default=0, help="SecurityProfile 0..3")
    ap.add_argument("--ca", help="CSMS root certificate, PEM or DER (profiles 2, 3)")
    ap.add_argument("--cert", help="charge point certificate, PEM or DER (profile 3)")
    ap.add_argument("--cert-key", help="charge point private key, PEM or DER, unencrypted (profile 3)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print what would be written, secrets masked")
    mode.add_argument("--out", help="write the files under this local directory instead of a board")
    args = ap.parse_args(argv)
    try:
        content = files(args)
    except ProvisionError as e:
        print(f"provision: {e}", file=sys.stderr)
        return 2
    if args.out:
        write_tree(args.out, content)
        print(f"wrote {len(content)} files under {args.out}")
        return 0
    if args.dry_run:
        for rel, data in content.items():
            print(f"{len(data):6d}  :/{rel}  {describe(rel, data)}")
        print(
            "command:",
            shlex.join(mpremote_command(args.port or "PORT", [(r, "STAGED/" + r) for r in content])),
        )
        return 0
    if not args.port:
        print("provision: needs --port (for example /dev/ttyUSB0), --dry-run or --out DIR", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        write_tree(tmp, content)
        return subprocess.call(mpremote_command(args.port, [(r, Path(tmp) / r) for r in content]))


if __name__ == "__main__":
    sys.exit(main())
