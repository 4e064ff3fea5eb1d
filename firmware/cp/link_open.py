# What a connection attempt needs from the configuration (loaded by cp/link.py for each attempt
# and dropped before the handshake): the URL with the percent-encoded ChargePointId, the HTTP
# Basic credentials and the TLS context of the security profile. Keys that need a reboot
# (URL, ChargePointId, SecurityProfile) are read as they were at boot. A configuration that
# cannot make a connection raises ValueError saying why.
import binascii

import lazy

CA_FILE = "/certs/csms_root.der"
CERT_FILE = "/certs/cp_cert.der"
KEY_FILE = "/certs/cp_key.der"


def prepare(config, flash):
    """(url, auth or None, ssl_ctx or None) for the next connection attempt."""
    url = connection_url(config)
    profile = config.boot_value("SecurityProfile")
    tls = url.startswith("wss://")
    if profile >= 2 and not tls:
        raise ValueError("SecurityProfile %d needs a wss:// URL" % profile)
    if not tls and not url.startswith("ws://"):
        raise ValueError("CentralSystemURL must start with ws:// or wss://")
    auth = None
    if profile in (1, 2):
        key = config.get("AuthorizationKey")
        if not key:
            raise ValueError("SecurityProfile %d needs an AuthorizationKey" % profile)
        as_text = config.get("AuthorizationKeyAsText")
        auth = (config.boot_value("ChargePointId"), key if as_text else basic_password(key))
    ssl_ctx = None
    if tls:
        tlsctx = lazy.load("ocpp.tlsctx")  # only TLS sites pay for it, and only now
        cert, key = (flash + CERT_FILE, flash + KEY_FILE) if profile == 3 else (None, None)
        try:
            ssl_ctx = tlsctx.make_context(flash + CA_FILE, cert, key)
        except tlsctx.TLSConfigError as e:
            raise ValueError(str(e))
    return url, auth, ssl_ctx


def _quote(text):
    # Percent-encode the ChargePointId for the URL path (RFC 3986 unreserved characters kept).
    out = []
    for ch in text:
        if ord(ch) < 128 and (ch.isalpha() or ch.isdigit() or ch in "-._~"):
            out.append(ch)
        else:
            for b in ch.encode():
                out.append("%%%02X" % b)
    return "".join(out)


def connection_url(config):
    base = config.boot_value("CentralSystemURL")
    if not base:
        raise ValueError("CentralSystemURL is not set")
    if base.endswith("/"):
        base = base[:-1]
    return base + "/" + _quote(config.boot_value("ChargePointId"))


def basic_password(key):
    """The HTTP Basic password for an AuthorizationKey. OCPP-J 1.6 and the security white paper
    set the key as hexadecimal (32-40 digits for 16-20 bytes) and the password is those bytes
    (as OCTT 2025-11 TC_085 checks); a 16-20 character key that is not such a hex string is
    used as it is. Backends that take the password as typed (and refuse one that is not UTF-8)
    get the key as it is with the vendor key AuthorizationKeyAsText."""
    if 32 <= len(key) <= 40 and not len(key) % 2:
        try:
            return binascii.unhexlify(key)
        except ValueError:
            pass
    return key
