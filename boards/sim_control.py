# The sim's control socket: TCP, one JSON object per line in, one per line out. Tests and
# tools/evcli.py drive the simulated world through it (plug, EV state, faults, network, cards)
# and read the firmware's state and the hardware event log. Requests are bounded (line length,
# clients) and a bad one only gets {"ok": false, "error": ...}: the connection stays usable.
#
# Commands: plug {connector, cable_amps=32 (13|20|32|63)}, unplug {connector},
# ev {connector, state: B|C|D|E|diode_fault} (needs a plugged cable), ev_limit {connector, amps},
# rfid {id_tag}, fault {kind: rcd|weld|lock|overtemp|meter, connector, active},
# network {up}, state, events {since=0}, ping.
# `state` merges the firmware's published snapshot (status, cp, offered_amps, transaction_id,
# connected, registration; null/false before it publishes) with the world (relay, pwm_duty in
# %, energy_wh, power_w, plugged, ...). heap.free is gc.mem_free() and heap.used/peak are
# gc.mem_alloc() right after a gc.collect(), sampled every world tick (100 ms) and at each
# `state`: the live heap, not the garbage that accumulates between collections; heap.sim is
# the sim's own share (world, control socket, event log, sim modules), measured before the
# firmware was first imported.
import asyncio
import gc
import json

from micropython import const

import sim_world

MAX_LINE = const(4096)
MAX_CLIENTS = const(4)
MAX_TAG = const(64)  # longer than OCPP's 20 on purpose: tests may present invalid cards
_CHUNK = const(512)
_EVENTS_PER_DRAIN = const(32)


class BadRequest(Exception):
    pass


def _is_bool(v):
    return v is True or v is False


def _field(req, name, default=None):
    v = req.get(name, default)
    if v is None:
        raise BadRequest("missing field: " + name)
    return v


def _int(req, name, default=None):
    v = _field(req, name, default)
    if not isinstance(v, int) or _is_bool(v):
        raise BadRequest(name + " must be an integer")
    return v


def _number(req, name):
    v = _field(req, name)
    if not isinstance(v, (int, float)) or _is_bool(v):
        raise BadRequest(name + " must be a number")
    return v


def _bool(req, name):
    v = _field(req, name)
    if not _is_bool(v):
        raise BadRequest(name + " must be true or false")
    return v


def _str(req, name, max_len):
    v = _field(req, name)
    if not isinstance(v, str) or not v or len(v) > max_len:
        raise BadRequest("%s must be a string of 1..%d characters" % (name, max_len))
    return v


def _percent(permille):
    return permille // 10 if permille % 10 == 0 else permille / 10


class ControlServer:
    def __init__(self, board):
        self.board = board
        self.clients = 0
        self._server = None

    async def start(self, host, port):
        self._server = await asyncio.start_server(self._client, host, port)

    async def close(self):
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _client(self, reader, writer):
        if self.clients >= MAX_CLIENTS:
            await self._send(writer, {"ok": False, "error": "too many clients (max %d)" % MAX_CLIENTS})
            await writer.wait_closed()
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
                    await self._request(line, writer)
                if len(pending) > MAX_LINE:
                    if not discarding:
                        err = "line too long (max %d bytes)" % MAX_LINE
                        await self._send(writer, {"ok": False, "error": err})
                    discarding = True
                    pending = b""
        except OSError:
            pass  # client went away
        finally:
            self.clients -= 1
            try:
                await writer.wait_closed()
            except OSError:
                pass

    async def _send(self, writer, obj):
        writer.write(json.dumps(obj).encode() + b"\n")
        await writer.drain()

    async def _request(self, line, writer):
        line = line.strip()
        if not line:
            return
        try:
            req = json.loads(line)
        except Exception:  # ValueError, or a decode error on bad UTF-8
            await self._send(writer, {"ok": False, "error": "bad JSON"})
            return
        try:
            if not isinstance(req, dict):
                raise BadRequest("request must be a JSON object")
            cmd = req.get("cmd")
            if not isinstance(cmd, str):
                raise BadRequest("missing field: cmd")
            if cmd == "events":
                await self._events(req, writer)  # streamed: the log can be long
                return
            handler = getattr(self, "_cmd_" + cmd, None)
            if handler is None:
                raise BadRequest("unknown cmd: " + cmd[:40])
            resp = handler(req)
            try:
                data = json.dumps(resp).encode()
            except Exception as e:
                raise BadRequest("cannot encode the answer: %r" % e)
            writer.write(data + b"\n")
            await writer.drain()
        except (BadRequest, ValueError, TypeError) as e:
            await self._send(writer, {"ok": False, "error": str(e)})
        except OSError:
            raise
        except Exception as e:  # a bug here must not end the sim
            await self._send(writer, {"ok": False, "error": "internal error: %r" % e})

    # ---- commands (req -> answer) ----

    def _conn(self, req):
        c = _int(req, "connector")
        if c < 1 or c > self.board.connectors:
            raise BadRequest("no connector %d (1..%d)" % (c, self.board.connectors))
        return c

    def _cmd_ping(self, req):
        return {"ok": True, "t_ms": sim_world.now_ms()}

    def _cmd_plug(self, req):
        c = self._conn(req)
        self.board.world.plug(c, _int(req, "cable_amps", 32))
        return {"ok": True}

    def _cmd_unplug(self, req):
        self.board.world.unplug(self._conn(req))
        return {"ok": True}

    def _cmd_ev(self, req):
        c = self._conn(req)
        self.board.world.set_ev(c, _str(req, "state", 16))
        return {"ok": True}

    def _cmd_ev_limit(self, req):
        c = self._conn(req)
        self.board.world.set_ev_limit(c, _number(req, "amps"))
        return {"ok": True}

    def _cmd_rfid(self, req):
        self.board.world.present_card(_str(req, "id_tag", MAX_TAG))
        return {"ok": True}

    def _cmd_fault(self, req):
        kind = _str(req, "kind", 16)
        c = self._conn(req)
        self.board.world.set_fault(kind, c, _bool(req, "active"))
        return {"ok": True}

    def _cmd_network(self, req):
        self.board.world.set_link(_bool(req, "up"))
        return {"ok": True}

    def _cmd_state(self, req):
        b = self.board
        w = b.world
        w.update()
        snap = b.snapshot() or {}
        fw = snap.get("connectors")
        if not isinstance(fw, dict):
            fw = {}
        conns = []
        for c in range(1, b.connectors + 1):
            k = w.conns[c]
            f = fw.get(c) or fw.get(str(c)) or {}
            offered = f.get("offered_amps")
            if offered is None:
                offered = round(w.ev_reads_amps(k.duty), 2)
            conns.append(
                {
                    "id": c,
                    "status": f.get("status"),
                    "cp": f.get("cp") or b.last_cp(c),
                    "pwm_duty": _percent(k.duty),
                    "relay": k.relay,
                    "offered_amps": offered,
                    "energy_wh": k.energy_wh(),
                    "power_w": int(sim_world.PHASES * sim_world.PHASE_V * k.current_a + 0.5),
                    "transaction_id": f.get("transaction_id"),
                    "plugged": k.plugged,
                    "cable_amps": k.cable_amps if k.plugged else None,
                    "ev": k.ev if k.plugged else None,
                    "ev_limit": k.ev_limit,
                    "current_a": round(k.current_a, 2),
                    "locked": k.lock_feedback,
                    "faults": [name for name in sim_world.FAULTS if k.fault(name)],
                }
            )
        used = b.sample_heap()
        free = gc.mem_free()
        resp = {
            "ok": True,
            "connected": snap.get("connected") is True,
            "registration": snap.get("registration"),
            "network": w.link_up,
            "boots": b.boots,
            "connectors": conns,
            "heap": {"free": free, "peak": b.heap_peak, "used": used, "size": free + used, "sim": b.heap_sim},
            "t_ms": sim_world.now_ms(),
        }
        if "error" in snap:
            resp["firmware_error"] = snap["error"]
        return resp

    async def _events(self, req, writer):
        since = _int(req, "since", 0)
        if since < 0:
            raise BadRequest("since must be >= 0")
        log = self.board.world.log
        last = log.seq
        first = since + 1
        dropped = 0
        if first < log.first():
            dropped = log.first() - first
            first = log.first()
        writer.write(b'{"ok": true, "seq": %d, "dropped": %d, "events": [' % (last, dropped))
        n = 0
        for s in range(first, last + 1):
            t, kind, conn, value = log.get(s)
            try:
                item = json.dumps({"seq": s, "t_ms": t, "kind": kind, "connector": conn, "value": value})
            except Exception:  # a firmware value JSON cannot carry: send its repr
                item = json.dumps(
                    {"seq": s, "t_ms": t, "kind": kind, "connector": conn, "value": repr(value)}
                )
            if n:
                writer.write(b",")
            writer.write(item.encode())
            n += 1
            if n % _EVENTS_PER_DRAIN == 0:
                await writer.drain()
        writer.write(b"]}\n")
        await writer.drain()
