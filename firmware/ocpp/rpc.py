# OCPP-J RPC over a websocket: CALL / CALLRESULT / CALLERROR framing (OCPP-J 1.6, section 4).
#
# - At most one CALL from the charge point is outstanding; call() waits for the answer or times out.
# - Incoming CALLs go through one action table: {action: (module, function)}. The module is
#   imported on first use, so rarely used handlers cost no RAM until a backend asks for them.
#   A handler is `async def handler(cp, payload)` returning the response payload, or
#   (payload, after) where `after` is an async function run once the response is on the wire
#   (TriggerMessage, Reset: the effect follows the confirmation). Handlers run inside the receive
#   loop: they must not await calls to the backend themselves; `after` may.
# - Every payload, in and out, is checked against the OCPP 1.6 schemas; malformed input gets the
#   CALLERROR the OCPP-J specification names, never a crash.
import asyncio
import json
import os
import time

import lazy
from ocpp import validate
from ocpp.ws import ConnectionClosed

CALL = 2
CALLRESULT = 3
CALLERROR = 4

_COMPACT = (",", ":")  # json.dumps separators: no spaces on the wire
MAX_ID_LEN = 36  # OCPP-J: the unique id is at most 36 characters


class CallError(Exception):
    """A CALLERROR: the backend's answer to our CALL (or its invalid answer), or raised by a
    handler to answer the backend's CALL with this code."""

    def __init__(self, code, description=""):
        super().__init__(code, description)
        self.code = code
        self.description = description


class CallTimeout(Exception):
    pass


class Streamed:
    """A handler's answer given as JSON text in pieces: `parts()` returns a fresh iterator of
    str pieces (called twice: to count, then to send). Sent as one websocket frame without
    building the whole text; not schema-checked (the handler builds it from checked values)."""

    def __init__(self, parts):
        self.parts = parts


class _Incoming(Exception):
    # A malformed incoming message: answer with this CALLERROR.
    def __init__(self, msg_id, code, text):
        self.msg_id = msg_id
        self.code = code
        self.text = text


def _handler(table, action):
    # The handler's module is loaded for this call only (lazy.py).
    module, name = table[action]
    return getattr(lazy.load(module), name)


class Rpc:
    def __init__(self, ws, actions, context, log=None):
        self.ws = ws
        self._actions = actions
        self._context = context  # passed to handlers (the charge point)
        self._log = log
        self._lock = asyncio.Lock()
        self._reply_ready = asyncio.Event()
        self._reply_taken = asyncio.Event()
        self._waiting_id = None
        self._reply = None
        self._prefix = "%08x" % int.from_bytes(os.urandom(4), "big")
        self._counter = 0
        self.answer_calls = True  # False while the backend has Rejected us: calls go unanswered
        self.last_call_ms = time.ticks_ms()  # when we last sent a CALL (the heartbeat timer)

    def _next_id(self):
        self._counter += 1
        return "%s%x" % (self._prefix, self._counter)

    async def _send(self, msg):
        text = json.dumps(msg, separators=_COMPACT)
        if self._log:
            self._log(">", text)
        await self.ws.send(text)

    async def _send_streamed(self, msg_id, payload_parts):
        def parts():
            yield '[3,"%s",' % msg_id
            yield from payload_parts()
            yield "]"

        if self._log:
            self._log(">", '[3,"%s",<streamed answer>]' % msg_id)
        await lazy.load("ocpp.ws_stream").send_parts(self.ws, parts)

    async def call(self, action, payload, timeout_s=30):
        """Send a CALL and return the CALLRESULT payload. Raises CallError, CallTimeout, ConnectionClosed.

        Our own requests are not validated here (it would load a schema table per call): the
        CSMS simulator checks every frame in the tests, and a backend answers a malformed one
        with a CALLERROR. The answer is validated: it comes from the wire."""
        async with self._lock:
            msg_id = self._next_id()
            self._waiting_id = msg_id
            self._reply = None
            self._reply_ready.clear()
            try:
                await self._send([CALL, msg_id, action, payload])
                self.last_call_ms = time.ticks_ms()
                try:
                    await asyncio.wait_for_ms(self._reply_ready.wait(), int(timeout_s * 1000))
                except asyncio.TimeoutError:
                    raise CallTimeout(action)
            finally:
                self._waiting_id = None
                self._reply_taken.set()  # the receive loop goes on once our caller has run
            reply = self._reply
        if reply is None:  # woken by run() ending: the connection closed under the call
            raise ConnectionClosed(1006, "closed while waiting for the answer")
        if reply[0] == CALLERROR:
            raise CallError(reply[2], reply[3])
        try:
            validate.check(action, "conf", reply[2])
        except validate.Invalid as e:
            raise CallError(e.code, "invalid %s.conf: %s" % (action, e.text))
        return reply[2]

    async def run(self):
        """Receive loop: returns (raises ConnectionClosed) when the websocket closes. A call still
        waiting for its answer then fails at once (ConnectionClosed), not at its timeout."""
        try:
            while True:
                text = await self.ws.recv()
                if self._log:
                    self._log("<", text)
                await self._on_message(text)
        finally:
            if self._waiting_id is not None:
                self._waiting_id = None
                self._reply = None
                self._reply_ready.set()

    async def _on_message(self, text):
        try:
            msg = self._parse(text)
        except _Incoming as e:
            if self.answer_calls:
                await self._send([CALLERROR, e.msg_id, e.code, e.text, {}])
            return
        kind = msg[0]
        if kind == CALL:
            if self.answer_calls:
                await self._dispatch(msg[1], msg[2], msg[3])
        elif msg[1] == self._waiting_id:
            self._reply = msg
            self._reply_taken.clear()
            self._reply_ready.set()
            # The caller takes its answer in (a Rejected registration, a transactionId) before the
            # next message is read: a CALL right behind the answer must find it applied. The caller
            # runs on from call() up to its next await before this task gets a turn again.
            await self._reply_taken.wait()
        # else: an answer to nothing we are waiting for (late, after a timeout): dropped

    def _parse(self, text):
        try:
            msg = json.loads(text)
        except ValueError:
            raise _Incoming("-1", "FormationViolation", "not valid JSON")
        if not isinstance(msg, list) or len(msg) < 3 or not isinstance(msg[0], int):
            raise _Incoming("-1", "FormationViolation", "not an OCPP-J message array")
        kind, msg_id = msg[0], msg[1]
        if not isinstance(msg_id, str) or not msg_id or len(msg_id) > MAX_ID_LEN:
            raise _Incoming("-1", "FormationViolation", "bad unique id")
        if kind == CALL:
            if len(msg) == 3:
                raise _Incoming(msg_id, "ProtocolError", "payload missing")
            if len(msg) != 4 or not isinstance(msg[2], str):
                raise _Incoming(msg_id, "FormationViolation", "a CALL is [2, id, action, payload]")
            if not isinstance(msg[3], dict):
                raise _Incoming(msg_id, "FormationViolation", "payload is not a JSON object")
        elif kind == CALLRESULT:
            if len(msg) != 3 or not isinstance(msg[2], dict):
                raise _Incoming(msg_id, "FormationViolation", "a CALLRESULT is [3, id, payload]")
        elif kind == CALLERROR:
            if len(msg) != 5 or not isinstance(msg[2], str) or not isinstance(msg[3], str):
                raise _Incoming(msg_id, "FormationViolation", "a CALLERROR is [4, id, code, text, details]")
        else:
            raise _Incoming(msg_id, "FormationViolation", "unknown message type %d" % kind)
        return msg

    async def _dispatch(self, msg_id, action, payload):
        try:
            validate.check(action, "req", payload)
        except validate.UnknownAction:
            await self._send([CALLERROR, msg_id, "NotImplemented", "unknown action " + action[:40], {}])
            return
        except validate.Invalid as e:
            await self._send([CALLERROR, msg_id, e.code, e.text, {}])
            return
        if action not in self._actions:
            await self._send([CALLERROR, msg_id, "NotSupported", action + " is not supported", {}])
            return
        after = None
        try:
            # Inside the try: a handler module that fails to load (a MemoryError on a board, a
            # broken image) is an InternalError like a handler that raises; the link stays up.
            result = await _handler(self._actions, action)(self._context, payload)
            if isinstance(result, tuple):
                result, after = result
            if isinstance(result, Streamed):
                await self._send_streamed(msg_id, result.parts)
                return
            validate.check(action, "conf", result)
        except CallError as e:  # the handler's own refusal with a specific code
            await self._send([CALLERROR, msg_id, e.code, e.description, {}])
            return
        except Exception as e:  # a handler bug must not take the link down
            await self._send([CALLERROR, msg_id, "InternalError", "%s: %s" % (action, e), {}])
            return
        await self._send([CALLRESULT, msg_id, result])
        if after is not None:
            # Its own task: `after` may make calls, whose answers this receive loop must read.
            asyncio.create_task(after())
