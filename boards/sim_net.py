# The sim board's network link. Connections go through the host's TCP stack, wrapped so that a
# "network down" (board.link False, pushed by the supervisor) acts like a pulled cable: new
# connections fail after a short delay, existing ones go silent (reads deliver nothing, writes
# are held) and resume when the link is back. Nothing reports the loss: the firmware's own
# liveness checks (websocket ping) must notice.
# Simplification: when the firmware closes a stream while the link is down, the socket is closed
# at once (that is what wakes a pending read), so the peer sees the close immediately.
import asyncio

from micropython import const

EHOSTUNREACH = const(113)
EBADF = const(9)
NO_ROUTE_DELAY_MS = const(500)
_POLL_MS = const(50)
_HOLD_MAX = const(65536)  # bytes of writes held while down (a socket send buffer's worth)


async def open_connection(board, host, port, ssl_ctx=None, server_hostname=None):
    if not board.link:
        await asyncio.sleep_ms(NO_ROUTE_DELAY_MS)
        raise OSError(EHOSTUNREACH)
    s, _ = await asyncio.open_connection(host, port, ssl=ssl_ctx, server_hostname=server_hostname)
    return LinkStream(board, s)


class LinkStream:
    """An asyncio stream whose traffic stalls while board.link is False."""

    def __init__(self, board, stream):
        self._b = board
        self._s = stream
        self._held = None  # bytearray of writes held while the link is down
        self._closed = False

    async def _gate(self):
        while not self._b.link:
            if self._closed:
                break
            await asyncio.sleep_ms(_POLL_MS)
        if self._closed:
            raise OSError(EBADF)
        if self._held:
            held = self._held
            self._held = None
            self._s.write(held)

    async def readinto(self, buf):
        await self._gate()
        n = await self._s.readinto(buf)
        await self._gate()  # what arrived while the link went down waits for it to come back
        return n

    async def readexactly(self, n):
        await self._gate()
        data = await self._s.readexactly(n)
        await self._gate()
        return data

    def write(self, buf):
        if self._closed:
            raise OSError(EBADF)
        if self._b.link and not self._held:
            self._s.write(buf)
        elif self._held:
            self._held.extend(buf)
        else:
            self._held = bytearray(buf)

    async def drain(self):
        if not self._b.link and (self._held is None or len(self._held) < _HOLD_MAX):
            return  # fits the (simulated) socket buffer: returns like a real drain would
        await self._gate()
        await self._s.drain()

    async def wait_closed(self):
        if not self._closed:
            self._closed = True
            self._held = None
            await self._s.wait_closed()
