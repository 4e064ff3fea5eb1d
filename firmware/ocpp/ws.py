# RFC 6455 websocket client for OCPP-J (text messages only), on asyncio streams.
#
# Memory: one connection owns fixed buffers allocated at connect (the receive buffer of
# max_message bytes, a 512-byte read-ahead, a 526-byte send buffer, 10 + 125 bytes for frame
# headers and control payloads). Nothing from the wire is allocated in proportion to a length
# the peer declares: sizes are checked against max_message before any byte of payload is read.
# Liveness: frame reads are never wrapped in wait_for (a cancelled read loses bytes); the
# keepalive() task closes the socket instead, which makes a pending recv() fail.
import asyncio
import binascii
import hashlib
import os
import time

from micropython import const

MAX_MESSAGE = const(16384)
TIMEOUT_MS = const(10000)

_RA_SIZE = const(512)  # read-ahead: one read usually holds a whole small frame
_CHUNK = const(512)  # send masking unit, multiple of 4 so every chunk starts at mask byte 0
_CLOSE_WAIT_MS = const(2000)  # how long a close handshake may take before the socket is dropped
_MAX_LINE = const(256)  # kept bytes of one response header line; longer lines we need fail
_MAX_RESPONSE = const(8192)  # total size of the handshake response headers
_POLL_MS = const(50)  # keepalive: how often to look for the pong

_OP_CONT = const(0)
_OP_TEXT = const(1)
_OP_BINARY = const(2)
_OP_CLOSE = const(8)
_OP_PING = const(9)
_OP_PONG = const(10)

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class ConnectionClosed(Exception):
    """The connection is over: code is the close code (1006 when it was lost without one)."""

    def __init__(self, code, reason=""):
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class HandshakeError(Exception):
    """The opening handshake failed: status is the HTTP status, 0 when there was none."""

    def __init__(self, status, reason=""):
        super().__init__(status, reason)
        self.status = status
        self.reason = reason


class TLSError(HandshakeError):
    """The TLS handshake failed (certificate not trusted, wrong host name, client cert refused)."""

    def __init__(self, reason):
        super().__init__(0, reason)


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


async def connect(
    url,
    subprotocol="ocpp1.6",
    auth=None,
    ssl_ctx=None,
    opener=None,
    max_message=MAX_MESSAGE,
    timeout_ms=TIMEOUT_MS,
):
    """Open a websocket. auth=(user, password) adds HTTP Basic authentication.

    wss:// needs ssl_ctx (see tlsctx.make_context): there is no unverified fallback.
    The whole opening (TCP, TLS, HTTP upgrade) is bounded by timeout_ms.
    Raises HandshakeError (TLSError for TLS failures) or ValueError for a bad URL/argument.
    """
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
    opening = ws._open(
        opener or _open_tcp, host, port, ssl_ctx if secure else None, request, accept, subprotocol
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


class WebSocket:
    def __init__(self, max_message):
        self._max = max_message
        self._rx = bytearray(max_message)
        self._rxmv = memoryview(self._rx)
        self._ra = bytearray(_RA_SIZE)
        self._ramv = memoryview(self._ra)
        self._rp = 0  # read-ahead: next unread byte
        self._re = 0  # read-ahead: end of valid bytes
        self._tx = bytearray(14 + _CHUNK)  # frame header + one masked chunk
        self._txmv = memoryview(self._tx)
        self._hdr = bytearray(10)
        self._hdrmv = memoryview(self._hdr)
        self._ctl = bytearray(125)
        self._ctlmv = memoryview(self._ctl)
        self._s = None
        self._lock = asyncio.Lock()  # one frame at a time on the wire
        self._done = asyncio.Event()  # set once the socket is closed
        self._reading = False
        self._consumed = False  # recv() has taken bytes of the frame it is reading
        self._close_sent = False
        self._code = 1006
        self._reason = ""
        self.closed = False
        self.last_rx_ms = time.ticks_ms()

    # ---- opening handshake

    async def _open(self, opener, host, port, ssl_ctx, request, accept, subprotocol):
        try:
            stream = await opener(host, port, ssl_ctx, host if ssl_ctx else None)
        except (OSError, ValueError) as e:
            raise HandshakeError(0, "connect %s:%d: %s" % (host, port, e))
        self._s = stream
        tls_phase = ssl_ctx is not None
        try:
            # With TLS the handshake runs inside this first write/drain.
            stream.write(request)
            await stream.drain()
            self._re = await self._recv_some(self._ramv)
            tls_phase = False
            await self._read_response(accept, subprotocol)
        except ConnectionClosed as e:
            await self._drop()
            if tls_phase:
                raise TLSError("TLS handshake: %s" % e.reason)
            raise HandshakeError(0, "handshake: %s" % e.reason)
        except (OSError, ValueError) as e:
            await self._drop()
            raise _net_error(e, tls_phase)
        except BaseException:  # HandshakeError, or cancelled by the timeout
            await self._drop()
            raise
        self.last_rx_ms = time.ticks_ms()

    async def _drop(self):
        self.closed = True
        self._rx = self._rxmv = None
        try:
            await self._s.wait_closed()
        except Exception:
            pass

    async def _read_response(self, accept, subprotocol):
        # Header lines are parsed as they arrive; only their first _MAX_LINE bytes are kept.
        line = bytearray(_MAX_LINE)
        linemv = memoryview(line)
        n = 0
        long_line = False
        total = 0
        status = 0
        got = {}
        while True:
            if self._rp == self._re:
                self._re = await self._recv_some(self._ramv)
                self._rp = 0
            end = self._ra.find(b"\n", self._rp, self._re)
            stop = self._re if end < 0 else end + 1
            k = stop - self._rp
            total += k
            if total > _MAX_RESPONSE:
                raise HandshakeError(status, "response headers too large")
            room = _MAX_LINE - n
            if k > room:
                long_line = True
            c = k if k < room else room
            linemv[n : n + c] = self._ramv[self._rp : self._rp + c]
            n += c
            self._rp = stop
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

    # ---- reading

    async def _recv_some(self, mv):
        # One read of at most len(mv) bytes; returns > 0 or raises ConnectionClosed.
        while True:
            try:
                k = await self._s.readinto(mv)
            except (OSError, ValueError) as e:
                raise await self._lost("read: %s" % e)
            if k:
                self.last_rx_ms = time.ticks_ms()
                return k
            if k == 0:
                raise await self._lost("closed by peer")
            # None: TLS had only part of a record, wait for more

    async def _read(self, mv):
        # Fill mv exactly, from the read-ahead first; big payloads go straight into mv.
        want = len(mv)
        got = 0
        while got < want:
            avail = self._re - self._rp
            if avail:
                k = want - got
                if k > avail:
                    k = avail
                mv[got : got + k] = self._ramv[self._rp : self._rp + k]
                self._rp += k
                got += k
                self._consumed = True
            elif want - got >= _RA_SIZE:
                got += await self._recv_some(mv[got:])
                self._consumed = True
            else:
                k = await self._recv_some(self._ramv)
                self._rp = 0
                self._re = k

    async def recv(self):
        """The next text message as str. Raises ConnectionClosed(code, reason)."""
        if self.closed:
            raise ConnectionClosed(self._code, self._reason)
        if self._reading:
            raise RuntimeError("recv() already running")
        self._reading = True
        self._consumed = False
        try:
            return await self._recv_message()
        except asyncio.CancelledError:
            if self._consumed:  # part of a frame is gone: the stream cannot be parsed any more
                await self._abort(1006, "recv cancelled inside a frame")
            raise
        finally:
            self._reading = False

    async def _recv_message(self):
        rx = self._rxmv
        hdr = self._hdr
        size = 0
        fragmented = False
        while True:
            await self._read(self._hdrmv[0:2])
            b0 = hdr[0]
            b1 = hdr[1]
            op = b0 & 0x0F
            fin = b0 & 0x80
            if b0 & 0x70:
                raise await self._fail(1002, "reserved bits set")
            if b1 & 0x80:
                raise await self._fail(1002, "masked frame from server")
            n = b1 & 0x7F
            if n == 126:
                await self._read(self._hdrmv[2:4])
                n = (hdr[2] << 8) | hdr[3]
            elif n == 127:
                await self._read(self._hdrmv[2:10])
                n = int.from_bytes(self._hdrmv[2:10], "big")
            if op >= 8:
                if not fin or n > 125:
                    raise await self._fail(1002, "bad control frame")
                payload = self._ctlmv[0:n]
                await self._read(payload)
                if op == _OP_PING:
                    if not self._close_sent:
                        await self._send_frame(_OP_PONG, payload)
                elif op == _OP_CLOSE:
                    raise await self._peer_closed(payload)
                elif op != _OP_PONG:
                    raise await self._fail(1002, "reserved opcode")
                continue
            if op == _OP_CONT:
                if not fragmented:
                    raise await self._fail(1002, "continuation without a message")
            elif fragmented:
                raise await self._fail(1002, "new message inside a fragmented one")
            elif op == _OP_BINARY:
                raise await self._fail(1003, "binary messages not accepted")
            elif op != _OP_TEXT:
                raise await self._fail(1002, "reserved opcode")
            if n > self._max - size:
                raise await self._fail(1009, "message over %d bytes" % self._max)
            await self._read(rx[size : size + n])
            size += n
            if fin:
                try:
                    text = str(rx[0:size], "utf-8")
                except UnicodeError:
                    text = None
                # MicroPython only checks the UTF-8 structure; non-ASCII text gets the strict check.
                if text is None or (len(text) != size and not _utf8_strict(rx, size)):
                    raise await self._fail(1007, "invalid UTF-8")
                return text
            fragmented = True

    async def _peer_closed(self, payload):
        n = len(payload)
        code = 1005  # no status code in the frame
        reason = ""
        if n:
            code = (payload[0] << 8) | payload[1] if n >= 2 else 0
            if not _valid_close_code(code):
                return await self._fail(1002, "bad close code")
            try:
                reason = str(payload[2:n], "utf-8")
            except UnicodeError:
                return await self._fail(1007, "invalid UTF-8 in close reason")
        if not self._close_sent:
            try:
                await self._send_close(None if code == 1005 else code, "")
            except ConnectionClosed:
                pass
        await self._abort(code, reason)
        return ConnectionClosed(code, reason)

    async def _fail(self, code, reason):
        # Fail the connection: say why, let the peer answer briefly, then drop the socket.
        if not self.closed:
            if not self._close_sent:
                try:
                    await asyncio.wait_for_ms(self._send_close(code, reason), _CLOSE_WAIT_MS)
                except (ConnectionClosed, asyncio.TimeoutError):
                    pass
            if not self.closed:
                try:
                    # The stream is out of step (unread payload): discard raw bytes until EOF.
                    await asyncio.wait_for_ms(self._discard(), _CLOSE_WAIT_MS)
                except Exception:
                    pass
            await self._abort(code, reason)
        return ConnectionClosed(self._code, self._reason)

    async def _discard(self):
        while True:
            if await self._s.readinto(self._ramv) == 0:
                return

    async def _lost(self, why):
        await self._abort(1006, why)
        return ConnectionClosed(self._code, self._reason)

    async def _abort(self, code, reason):
        if self.closed:
            return
        self.closed = True
        self._code = code
        self._reason = reason
        self._rx = self._rxmv = None  # give the receive buffer back before any reconnect
        try:
            await self._s.wait_closed()
        except Exception:
            pass
        self._done.set()

    # ---- writing

    async def send(self, text):
        """Send one text message (str, or UTF-8 bytes). Raises ConnectionClosed."""
        if self.closed or self._close_sent:
            raise ConnectionClosed(self._code, self._reason)
        await self._send_frame(_OP_TEXT, memoryview(text))

    async def _send_close(self, code, reason):
        self._close_sent = True
        self._code = 1005 if code is None else code
        self._reason = reason
        if code is None:
            payload = b""
        else:
            payload = code.to_bytes(2, "big") + reason.encode()[:123]
        await self._send_frame(_OP_CLOSE, memoryview(payload))

    async def _send_frame(self, op, mv):
        n = len(mv)
        tx = self._tx
        async with self._lock:
            if self.closed:
                raise ConnectionClosed(self._code, self._reason)
            tx[0] = 0x80 | op
            if n < 126:
                tx[1] = 0x80 | n
                p = 2
            elif n < 65536:
                tx[1] = 0xFE
                tx[2] = n >> 8
                tx[3] = n & 0xFF
                p = 4
            else:
                tx[1] = 0xFF
                tx[2:10] = n.to_bytes(8, "big")
                p = 10
            key = os.urandom(4)
            tx[p : p + 4] = key
            p += 4
            # Masking XORs a whole chunk at once as one big integer (runs in C, no per-byte loop).
            full = int.from_bytes(key * (_CHUNK // 4), "little") if n >= _CHUNK else 0
            o = 0  # payload bytes handed to the stream
            started = False
            try:
                while True:
                    k = n - o
                    if k > _CHUNK:
                        k = _CHUNK
                    if k:
                        m = full if k == _CHUNK else int.from_bytes((key * ((k + 3) >> 2))[:k], "little")
                        tx[p : p + k] = (int.from_bytes(mv[o : o + k], "little") ^ m).to_bytes(k, "little")
                    self._s.write(self._txmv[0 : p + k])
                    started = True
                    o += k
                    p = 0
                    await self._s.drain()  # before tx is reused for the next chunk
                    if o >= n:
                        return
            except (OSError, ValueError) as e:
                raise await self._lost("write: %s" % e)
            except asyncio.CancelledError:
                if started and o < n:  # half a frame is out: nothing sent after it could be parsed
                    await self._abort(1006, "send cancelled inside a frame")
                raise

    # ---- closing and liveness

    async def close(self, code=1000, reason=""):
        """Close handshake: send close, wait (bounded) for the server's close, drop the socket."""
        if self.closed:
            return
        if not self._close_sent:
            try:
                await asyncio.wait_for_ms(self._send_close(code, reason), _CLOSE_WAIT_MS)
            except (ConnectionClosed, asyncio.TimeoutError):
                pass
        if not self.closed:
            try:
                if self._reading:  # the reader task will see the answer
                    await asyncio.wait_for_ms(self._done.wait(), _CLOSE_WAIT_MS)
                else:
                    await asyncio.wait_for_ms(self._until_closed(), _CLOSE_WAIT_MS)
            except (ConnectionClosed, asyncio.TimeoutError):
                pass
        await self._abort(code, reason)

    async def _until_closed(self):
        while True:
            await self.recv()  # messages after our close are dropped; ends by raising

    async def keepalive(self, ping_interval_s, pong_timeout_s):
        """Task: ping every ping_interval_s (0 = off); no data within pong_timeout_s -> drop.

        pong_timeout_s <= 0 means ping_interval_s. A pending recv() is what reads the pong.
        """
        if ping_interval_s <= 0:
            return
        if pong_timeout_s <= 0:
            pong_timeout_s = ping_interval_s
        wait_ms = int(pong_timeout_s * 1000)
        count = 0
        while not (self.closed or self._close_sent):
            try:
                await asyncio.wait_for_ms(self._done.wait(), int(ping_interval_s * 1000))
                return  # closed meanwhile
            except asyncio.TimeoutError:
                pass
            if self._close_sent:
                return
            count = (count + 1) & 0xFFFFFFFF
            payload = memoryview(count.to_bytes(4, "big"))
            sent = time.ticks_ms()
            try:
                # A peer that stopped reading would block the send: bound it too.
                await asyncio.wait_for_ms(self._send_frame(_OP_PING, payload), wait_ms)
            except ConnectionClosed:
                return
            except asyncio.TimeoutError:
                pass
            # The pong, or any other byte received since the ping, shows the link is alive.
            while time.ticks_diff(self.last_rx_ms, sent) < 0:
                if self.closed:
                    return
                left = wait_ms - time.ticks_diff(time.ticks_ms(), sent)
                if left <= 0:
                    await self._abort(1006, "no pong within %d s" % pong_timeout_s)
                    return
                await asyncio.sleep_ms(left if left < _POLL_MS else _POLL_MS)


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


def _valid_close_code(code):
    if 3000 <= code <= 4999:
        return True
    return 1000 <= code <= 1014 and code not in (1004, 1005, 1006)


def _utf8_strict(b, n):
    # Rejects what MicroPython's decoder lets through: overlong forms, surrogates, > U+10FFFF.
    i = 0
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            k, lo, hi = 1, 0x80, 0xBF
        elif 0xE0 <= c <= 0xEF:
            k = 2
            lo = 0xA0 if c == 0xE0 else 0x80
            hi = 0x9F if c == 0xED else 0xBF
        elif 0xF0 <= c <= 0xF4:
            k = 3
            lo = 0x90 if c == 0xF0 else 0x80
            hi = 0x8F if c == 0xF4 else 0xBF
        else:
            return False
        if i + k >= n:
            return False
        d = b[i + 1]
        if d < lo or d > hi:
            return False
        for j in range(i + 2, i + k + 1):
            if b[j] & 0xC0 != 0x80:
                return False
        i += k + 1
    return True
