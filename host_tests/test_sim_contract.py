"""The simulated board's contract (shared/DESIGN.md "The simulated board"), from the outside.

tools/sim.py runs as a subprocess. Most tests use a small test firmware (PLACEHOLDER_MAIN below,
put ahead of build/sim through SIM_EXTRA_PATH) that runs the real safety loop, publishes a
snapshot, counts boots in /flash and obeys cards presented at the reader (RESET, EXIT, CRASH,
PRINT, RELAY, OFFERn). One smoke test runs the real firmware/main.py.
"""

import hashlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SIM = ROOT / "tools" / "sim.py"
READY = re.compile(r"^SIM READY control=(\S+):(\d+)$")

PLACEHOLDER_MAIN = """
import asyncio
import os
import hashlib
import binascii
from evse.safety import SafetyLoop


def _boots(flash):
    try:
        with open(flash + "/boots.txt") as f:
            n = int(f.read())
    except OSError:
        n = 0
    n += 1
    with open(flash + "/boots.tmp", "w") as f:
        f.write(str(n))
    os.rename(flash + "/boots.tmp", flash + "/boots.txt")
    return n


def _certs(flash):
    out = {}
    try:
        names = os.listdir(flash + "/certs")
    except OSError:
        return out
    for name in names:
        with open(flash + "/certs/" + name, "rb") as f:
            out[name] = binascii.hexlify(hashlib.sha256(f.read()).digest()).decode()
    return out


async def run(board, preset):
    boots = _boots(board.flash)
    board.event("preset", 0, preset)
    board.event("certs", 0, _certs(board.flash))
    loop = SafetyLoop(board)

    def snapshot():
        conns = {}
        for c in range(1, board.connectors + 1):
            conns[c] = {"status": "Test", "cp": loop.state(c), "offered_amps": loop.offered_amps(c),
                        "transaction_id": None}
        return {"connected": False, "registration": "boots=%d" % boots, "connectors": conns}

    board.publish(snapshot)
    asyncio.create_task(loop.run())  # left running on purpose: the sim must cancel it on reset
    while True:
        tag = board.rfid_read()
        if tag == "RESET":
            return "reset"
        if tag == "EXIT":
            return "exit"
        if tag == "CRASH":
            raise RuntimeError("test crash")
        if tag == "PRINT":
            print("a stray print from the firmware")  # stdout is the bus: must not confuse it
            board.event("printed", 0, True)
        if tag == "RELAY":  # lock the socket: the safety loop then closes the contactor itself
            loop.lock(1, True)
        if tag and tag.startswith("OFFER"):
            loop.offer(1, int(tag[5:]))
            loop.allow(1, True)
        await asyncio.sleep_ms(20)
"""


class Sim:
    def __init__(self, tmp_path, *args, data=None, real_main=False):
        self.data = data or tmp_path / "data"
        env = dict(os.environ)
        if not real_main:
            fw = tmp_path / "fw"
            fw.mkdir(exist_ok=True)
            (fw / "main.py").write_text(PLACEHOLDER_MAIN)
            env["SIM_EXTRA_PATH"] = str(fw)
        self.stderr = open(tmp_path / "sim.stderr", "ab")
        cmd = [sys.executable, str(SIM), "--data", str(self.data), "--control", "127.0.0.1:0", *args]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self.stderr, env=env, start_new_session=True
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.port = None
        self.conn = None

    def _pump(self):
        for raw in self.proc.stdout:
            self.lines.put(raw.decode(errors="replace").rstrip("\n"))
        self.lines.put(None)

    def wait_ready(self, timeout=20):
        end = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError("no SIM READY line") from None
            assert line is not None, "sim exited before SIM READY"
            m = READY.match(line)
            if m:
                assert m.group(1) == "127.0.0.1"
                port = int(m.group(2))
                assert self.port in (None, port), "the control port changed"
                self.port = port
                return port

    def req(self, obj):
        if self.conn is None:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            self.conn = (s, s.makefile("rb"))
        s, f = self.conn
        s.sendall((obj if isinstance(obj, str) else json.dumps(obj)).encode() + b"\n")
        return json.loads(f.readline())

    def ok(self, obj):
        resp = self.req(obj)
        assert resp["ok"] is True, resp
        return resp

    def state(self):
        return self.ok({"cmd": "state"})

    def until(self, pred, timeout=2.0):
        end = time.monotonic() + timeout
        while True:
            st = self.state()
            if pred(st):
                return st
            assert time.monotonic() < end, f"condition not met; last state {st}"
            time.sleep(0.02)

    def events(self, since=0, kind=None):
        evs = self.ok({"cmd": "events", "since": since})["events"]
        return [e for e in evs if kind is None or e["kind"] == kind]

    def wait_events(self, kind, timeout=3.0):
        """The events of `kind`, once there is one: the firmware's own events arrive on the bus
        after SIM READY (which comes before the firmware's first step)."""
        end = time.monotonic() + timeout
        while True:
            evs = self.events(kind=kind)
            if evs:
                return evs
            assert time.monotonic() < end, f"no {kind} event"
            time.sleep(0.02)

    def child_pids(self):
        pid = self.proc.pid
        try:
            return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            return []

    def stop(self):
        if self.conn:
            self.conn[0].close()
            self.conn = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.stderr.close()
        return self.proc.returncode


def alive(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, just not yet reaped


@pytest.fixture
def sim(tmp_path):
    started = []

    def start(*args, **kw):
        s = Sim(tmp_path, *args, **kw)
        started.append(s)
        s.wait_ready()
        return s

    yield start
    for s in started:
        s.stop()
        if s.proc.returncode is None:
            os.killpg(s.proc.pid, signal.SIGKILL)


def conn1(st):
    return st["connectors"][0]


def test_ready_line_and_state_fields(sim):
    s = sim("--connectors", "2")
    st = s.until(lambda st: conn1(st)["cp"] == "A")
    assert isinstance(st["connected"], bool)
    assert st["registration"] == "boots=1"
    assert [c["id"] for c in st["connectors"]] == [1, 2]
    c = conn1(st)
    assert c["status"] == "Test" and c["relay"] is False and c["pwm_duty"] == 100
    assert c["offered_amps"] == 0 and c["transaction_id"] is None
    assert isinstance(c["energy_wh"], int) and isinstance(c["power_w"], int)
    heap = st["heap"]
    assert isinstance(heap["free"], int) and isinstance(heap["peak"], int)
    assert 0 < heap["used"] <= heap["peak"] < heap["size"] and heap["free"] > 0
    assert heap["free"] + heap["used"] == heap["size"] > 500 * 1024  # 512K less the GC's tables
    assert 0 < heap["sim"] < 20 * 1024 and 0 < heap["platform"] < 20 * 1024, heap
    assert isinstance(st["t_ms"], int) and st["network"] is True
    assert s.ok({"cmd": "ping"})["t_ms"] >= st["t_ms"]


def test_pilot_states_follow_the_ev(sim):
    s = sim()
    s.until(lambda st: conn1(st)["cp"] == "A")
    t0 = time.monotonic()
    s.ok({"cmd": "plug", "connector": 1, "cable_amps": 32})
    st = s.until(lambda st: conn1(st)["cp"] == "B", timeout=1.0)
    assert time.monotonic() - t0 < 1.0
    assert conn1(st)["plugged"] is True and conn1(st)["cable_amps"] == 32
    for state in ("C", "D", "E", "B"):
        s.ok({"cmd": "ev", "connector": 1, "state": state})
        s.until(lambda st, state=state: conn1(st)["cp"] == state, timeout=1.0)
    s.ok({"cmd": "unplug", "connector": 1})
    s.until(lambda st: conn1(st)["cp"] == "A", timeout=1.0)
    cps = [e["value"] for e in s.events(kind="cp") if e["connector"] == 1]
    assert cps == ["A", "B", "C", "D", "E", "B", "A"]
    world = [(e["kind"], e["value"]) for e in s.events() if e["kind"] in ("plug", "ev", "unplug")]
    assert world == [("plug", 32), ("ev", "C"), ("ev", "D"), ("ev", "E"), ("ev", "B"), ("unplug", None)]


def test_offer_pwm_and_diode_fault(sim):
    s = sim()
    s.ok({"cmd": "plug", "connector": 1, "cable_amps": 20})
    s.until(lambda st: conn1(st)["cp"] == "B")
    s.ok({"cmd": "rfid", "id_tag": "OFFER32"})
    st = s.until(lambda st: conn1(st)["pwm_duty"] != 100)
    assert conn1(st)["pwm_duty"] == 33.3  # clamped to the 20 A cable
    assert abs(conn1(st)["offered_amps"] - 20) < 0.1
    assert [e["value"] for e in s.events(kind="pwm")][-1] == 33.3
    s.ok({"cmd": "ev", "connector": 1, "state": "diode_fault"})
    st = s.until(lambda st: conn1(st)["cp"] == "F", timeout=1.0)
    s.ok({"cmd": "unplug", "connector": 1})
    st = s.until(lambda st: conn1(st)["cp"] == "A", timeout=1.0)
    assert conn1(st)["pwm_duty"] == 100


def test_rfid_faults_network_and_events_since(sim):
    s = sim()
    seq0 = s.ok({"cmd": "events", "since": 0})["seq"]
    s.ok({"cmd": "rfid", "id_tag": "TAG1"})
    s.ok({"cmd": "fault", "kind": "rcd", "connector": 1, "active": True})
    s.until(lambda st: conn1(st)["faults"] == ["rcd"])
    s.ok({"cmd": "fault", "kind": "rcd", "connector": 1, "active": False})
    s.ok({"cmd": "network", "up": False})
    assert s.state()["network"] is False
    s.ok({"cmd": "network", "up": True})
    resp = s.ok({"cmd": "events", "since": seq0})
    # The world's own events; the firmware's safety loop may add its ("fault", 1, "rcd") too, and
    # the placeholder firmware's start-up events (its "preset") may land after seq0.
    world = ("rfid", "fault", "network")
    evs = [
        e
        for e in resp["events"]
        if e["kind"] in world and (not isinstance(e["value"], str) or e["kind"] == "rfid")
    ]
    assert [(e["kind"], e["connector"], e["value"]) for e in evs] == [
        ("rfid", 0, "TAG1"),
        ("fault", 1, {"fault": "rcd", "active": True}),
        ("fault", 1, {"fault": "rcd", "active": False}),
        ("network", 0, False),
        ("network", 0, True),
    ]
    assert [e["seq"] for e in evs] == sorted(e["seq"] for e in evs) and resp["seq"] >= seq0 + 5
    assert all(isinstance(e["t_ms"], int) for e in evs)
    assert evs == sorted(evs, key=lambda e: e["t_ms"])
    assert s.ok({"cmd": "events", "since": resp["seq"]})["events"] == []


def test_bad_requests_get_errors_and_the_connection_survives(sim):
    s = sim()
    bad = [
        "this is not json",
        "[1, 2]",
        {"nocmd": 1},
        {"cmd": "fly"},
        {"cmd": "plug"},
        {"cmd": "plug", "connector": 3},
        {"cmd": "plug", "connector": "1"},
        {"cmd": "plug", "connector": 1, "cable_amps": 16},
        {"cmd": "ev", "connector": 1, "state": "C"},  # not plugged
        {"cmd": "ev", "connector": 1, "state": "Z"},
        {"cmd": "fault", "kind": "smoke", "connector": 1, "active": True},
        {"cmd": "fault", "kind": "rcd", "connector": 1, "active": "yes"},
        {"cmd": "network"},
        {"cmd": "rfid", "id_tag": ""},
        {"cmd": "events", "since": -1},
        {"cmd": "ev_limit", "connector": 1, "amps": "many"},
        "x" * 5000,
    ]
    for req in bad:
        resp = s.req(req)
        assert resp["ok"] is False and isinstance(resp["error"], str) and resp["error"], (req, resp)
    assert s.ok({"cmd": "ping"})
    assert s.state()["connectors"][0]["plugged"] is False


def test_sigterm_is_an_orderly_shutdown(sim):
    s = sim()
    children = s.child_pids()
    assert children
    t0 = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(5) == 0
    assert time.monotonic() - t0 < 5
    time.sleep(0.1)
    assert not any(alive(p) for p in children)


def test_sigkill_of_the_group_leaves_no_process(sim):
    s = sim()
    children = s.child_pids()
    assert children
    os.killpg(s.proc.pid, signal.SIGKILL)
    s.proc.wait(5)
    end = time.monotonic() + 2
    while any(alive(p) for p in children) and time.monotonic() < end:
        time.sleep(0.02)
    assert not any(alive(p) for p in children)


def test_child_dies_with_the_supervisor(sim):
    s = sim()
    children = s.child_pids()
    s.proc.kill()  # the supervisor alone
    s.proc.wait(5)
    end = time.monotonic() + 2
    while any(alive(p) for p in children) and time.monotonic() < end:
        time.sleep(0.02)
    assert not any(alive(p) for p in children)


def test_flash_persists_across_runs_and_power_cuts(sim, tmp_path):
    data = tmp_path / "data"
    s = sim(data=data)
    assert s.state()["registration"] == "boots=1"
    assert s.stop() == 0
    s = sim(data=data)
    assert s.state()["registration"] == "boots=2"
    os.killpg(s.proc.pid, signal.SIGKILL)  # power cut
    s.proc.wait(5)
    s = sim(data=data)
    assert s.state()["registration"] == "boots=3"
    assert (data / "flash.img").stat().st_size == 512 * 4096


def test_reset_restarts_the_firmware_in_a_fresh_process(sim):
    s = sim()
    port = s.port
    old = s.child_pids()
    s.ok({"cmd": "plug", "connector": 1, "cable_amps": 32})
    s.until(lambda st: conn1(st)["cp"] == "B")
    s.ok({"cmd": "rfid", "id_tag": "OFFER16"})
    s.ok({"cmd": "ev", "connector": 1, "state": "C"})
    s.until(lambda st: conn1(st)["cp"] == "C")
    s.ok({"cmd": "rfid", "id_tag": "RELAY"})
    st = s.until(lambda st: conn1(st)["relay"] and conn1(st)["locked"] and conn1(st)["current_a"] > 0)
    assert conn1(st)["pwm_duty"] == 26.6
    s.ok({"cmd": "rfid", "id_tag": "RESET"})  # while charging
    assert s.wait_ready(timeout=10) == port
    st = s.until(lambda st: st["registration"] == "boots=2")
    assert st["boots"] == 2
    new = s.child_pids()
    assert new and not set(new) & set(old), (old, new)  # a hardware reset clears RAM: new process
    assert not any(alive(p) for p in old)
    st = s.until(lambda st: conn1(st)["cp"] == "C")
    c = conn1(st)
    assert c["plugged"] is True and c["ev"] == "C"  # the world kept running
    assert (c["pwm_duty"], c["relay"], c["locked"]) == (100, False, False)  # power-on outputs
    assert c["current_a"] == 0
    evs = s.events()
    boot_seq = [e["seq"] for e in evs if e["kind"] == "boot"][-1]
    # The outputs dropped when the controller reset: logged just before the new boot.
    drops = [(e["kind"], e["value"]) for e in evs if e["seq"] < boot_seq][-3:]
    assert sorted(drops, key=str) == sorted([("relay", False), ("pwm", 100), ("lock", False)], key=str)
    s.ok({"cmd": "ev", "connector": 1, "state": "B"})
    s.until(lambda st: conn1(st)["cp"] == "B")
    time.sleep(0.2)
    cps = [e["value"] for e in s.events(since=boot_seq, kind="cp")]
    assert cps == ["C", "B"], cps  # one safety loop: the old firmware is gone
    s.ok({"cmd": "rfid", "id_tag": "EXIT"})
    assert s.proc.wait(5) == 0


def test_a_crashed_firmware_reboots(sim):
    s = sim()
    s.ok({"cmd": "rfid", "id_tag": "CRASH"})
    assert s.wait_ready(timeout=10) == s.port
    assert s.until(lambda st: st["registration"] == "boots=2")["boots"] == 2


def test_a_firmware_that_cannot_start_ends_the_sim(tmp_path):
    fw = tmp_path / "fw"
    fw.mkdir()
    (fw / "main.py").write_text("import no_such_module\n")
    env = dict(os.environ, SIM_EXTRA_PATH=str(fw))
    cmd = [sys.executable, str(SIM), "--data", str(tmp_path / "data"), "--control", "127.0.0.1:0"]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, env=env, timeout=30)
    assert proc.returncode == 1, proc  # the child's status, after 3 quick failures
    assert time.monotonic() - t0 < 10
    assert b"SIM READY" not in proc.stdout
    assert proc.stderr.count(b"no_such_module") == 3, proc.stderr.decode()


def test_stray_prints_do_not_disturb_the_bus(sim, tmp_path):
    s = sim()
    s.ok({"cmd": "rfid", "id_tag": "PRINT"})
    end = time.monotonic() + 2
    while not s.events(kind="printed"):
        assert time.monotonic() < end, "the event after the print did not arrive"
        time.sleep(0.02)
    assert s.state()["registration"] == "boots=1"
    s.stop()
    assert b"a stray print from the firmware" in (tmp_path / "sim.stderr").read_bytes()


def test_event_times_are_the_boards_clock(sim):
    s = sim()
    t0 = s.ok({"cmd": "ping"})["t_ms"]
    s.ok({"cmd": "plug", "connector": 1, "cable_amps": 32})
    s.until(lambda st: conn1(st)["cp"] == "B")
    t1 = s.ok({"cmd": "ping"})["t_ms"]
    plug = s.events(kind="plug")[-1]
    cp = s.events(kind="cp")[-1]
    assert t0 <= plug["t_ms"] <= cp["t_ms"] <= t1
    assert cp["t_ms"] - plug["t_ms"] >= 80  # the firmware's debounce (100 ms, less one loop)


def test_sigint_is_an_orderly_shutdown(sim):
    s = sim()
    os.killpg(s.proc.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole group
    assert s.proc.wait(5) == 0


def test_client_count_is_bounded(sim):
    s = sim()
    s.ok({"cmd": "ping"})  # client 1
    extra = [socket.create_connection(("127.0.0.1", s.port), timeout=5) for _ in range(4)]
    try:
        answers = []
        for c in extra:
            c.sendall(b'{"cmd": "ping"}\n')
            answers.append(json.loads(c.makefile("rb").readline()))
        assert [a["ok"] for a in answers] == [True, True, True, False]
        assert "too many clients" in answers[3]["error"]
    finally:
        for c in extra:
            c.close()
    time.sleep(0.1)
    with socket.create_connection(("127.0.0.1", s.port), timeout=5) as c:
        c.sendall(b'{"cmd": "ping"}\n')
        assert json.loads(c.makefile("rb").readline())["ok"] is True


def test_preset_and_certificates_reach_the_firmware(sim, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CP1")])
    now = __import__("datetime").datetime.now(__import__("datetime").timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now.replace(year=now.year + 1))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    (tmp_path / "ca.der").write_bytes(der)
    s = sim(
        *("--csms", "ws://127.0.0.1:9/ocpp", "--id", "CP1"),
        *("--set", "HeartbeatInterval=30", "--set", "AuthorizationKey=00ff"),
        *("--ca", str(tmp_path / "ca.der")),
        *("--cert", str(tmp_path / "cert.pem"), "--key", str(tmp_path / "key.pem")),
    )
    preset = s.wait_events("preset")[-1]["value"]
    assert preset == {
        "CentralSystemURL": "ws://127.0.0.1:9/ocpp",
        "ChargePointId": "CP1",
        "HeartbeatInterval": "30",
        "AuthorizationKey": "00ff",
    }
    certs = s.wait_events("certs")[-1]["value"]
    key_der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert certs == {
        "csms_root.der": hashlib.sha256(der).hexdigest(),
        "cp_cert.der": hashlib.sha256(der).hexdigest(),
        "cp_key.der": hashlib.sha256(key_der).hexdigest(),
    }


@pytest.mark.parametrize(
    "args",
    [
        ["--heap", "lots"],
        ["--control", "nohostport"],
        ["--set", "novalue"],
        ["--csms", "http://x"],
        ["--id", "a/b"],
    ],
)
def test_bad_options_are_refused(args):
    proc = subprocess.run([sys.executable, str(SIM), *args], capture_output=True, timeout=10)
    assert proc.returncode == 2 and b"error" in proc.stderr


def test_real_firmware_boots_on_the_sim(sim):
    s = sim("--csms", "ws://127.0.0.1:9/ocpp", "--id", "CP1", real_main=True)
    s.ok({"cmd": "plug", "connector": 1, "cable_amps": 32})
    st = s.until(lambda st: conn1(st)["cp"] == "B", timeout=1.0)
    assert conn1(st)["status"] is not None
    assert s.stop() == 0
