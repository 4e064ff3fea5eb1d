# The websocket client against a scripted server in the same process (wsfixture).
# A small heap: the oversize cases declare lengths beyond it (1 MiB and more), so any allocation
# proportional to a declared length fails with MemoryError. The scripted server shares the heap
# and compiling this file from source fragments it: 192K failed on CI once (the server's 8 KB
# frame buffer), so 384K leaves room while staying far below the declared lengths.
# mp-heap: 384K
import asyncio
import binascii
import time

import wsfixture as fx
from ocpp import ws


async def expect_closed(coro, code):
    try:
        await coro
    except ws.ConnectionClosed as e:
        assert e.code == code, (e.code, e.reason)
        return e
    raise AssertionError("no ConnectionClosed(%d)" % code)


async def expect_handshake_error(server, status=None, **kw):
    try:
        c = await ws.connect(server.url, timeout_ms=kw.pop("timeout_ms", 2000), **kw)
    except ws.HandshakeError as e:
        if status is not None:
            assert e.status == status, (e.status, e.reason)
        return e
    await c.close()
    raise AssertionError("connected although the handshake was bad")


# ---- URL


def test_parse_url():
    assert ws.parse_url("ws://10.0.0.5/ocpp/CP1") == (False, "10.0.0.5", 80, "/ocpp/CP1")
    assert ws.parse_url("wss://csms.example.com:8443/a/b?x=1") == (True, "csms.example.com", 8443, "/a/b?x=1")
    assert ws.parse_url("wss://host") == (True, "host", 443, "/")
    for bad in (
        "http://h/",
        "ws://",
        "ws://h:0/",
        "ws://h:70000/",
        "ws://h:x/",
        "ws://user:pw@h/",
        "ws://[::1]/",
        "ws://h/a b",
        "ws://h/a\r\nX: y",
    ):
        try:
            ws.parse_url(bad)
        except ValueError:
            continue
        raise AssertionError("accepted " + bad)


async def test_wss_without_context_refused():
    try:
        await ws.connect("wss://127.0.0.1:1/x")
    except ValueError:
        return
    raise AssertionError("wss without ssl_ctx must not connect")


# ---- opening handshake


async def test_handshake_request_and_text_roundtrip():
    seen = {}

    async def handler(peer):
        await peer.handshake()
        seen["line"] = peer.request_line
        seen["headers"] = peer.headers
        fin, op, data = await peer.read_frame()  # read_frame fails if the frame is not masked
        seen["frame"] = (fin, op, data)
        await peer.send(1, b"echo:" + data)
        seen["close"] = await peer.read_close()
        await peer.send(8, fx.close_payload(1000))

    server = await fx.serve(handler)
    c = await ws.connect(server.url)
    # The handshake code is not kept in RAM once the connection is open.
    import sys

    import ocpp

    assert "ocpp.ws_open" not in sys.modules and not hasattr(ocpp, "ws_open")
    text = "h\u00e9llo \u20ac " * 100  # multi-chunk, not a multiple of 4 bytes
    await c.send(text)
    assert await c.recv() == "echo:" + text
    await c.close()
    await server.finish()
    h = seen["headers"]
    assert seen["line"] == b"GET /ocpp/CP1 HTTP/1.1"
    assert h[b"host"] == b"127.0.0.1:%d" % server.port
    assert h[b"upgrade"].lower() == b"websocket"
    assert h[b"sec-websocket-version"] == b"13"
    assert h[b"sec-websocket-protocol"] == b"ocpp1.6"
    assert len(binascii.a2b_base64(h[b"sec-websocket-key"])) == 16
    assert b"authorization" not in h
    assert seen["frame"] == (True, 1, text.encode())
    assert seen["close"] == (1000, b"")


async def test_keys_are_random():
    keys = []

    async def handler(peer):
        await peer.handshake()
        keys.append(peer.headers[b"sec-websocket-key"])
        await peer.read_close()
        await peer.send(8, fx.close_payload(1000))

    server = await fx.serve(handler)
    for _ in range(2):
        c = await ws.connect(server.url)
        await c.close()
    await server.finish()
    assert keys[0] != keys[1]


async def test_basic_auth_checked_by_server():
    async def handler(peer):
        await peer.read_request()
        auth = peer.headers.get(b"authorization", b"")
        if auth == b"Basic " + binascii.b2a_base64(b"CP1:s3cret:x")[:-1]:
            await peer.write(peer.response())
            await peer.read_close()
            await peer.send(8, fx.close_payload(1000))
        else:
            await peer.write(peer.response(status=b"401 Unauthorized", extra=b"Content-Length: 0\r\n"))

    server = await fx.serve(handler)
    c = await ws.connect(server.url, auth=("CP1", "s3cret:x"))
    await c.close()
    e = await expect_handshake_error(server, 401, auth=("CP1", "wrong"))
    assert "Unauthorized" in e.reason
    await expect_handshake_error(server, 401)  # no credentials at all
    await server.finish()


async def test_bad_accept_rejected():
    async def handler(peer):
        await peer.read_request()
        await peer.write(peer.response(accept=fx.accept_for(b"dGhlIHNhbXBsZSBub25jZQ==")))

    server = await fx.serve(handler)
    e = await expect_handshake_error(server)
    assert "Accept" in e.reason
    await server.finish()


async def test_subprotocol_must_be_agreed():
    for proto in (None, b"ocpp2.0.1", b"ocpp1.6, ocpp2.0.1"):

        async def handler(peer, proto=proto):
            await peer.read_request()
            await peer.write(peer.response(protocol=proto))

        server = await fx.serve(handler)
        e = await expect_handshake_error(server)
        assert "subprotocol" in e.reason, e.reason
        await server.finish()


async def test_status_200_rejected():
    async def handler(peer):
        await peer.read_request()
        await peer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")

    server = await fx.serve(handler)
    await expect_handshake_error(server, 200)
    await server.finish()


async def test_long_status_line_keeps_code():
    async def handler(peer):
        await peer.read_request()
        await peer.write(b"HTTP/1.1 401 " + b"Unauthorized" * 40 + b"\r\n\r\n")

    server = await fx.serve(handler)
    e = await expect_handshake_error(server, 401)
    assert e.reason.startswith("Unauthorized")
    await server.finish()


async def test_not_http_rejected():
    async def handler(peer):
        await peer.read_request()
        await peer.write(b"SSH-2.0-OpenSSH\r\n\r\n")

    server = await fx.serve(handler)
    await expect_handshake_error(server, 0)
    await server.finish()


async def test_oversize_handshake_response_rejected_without_memory_error():
    filler = b"X-Filler: " + b"a" * 500 + b"\r\n"

    async def many_lines(peer):
        await peer.read_request()
        await peer.write(b"HTTP/1.1 101 Switching Protocols\r\n")
        try:
            for _ in range(400):  # 200 KB of headers, more than the whole heap
                await peer.write(filler)
        except OSError:
            pass

    async def endless_line(peer):
        await peer.read_request()
        await peer.write(b"HTTP/1.1 101 Switching Protocols\r\nX-Long: ")
        try:
            for _ in range(400):
                await peer.write(filler[:-2])
        except OSError:
            pass

    for handler in (many_lines, endless_line):
        server = await fx.serve(handler)
        e = await expect_handshake_error(server)
        assert "too large" in e.reason, e.reason
        await server.finish()


async def test_long_header_lines():
    # A long header we do not need is skipped; a long one we need is an error.
    async def long_cookie(peer):
        await peer.read_request()
        await peer.write(peer.response(extra=b"Set-Cookie: " + b"c" * 1000 + b"\r\n"))
        await peer.read_close()
        await peer.send(8, fx.close_payload(1000))

    async def long_protocol(peer):
        await peer.read_request()
        await peer.write(peer.response(protocol=b"ocpp1.6" + b" " * 400))

    server = await fx.serve(long_cookie)
    c = await ws.connect(server.url)
    await c.close()
    await server.finish()
    server = await fx.serve(long_protocol)
    e = await expect_handshake_error(server)
    assert "sec-websocket-protocol" in e.reason, e.reason
    await server.finish()


async def test_handshake_timeout():
    async def handler(peer):
        await peer.read_request()
        await asyncio.sleep_ms(1500)  # never answers in time

    server = await fx.serve(handler)
    t0 = time.ticks_ms()
    e = await expect_handshake_error(server, 0, timeout_ms=300)
    assert time.ticks_diff(time.ticks_ms(), t0) < 1000
    assert "300" in e.reason
    await server.finish()


async def test_connection_refused_is_handshake_error():
    server = await fx.serve(None)
    port = server.port
    server.srv.close()
    await server.srv.wait_closed()
    ws.reserve()
    spare = ws._spare_rx
    try:
        await ws.connect("ws://127.0.0.1:%d/" % port, timeout_ms=1000)
    except ws.HandshakeError as e:
        assert e.status == 0
        # The receive buffer set aside at boot waits for the next attempt (a new one may not fit).
        assert ws._spare_rx is spare
        return
    raise AssertionError("connected to a closed port")


async def test_first_frame_in_same_packet_as_response():
    async def handler(peer):
        await peer.read_request()
        await peer.write(peer.response() + peer.frame(1, b"early") + peer.frame(1, b"second"))
        await peer.read_close()
        await peer.send(8, fx.close_payload(1000))

    server = await fx.serve(handler)
    c = await ws.connect(server.url)
    assert await c.recv() == "early"
    assert await c.recv() == "second"
    await c.close()
    await server.finish()


# ---- receiving


async def test_fragments_with_ping_inside():
    seen = {}

    async def handler(peer):
        await peer.handshake()
        await peer.send(1, b"part1-", fin=False)
        await peer.send(9, b"are you there")
        seen["pong"] = await peer.read_frame()  # before the message is complete
        await peer.send(0, b"part2-", fin=False)
        await peer.send(10, b"unsolicited pong")
        await peer.send(0, b"part3", fin=True)
        await peer.send(1, b"")  # an empty message is a message
        await peer.read_close()
        await peer.send(8, fx.close_payload(1000))

    server = await fx.serve(handler)
    c = await ws.connect(server.url)
    assert await c.recv() == "part1-part2-part3"
    assert await c.recv() == ""
    await c.close()
    await server.finish()
    assert seen["pong"] == (True, 10, b"are you there")


async def test_large_message_within_limit():
    big = b"0123456789abcdef" * 500  # 8000 bytes: 16-bit length (64-bit: test_ws_tls interop)

    async def handler(peer):
        await peer.handshake()
        await peer.send(1, big)
        fin, op, data = await peer.read_frame()
        assert (fin, op) == (True, 1)
        assert data == big + b"!", len(data)  # many chunks, not a multiple of 4
        await peer.read_close()
        await peer.send(8, fx.close_payload(1000))

    server = await fx.serve(handler)
    c = await ws.connect(server.url)
    got = await c.recv()
    assert got == big.decode()
    got = None
    await c.send(big + b"!")
    await c.close()
    await server.finish()


async def oversize_case(send_oversize, max_message=1000):
    seen = {}

    async def handler(peer):
        await peer.handshake()
        await send_oversize(peer)
        seen["close"] = await peer.read_close()
        await peer.send(8, fx.close_payload(1009))
        seen["eof"] = await peer.at_eof()

    server = await fx.serve(handler)
    c = await ws.connect(server.url, max_message=max_message)
    e = await expect_closed(c.recv(), 1009)
    await server.finish()
    assert seen["close"][0] == 1009, seen
    assert seen["eof"]
    assert c.closed
    return e


async def test_oversize_frame_closes_1009():
    async def declared_huge(peer):
        await peer.write(peer.frame(1, b"x" * 64, length=1 << 40))

    async def just_over(peer):
        await peer.send(1, b"y" * 1001)  # the whole payload is sent and left unread

    async def over_default(peer):
        await peer.write(peer.frame(1, b"", length=1 << 20))
        for _ in range(20):
            await peer.write(b"z" * 1000)

    await oversize_case(declared_huge)
    await oversize_case(just_over)
    await oversize_case(over_default, max_message=ws.MAX_MESSAGE)


async def test_oversize_by_fragments_closes_1009():
    async def fragments(peer):
        await peer.send(1, b"a" * 400, fin=False)
        await peer.send(0, b"b" * 400, fin=False)
        await peer.send(0, b"c" * 201, fin=True)  # 1001 in total

    await oversize_case(fragments)


async def test_exactly_max_message_accepted():
    async def handler(peer):
        await peer.handshake()
        await peer.send(1, b"a" * 500, fin=False)
        await peer.send(0, b"b" * 500, fin=True)
        await peer.read_close()
        await peer.send(8, fx.close_payload(1000))

    server = await fx.serve(handler)
    c = await ws.connect(server.url, max_message=1000)
    assert await c.recv() == "a" * 500 + "b" * 500
    await c.close()
    await server.finish()


async def protocol_error_case(frames, code):
    seen = {}

    async def handler(peer):
        await peer.handshake()
        for f in frames(peer):
            await peer.write(f)
        seen["close"] = await peer.read_close()
        await peer.send(8, fx.close_payload(code))

    server = await fx.serve(handler)
    c = await ws.connect(server.url)
    await expect_closed(c.recv(), code)
    await server.finish()
    assert seen["close"][0] == code, (seen, code)


async def test_masked_server_frame_1002():
    await protocol_error_case(lambda p: [p.frame(1, b"hidden", mask=True)], 1002)


async def test_binary_message_1003():
    await protocol_error_case(lambda p: [p.frame(2, b"\x00\x01\x02")], 1003)


async def test_invalid_utf8_1007():
    await protocol_error_case(lambda p: [p.frame(1, b"ok \xff\xfe")], 1007)
    await protocol_error_case(lambda p: [p.frame(1, b"surrogate \xed\xa0\x80")], 1007)
    await protocol_error_case(lambda p: [p.frame(1, b"overlong \xc0\xaf")], 1007)
    await protocol_error_case(lambda p: [p.frame(1, b"cut \xe2\x82", fin=False), p.frame(0, b"")], 1007)


async def test_valid_utf8_split_across_fragments():
    async def handler(peer):
        await peer.handshake()
        await peer.send(1, b"\xe2\x82", fin=False)  # the euro sign cut in two
        await peer.send(0, b"\xac \xf0\x9f\x94\x8c", fin=True)
        await peer.read_close()
        await peer.send(8, fx.close_payload(1000))

    server = await fx.serve(handler)
    c = await ws.connect(server.url)
    assert await c.recv() == "\u20ac \U0001f50c"
    await c.close()
    await server.finish()


async def test_framing_violations_1002():
    cases = [
        lambda p: [p.frame(1, b"rsv", rsv=0x40)],
        lambda p: [p.frame(3, b"reserved opcode")],
        lambda p: [p.frame(11, b"reserved control")],
        lambda p: [p.frame(9, b"p" * 126)],  # control frame too long
        lambda p: [p.frame(9, b"ping", fin=False)],  # fragmented control frame
        lambda p: [p.frame(0, b"continuation first")],
        lambda p: [p.frame(1, b"one", fin=False), p.frame(1, b"two")],
        lambda p: [p.frame(8, b"\x03")],  # close with a 1-byte payload
        lambda p: [p.frame(8, fx.close_payload(1005))],  # code that must not be sent
    ]
    for frames in cases:
        await protocol_error_case(frames, 1002)


async def test_cancelled_recv():
    # Cancelled while idle: nothing lost, the connection stays usable.
    # Cancelled inside a frame: the stream cannot be parsed any more, so the connection is dropped.
    seen = {}

    async def handler(peer):
        await peer.handshake()
        await asyncio.sleep_ms(150)
        await peer.send(1, b"after idle cancel")
        await asyncio.sleep_ms(100)
        await peer.write(peer.frame(1, b"only part", length=100))
        seen["eof"] = await peer.at_eof()

    server = await fx.serve(handler)
    c = await ws.connect(server.url)
    t = asyncio.create_task(c.recv())
    await asyncio.sleep_ms(50)
    t.cancel()
    await asyncio.sleep_ms(10)
    assert not c.closed
    assert await c.recv() == "after idle cancel"
    t = asyncio.create_task(c.recv())
    await asyncio.sleep_ms(200)
    t.cancel()
    await asyncio.sleep_ms(10)
    assert c.closed
    await expect_closed(c.recv(), 1006)
    await server.finish()
    assert seen["eof"]


# ---- closing


async def test_server_close_is_echoed():
    seen = {}

    async def handler(peer):
        await peer.handshake()
        await peer.send(8, fx.close_payload(1001, b"bye"))
        seen["echo"] = await peer.read_close()
        seen["eof"] = await peer.at_eof()

    server = await fx.serve(handler)
    c = await ws.connect(server.url)
    e = await expect_closed(c.recv(), 1001)
    assert e.reason == "bye"
    assert c.closed
    await server.finish()
    assert seen["echo"][0] == 1001
    assert seen["eof"]
    await expect_closed(c.recv(), 1001)  # stays closed
    await expect_closed(c.send("late"), 1001)


async def test_server_close_without_code():
    async def handler(peer):
        await peer.handshake()
        await peer.send(8)
        assert await peer.read_close() == (None, b"")

    server = await fx.serve(handler)
    c = await ws.connect(server.url)
    await expect_closed(c.recv(), 1005)
    await server.finish()


async def test_client_close_handshake():
    seen = {}

    async def handler(peer):
        await peer.handshake()
        await peer.send(1, b"in flight")  # crosses our close: must be dropped quietly
        seen["close"] = await peer.read_close()
        await peer.send(8, fx.close_payload(1000))
        seen["eof"] = await peer.at_eof()

    server = await fx.serve(handler)
    c = await ws.connect(server.url)
    t0 = time.ticks_ms()
    await c.close(1000, "done")
    assert time.ticks_diff(time.ticks_ms(), t0) < 1000  # answered, not timed out
    assert c.closed
    await server.finish()
    assert seen["close"] == (1000, b"done")
    assert seen["eof"]
    await expect_closed(c.send("after close"), 1000)


async def test_client_close_while_recv_pending():
    async def handler(peer):
        await peer.handshake()
        code, _reason = await peer.read_close()
        await peer.send(8, fx.close_payload(code))

    server = await fx.serve(handler)
    c = await ws.connect(server.url)
    reader = asyncio.create_task(expect_closed(c.recv(), 4001))
    await asyncio.sleep_ms(20)
    await c.close(4001, "going")
    e = await reader
    assert e.code == 4001
    await server.finish()


async def test_client_close_bounded_when_server_silent():
    async def handler(peer):
        await peer.handshake()
        await peer.read_close()
        await peer.at_eof(4000)  # never answers, waits for the client to drop

    server = await fx.serve(handler)
    c = await ws.connect(server.url)
    t0 = time.ticks_ms()
    await c.close()
    dt = time.ticks_diff(time.ticks_ms(), t0)
    assert 1500 <= dt < 3500, dt
    assert c.closed
    await server.finish()


async def test_server_drops_tcp():
    async def handler(peer):
        await peer.handshake()
        await peer.send(1, b"last words")

    server = await fx.serve(handler)
    c = await ws.connect(server.url)
    assert await c.recv() == "last words"
    await expect_closed(c.recv(), 1006)
    await server.finish()


# ---- sending


async def test_concurrent_sends_do_not_interleave():
    messages = [("%d" % i) * 3000 for i in range(4)]  # several chunks each
    got = []

    async def handler(peer):
        await peer.handshake()
        for _ in messages:
            fin, op, data = await peer.read_frame()
            got.append(data.decode())
        await peer.read_close()
        await peer.send(8, fx.close_payload(1000))

    server = await fx.serve(handler)
    c = await ws.connect(server.url)
    tasks = [asyncio.create_task(c.send(m)) for m in messages]
    for t in tasks:
        await t
    await c.close()
    await server.finish()
    assert sorted(got) == sorted(messages)


class GatedStream:
    """A stream whose drain() waits for a gate: a send can be caught between its chunks."""

    def __init__(self, stream):
        self.s = stream
        self.gate = asyncio.Event()
        self.gate.set()

    def write(self, data):
        self.s.write(data)

    async def drain(self):
        await self.gate.wait()
        await self.s.drain()

    async def readinto(self, buf):
        return await self.s.readinto(buf)

    async def wait_closed(self):
        await self.s.wait_closed()


async def test_cancelled_send():
    seen = {}

    async def handler(peer):
        await peer.handshake()
        seen["first"] = await peer.read_frame()
        seen["eof"] = await peer.at_eof()

    gated = []

    async def opener(host, port, ssl_ctx, server_hostname):
        r, w = await asyncio.open_connection(host, port)
        gated.append(GatedStream(r))
        return gated[0]

    server = await fx.serve(handler)
    c = await ws.connect(server.url, opener=opener)
    gate = gated[0].gate
    gate.clear()
    t = asyncio.create_task(c.send("whole"))  # one chunk: complete before the drain
    await asyncio.sleep_ms(20)
    t.cancel()
    await asyncio.sleep_ms(10)
    assert not c.closed
    gate.set()
    await asyncio.sleep_ms(10)
    gate.clear()
    t = asyncio.create_task(c.send("x" * 2000))  # stopped after its first chunk
    await asyncio.sleep_ms(20)
    t.cancel()
    await asyncio.sleep_ms(10)
    assert c.closed
    await expect_closed(c.send("more"), 1006)
    await server.finish()
    assert seen["first"] == (True, 1, b"whole")
    assert seen["eof"]


# ---- keepalive


async def test_keepalive_drops_silent_server():
    async def handler(peer):
        await peer.handshake()
        await peer.at_eof(4000)  # reads pings, never answers

    server = await fx.serve(handler)
    c = await ws.connect(server.url)
    ka = asyncio.create_task(c.keepalive(0.2, 0.3))
    t0 = time.ticks_ms()
    e = await expect_closed(c.recv(), 1006)
    dt = time.ticks_diff(time.ticks_ms(), t0)
    assert 450 <= dt < 1200, dt
    assert "pong" in e.reason
    await ka
    assert c.closed
    await server.finish()


async def test_keepalive_keeps_answering_server():
    pings = []

    async def handler(peer):
        await peer.handshake()
        while True:
            fin, op, data = await peer.read_frame()
            if op == 9:
                pings.append(data)
                await peer.send(10, data)
            elif op == 1:
                await peer.send(1, data)
            elif op == 8:
                await peer.send(8, data)
                return

    server = await fx.serve(handler)
    c = await ws.connect(server.url)
    ka = asyncio.create_task(c.keepalive(0.1, 0.15))
    reader = asyncio.create_task(c.recv())
    await asyncio.sleep_ms(800)
    assert not c.closed
    assert len(pings) >= 5, pings
    assert len(set(pings)) == len(pings)
    rx_age = time.ticks_diff(time.ticks_ms(), c.last_rx_ms)
    assert rx_age < 200, rx_age
    await c.send("still here")
    assert await reader == "still here"
    await c.close()
    await ka
    await server.finish()


async def test_keepalive_disabled():
    async def handler(peer):
        await peer.handshake()
        await peer.read_close()
        await peer.send(8, fx.close_payload(1000))

    server = await fx.serve(handler)
    c = await ws.connect(server.url)
    await asyncio.wait_for_ms(c.keepalive(0, 1), 100)  # returns at once
    await c.close()
    await server.finish()
