# The websocket's rare paths (loaded by ocpp/ws.py when a connection ends or misbehaves, then
# dropped): the close handshake both ways, failing the connection with a close code, and the
# strict UTF-8 check of non-ASCII text. They work on the WebSocket's own fields.
import asyncio

from micropython import const

from ocpp.ws import ConnectionClosed

_CLOSE_WAIT_MS = const(2000)  # how long a close handshake may take before the socket is dropped
_OP_CLOSE = const(8)


async def peer_closed(ws, payload):
    n = len(payload)
    code = 1005  # no status code in the frame
    reason = ""
    if n:
        code = (payload[0] << 8) | payload[1] if n >= 2 else 0
        if not valid_close_code(code):
            return await fail(ws, 1002, "bad close code")
        try:
            reason = str(payload[2:n], "utf-8")
        except UnicodeError:
            return await fail(ws, 1007, "invalid UTF-8 in close reason")
    if not ws._close_sent:
        try:
            await send_close(ws, None if code == 1005 else code, "")
        except ConnectionClosed:
            pass
    await ws._abort(code, reason)
    return ConnectionClosed(code, reason)


async def say_close(ws, code, reason):
    # Send our close frame once, bounded: a stuck peer must not hold the close up.
    if not ws._close_sent:
        try:
            await asyncio.wait_for_ms(send_close(ws, code, reason), _CLOSE_WAIT_MS)
        except (ConnectionClosed, asyncio.TimeoutError):
            pass


async def fail(ws, code, reason):
    # Fail the connection: say why, let the peer answer briefly, then drop the socket.
    if not ws.closed:
        await say_close(ws, code, reason)
        if not ws.closed:
            try:
                # The stream is out of step (unread payload): discard raw bytes until EOF.
                await asyncio.wait_for_ms(discard(ws), _CLOSE_WAIT_MS)
            except Exception:
                pass
        await ws._abort(code, reason)
    return ConnectionClosed(ws._code, ws._reason)


async def discard(ws):
    while True:
        if await ws._s.readinto(ws._ramv) == 0:
            return


async def send_close(ws, code, reason):
    ws._close_sent = True
    ws._code = 1005 if code is None else code
    ws._reason = reason
    if code is None:
        payload = b""
    else:
        payload = code.to_bytes(2, "big") + reason.encode()[:123]
    await ws._send_frame(_OP_CLOSE, memoryview(payload))


async def close(ws, code=1000, reason=""):
    """Close handshake: send close, wait (bounded) for the server's close, drop the socket."""
    if ws.closed:
        return
    await say_close(ws, code, reason)
    if not ws.closed:
        try:
            if ws._reading:  # the reader task will see the answer
                await asyncio.wait_for_ms(ws._done.wait(), _CLOSE_WAIT_MS)
            else:
                await asyncio.wait_for_ms(until_closed(ws), _CLOSE_WAIT_MS)
        except (ConnectionClosed, asyncio.TimeoutError):
            pass
    await ws._abort(code, reason)


async def until_closed(ws):
    while True:
        await ws.recv()  # messages after our close are dropped; ends by raising


def valid_close_code(code):
    if 3000 <= code <= 4999:
        return True
    return 1000 <= code <= 1014 and code not in (1004, 1005, 1006)


def utf8_strict(b, n):
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
