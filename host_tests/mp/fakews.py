# A websocket stand-in for RPC tests: the test pushes incoming texts and reads what was sent.
import asyncio
import json


class Closed(Exception):
    pass


class FakeWs:
    def __init__(self):
        self.sent = []
        self._incoming = []
        self._ready = asyncio.Event()
        self._sent_event = asyncio.Event()

    def push(self, msg):
        self._incoming.append(msg if isinstance(msg, str) else json.dumps(msg))
        self._ready.set()

    async def recv(self):
        while not self._incoming:
            self._ready.clear()
            await self._ready.wait()
        text = self._incoming.pop(0)
        if text == "close":  # pushed by a test: the connection ends here
            from ocpp.ws import ConnectionClosed

            raise ConnectionClosed(1006, "")
        return text

    async def send(self, text):
        self.sent.append(json.loads(text))
        self._sent_event.set()

    async def next_sent(self, timeout_ms=1000):
        """Wait until something new was sent; return the newest message."""
        n = len(self.sent)
        while len(self.sent) == n:
            self._sent_event.clear()
            await asyncio.wait_for_ms(self._sent_event.wait(), timeout_ms)
        return self.sent[-1]
