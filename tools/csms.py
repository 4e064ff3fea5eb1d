"""CSMS simulator: an OCPP 1.6-J central system for tests and for people.

Charge points connect to ws[s]://HOST:PORT/<any path>/<ChargePointId>. Every frame in both
directions is logged and kept in memory, checked against the official OCPP 1.6 schemas (security
white paper included), and every problem the charge point causes is recorded in `violations`.
Every charge-point-initiated action gets a sensible answer that tests can change.

The server runs on its own asyncio loop in a background thread, so synchronous test code drives it:

    with CsmsSimulator(port=0) as csms:          # or csms.start() ... csms.stop()
        connect the charger to csms.url          # ws://127.0.0.1:PORT/ocpp (+ "/CP001")
        csms.wait_for_call("CP001", "BootNotification")
        csms.call("CP001", "Reset", {"type": "Soft"})   # -> {"status": "Accepted"}

Run as a program it is an interactive console (see csms_console.py and `--help`).
"""

import asyncio
import base64
import binascii
import hmac
import itertools
import json
import logging
import ssl as ssl_module
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection, serve

import csms_ocppj as ocppj
from csms_ocppj import CALL, CALLERROR, CALLRESULT
from csms_session import NO_REPLY, CallError, Error, NotConnected, Raw, ResponseViolation, Session

SUBPROTOCOL = "ocpp1.6"
ECHO_MAX = 2000  # characters of one frame shown on the console; the log file gets all of it
_WAIT_MARGIN_S = 5.0  # extra time for a cross-thread result beyond the call's own timeout


# ---------------------------------------------------------------------------------------------
# Records kept for tests


@dataclass(frozen=True)
class Frame:
    t: float  # time.time()
    cp_id: str
    direction: str  # "in" (charge point -> CSMS) or "out"
    raw: str
    msg: object  # the parsed JSON (a list for OCPP-J), or None when it is not JSON


@dataclass(frozen=True)
class Violation:
    t: float
    cp_id: str
    kind: str  # frame, binary, message_id, request, response, callerror, unknown_action, unexpected_response
    action: str  # "" when not known
    code: str  # the OCPP-J error code that describes it
    text: str
    raw: str


@dataclass
class ReceivedCall:
    seq: int
    t: float
    cp_id: str
    unique_id: str
    action: str
    payload: dict
    valid: bool  # False when it violated the schema (it was answered with a CALLERROR)
    consumed: bool = False  # returned by wait_for_call already


@dataclass(frozen=True)
class ConnectionEvent:
    t: float
    cp_id: str
    kind: str  # connected, disconnected, refused
    info: dict = field(default_factory=dict)


def utc_now_iso(offset_s=0.0):
    now = datetime.now(UTC) + timedelta(seconds=offset_s)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def clock_text(t):
    """The wall-clock time of every log line (CSMS, and `make run`'s firmware and hw lines):
    local HH:MM:SS.mmm."""
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"


def _one_line(text):
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _password_bytes(value):
    return value if isinstance(value, bytes) else str(value).encode()


def key_to_password(hex_key):
    """AuthorizationKey as configured (hex) -> the password bytes on the wire (OCTT 2025-11)."""
    return binascii.unhexlify(hex_key)


def _close_info(proto):
    """code/reason of the closing handshake and who started it: cp, csms or network (no handshake)."""
    rcvd, sent = proto.close_rcvd, proto.close_sent
    if proto.close_rcvd_then_sent is True or (rcvd and not sent):
        by, frame = "cp", rcvd
    elif proto.close_rcvd_then_sent is False or (sent and not rcvd):
        by, frame = "csms", sent
    else:
        by, frame = "network", None
    if frame is None:
        return {"code": 1006, "reason": "", "by": by}
    return {"code": int(frame.code), "reason": frame.reason, "by": by}


def _subject(cert):
    # ssl's getpeercert() dict -> {"commonName": ..., "organizationName": ...}
    if not cert:
        return None
    return {k: v for rdn in cert.get("subject", ()) for k, v in rdn}


# ---------------------------------------------------------------------------------------------
# Server plumbing: configured answers, TCP connection tracking


class _Override:
    def __init__(self, response, cp_id, times, delay):
        self.response = response
        self.cp_id = cp_id
        self.times = times
        self.delay = delay


class _Connection(ServerConnection):
    # Keeps every TCP connection known to the simulator, also those still in the opening
    # handshake, so that stop() can abort them (asyncio's server does not, on Python 3.11).
    def __init__(self, *args, csms, **kw):
        super().__init__(*args, **kw)
        self.csms = csms

    def connection_made(self, transport):
        super().connection_made(transport)
        self.csms._raw_connections.add(self)
        self.loop.call_later(10.0, self._check_handshake)

    def connection_lost(self, exc):
        self.csms._raw_connections.discard(self)
        super().connection_lost(exc)

    def _check_handshake(self):
        # The websockets open_timeout is off (so that hang() can hold handshakes); this replaces it.
        if self.request is None and not self.csms._hanging:
            self.transport.abort()


# ---------------------------------------------------------------------------------------------


class CsmsSimulator:
    """An OCPP 1.6-J CSMS on a background thread; every method here is called from test code."""

    def __init__(
        self,
        host="127.0.0.1",
        port=0,
        *,
        path="/ocpp",
        url_host=None,
        ssl=None,
        certfile=None,
        keyfile=None,
        cafile=None,
        basic_auth=None,
        allow_unknown=True,
        known_ids=(),
        ping_interval=20,
        ping_timeout=20,
        close_timeout=5,
        max_size=1 << 20,
        call_timeout=10.0,
        log_file=None,
        echo=False,
        echo_frames=True,
        sink=None,
    ):
        self.host = host
        self.port = port
        # Host in url/cp_url: a wildcard bind address is not one to connect to.
        self.url_host = url_host or (host if host not in ("", "0.0.0.0", "::") else "127.0.0.1")
        self.path = "/" + path.strip("/") if path.strip("/") else ""
        self._ssl = ssl
        if ssl is None and certfile:
            self._ssl = self.make_ssl_context(certfile, keyfile, cafile)
        self.basic_auth = dict(basic_auth or {})  # ChargePointId -> password (str or bytes)
        self.allow_unknown = allow_unknown
        self.known_ids = set(known_ids)
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.max_size = max_size
        self.call_timeout = call_timeout
        self.log_file = log_file
        self.echo = sys.stdout if echo is True else (echo or None)
        self.echo_frames = echo_frames  # False: only output() lines reach `echo` (the log file gets all)
        # sink(t, cp_id, text): every line (cp_id None for output(), "" for notes) instead of
        # `echo`, with its time.time(), for a supervisor that merges logs (tools/run.py).
        self.sink = sink

        # Answers, changeable at any time.
        self.boot_status = "Accepted"
        self.boot_interval = 300
        self.time_offset_s = 0.0  # added to currentTime in BootNotification/Heartbeat answers
        self.id_tags = {}  # idTag -> status string or an IdTagInfo dict
        self.unknown_id_tag_status = "Accepted"
        self.next_transaction_id = 1
        self.subprotocol_reply = SUBPROTOCOL  # None: accept without naming the subprotocol
        self.transactions = {}  # transactionId -> {"cp_id", "start": payload, "stop": payload|None}

        self._overrides = {}  # action -> [_Override]
        self._cond = threading.Condition()
        self._frames = {}  # cp_id -> [Frame]
        self._calls = []  # [ReceivedCall]
        self._violations = []
        self._events = {}  # cp_id -> [ConnectionEvent]
        self._sessions = {}  # cp_id -> Session
        self._raw_marks = {}  # cp_id -> index of the frame of the last send_raw
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self._out_lock = threading.Lock()
        self._log_fh = None
        self._loop = None
        self._thread = None
        self._server = None
        self._hanging = False
        self._hang_release = None
        self._raw_connections = set()
        self._bg_tasks = set()

    # -- lifecycle ------------------------------------------------------------------------------

    @staticmethod
    def make_ssl_context(certfile, keyfile=None, cafile=None):
        """Server TLS context; with `cafile`, client certificates are required (security profile 3)."""
        ctx = ssl_module.SSLContext(ssl_module.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl_module.TLSVersion.TLSv1_2
        ctx.load_cert_chain(certfile, keyfile)
        if cafile:
            ctx.load_verify_locations(cafile)
            ctx.verify_mode = ssl_module.CERT_REQUIRED
        return ctx

    @property
    def running(self):
        return self._thread is not None

    @property
    def scheme(self):
        return "wss" if self._ssl is not None else "ws"

    @property
    def url(self):
        """Base URL; charge points append "/<ChargePointId>"."""
        return f"{self.scheme}://{self.url_host}:{self.port}{self.path}"

    def cp_url(self, cp_id):
        return self.url + "/" + urllib.parse.quote(cp_id, safe="")

    def start(self):
        if self._thread is not None:
            return self
        if self.log_file and self._log_fh is None:
            self._log_fh = open(self.log_file, "a", encoding="utf-8", buffering=1)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=self._run_loop, args=(loop,), name="csms", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self._startup(), loop).result(30)
        except BaseException:
            self._halt_loop()
            raise
        self._note("", f"listening on {self.url}")
        return self

    def stop(self, code=1001, abort=False):
        """Close every connection (close frame `code`; `abort`: drop TCP without one) and stop."""
        if self._thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(code, abort), self._loop).result(60)
        finally:
            self._halt_loop()
            self._note("", "stopped")
            if self._log_fh is not None:
                self._log_fh.close()
                self._log_fh = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _run_loop(self, loop):
        asyncio.set_event_loop(loop)
        loop.run_forever()

    def _halt_loop(self):
        loop, thread = self._loop, self._thread
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = self._server = None

    async def _startup(self):
        self._hanging = False
        self._hang_release = asyncio.get_running_loop().create_future()
        self._server = await serve(
            self._handler,
            self.host,
            self.port,
            ssl=self._ssl,
            process_request=self._process_request,
            select_subprotocol=self._select_subprotocol,
            compression=None,  # OCPP charge points do not negotiate permessage-deflate
            open_timeout=None,  # see _Connection._check_handshake
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            close_timeout=self.close_timeout,
            max_size=self.max_size,
            create_connection=lambda *args, **kw: _Connection(*args, csms=self, **kw),
            logger=logging.getLogger("csms.websockets"),
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self, code, abort):
        was_hanging = self._hanging
        await self._set_hang(False)
        if abort or was_hanging:
            for conn in list(self._raw_connections):
                conn.transport.abort()
        self._server.close(close_connections=not abort, code=code)
        try:
            await asyncio.wait_for(self._server.wait_closed(), self.close_timeout + 2)
        except TimeoutError:
            for conn in list(self._raw_connections):
                conn.transport.abort()
            await asyncio.wait_for(self._server.wait_closed(), 5)
        current = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not current]
        for task in rest:
            task.cancel()
        if rest:
            await asyncio.wait(rest, timeout=5)

    def _run(self, coro, timeout):
        if self._thread is None:
            coro.close()
            raise NotConnected("the CSMS simulator is not running")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("blocking CsmsSimulator call made from its own loop (use *_async)")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # -- handshake ------------------------------------------------------------------------------

    def _refuse(self, connection, cp_id, status, reason, info):
        info = dict(info, status=int(status), reason=reason)
        self._record_event(cp_id, "refused", info)
        response = connection.respond(status, reason + "\n")
        if status == HTTPStatus.UNAUTHORIZED:
            response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
        return response

    async def _process_request(self, connection, request):
        path = urllib.parse.urlsplit(request.path).path
        cp_id = urllib.parse.unquote(path.rsplit("/", 1)[-1])
        offered = [
            p.strip()
            for h in request.headers.get_all("Sec-WebSocket-Protocol")
            for p in h.split(",")
            if p.strip()
        ]
        remote = connection.remote_address
        info = {
            "path": request.path,
            "remote": f"{remote[0]}:{remote[1]}" if remote else "",
            "offered": offered,
            "headers": {k: v for k, v in request.headers.raw_items()},
        }
        if not cp_id:
            return self._refuse(
                connection, "", HTTPStatus.NOT_FOUND, "no ChargePointId in the URL path", info
            )
        if SUBPROTOCOL not in offered:
            reason = "subprotocol {} not offered (offered: {})".format(
                SUBPROTOCOL, ", ".join(offered) or "none"
            )
            return self._refuse(connection, cp_id, HTTPStatus.BAD_REQUEST, reason, info)
        expected = self.basic_auth.get(cp_id)
        if expected is None:
            if not self.allow_unknown and cp_id not in self.known_ids:
                return self._refuse(connection, cp_id, HTTPStatus.NOT_FOUND, "unknown ChargePointId", info)
        else:
            problem = self._check_basic_auth(request.headers.get("Authorization"), cp_id, expected)
            if problem:
                return self._refuse(connection, cp_id, HTTPStatus.UNAUTHORIZED, problem, info)
        if self._hanging:
            self._note(cp_id, "(hanging) holding the opening handshake")
            await asyncio.wait(
                [self._hang_release, connection.connection_lost_waiter], return_when=asyncio.FIRST_COMPLETED
            )
        connection.ocpp_id = cp_id
        connection.ocpp_info = info
        return None

    @staticmethod
    def _check_basic_auth(header, cp_id, expected):
        if not header:
            return "Basic credentials required"
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return "Basic credentials required"
        try:
            decoded = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return "malformed Basic credentials"
        user, sep, password = decoded.partition(b":")
        if not sep:
            return "malformed Basic credentials"
        if user != cp_id.encode():
            return "Basic username is not the ChargePointId"
        if not hmac.compare_digest(password, _password_bytes(expected)):
            return "wrong password"
        return None

    def _select_subprotocol(self, connection, offered):
        if self.subprotocol_reply and self.subprotocol_reply in offered:
            return self.subprotocol_reply
        return None

    # -- connections ----------------------------------------------------------------------------

    async def _handler(self, ws):
        cp_id = ws.ocpp_id
        session = Session(self, cp_id, ws)
        info = dict(ws.ocpp_info)
        info["subprotocol"] = ws.subprotocol
        info["tls"] = self._ssl is not None
        info["client_cert"] = _subject(ws.transport.get_extra_info("peercert")) if self._ssl else None
        with self._cond:  # registered and recorded at once: waiters see both or neither
            old = self._sessions.get(cp_id)
            self._sessions[cp_id] = session
            self._record_event(cp_id, "connected", info)
        if old is not None:
            self._note(cp_id, "new connection replaces the open one")
            self._background(old.ws.close(1000, "replaced by a new connection"))
        try:
            await session.run()
        finally:
            with self._cond:
                if self._sessions.get(cp_id) is session:
                    del self._sessions[cp_id]
                self._record_event(cp_id, "disconnected", _close_info(ws.protocol))
            session.done.set()

    def _background(self, coro):
        task = asyncio.get_running_loop().create_task(coro)
        self._bg_tasks.add(task)
        task.add_done_callback(self._bg_tasks.discard)

    def _session(self, cp_id):
        session = self._sessions.get(cp_id)
        if session is None:
            raise NotConnected(f"{cp_id} is not connected")
        return session

    @property
    def hanging(self):
        return self._hanging

    def cp_ids(self):
        """Every ChargePointId seen (connected, disconnected or refused), sorted."""
        with self._cond:
            return sorted(self._events)

    def connected(self, cp_id):
        return cp_id in self._sessions

    def connected_ids(self):
        with self._cond:
            return sorted(self._sessions)

    def wait_for_connection(self, cp_id, timeout=10.0):
        """Wait until `cp_id` is connected; returns the info of its "connected" event
        (path, remote, offered, headers, subprotocol, tls, client_cert)."""

        def ready():
            if cp_id in self._sessions:
                return next(e.info for e in reversed(self._events[cp_id]) if e.kind == "connected")
            return None

        return self._wait(ready, timeout, f"{cp_id} to connect")

    def wait_for_disconnect(self, cp_id, timeout=10.0):
        """Wait until `cp_id` is not connected; returns the last "disconnected" info (code, reason, by)."""

        def gone():
            if cp_id in self._sessions:
                return None
            return next(
                (e.info for e in reversed(self._events.get(cp_id, ())) if e.kind == "disconnected"), {}
            )

        return self._wait(gone, timeout, f"{cp_id} to disconnect")

    def events(self, cp_id):
        """ConnectionEvent list of `cp_id`: connected / disconnected / refused, oldest first."""
        with self._cond:
            return list(self._events.get(cp_id, ()))

    def connection_count(self, cp_id):
        return sum(1 for e in self.events(cp_id) if e.kind == "connected")

    def wait_for_event(self, cp_id, kind, timeout=10.0, since=0):
        """The first ConnectionEvent of `kind` at index >= `since` in events(cp_id)."""

        def found():
            evs = self._events.get(cp_id, [])
            return next((e for e in evs[since:] if e.kind == kind), None)

        return self._wait(found, timeout, f"{cp_id} event {kind}")

    def disconnect(self, cp_id, code=1000, reason=""):
        """Close `cp_id`'s websocket with `code` and wait until it is gone."""
        self._run(self._disconnect(cp_id, code, reason, False), self.close_timeout + _WAIT_MARGIN_S)

    def abort(self, cp_id):
        """Drop `cp_id`'s TCP connection without a close frame (what a network failure looks like)."""
        self._run(self._disconnect(cp_id, 1006, "", True), _WAIT_MARGIN_S)

    async def _disconnect(self, cp_id, code, reason, abort):
        session = self._session(cp_id)
        if abort:
            session.ws.transport.abort()
        else:
            await session.ws.close(code, reason)
        await session.done.wait()

    def hang(self, on=True):
        """on: keep every TCP connection but stop reading, answering and pinging (new connections
        are accepted by TCP but their handshake is held); off: carry on."""
        self._run(self._set_hang(on), _WAIT_MARGIN_S)

    async def _set_hang(self, on):
        if on == self._hanging:
            return
        self._hanging = on
        for session in list(self._sessions.values()):
            ws = session.ws
            if on:
                ws.transport.pause_reading()
                if ws.keepalive_task is not None:
                    ws.keepalive_task.cancel()
                    ws.keepalive_task = None
            else:
                ws.transport.resume_reading()
                ws.start_keepalive()
        if on:
            self._hang_release = asyncio.get_running_loop().create_future()
        elif not self._hang_release.done():
            self._hang_release.set_result(None)
        self._note("", "hang %s" % ("on" if on else "off"))

    # -- CSMS -> charge point ---------------------------------------------------------------------

    def call(self, cp_id, action, payload=None, timeout=None, *, validate=True, strict=True):
        """Send a CALL and return the answer's payload dict.

        `action` is an action name (any letter case) with `payload` a dict, or an
        `ocpp.v16.call.<Action>(...)` instance. Raises CallError on a CALLERROR, ResponseViolation
        when the answer breaks the schema (strict; the violation is recorded either way),
        TimeoutError, NotConnected. validate=False sends a request that breaks the schema."""
        timeout = self.call_timeout if timeout is None else timeout
        return self.call_async(cp_id, action, payload, timeout, validate=validate, strict=strict).result(
            timeout + _WAIT_MARGIN_S
        )

    def call_async(self, cp_id, action, payload=None, timeout=None, *, validate=True, strict=True):
        """Like call() but returns a concurrent.futures.Future at once."""
        timeout = self.call_timeout if timeout is None else timeout
        if self._thread is None:
            raise NotConnected("the CSMS simulator is not running")
        coro = self._call(cp_id, action, payload, timeout, validate, strict)
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _call(self, cp_id, action, payload, timeout, validate, strict):
        if not isinstance(action, str):
            payload, action = ocppj.to_payload(action), type(action).__name__
        else:
            action = ocppj.canonical_action(action) or action
            payload = ocppj.to_payload({} if payload is None else payload)
        if validate:
            try:
                problem = ocppj.schema_error(action, "req", payload)
            except ocppj.UnknownSchema:
                raise ValueError(
                    f"{action} is not an OCPP 1.6 action (validate=False sends it anyway)"
                ) from None
            if problem is not None:
                raise ValueError(f"invalid {action} request (validate=False sends it anyway): {problem[1]}")
        session = self._session(cp_id)
        async with session.call_lock:
            uid = str(next(self._ids))
            fut = asyncio.get_running_loop().create_future()
            session.pending[uid] = (action, fut)
            try:
                await session.send([CALL, uid, action, payload])
                msg = await asyncio.wait_for(fut, timeout)
            except TimeoutError:
                session.late.add(uid)
                raise TimeoutError(f"{cp_id}: no answer to {action} {uid} within {timeout}s") from None
            finally:
                session.pending.pop(uid, None)
        if msg[0] == CALLERROR:
            if msg[2] not in ocppj.ERROR_CODES:
                self._violation(
                    cp_id,
                    "callerror",
                    action,
                    "FormationViolation",
                    f"not an OCPP 1.6 error code: {msg[2]}",
                    "",
                )
            raise CallError(action, msg[2], msg[3], msg[4])
        try:
            problem = ocppj.schema_error(action, "conf", msg[2])
        except ocppj.UnknownSchema:
            problem = None
        if problem is not None:
            self._violation(cp_id, "response", action, problem[0], problem[1], ocppj.dumps(msg))
            if strict:
                raise ResponseViolation(action, msg[2], problem[0], problem[1])
        return msg[2]

    def send_raw(self, cp_id, text):
        """Send `text` as one websocket text message, whatever it is. Returns the index of its
        frame in frames(cp_id) (what wait_for_raw_reply waits after)."""
        return self._run(self._send_raw(cp_id, text), _WAIT_MARGIN_S)

    async def _send_raw(self, cp_id, text):
        session = self._session(cp_id)
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        is_list = isinstance(msg, list) and len(msg) > 1
        if not (is_list and msg[0] in (CALLRESULT, CALLERROR)):  # responses get no answer
            if is_list and isinstance(msg[1], str):
                session.raw_ids.add(msg[1])
            session.raw_expect += 1
        with self._cond:
            mark = len(self._frames.setdefault(cp_id, []))
            self._raw_marks[cp_id] = mark
        await session.send_text(text, msg)
        return mark

    def wait_for_raw_reply(self, cp_id, unique_id=None, timeout=10.0):
        """The next CALLRESULT/CALLERROR (as a list) from `cp_id` after the last send_raw,
        with `unique_id` if given."""
        since = self._raw_marks.get(cp_id, 0)

        def is_reply(msg):
            return (
                isinstance(msg, list)
                and len(msg) >= 2
                and msg[0] in (CALLRESULT, CALLERROR)
                and (unique_id is None or msg[1] == unique_id)
            )

        return self.wait_for_frame(cp_id, is_reply, timeout, since=since).msg

    # -- charge point -> CSMS ---------------------------------------------------------------------

    def set_response(self, action, response, *, cp_id=None, times=None, delay=0.0):
        """How to answer `action` from now on (for `cp_id` only, if given; for the next `times`
        calls only, if given; after `delay` seconds). `response` is a payload dict, NO_REPLY,
        Error(code, description), Raw(text), or a callable(cp_id, payload) (may be async)
        returning one of those or None for the default answer. response=None restores the default."""
        action = ocppj.canonical_action(action) or action
        with self._cond:
            if response is None:
                self._overrides.pop(action, None)
                return
            entries = self._overrides.setdefault(action, [])
            if times is None:  # a lasting answer replaces the lasting one for the same cp_id
                entries[:] = [e for e in entries if e.times is not None or e.cp_id != cp_id]
            entries.append(_Override(response, cp_id, times, delay))

    def no_reply(self, action, **kw):
        self.set_response(action, NO_REPLY, **kw)

    def reply_error(self, action, code, description="", **kw):
        self.set_response(action, Error(code, description), **kw)

    def reset_responses(self):
        with self._cond:
            self._overrides.clear()

    def _take_override(self, cp_id, action):
        # Precedence: one-shot answers (oldest first), then this charge point's, then everyone's.
        with self._cond:
            entries = self._overrides.get(action, [])
            ranked = sorted(
                (e for e in entries if e.cp_id in (None, cp_id)),
                key=lambda e: (e.times is None, e.cp_id is None),
            )
            if not ranked:
                return None
            entry = ranked[0]
            if entry.times is not None:
                entry.times -= 1
                if entry.times <= 0:
                    entries.remove(entry)
            return entry

    def id_tag_info(self, id_tag):
        entry = self.id_tags.get(id_tag, self.unknown_id_tag_status)
        return {"status": entry} if isinstance(entry, str) else dict(entry)

    def _default_response(self, cp_id, action, payload):
        if action == "BootNotification":
            return {
                "status": self.boot_status,
                "currentTime": utc_now_iso(self.time_offset_s),
                "interval": self.boot_interval,
            }
        if action == "Heartbeat":
            return {"currentTime": utc_now_iso(self.time_offset_s)}
        if action == "Authorize":
            return {"idTagInfo": self.id_tag_info(payload["idTag"])}
        if action == "StartTransaction":
            with self._cond:
                tx_id = self.next_transaction_id
                self.next_transaction_id += 1
                self.transactions[tx_id] = {"cp_id": cp_id, "start": payload, "stop": None}
            return {"transactionId": tx_id, "idTagInfo": self.id_tag_info(payload["idTag"])}
        if action == "StopTransaction":
            with self._cond:
                tx = self.transactions.setdefault(payload["transactionId"], {"cp_id": cp_id, "start": None})
                tx["stop"] = payload
            return {"idTagInfo": self.id_tag_info(payload["idTag"])} if "idTag" in payload else {}
        if action == "DataTransfer":
            return {"status": "UnknownVendorId"}
        if action == "SignCertificate":
            return {"status": "Accepted"}
        return {}  # the notifications and MeterValues have empty answers

    def wait_for_call(self, cp_id, action, timeout=10.0, predicate=None):
        """Payload of the oldest call of `action` from `cp_id` not returned before by
        wait_for_call (and matching `predicate(payload)`), waiting for it if needed.
        Schema-invalid calls count too (they are in `violations`)."""
        action = ocppj.canonical_action(action) or action

        def found():
            for rec in self._calls:
                if rec.consumed or rec.cp_id != cp_id or rec.action != action:
                    continue
                if predicate is not None:
                    try:
                        if not predicate(rec.payload):
                            continue
                    except (KeyError, TypeError, IndexError):
                        continue
                rec.consumed = True
                return rec.payload
            return None

        def explain():
            seen = [r.action for r in self._calls if r.cp_id == cp_id][-10:]
            return "{} from {} (last received: {})".format(action, cp_id, ", ".join(seen) or "nothing")

        return self._wait(found, timeout, explain)

    def received(self, cp_id=None, action=None):
        """ReceivedCall records (all of them, consumed or not), oldest first."""
        action = action and (ocppj.canonical_action(action) or action)
        with self._cond:
            return [
                r
                for r in self._calls
                if (cp_id is None or r.cp_id == cp_id) and (action is None or r.action == action)
            ]

    def calls(self, cp_id, action=None):
        """Payloads of every call received from `cp_id` (of `action`), oldest first."""
        return [r.payload for r in self.received(cp_id, action)]

    def count(self, cp_id, action):
        return len(self.received(cp_id, action))

    def clear_calls(self, cp_id=None):
        """Mark every call received so far as consumed: wait_for_call then waits for new ones."""
        with self._cond:
            for rec in self._calls:
                if cp_id is None or rec.cp_id == cp_id:
                    rec.consumed = True

    def last_status(self, cp_id, connector_id):
        """The last StatusNotification payload of a connector, or None."""
        for payload in reversed(self.calls(cp_id, "StatusNotification")):
            if payload.get("connectorId") == connector_id:
                return payload
        return None

    # -- frames, violations, waiting --------------------------------------------------------------

    def frames(self, cp_id):
        """[(direction, message)]: direction "in" (from the charge point) or "out"; message is the
        parsed JSON list, or the raw text when it is not JSON."""
        with self._cond:
            return [(f.direction, f.raw if f.msg is None else f.msg) for f in self._frames.get(cp_id, ())]

    def frame_log(self, cp_id):
        """Frame records of `cp_id` (time, direction, raw text, parsed message)."""
        with self._cond:
            return list(self._frames.get(cp_id, ()))

    def wait_for_frame(self, cp_id, predicate, timeout=10.0, direction="in", since=0):
        """The first Frame at index >= `since` in frames(cp_id) in `direction` whose message
        (parsed list, or raw text) satisfies `predicate`."""

        def found():
            for f in self._frames.get(cp_id, [])[since:]:
                if f.direction == direction:
                    try:
                        if predicate(f.raw if f.msg is None else f.msg):
                            return f
                    except (KeyError, TypeError, IndexError):
                        pass
            return None

        return self._wait(found, timeout, f"a matching frame from {cp_id}")

    @property
    def violations(self):
        """Every problem a charge point caused (Violation records), oldest first."""
        with self._cond:
            return list(self._violations)

    def violations_for(self, cp_id):
        return [v for v in self.violations if v.cp_id == cp_id]

    def clear_violations(self):
        with self._cond:
            self._violations.clear()

    def _wait(self, probe, timeout, what):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = probe()
                if result is not None:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    text = what() if callable(what) else what
                    raise TimeoutError(f"timed out after {timeout}s waiting for {text}")
                self._cond.wait(remaining)

    # -- recording and log (called on the loop thread) ----------------------------------------------

    def _record_frame(self, cp_id, direction, raw, msg):
        frame = Frame(time.time(), cp_id, direction, raw, msg)
        with self._cond:
            self._frames.setdefault(cp_id, []).append(frame)
            self._cond.notify_all()
        self._write(frame.t, cp_id, ("<- " if direction == "in" else "-> ") + _one_line(raw))

    def _record_call(self, cp_id, uid, action, payload, valid):
        with self._cond:
            self._calls.append(ReceivedCall(next(self._seq), time.time(), cp_id, uid, action, payload, valid))
            self._cond.notify_all()

    def _record_event(self, cp_id, kind, info):
        event = ConnectionEvent(time.time(), cp_id, kind, info)
        with self._cond:
            self._events.setdefault(cp_id, []).append(event)
            self._cond.notify_all()
        shown = {k: v for k, v in info.items() if k != "headers"}
        self._write(event.t, cp_id, f"** {kind} {shown}")

    def _violation(self, cp_id, kind, action, code, text, raw):
        v = Violation(time.time(), cp_id, kind, action, code, text, raw)
        with self._cond:
            self._violations.append(v)
            self._cond.notify_all()
        self._write(v.t, cp_id, f"!! VIOLATION {kind} {action}: {code} {_one_line(text)}")

    def _note(self, cp_id, text):
        self._write(time.time(), cp_id, "-- " + _one_line(text))

    def note(self, text):
        """Write a marker line into the log (handy to find where a test step starts)."""
        self._note("", text)

    def output(self, line):
        """Write a line to the console/log output, not interleaved with frame lines."""
        self._write(time.time(), None, line)

    def _write(self, t, cp_id, text):
        line = text if cp_id is None else "{} {} {}".format(clock_text(t), cp_id or "-", text)
        with self._out_lock:
            if self._log_fh is not None:
                self._log_fh.write(line + "\n")
            if self.sink is not None:
                try:
                    self.sink(t, cp_id, text)
                except Exception:  # a broken sink must not stop the server
                    pass
                return
            if self.echo is not None and (cp_id is None or self.echo_frames):
                shown = line if len(line) <= ECHO_MAX or cp_id is None else line[:ECHO_MAX] + " ..."
                try:
                    self.echo.write(shown + "\n")
                    self.echo.flush()
                except (OSError, ValueError):
                    pass  # the console went away (closed pipe): keep serving


def _main():
    import csms_console

    sys.exit(csms_console.main(sys.argv[1:]))


if __name__ == "__main__":
    _main()


__all__ = [
    "CsmsSimulator",
    "CallError",
    "ResponseViolation",
    "NotConnected",
    "Error",
    "Raw",
    "NO_REPLY",
    "Frame",
    "Violation",
    "ReceivedCall",
    "ConnectionEvent",
    "key_to_password",
    "utc_now_iso",
    "clock_text",
]
