# A scripted websocket server for the ws client tests, running in the same MicroPython process.
# Each test gives a handler coroutine that plays the server side on a raw Peer stream.
import asyncio
import binascii
import hashlib
import io
import os
import sys

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_port = [18000 + int.from_bytes(os.urandom(2), "big") % 3000]


def accept_for(key):
    return binascii.b2a_base64(hashlib.sha1(key + GUID).digest())[:-1]


def close_payload(code, reason=b""):
    return code.to_bytes(2, "big") + reason


class Peer:
    """Server side of one connection."""

    def __init__(self, stream):
        self.s = stream
        self.request_line = b""
        self.headers = {}

    async def read_request(self, timeout_ms=3000):
        return await asyncio.wait_for_ms(self._read_request(), timeout_ms)

    async def _read_request(self):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await self.s.read(1024)
            if not chunk or len(data) > 8192:
                raise AssertionError("no complete request: %r" % data)
            data += chunk
        lines = data.split(b"\r\n")
        self.request_line = lines[0]
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(b":")
                self.headers[name.strip().lower()] = value.strip()
        return self.headers

    def response(self, status=b"101 Switching Protocols", protocol=b"ocpp1.6", accept=None, extra=b""):
        if accept is None:
            accept = accept_for(self.headers[b"sec-websocket-key"])
        parts = [b"HTTP/1.1 ", status, b"\r\n"]
        if status.startswith(b"101"):
            parts.append(b"Upgrade: websocket\r\nConnection: Upgrade\r\n")
            parts += [b"Sec-WebSocket-Accept: ", accept, b"\r\n"]
            if protocol is not None:
                parts += [b"Sec-WebSocket-Protocol: ", protocol, b"\r\n"]
        parts += [extra, b"\r\n"]
        return b"".join(parts)

    async def handshake(self, **kw):
        await self.read_request()
        await self.write(self.response(**kw))

    async def write(self, data):
        self.s.write(data)
        await self.s.drain()

    def frame(self, opcode, payload=b"", fin=True, rsv=0, mask=False, length=None):
        n = len(payload) if length is None else length
        b0 = (0x80 if fin else 0) | rsv | opcode
        m = 0x80 if mask else 0
        if n < 126:
            head = bytes((b0, m | n))
        elif n < 65536:
            head = bytes((b0, m | 126)) + n.to_bytes(2, "big")
        else:
            head = bytes((b0, m | 127)) + n.to_bytes(8, "big")
        if mask:
            key = b"\x01\x02\x03\x04"
            payload = bytes(payload[i] ^ key[i & 3] for i in range(len(payload)))
            head += key
        return head + payload

    async def send(self, opcode, payload=b"", **kw):
        await self.write(self.frame(opcode, payload, **kw))

    async def read_frame(self, timeout_ms=3000):
        """One client frame -> (fin, opcode, unmasked payload). Client frames must be masked.
        The timeout turns a client that never sends into a failed test, not a hung one."""
        return await asyncio.wait_for_ms(self._read_frame(), timeout_ms)

    async def _read_frame(self):
        h = await self.s.readexactly(2)
        n = h[1] & 0x7F
        if n == 126:
            n = int.from_bytes(await self.s.readexactly(2), "big")
        elif n == 127:
            n = int.from_bytes(await self.s.readexactly(8), "big")
        if not h[1] & 0x80:
            raise AssertionError("client frame not masked")
        key = await self.s.readexactly(4)
        data = bytearray(n)
        mv = memoryview(data)
        got = 0
        while got < n:  # readinto: readexactly would build the payload by repeated +=
            k = await self.s.readinto(mv[got:])
            if not k:
                raise EOFError
            got += k
        for i in range(n):
            data[i] ^= key[i & 3]
        return bool(h[0] & 0x80), h[0] & 0x0F, bytes(data)

    async def read_close(self):
        """Read frames until a close; return (code, reason) or (None, b"") for an empty close."""
        while True:
            fin, op, data = await self.read_frame()
            if op == 8:
                if len(data) >= 2:
                    return int.from_bytes(data[:2], "big"), data[2:]
                return None, b""

    async def at_eof(self, timeout_ms=3000):
        """True when the client closes the TCP connection within timeout_ms."""
        try:
            while True:
                chunk = await asyncio.wait_for_ms(self.s.read(4096), timeout_ms)
                if not chunk:
                    return True
        except asyncio.TimeoutError:
            return False
        except OSError:
            return True


class Server:
    def __init__(self, handler):
        self.handler = handler
        self.errors = []
        self.started = 0
        self.finished = 0
        self.port = 0
        self.srv = None

    async def _conn(self, r, w):
        self.started += 1
        try:
            await self.handler(Peer(r))
        except Exception as e:
            buf = io.StringIO()
            sys.print_exception(e, buf)
            self.errors.append(buf.getvalue())
        finally:
            try:
                await r.wait_closed()
            except Exception:
                pass
            self.finished += 1

    async def finish(self, timeout_ms=4000):
        """Wait for the handlers, stop listening, fail with the first server-side error."""
        waited = 0
        while self.finished < self.started and waited < timeout_ms:
            await asyncio.sleep_ms(10)
            waited += 10
        self.srv.close()
        await self.srv.wait_closed()
        if self.errors:
            raise AssertionError("server side failed:\n" + self.errors[0])
        if self.finished < self.started:
            raise AssertionError("server handler still running")

    @property
    def url(self):
        return "ws://127.0.0.1:%d/ocpp/CP1" % self.port


async def serve(handler):
    server = Server(handler)
    for _ in range(50):
        port = _port[0]
        _port[0] += 1
        try:
            server.srv = await asyncio.start_server(server._conn, "127.0.0.1", port)
        except OSError:
            continue
        server.port = port
        return server
    raise OSError("no free port")
