"""One charge point connection of the CSMS simulator, and the answers tests can configure.

A Session owns one websocket: it reads every frame, records it (through the simulator's
_record_* methods), answers the charge point's CALLs (schema check first, then the configured or
default answer) and routes CALLRESULT/CALLERROR frames to the CSMS call waiting for them.
"""

import asyncio
import json
import time
import traceback

from websockets.exceptions import ConnectionClosed

import csms_ocppj as ocppj
from csms_ocppj import CALL, CALLERROR, CALLRESULT

# ---------------------------------------------------------------------------------------------
# Configured answers (values for set_response) and exceptions


class _NoReply:
    def __repr__(self):
        return "NO_REPLY"


NO_REPLY = _NoReply()  # answer nothing: lets the charge point's call time out


class Error:
    """Answer with a CALLERROR."""

    def __init__(self, code, description="", details=None):
        self.code = code
        self.description = description
        self.details = {} if details is None else details

    def __repr__(self):
        return f"Error({self.code!r}, {self.description!r})"


class Raw:
    """Answer with this text as it is (it may be anything, valid OCPP-J or not)."""

    def __init__(self, text):
        self.text = text


class CallError(Exception):
    """The charge point answered a CSMS call with a CALLERROR."""

    def __init__(self, action, code, description, details):
        super().__init__(f"{action}: CALLERROR {code} {description!r}")
        self.action = action
        self.code = code
        self.description = description
        self.details = details


class ResponseViolation(Exception):
    """The charge point's CALLRESULT does not match the action's response schema."""

    def __init__(self, action, payload, code, text):
        super().__init__(f"{action}: invalid response ({code}): {text}")
        self.action = action
        self.payload = payload
        self.code = code
        self.text = text


class NotConnected(ConnectionError):
    pass


class Session:
    def __init__(self, sim, cp_id, ws):
        self.sim = sim
        self.cp_id = cp_id
        self.ws = ws
        self.since = time.time()
        self.pending = {}  # unique id -> (action, future) of CSMS calls awaiting the answer
        self.late = set()  # ids of CSMS calls that timed out: their answers are not violations
        self.raw_ids = set()  # ids of frames sent with send_raw
        self.raw_expect = 0  # send_raw frames that may get an answer under an id we cannot tell
        self.call_lock = asyncio.Lock()  # OCPP-J: one outstanding CALL per direction
        self.done = asyncio.Event()
        self.tasks = set()

    async def send_text(self, text, msg=None):
        if self.sim._hanging:
            self.sim._note(self.cp_id, "(hanging) not sent: " + text)
            return
        self.sim._record_frame(self.cp_id, "out", text, msg)
        try:
            await self.ws.send(text)
        except ConnectionClosed:
            self.sim._note(self.cp_id, "send failed: connection closed")

    async def send(self, msg):
        await self.send_text(ocppj.dumps(msg), msg)

    async def run(self):
        try:
            while True:
                data = await self.ws.recv()
                try:
                    self.on_message(data)
                except Exception:  # a simulator bug: say so, keep the connection
                    self.sim._note(self.cp_id, "INTERNAL ERROR " + traceback.format_exc())
        except ConnectionClosed:
            pass
        finally:
            for action, fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(NotConnected(f"{action}: connection closed before the answer"))
            for task in list(self.tasks):
                task.cancel()

    def on_message(self, data):
        sim = self.sim
        if isinstance(data, bytes):
            raw = f"<binary {len(data)} bytes> {data[:64].hex()}"
            sim._record_frame(self.cp_id, "in", raw, None)
            sim._violation(
                self.cp_id, "binary", "", "FormationViolation", "binary frame (OCPP-J is text)", raw
            )
            return
        try:
            msg = ocppj.parse_frame(data)
        except ocppj.Malformed as e:
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = None
            sim._record_frame(self.cp_id, "in", data, parsed)
            sim._violation(self.cp_id, "frame", "", e.code, e.text, data)
            if e.answer:
                self.spawn(self.send([CALLERROR, e.msg_id or "-1", e.code, e.text, {}]))
            return
        sim._record_frame(self.cp_id, "in", data, msg)
        if len(msg[1]) > ocppj.MAX_ID_LEN:
            sim._violation(
                self.cp_id, "message_id", "", "FormationViolation", "UniqueId longer than 36 characters", data
            )
        if msg[0] == CALL:
            self.spawn(self.answer(msg[1], msg[2], msg[3]))
        else:
            self.on_response(msg, data)

    def spawn(self, coro):
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def on_response(self, msg, data):
        uid = msg[1]
        entry = self.pending.get(uid)
        if entry is not None:
            if not entry[1].done():
                entry[1].set_result(msg)
            return
        if uid in self.late:
            self.late.discard(uid)
            self.sim._note(self.cp_id, "late answer to a call that timed out: " + uid)
            return
        if uid in self.raw_ids or self.raw_expect > 0:
            self.raw_ids.discard(uid)
            self.raw_expect = max(0, self.raw_expect - 1)
            return
        self.sim._violation(
            self.cp_id, "unexpected_response", "", "ProtocolError", "answer to no pending call: " + uid, data
        )

    async def answer(self, uid, action, payload):
        sim = self.sim
        valid = action in ocppj.CP_ACTIONS
        error = None
        if not valid:
            # OCPP-J 1.6 4.2.3: NotImplemented = action not known, NotSupported = known, not supported
            code = "NotSupported" if action in ocppj.ALL_ACTIONS else "NotImplemented"
            error = (code, f"{action[:60]} is not a charge point -> CSMS action")
            raw = ocppj.dumps([CALL, uid, action, payload])
            sim._violation(self.cp_id, "unknown_action", action, code, error[1], raw)
        else:
            error = ocppj.schema_error(action, "req", payload)
            if error is not None:
                valid = False
                sim._violation(self.cp_id, "request", action, error[0], error[1], ocppj.dumps(payload))
        sim._record_call(self.cp_id, uid, action, payload, valid)
        if error is not None:
            await self.send([CALLERROR, uid, error[0], error[1], {}])
            return
        override = sim._take_override(self.cp_id, action)
        reply = None
        try:
            if override is not None:
                if override.delay:
                    await asyncio.sleep(override.delay)
                reply = override.response
                if callable(reply):
                    reply = reply(self.cp_id, payload)
                    if asyncio.iscoroutine(reply):
                        reply = await reply
            if reply is None:
                reply = sim._default_response(self.cp_id, action, payload)
        except Exception as e:  # a broken test hook must not take the connection down
            sim._note(self.cp_id, f"response hook for {action} failed: {traceback.format_exc()}")
            reply = Error("InternalError", f"response hook failed: {e}")
        await self.reply(uid, action, reply)

    async def reply(self, uid, action, reply):
        if reply is NO_REPLY:
            self.sim._note(self.cp_id, f"not answering {action} {uid} (as configured)")
        elif isinstance(reply, Error):
            await self.send([CALLERROR, uid, reply.code, reply.description, reply.details])
        elif isinstance(reply, Raw):
            await self.send_text(reply.text)
        else:
            try:
                payload = ocppj.to_payload(reply)
            except TypeError as e:  # a test hook returned something that is no answer
                self.sim._note(self.cp_id, f"response hook for {action}: {e}")
                await self.send([CALLERROR, uid, "InternalError", str(e), {}])
                return
            problem = ocppj.schema_error(action, "conf", payload)
            if problem is not None:  # allowed on purpose (tests of the charge point), but said aloud
                self.sim._note(self.cp_id, f"WARNING: the CSMS sends an invalid {action}.conf: {problem[1]}")
            await self.send([CALLRESULT, uid, payload])
