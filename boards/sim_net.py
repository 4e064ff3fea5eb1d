# The sim board's network link. Connections go through the host's TCP stack, wrapped so that a
# "network down" acts like a pulled cable: new connections fail after a short delay, existing
# ones go silent (reads deliver nothing, writes are held) and resume when the link is back.
# Nothing reports the loss: the firmware's own liveness checks (websocket ping) must notice.
# Simplification: when the firmware closes a stream while the link is down, the socket is closed
# at once (that is what wakes a pending read), so the peer sees the close immediately.
import asyncio

from micropython import const

EHOSTUNREACH = const(113)
EBADF = const(9)
NO_ROUTE_DELAY_MS = const(500)
POLL_MS = const(50)
HOLD_MAX = const(65536)  # bytes of writes held while down (a socket send buffer's worth)

_open = []  # LinkStreams not yet closed, so a firmware restart can close what it left open


async def open_connection(world, host, port, ssl_ctx=None, server_hostname=None):
    if not world.link_up:
        await asyncio.sleep_ms(NO_ROUTE_DELAY_MS)
        raise OSError(EHOSTUNREACH)
    if ssl_ctx is None:
        s, _ = await asyncio.open_connection(host, port)
    else:
        s, _ = await asyncio.open_connection(host, port, ssl=ssl_ctx, server_hostname=server_hostname)
    ls = LinkStream(world, s)
    _open.append(ls)
    return ls


class LinkStream:
    """An asyncio stream whose traffic stalls while world.link_up is False."""

    def __init__(self, world, stream):
        self._w = world
        self._s = stream
        self._held = []
        self._held_len = 0
        self._closed = False

    async def _gate(self):
        while not self._w.link_up:
            if self._closed:
                raise OSError(EBADF)
            await asyncio.sleep_ms(POLL_MS)
        if self._closed:
            raise OSError(EBADF)
        if self._held:
            self._flush_held()

    def _flush_held(self):
        held = self._held
        self._held = []
        self._held_len = 0
        for b in held:
            self._s.write(b)

    async def read(self, n=-1):
        await self._gate()
        data = await self._s.read(n)
        await self._gate()  # what arrived while the link went down waits for it to come back
        return data

    async def readinto(self, buf):
        await self._gate()
        n = await self._s.readinto(buf)
        await self._gate()
        return n

    async def readexactly(self, n):
        await self._gate()
        data = await self._s.readexactly(n)
        await self._gate()
        return data

    async def readline(self):
        await self._gate()
        data = await self._s.readline()
        await self._gate()
        return data

    def write(self, buf):
        if self._closed:
            raise OSError(EBADF)
        if self._w.link_up and not self._held:
            self._s.write(buf)
        else:
            self._held.append(bytes(buf))
            self._held_len += len(buf)

    async def drain(self):
        if not self._w.link_up:
            if self._held_len < HOLD_MAX:
                return  # fits the (simulated) socket buffer: returns like a real drain would
            await self._gate()
        if self._held:
            self._flush_held()
        await self._s.drain()

    def close(self):
        pass  # like asyncio's Stream.close(): wait_closed() does the closing

    async def wait_closed(self):
        if self._closed:
            return
        self._closed = True
        if self in _open:
            _open.remove(self)
        self._held = []
        await self._s.wait_closed()

    def get_extra_info(self, name):
        return self._s.get_extra_info(name)


async def close_all():
    """Close every stream the firmware left open (firmware restart or shutdown)."""
    while _open:
        ls = _open.pop()
        ls._closed = True
        try:
            await ls._s.wait_closed()
        except OSError:
            pass
