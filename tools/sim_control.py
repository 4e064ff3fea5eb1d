"""The sim's control socket (in the CPython supervisor): TCP, one JSON object per line in, one per
line out. Tests and tools/evcli.py drive the simulated world through it (plug, EV state, faults,
network, cards) and read the firmware's state and the hardware event log. Requests are bounded
(line length, clients) and a bad one only gets {"ok": false, "error": ...}: the connection stays
usable. It lives as long as the supervisor: firmware restarts do not touch it.

Commands: plug {connector, cable_amps=32 (13|20|32|63)}, unplug {connector},
ev {connector, state: B|C|D|E|diode_fault} (needs a plugged cable), ev_limit {connector, amps},
rfid {id_tag}, fault {kind: rcd|weld|lock|overtemp|meter, connector, active},
network {up}, state, events {since=0}, ping.

`state` merges the firmware's published snapshot (asked from the MicroPython process at each
request: status, cp, offered_amps, transaction_id, connected, registration; null/false before
it publishes) with the world (relay, pwm_duty in %, energy_wh, power_w, plugged, ...). heap:
free and used are gc.mem_free() and gc.mem_alloc() right after a gc.collect() in the firmware's
process at the request, peak the highest `used` sampled (every 100 ms and at each request) since
that process started, size the heap size, sim the board twin's own share (docs/SIM.md).
"""

import asyncio
import json

from sim_world import FAULTS, ev_reads_amps, percent

MAX_LINE = 4096
MAX_CLIENTS = 4
MAX_TAG = 64  # longer than OCPP's 20 on purpose: tests may present invalid cards
_CHUNK = 4096


class BadRequest(Exception):
    pass


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _field(req, name, default=None):
    v = req.get(name, default)
    if v is None:
        raise BadRequest("missing field: " + name)
    return v


def _int(req, name, default=None):
    v = _field(req, name, default)
    if not _is_int(v):
        raise BadRequest(name + " must be an integer")
    return v


def _number(req, name):
    v = _field(req, name)
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise BadRequest(name + " must be a number")
    return v


def _bool(req, name):
    v = _field(req, name)
    if not isinstance(v, bool):
        raise BadRequest(name + " must be true or false")
    return v


def _str(req, name, max_len):
    v = _field(req, name)
    if not isinstance(v, str) or not v or len(v) > max_len:
        raise BadRequest(f"{name} must be a string of 1..{max_len} characters")
    return v


def _encode(obj):
    # Firmware event values came through JSON, world values are plain: default=repr is a safety net.
    return json.dumps(obj, default=repr).encode() + b"\n"


class ControlServer:
    def __init__(self, world, twin):
        self.world = world
        self.twin = twin
        self.clients = 0
        self._server = None

    async def start(self, host, port):
        """Listen; returns the port (the one picked when `port` is 0)."""
        self._server = await asyncio.start_server(self._client, host, port)
        return self._server.sockets[0].getsockname()[1]

    async def close(self):
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _client(self, reader, writer):
        if self.clients >= MAX_CLIENTS:
            await self._send(writer, {"ok": False, "error": f"too many clients (max {MAX_CLIENTS})"})
            writer.close()
            return
        self.clients += 1
        pending = b""
        discarding = False  # inside an over-long line: drop bytes until its newline
        try:
            while True:
                chunk = await reader.read(_CHUNK)
                if not chunk:
                    break
                pending += chunk
                while True:
                    i = pending.find(b"\n")
                    if i < 0:
                        break
                    line = pending[:i]
                    pending = pending[i + 1 :]
                    if discarding:
                        discarding = False
                        continue
                    await self._send(writer, await self.answer(line))
                if len(pending) > MAX_LINE:
                    if not discarding:
                        await self._send(
                            writer, {"ok": False, "error": f"line too long (max {MAX_LINE} bytes)"}
                        )
                    discarding = True
                    pending = b""
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client went away
        except asyncio.CancelledError:
            pass  # the supervisor is shutting down
        finally:
            self.clients -= 1
            writer.close()

    async def _send(self, writer, obj):
        if obj is None:
            return
        writer.write(_encode(obj))
        await writer.drain()

    async def answer(self, line):
        """The answer to one request line (None for an empty line)."""
        line = line.strip()
        if not line:
            return None
        try:
            req = json.loads(line)
        except ValueError:  # also UnicodeDecodeError
            return {"ok": False, "error": "bad JSON"}
        try:
            if not isinstance(req, dict):
                raise BadRequest("request must be a JSON object")
            cmd = req.get("cmd")
            if not isinstance(cmd, str):
                raise BadRequest("missing field: cmd")
            handler = getattr(self, "_cmd_" + cmd, None)
            if handler is None:
                raise BadRequest("unknown cmd: " + cmd[:40])
            return await handler(req)
        except (BadRequest, ValueError, TypeError) as e:
            return {"ok": False, "error": str(e)}
        except Exception as e:  # a bug here must not end the sim
            return {"ok": False, "error": f"internal error: {e!r}"}

    # ---- commands (req -> answer) ----

    def _conn(self, req):
        c = _int(req, "connector")
        if not 1 <= c <= self.world.n:
            raise BadRequest(f"no connector {c} (1..{self.world.n})")
        return c

    async def _cmd_ping(self, req):
        return {"ok": True, "t_ms": self.world.now_ms()}

    async def _cmd_plug(self, req):
        c = self._conn(req)
        self.world.plug(c, _int(req, "cable_amps", 32))
        return {"ok": True}

    async def _cmd_unplug(self, req):
        self.world.unplug(self._conn(req))
        return {"ok": True}

    async def _cmd_ev(self, req):
        c = self._conn(req)
        self.world.set_ev(c, _str(req, "state", 16))
        return {"ok": True}

    async def _cmd_ev_limit(self, req):
        c = self._conn(req)
        self.world.set_ev_limit(c, _number(req, "amps"))
        return {"ok": True}

    async def _cmd_rfid(self, req):
        self.world.present_card(_str(req, "id_tag", MAX_TAG))
        return {"ok": True}

    async def _cmd_fault(self, req):
        kind = _str(req, "kind", 16)
        c = self._conn(req)
        self.world.set_fault(kind, c, _bool(req, "active"))
        return {"ok": True}

    async def _cmd_network(self, req):
        self.world.set_link(_bool(req, "up"))
        return {"ok": True}

    async def _cmd_events(self, req):
        since = _int(req, "since", 0)
        if since < 0:
            raise BadRequest("since must be >= 0")
        log = self.world.log
        events, dropped = log.since(since)
        return {"ok": True, "seq": log.seq, "dropped": dropped, "events": events}

    async def _cmd_state(self, req):
        w = self.world
        snap, heap = await self.twin.snapshot()
        w.update()
        snap = snap or {}
        fw = snap.get("connectors")
        if not isinstance(fw, dict):
            fw = {}
        conns = []
        for c in range(1, w.n + 1):
            k = w.conns[c]
            f = fw.get(str(c)) or {}
            if not isinstance(f, dict):
                f = {}
            offered = f.get("offered_amps")
            if offered is None:
                offered = round(ev_reads_amps(k.duty), 2)
            conns.append(
                {
                    "id": c,
                    "status": f.get("status"),
                    "cp": f.get("cp") or self.twin.last_cp[c],
                    "pwm_duty": percent(k.duty),
                    "relay": k.relay,
                    "offered_amps": offered,
                    "energy_wh": k.energy_wh(),
                    "power_w": w.power_w(c),
                    "transaction_id": f.get("transaction_id"),
                    "plugged": k.plugged,
                    "cable_amps": k.cable_amps if k.plugged else None,
                    "ev": k.ev if k.plugged else None,
                    "ev_limit": k.ev_limit,
                    "current_a": round(k.current_a, 2),
                    "locked": k.lock_feedback,
                    "faults": [name for name in FAULTS if k.fault(name)],
                }
            )
        resp = {
            "ok": True,
            "connected": snap.get("connected") is True,
            "registration": snap.get("registration"),
            "authorizing": snap.get("authorizing"),  # the idTag of a card being identified
            "network": w.link_up,
            "boots": self.twin.boots,
            "connectors": conns,
            "heap": heap,
            "t_ms": w.now_ms(),
        }
        if "error" in snap:
            resp["firmware_error"] = snap["error"]
        return resp
