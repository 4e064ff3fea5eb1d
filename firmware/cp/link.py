# The connection to the backend: takes the URL and credentials from the configuration
# (cp/link_open.py), connects, runs the charge point's session over it, and reconnects with
# exponential backoff and jitter after any failure (backend restart, network drop, handshake
# refused).
#
# Security profiles (OCPP 1.6 security white paper):
#   0: no authentication (ws:// or wss://)   1: Basic auth, ws://
#   2: Basic auth over TLS (wss://)          3: TLS with a client certificate (wss://)
# TLS always verifies the backend against the CSMS root certificate on flash; a profile that
# needs TLS never falls back to ws://.
import asyncio
import gc
import os
import time

import lazy
import log
from cp.actions import ACTIONS
from ocpp import ws as websocket
from ocpp.rpc import Rpc

# Bytes of one incoming OCPP message; bigger -> close 1009. The largest OCPP 1.6 message with
# bounded fields is CertificateSigned: a 10,000-character PEM chain, ~10,240 bytes as JSON with
# its envelope. SendLocalListMaxLength (64) keeps a local-list chunk under it (~125 bytes per
# entry at most).
MAX_MESSAGE = 10752
HANDSHAKE_TIMEOUT_MS = 15000
STABLE_MS = 60000  # a connection that lived this long resets the backoff
CLOCK_WAIT_MS = 30000  # how long a TLS connect waits for the board's first time sync
NETWORK_POLL_MS = 250  # how soon a lost network link (board.link_up() false) ends the connection


def backoff_s(config, attempt):
    """Seconds to wait before reconnect attempt number `attempt` (0 = first retry)."""
    wait = config.get("RetryBackOffWaitMinimum") << min(attempt, config.get("RetryBackOffRepeatTimes"))
    spread = config.get("RetryBackOffRandomRange")
    if spread:
        wait += int.from_bytes(os.urandom(2), "big") % (spread + 1)
    return wait


class Link:
    @staticmethod
    def reserve():
        """Boot: set the receive buffer aside before anything else fragments the heap."""
        websocket.reserve(MAX_MESSAGE)

    def __init__(self, cp, board, config):
        self.cp = cp
        self.board = board
        self.config = config
        self.ws = None
        self._ping_changed = asyncio.Event()
        config.on_change(self._on_config)

    def _on_config(self, name, value):
        if name in ("WebSocketPingInterval", "WebSocketPongTimeout"):
            self._ping_changed.set()

    async def run(self):
        attempt = 0
        while True:
            lived_ms = 0
            try:
                lived_ms = await self._connect_once()
            except ValueError as e:  # the configuration cannot make a connection
                log.log("link: cannot connect:", e)
            except Exception as e:  # handshake refused, TLS failure, network down
                log.log("link: connection failed:", repr(e))
            attempt = 0 if lived_ms >= STABLE_MS else attempt + 1
            wait = backoff_s(self.config, max(attempt - 1, 0))
            log.log("link: reconnect in %d s" % wait)
            await asyncio.sleep(wait)

    async def _connect_once(self):
        # URL and credentials come from a module loaded for this and dropped before the
        # handshake code loads: the two are never in RAM together.
        url, auth, ssl_ctx = lazy.load("cp.link_open").prepare(self.config, self.board.flash)
        if ssl_ctx is not None:
            await self.clock_ready()
        log.log("link: connecting to", url)
        gc.collect()  # the old connection's buffers go before the new ones and the handshake code load
        ws = await websocket.connect(
            url,
            subprotocol="ocpp1.6",
            auth=auth,
            ssl_ctx=ssl_ctx,
            opener=self.board.open_connection,
            max_message=MAX_MESSAGE,
            timeout_ms=HANDSHAKE_TIMEOUT_MS,
        )
        started = time.ticks_ms()
        self.ws = ws
        log.log("link: connected")
        rpc = Rpc(ws, ACTIONS, self.cp, log.frame)
        tasks = [
            asyncio.create_task(self._keepalive(ws)),
            asyncio.create_task(self._watch_network(ws)),
            asyncio.create_task(self._session(rpc, ws)),
        ]
        try:
            await rpc.run()  # returns by raising when the connection closes
        except websocket.ConnectionClosed as e:
            log.log("link: closed", e.code, e.reason)
        finally:
            for t in tasks:
                t.cancel()
            self.ws = None
            await ws.close(1001, "")
        return time.ticks_diff(time.ticks_ms(), started)

    async def clock_ready(self):
        """TLS checks certificate dates, and a board's RTC may start at 2000 or 2021: a board that
        syncs its clock (SNTP) is given CLOCK_WAIT_MS for it before a wss:// connect."""
        wait = getattr(self.board, "wait_clock", None)
        if wait is not None and not await wait(CLOCK_WAIT_MS):
            log.log("link: clock not synced yet; the server certificate's dates may not check")

    async def _session(self, rpc, ws):
        try:
            await self.cp.session(rpc)
        except Exception as e:  # a bug must not leave a connection up with nobody driving it
            log.log("link: session failed:", repr(e))
            await ws.close(1011, "internal error")

    async def _watch_network(self, ws):
        # The board's own link gone (Wi-Fi association lost): offline now, so the offline rules
        # apply at once, not when the websocket ping times out a minute later. A link lost
        # further away (a pulled cable behind the router) is still found by the ping.
        while self.board.link_up():
            await asyncio.sleep_ms(NETWORK_POLL_MS)
        log.log("link: network down")
        await ws.drop("network down")

    async def _keepalive(self, ws):
        # Restarted whenever the ping settings change, so a ChangeConfiguration applies at once.
        while True:
            self._ping_changed.clear()
            cfg = self.config
            task = asyncio.create_task(
                ws.keepalive(cfg.get("WebSocketPingInterval"), cfg.get("WebSocketPongTimeout"))
            )
            try:
                await self._ping_changed.wait()
            finally:
                task.cancel()

    async def close(self, code=1001, reason="reset"):
        if self.ws is not None:
            await self.ws.close(code, reason)

    async def reconnect(self):
        """Drop the connection so the next one uses changed credentials (AuthorizationKey)."""
        await self.close(1000, "reconnecting")
