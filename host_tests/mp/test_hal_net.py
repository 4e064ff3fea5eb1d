# hal.net on the fake `network` and `machine` (host_tests/fakes): Wi-Fi supervision with
# reconnect and backoff, and SNTP against a local UDP server on 127.0.0.1.
import asyncio
import socket
import sys
import time

sys.path.insert(0, "../fakes")  # cwd is host_tests/mp: the fakes shadow the built-in machine

import machine  # noqa: E402
import network  # noqa: E402

from hal import net  # noqa: E402


def _link(**kw):
    network.reset()
    kw.setdefault("min_backoff_ms", 20)
    kw.setdefault("max_backoff_ms", 80)
    kw.setdefault("connect_timeout_ms", 50)
    kw.setdefault("poll_ms", 10)
    return net.WifiLink("site", "secret", **kw)


async def _until(cond, ms=2000):
    t0 = time.ticks_ms()
    while not cond():
        if time.ticks_diff(time.ticks_ms(), t0) > ms:
            return False
        await asyncio.sleep_ms(5)
    return True


async def test_wifi_connects_and_reconnects_after_drop():
    link = _link()
    assert not link.up() and link.status() == "down"  # constructing touches no radio
    task = asyncio.create_task(link.run())
    assert await _until(link.up)
    assert link.status() == "up" and link.ip == "192.168.4.23"
    w = network.WLAN(network.STA_IF)
    assert w.active() and w.connect_calls == [("site", "secret")]
    network.drop()
    assert not link.up()
    await asyncio.sleep_ms(150)
    assert not link.up() and link.drops == 1
    assert link.status() == "no_ap_found"
    tries = len(w.connect_calls)
    assert tries >= 2, "it keeps trying while the AP is away"
    network.restore()
    assert await _until(link.up)
    assert link.connects == 2
    task.cancel()


async def test_wifi_backoff_doubles_up_to_the_limit():
    link = _link(min_backoff_ms=20, max_backoff_ms=80)
    network.set_ap("other")  # our SSID is never found
    w = network.WLAN(network.STA_IF)
    task = asyncio.create_task(link.run())
    await asyncio.sleep_ms(500)
    task.cancel()
    n = len(w.connect_calls)
    # waits 20, 40, 80, 80, ... ms: about 2 + (500 - 140) / 80 = 6.5 attempts; no backoff would
    # give hundreds, a backoff that never grows ~25
    assert 4 <= n <= 9, n
    assert not link.up() and link.status() == "no_ap_found"


async def test_wifi_wrong_password_is_reported():
    link = _link()
    network.set_ap("site", "right")
    task = asyncio.create_task(link.run())
    await asyncio.sleep_ms(60)
    assert link.status() == "wrong_password" and not link.up()
    task.cancel()


def test_ntp_epoch_conversion():
    assert net.ntp_to_unix(2208988800) == 0
    assert net.ntp_to_unix(3912000000) == 3912000000 - 2208988800  # 2023
    # after the 2036 wrap the 32-bit count restarts: era 1
    assert net.ntp_to_unix(1000) == 4294967296 + 1000 - 2208988800


def _server():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port = 40123
    while True:
        try:
            s.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
            break
        except OSError:
            port += 1
            if port > 40300:
                raise
    s.setblocking(False)
    return s, port


async def _serve(s, answer):
    """Answer one request with answer(request) (bytes, or None to stay silent)."""
    while True:
        try:
            req, peer = s.recvfrom(64)
            break
        except OSError:
            await asyncio.sleep_ms(2)
    data = answer(req)
    if data is not None:
        s.sendto(data, peer)


UNIX_T = 1767225600 + 3600  # 2026-01-01 01:00:00 UTC


def _reply(req, mode=4, stratum=2, echo=True, t=UNIX_T):
    r = bytearray(48)
    r[0] = 0x20 | mode
    r[1] = stratum
    if echo:
        r[24:32] = req[40:48]
    ntp = t + 2208988800
    r[40:44] = bytes(((ntp >> 24) & 0xFF, (ntp >> 16) & 0xFF, (ntp >> 8) & 0xFF, ntp & 0xFF))
    return bytes(r)


async def test_sntp_sets_the_rtc_without_blocking_the_loop():
    s, port = _server()
    ticks = [0]

    async def ticker():  # runs while the query waits: the loop is not blocked
        while True:
            ticks[0] += 1
            await asyncio.sleep_ms(1)

    async def late(req):
        await asyncio.sleep_ms(50)
        return _reply(req)

    async def serve_late():
        while True:
            try:
                req, peer = s.recvfrom(64)
                break
            except OSError:
                await asyncio.sleep_ms(2)
        s.sendto(await late(req), peer)

    tk = asyncio.create_task(ticker())
    srv = asyncio.create_task(serve_late())
    try:
        t = await net.sntp_sync("127.0.0.1", port, timeout_ms=1000)
    finally:
        tk.cancel()
        s.close()
    assert t == UNIX_T
    assert ticks[0] >= 20, ticks[0]
    srv.cancel()


async def test_sntp_sets_rtc_fields():
    rtc = machine.RTC()
    calls = []
    orig = machine.RTC.datetime

    def record(self, dt=None):
        if dt is not None:
            calls.append(tuple(dt))
        return orig(self, dt)

    machine.RTC.datetime = record
    s, port = _server()
    try:
        asyncio.create_task(_serve(s, _reply))
        t = await net.sntp_sync("127.0.0.1", port, timeout_ms=1000)
    finally:
        machine.RTC.datetime = orig
        s.close()
    assert t == UNIX_T
    # (year, month, day, weekday, hour, minute, second, subseconds); 2026-01-01 is a Thursday
    assert calls == [(2026, 1, 1, 3, 1, 0, 0, 0)], calls
    assert rtc is not None


async def test_sntp_ignores_bad_answers_and_times_out():
    for bad in (
        lambda req: _reply(req, echo=False),  # not an answer to our request
        lambda req: _reply(req, stratum=0),  # kiss-of-death
        lambda req: _reply(req, mode=3),  # not a server reply
        lambda req: b"\x24\x02",  # short
        lambda req: None,  # silence
    ):
        s, port = _server()
        try:
            asyncio.create_task(_serve(s, bad))
            t0 = time.ticks_ms()
            t = await net.sntp_query(net.resolve("127.0.0.1", port, socket.SOCK_DGRAM)[1], timeout_ms=150)
            waited = time.ticks_diff(time.ticks_ms(), t0)
        finally:
            s.close()
        assert t is None
        assert 140 <= waited < 600, waited


def test_resolve_unknown_host_raises():
    try:
        net.resolve("no-such-host.invalid", 80)
    except OSError:
        return
    raise AssertionError("an unresolvable name must raise OSError")
