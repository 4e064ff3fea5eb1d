# Builds the TLS client context for wss:// from DER files on flash.
#
# The server certificate is always verified (CERT_REQUIRED): MicroPython's ssl.SSLContext
# starts with CERT_NONE, and a charger that silently talks to any server would hand its
# AuthorizationKey to whoever answers. Without a CA file there is no context, so no connection.
# Certificates and keys are DER: the Unix port (host tests) has no PEM parser, boards need none.
import ssl


class TLSConfigError(Exception):
    """A certificate or key file is missing or unusable."""


def _load(path, what):
    if not path:
        raise TLSConfigError("no %s configured" % what)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        raise TLSConfigError("%s missing: %s" % (what, path))
    if not data:
        raise TLSConfigError("%s is empty: %s" % (what, path))
    if data.startswith(b"-----BEGIN"):
        raise TLSConfigError("%s is PEM, store it as DER: %s" % (what, path))
    return data


def make_context(ca_der_path, cert_der_path=None, key_der_path=None):
    """SSLContext that verifies the server against the CA; client cert+key for security profile 3.

    Pass server_hostname when wrapping (ws.connect does). Raises TLSConfigError.
    """
    ca = _load(ca_der_path, "CA certificate")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_verify_locations(cadata=ca)
    except (OSError, ValueError) as e:
        raise TLSConfigError("CA certificate unusable (%s): %s" % (e, ca_der_path))
    if cert_der_path or key_der_path:
        cert = _load(cert_der_path, "client certificate")
        key = _load(key_der_path, "client key")
        try:
            ctx.load_cert_chain(cert, key)
        except (OSError, ValueError) as e:
            raise TLSConfigError("client certificate/key unusable (%s): %s" % (e, cert_der_path))
    if ctx.verify_mode != ssl.CERT_REQUIRED:  # never hand out a context that does not verify
        raise TLSConfigError("server verification could not be enabled")
    return ctx
