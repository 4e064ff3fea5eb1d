# One websocket text message sent from pieces (loaded for one use by ocpp/rpc.py, then dropped):
# a large answer (GetConfiguration of every key) is never built as one string. `parts()` returns
# a fresh iterator of str/bytes pieces each time it is called: once to count the bytes for the
# frame header, once to send them through the socket's 512-byte masking buffer.
import asyncio

from micropython import const

from ocpp.ws import ConnectionClosed

_OP_TEXT = const(1)
_CHUNK = const(128)  # fits the socket's tx buffer behind a frame header


def _bytes(piece):
    return piece.encode() if isinstance(piece, str) else piece


async def send_parts(ws, parts):
    n = 0
    for piece in parts():
        n += len(_bytes(piece))
    # Masked _CHUNK bytes at a time through the socket's tx buffer: each chunk's XOR makes two
    # objects its size, so small chunks keep a large answer's transient heap small.
    chunk = _CHUNK  # a multiple of 4: every chunk starts at mask byte 0
    async with ws._lock:
        if ws.closed or ws._close_sent:
            raise ConnectionClosed(ws._code, ws._reason)
        head, key = ws._header(_OP_TEXT, n)  # header bytes in front of the first chunk
        full = int.from_bytes(key * (chunk // 4), "little")
        fill = 0  # payload bytes staged in tx after the header
        stage = ws._txmv[head:]  # the first chunk shares tx with the header
        started = False
        try:
            for piece in parts():
                b = _bytes(piece)
                i = 0
                while i < len(b):
                    k = min(len(b) - i, chunk - fill)
                    stage[fill : fill + k] = b[i : i + k]
                    fill += k
                    i += k
                    if fill == chunk:
                        await _flush(ws, head, fill, full, key, chunk)
                        started = True
                        head = fill = 0
                        stage = ws._txmv
            await _flush(ws, head, fill, full, key, chunk)
        except (OSError, ValueError) as e:
            raise await ws._lost("write: %s" % e)
        except asyncio.CancelledError:
            if started:  # half a frame is out: nothing sent after it could be parsed
                await ws._abort(1006, "send cancelled inside a frame")
            raise


async def _flush(ws, head, k, full, key, chunk):
    # Mask the k staged payload bytes (chunks start at payload offsets that are multiples of
    # the chunk size, so the key's phase starts at 0 in each) and write them with the header
    # in front.
    if k:
        tx = ws._tx
        m = full if k == chunk else int.from_bytes((key * ((k + 3) >> 2))[:k], "little")
        tx[head : head + k] = (int.from_bytes(tx[head : head + k], "little") ^ m).to_bytes(k, "little")
    ws._s.write(ws._txmv[0 : head + k])
    await ws._s.drain()
