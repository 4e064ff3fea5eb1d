# RFC 6455 websocket client for OCPP-J (text messages only), on asyncio streams.
#
# Memory: one connection owns fixed buffers allocated at connect (the receive buffer of
# max_message bytes, a 512-byte read-ahead, a 526-byte send buffer, 10 + 125 bytes for frame
# headers and control payloads). Nothing from the wire is allocated in proportion to a length
# the peer declares: sizes are checked against max_message before any byte of payload is read.
# Liveness: frame reads are never wrapped in wait_for (a cancelled read loses bytes); the
# keepalive() task closes the socket instead, which makes a pending recv() fail.
import asyncio
import os
import sys
import time

from micropython import const

import lazy

MAX_MESSAGE = const(10752)
TIMEOUT_MS = const(10000)

_RA_SIZE = const(512)  # read-ahead: one read usually holds a whole small frame
_CHUNK = const(512)  # send masking unit, multiple of 4 so every chunk starts at mask byte 0
_POLL_MS = const(50)  # keepalive: how often to look for the pong

_OP_CONT = const(0)
_OP_TEXT = const(1)
_OP_BINARY = const(2)
_OP_CLOSE = const(8)
_OP_PING = const(9)
_OP_PONG = const(10)


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
    from ocpp import ws_open

    try:
        return ws_open.parse_url(url)
    finally:
        _forget_handshake()


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
    from ocpp import ws_open

    try:
        return await ws_open.connect(url, subprotocol, auth, ssl_ctx, opener, max_message, timeout_ms)
    finally:
        _forget_handshake()


def _forget_handshake():
    # Drop the handshake module: once no connect runs, its code is garbage.
    sys.modules.pop("ocpp.ws_open", None)
    pkg = sys.modules.get("ocpp")
    if pkg is not None and "ws_open" in pkg.__dict__:
        del pkg.__dict__["ws_open"]


# The receive buffer outlives its connection and serves the next one. A charger reconnects for
# years; after a while the heap may not hold a fresh max_message-sized block, while the first
# connection, made at boot, always finds one. (One connection at a time, as OCPP has.)
_spare_rx = None


def _rare():
    # The close handshake, failing a connection and the strict UTF-8 check (ocpp/ws_rare.py):
    # loaded when a connection ends or misbehaves, not held the rest of the time.
    return lazy.load("ocpp.ws_rare")


def reserve(size=MAX_MESSAGE):
    """Allocate the receive buffer now (boot), while the heap still has a block that large."""
    global _spare_rx
    if _spare_rx is None or len(_spare_rx) != size:
        _spare_rx = bytearray(size)


def _take_rx_buffer(size):
    global _spare_rx
    buf = _spare_rx
    _spare_rx = None
    if buf is None or len(buf) != size:
        buf = bytearray(size)
    return buf


class WebSocket:
    def __init__(self, max_message):
        self._max = max_message
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
        # Last: if a small allocation above failed, the spare receive buffer is still spare.
        self._rx = _take_rx_buffer(max_message)
        self._rxmv = memoryview(self._rx)
        self.closed = False
        self.last_rx_ms = time.ticks_ms()

    async def _drop(self):
        self.closed = True
        self._release_rx()
        try:
            await self._s.wait_closed()
        except Exception:
            pass

    def _release_rx(self):
        global _spare_rx
        if self._rx is not None:
            _spare_rx = self._rx
        self._rx = self._rxmv = None

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
                raise await _rare().fail(self, 1002, "reserved bits set")
            if b1 & 0x80:
                raise await _rare().fail(self, 1002, "masked frame from server")
            n = b1 & 0x7F
            if n == 126:
                await self._read(self._hdrmv[2:4])
                n = (hdr[2] << 8) | hdr[3]
            elif n == 127:
                await self._read(self._hdrmv[2:10])
                n = int.from_bytes(self._hdrmv[2:10], "big")
            if op >= 8:
                if not fin or n > 125:
                    raise await _rare().fail(self, 1002, "bad control frame")
                payload = self._ctlmv[0:n]
                await self._read(payload)
                if op == _OP_PING:
                    if not self._close_sent:
                        await self._send_frame(_OP_PONG, payload)
                elif op == _OP_CLOSE:
                    raise await _rare().peer_closed(self, payload)
                elif op != _OP_PONG:
                    raise await _rare().fail(self, 1002, "reserved opcode")
                continue
            if op == _OP_CONT:
                if not fragmented:
                    raise await _rare().fail(self, 1002, "continuation without a message")
            elif fragmented:
                raise await _rare().fail(self, 1002, "new message inside a fragmented one")
            elif op == _OP_BINARY:
                raise await _rare().fail(self, 1003, "binary messages not accepted")
            elif op != _OP_TEXT:
                raise await _rare().fail(self, 1002, "reserved opcode")
            if n > self._max - size:
                raise await _rare().fail(self, 1009, "message over %d bytes" % self._max)
            await self._read(rx[size : size + n])
            size += n
            if fin:
                try:
                    text = str(rx[0:size], "utf-8")
                except UnicodeError:
                    text = None
                # MicroPython only checks the UTF-8 structure; non-ASCII text gets the strict check.
                if text is None or (len(text) != size and not _rare().utf8_strict(rx, size)):
                    raise await _rare().fail(self, 1007, "invalid UTF-8")
                return text
            fragmented = True

    async def _lost(self, why):
        await self._abort(1006, why)
        return ConnectionClosed(self._code, self._reason)

    async def _abort(self, code, reason):
        if self.closed:
            return
        self.closed = True
        self._code = code
        self._reason = reason
        self._release_rx()  # give the receive buffer back before any reconnect
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

    def _header(self, op, n):
        """Write the header of a final, masked frame of n payload bytes into tx: (its length, the
        mask key)."""
        tx = self._tx
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
        return p + 4, key

    async def _send_frame(self, op, mv):
        n = len(mv)
        tx = self._tx
        async with self._lock:
            if self.closed:
                raise ConnectionClosed(self._code, self._reason)
            p, key = self._header(op, n)
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

    async def drop(self, reason):
        """Fail the connection without a close handshake (RFC 6455 7.1.7): the network under it
        is gone, nothing would arrive. A pending recv() raises ConnectionClosed(1006)."""
        await self._abort(1006, reason)

    async def close(self, code=1000, reason=""):
        """Close handshake: send close, wait (bounded) for the server's close, drop the socket."""
        if not self.closed:
            await _rare().close(self, code, reason)

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
