# Network on a real board: Wi-Fi station supervision, name resolution, the websocket opener and
# an SNTP query that never blocks the event loop.
#
# Name resolution is the one blocking network call MicroPython has (socket.getaddrinfo waits for
# the DNS answer, up to seconds on lwIP). It happens only in resolve() below: the opener and
# sntp_sync() go through it, and asyncio.open_connection then gets a numeric address (resolved
# without DNS). The watchdog timeout must cover one resolve (docs/BOARDS.md).
import asyncio
import os
import socket
import time

import network
from machine import RTC
from micropython import const

EHOSTUNREACH = const(113)
ETIMEDOUT = const(110)
_NTP_DELTA = const(2208988800)  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)
_EPOCH_2000 = const(946684800)  # seconds from 1970 to 2000 (the ESP32 port's epoch)


def resolve(host, port, kind=socket.SOCK_STREAM):
    """(family, address) of host:port. Blocking (DNS); OSError when the name does not resolve."""
    ai = socket.getaddrinfo(host, port, 0, kind)
    if not ai:
        raise OSError(EHOSTUNREACH, "no address for host")
    return ai[0][0], ai[0][-1]


def _failures():
    # status() values after which waiting for the association is pointless
    return [getattr(network, "STAT_" + n, None) for n in ("NO_AP_FOUND", "WRONG_PASSWORD", "CONNECT_FAIL")]


def _status_names():
    # network.STAT_* values differ between ports (ESP32: 1000-series, rp2: CYW43 link codes).
    names = {}
    for n in ("IDLE", "CONNECTING", "GOT_IP", "NO_AP_FOUND", "WRONG_PASSWORD", "CONNECT_FAIL"):
        v = getattr(network, "STAT_" + n, None)
        if v is not None:
            names[v] = n.lower()
    return names


class WifiLink:
    """WifiLink(ssid, password, min_backoff_ms=1000, max_backoff_ms=60000, connect_timeout_ms=15000,
    poll_ms=500)

    await run(): connects the station and keeps it connected: when the association drops it
    reconnects, after each failed attempt it waits a backoff that doubles up to max_backoff_ms.
    up() -> bool, status() -> "up" | "connecting" | "down" | "no_ap_found" | "wrong_password" |
    "connect_fail" | "idle", .connects (successful associations), .drops, .ip."""

    def __init__(
        self, ssid, password, min_backoff_ms=1000, max_backoff_ms=60000, connect_timeout_ms=15000, poll_ms=500
    ):
        if not ssid:
            raise ValueError("no Wi-Fi SSID")
        self._ssid = ssid
        self._password = password
        self._min = min_backoff_ms
        self._max = max_backoff_ms
        self._timeout = connect_timeout_ms
        self._poll = poll_ms  # how often a connected link is checked for a drop
        self._wlan = None  # created in run(): constructing a WifiLink does not touch the radio
        self._connecting = False
        self.connects = 0
        self.drops = 0
        self.ip = None

    def up(self):
        return self._wlan is not None and self._wlan.isconnected()

    def status(self):
        if self.up():
            return "up"
        if self._connecting:
            return "connecting"
        if self._wlan is None:
            return "down"
        return _status_names().get(self._wlan.status(), "down")

    async def _associate(self):
        w = self._wlan
        try:
            w.disconnect()  # ESP32: connect() while an attempt runs raises "Wifi Internal Error"
        except OSError:
            pass
        self._connecting = True
        try:
            w.connect(self._ssid, self._password)
            deadline = time.ticks_add(time.ticks_ms(), self._timeout)
            failed = _failures()
            while not w.isconnected():
                if w.status() in failed or time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                    return False
                await asyncio.sleep_ms(100)
        except OSError:
            return False
        finally:
            self._connecting = False
        self.connects += 1
        self.ip = w.ifconfig()[0]
        return True

    async def run(self):
        if self._wlan is None:
            self._wlan = network.WLAN(network.STA_IF)
            self._wlan.active(True)
        backoff = self._min
        while True:
            if self._wlan.isconnected():
                await asyncio.sleep_ms(self._poll)
                if not self._wlan.isconnected():
                    self.drops += 1
                    self.ip = None
                continue
            if await self._associate():
                backoff = self._min
                continue
            await asyncio.sleep_ms(backoff)
            backoff = min(backoff * 2, self._max)


async def open_connection(host, port, ssl_ctx=None, server_hostname=None):
    """The websocket client's opener (firmware/ocpp/ws.py): resolve, then an asyncio stream."""
    _, addr = resolve(host, port)
    ip = addr[0] if isinstance(addr, tuple) else host  # unix port: addr is a sockaddr bytes
    s, _ = await asyncio.open_connection(ip, port, ssl=ssl_ctx, server_hostname=server_hostname)
    return s


def ntp_to_unix(ntp_s):
    """NTP seconds (era 0 from 1900, era 1 after 2036-02-07) -> seconds since 1970."""
    if ntp_s < 0x80000000:  # the 32-bit count wrapped: era 1 (valid until 2104)
        ntp_s += 0x100000000
    return ntp_s - _NTP_DELTA


def set_rtc(unix_s):
    """Set machine.RTC to a UTC time given in seconds since 1970, whatever the port's epoch."""
    t = time.gmtime(unix_s - (_EPOCH_2000 if time.gmtime(0)[0] == 2000 else 0))
    RTC().datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))


async def sntp_query(addr, timeout_ms=2000):
    """One SNTP (RFC 4330) request to addr (a resolved address); seconds since 1970 or None.

    A non-blocking UDP socket under asyncio.StreamReader: the loop keeps running while the answer
    is on its way. The answer must echo our transmit time as its originate time (so a stray or
    spoofed datagram is not taken), be a server reply (mode 4) and not a kiss-of-death
    (stratum 0)."""
    pkt = bytearray(48)
    pkt[0] = 0x23  # LI 0, version 4, mode 3 (client)
    nonce = int.from_bytes(os.urandom(4), "big") & 0x3FFFFFFF | 1  # unguessable: no spoofed answer
    pkt[40] = nonce >> 24
    pkt[41] = (nonce >> 16) & 0xFF
    pkt[42] = (nonce >> 8) & 0xFF
    pkt[43] = nonce & 0xFF
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        s.sendto(pkt, addr)
        reader = asyncio.StreamReader(s)
        deadline = time.ticks_add(time.ticks_ms(), timeout_ms)
        while True:
            left = time.ticks_diff(deadline, time.ticks_ms())
            if left <= 0:
                return None
            try:
                data = await asyncio.wait_for_ms(reader.read(48), left)
            except asyncio.TimeoutError:
                return None
            if (
                data
                and len(data) >= 48
                and data[0] & 7 == 4
                and data[1] != 0
                and data[24:28] == pkt[40:44]
                and data[28:32] == pkt[44:48]
            ):
                secs = data[40] << 24 | data[41] << 16 | data[42] << 8 | data[43]
                return ntp_to_unix(secs)
    finally:
        s.close()


async def sntp_sync(host="pool.ntp.org", port=123, timeout_ms=2000):
    """Ask the SNTP server; on an answer set machine.RTC (UTC) and return seconds since 1970.
    None when it did not answer in time; OSError when the name does not resolve."""
    _, addr = resolve(host, port, socket.SOCK_DGRAM)
    t = await sntp_query(addr, timeout_ms)
    if t is not None:
        set_rtc(t)
    return t
