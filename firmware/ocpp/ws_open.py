# The websocket opening handshake (RFC 6455 section 4): URL, HTTP upgrade request, strict check
# of the answer, TLS errors. ws.connect() imports it for the length of a connect and drops it
# after, so an open connection does not keep this code in RAM.
import asyncio
import binascii
import hashlib
import os
import time

from micropython import const

from ocpp.ws import ConnectionClosed, HandshakeError, TLSError, WebSocket

_MAX_LINE = const(256)  # kept bytes of one response header line; longer lines we need fail
_MAX_RESPONSE = const(8192)  # total size of the handshake response headers
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def parse_url(url):
    """ws[s]://host[:port][/path] -> (secure, host, port, path). Raises ValueError."""
    if url.startswith("wss://"):
        secure, rest, port = True, url[6:], 443
    elif url.startswith("ws://"):
        secure, rest, port = False, url[5:], 80
    else:
        raise ValueError("URL must start with ws:// or wss://")
    cut = rest.find("/")
    if cut < 0:
        hostport, path = rest, "/"
    else:
        hostport, path = rest[:cut], rest[cut:]
    cut = path.find("#")
    if cut >= 0:
        path = path[:cut]
    colon = hostport.find(":")
    host = hostport if colon < 0 else hostport[:colon]
    if colon >= 0:
        digits = hostport[colon + 1 :]
        if not digits or not digits.isdigit() or not 0 < int(digits) < 65536:
            raise ValueError("bad port in URL")
        port = int(digits)
    if not host or len(host) > 253 or not _token(host, "-._"):
        raise ValueError("bad host in URL")
    for c in path:
        # No spaces, controls or non-ASCII: the path goes verbatim into the request line.
        if c <= " " or c > "~":
            raise ValueError("URL path needs percent-encoding")
    return secure, host, port, path


def _token(s, extra):
    for c in s:
        if not ("a" <= c <= "z" or "A" <= c <= "Z" or "0" <= c <= "9" or c in extra):
            return False
    return True


def _b64(data):
    return binascii.b2a_base64(data)[:-1]  # drop the newline it appends


async def _open_tcp(host, port, ssl_ctx, server_hostname):
    reader, _writer = await asyncio.open_connection(host, port, ssl=ssl_ctx, server_hostname=server_hostname)
    return reader  # MicroPython: reader and writer are one Stream


async def connect(url, subprotocol, auth, ssl_ctx, opener, max_message, timeout_ms):
    # ws.connect() documents the arguments and errors.
    secure, host, port, path = parse_url(url)
    if secure and ssl_ctx is None:
        raise ValueError("wss:// needs ssl_ctx")
    if max_message < 1:
        raise ValueError("max_message must be positive")
    if subprotocol and not _token(subprotocol, "-._!#$%&'*+^`|~"):
        raise ValueError("bad subprotocol")
    key = _b64(os.urandom(16))
    if port != (443 if secure else 80):
        host_hdr = "%s:%d" % (host, port)
    else:
        host_hdr = host
    lines = [
        "GET %s HTTP/1.1\r\nHost: %s\r\n" % (path, host_hdr),
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n",
        "Sec-WebSocket-Key: %s\r\n" % key.decode(),
    ]
    if subprotocol:
        lines.append("Sec-WebSocket-Protocol: %s\r\n" % subprotocol)
    if auth is not None:
        user, password = auth
        if ":" in user:
            raise ValueError("Basic auth user must not contain ':'")
        if isinstance(password, str):
            password = password.encode()
        lines.append("Authorization: Basic %s\r\n" % _b64(user.encode() + b":" + password).decode())
    lines.append("\r\n")
    request = "".join(lines).encode()
    accept = _b64(hashlib.sha1(key + _GUID).digest())
    # Buffers first: if they do not fit, no socket is left behind.
    ws = WebSocket(max_message)
    opening = _open(
        ws, opener or _open_tcp, host, port, ssl_ctx if secure else None, request, accept, subprotocol
    )
    try:
        await asyncio.wait_for_ms(opening, timeout_ms)
    except asyncio.TimeoutError:
        raise HandshakeError(0, "no handshake within %d ms" % timeout_ms)
    return ws


def _net_error(e, tls_phase):
    errno = 0
    if isinstance(e, OSError):
        errno = e.errno
        if len(e.args) > 1:  # mbedTLS: (code, "MBEDTLS_ERR_...")
            text = "%s (%d)" % (e.args[1], errno)
        elif errno in (32, 104):  # EPIPE, ECONNRESET
            text = "server dropped the connection (errno %d)" % errno
        else:
            text = str(e)
    else:  # ValueError: certificate verification, e.g. "... Common Name (CN) does not match ..."
        text = " ".join(str(e).split())
    # 111 ECONNREFUSED, 113 EHOSTUNREACH, 101 ENETUNREACH: no TLS was involved yet.
    if tls_phase and errno not in (111, 113, 101):
        return TLSError("TLS handshake: " + text)
    return HandshakeError(0, text)


async def _open(ws, opener, host, port, ssl_ctx, request, accept, subprotocol):
    try:
        stream = await opener(host, port, ssl_ctx, host if ssl_ctx else None)
    except BaseException as e:  # refused, unreachable, or cancelled by the timeout
        ws._release_rx()  # the next attempt takes the same buffer
        if isinstance(e, (OSError, ValueError)):
            raise HandshakeError(0, "connect %s:%d: %s" % (host, port, e))
        raise
    ws._s = stream
    tls_phase = ssl_ctx is not None
    try:
        # With TLS the handshake runs inside this first write/drain.
        stream.write(request)
        await stream.drain()
        ws._re = await ws._recv_some(ws._ramv)
        tls_phase = False
        await _read_response(ws, accept, subprotocol)
    except ConnectionClosed as e:
        await ws._drop()
        if tls_phase:
            raise TLSError("TLS handshake: %s" % e.reason)
        raise HandshakeError(0, "handshake: %s" % e.reason)
    except (OSError, ValueError) as e:
        await ws._drop()
        raise _net_error(e, tls_phase)
    except BaseException:  # HandshakeError, or cancelled by the timeout
        await ws._drop()
        raise
    ws.last_rx_ms = time.ticks_ms()


async def _read_response(ws, accept, subprotocol):
    # Header lines are parsed as they arrive; only their first _MAX_LINE bytes are kept.
    line = bytearray(_MAX_LINE)
    linemv = memoryview(line)
    n = 0
    long_line = False
    total = 0
    status = 0
    got = {}
    while True:
        if ws._rp == ws._re:
            ws._re = await ws._recv_some(ws._ramv)
            ws._rp = 0
        end = ws._ra.find(b"\n", ws._rp, ws._re)
        stop = ws._re if end < 0 else end + 1
        k = stop - ws._rp
        total += k
        if total > _MAX_RESPONSE:
            raise HandshakeError(status, "response headers too large")
        room = _MAX_LINE - n
        if k > room:
            long_line = True
        c = k if k < room else room
        linemv[n : n + c] = ws._ramv[ws._rp : ws._rp + c]
        n += c
        ws._rp = stop
        if end < 0:
            continue
        text = bytes(linemv[:n]).rstrip(b"\r\n")
        n = 0
        if not status:
            status = _status(text)  # a long reason phrase is cut, the code is kept
            if status != 101:
                raise HandshakeError(status, _printable(text[13:]))
        elif not text and not long_line:
            break
        else:
            name, _sep, value = text.partition(b":")
            name = name.strip().lower()
            if name in (
                b"upgrade",
                b"connection",
                b"sec-websocket-accept",
                b"sec-websocket-protocol",
                b"sec-websocket-extensions",
            ):
                if long_line or name in got:
                    raise HandshakeError(status, "bad %s header" % name.decode())
                got[name] = value.strip()
        long_line = False
    _check_upgrade(got, accept, subprotocol)


def _status(text):
    # b"HTTP/1.1 101 Switching Protocols" -> 101
    if not text.startswith(b"HTTP/1.") or len(text) < 12 or text[8] != 32:
        raise HandshakeError(0, "not an HTTP response")
    code = text[9:12]
    if not code.isdigit() or (len(text) > 12 and text[12] != 32):
        raise HandshakeError(0, "not an HTTP response")
    return int(code)


def _printable(b):
    try:
        return b.decode()
    except UnicodeError:
        return repr(b)


def _check_upgrade(got, accept, subprotocol):
    if got.get(b"upgrade", b"").lower() != b"websocket":
        raise HandshakeError(101, "no Upgrade: websocket")
    tokens = [t.strip() for t in got.get(b"connection", b"").lower().split(b",")]
    if b"upgrade" not in tokens:
        raise HandshakeError(101, "no Connection: Upgrade")
    if got.get(b"sec-websocket-accept") != accept:
        raise HandshakeError(101, "bad Sec-WebSocket-Accept")
    agreed = got.get(b"sec-websocket-protocol")
    if subprotocol:
        if agreed != subprotocol.encode():
            raise HandshakeError(101, "server did not agree to subprotocol %s" % subprotocol)
    elif agreed is not None:
        raise HandshakeError(101, "unrequested subprotocol")
    if b"sec-websocket-extensions" in got:
        raise HandshakeError(101, "unrequested extension")
