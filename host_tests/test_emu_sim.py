"""The simulated-board contract on emu_pico: `tools/sim.py --board emu_pico` runs the firmware on
MicroPython's rp2 port in the RP2040 emulator (tools/emu_sim.py) and is driven exactly like the
Unix-port sim: the control socket, the event log, SIGKILL of the process group as a power cut.

Skipped without the rp2 image (../shared/rp2040/firmware.bin, or $EMU_PICO_FIRMWARE; see
../shared/rp2040/README.md to rebuild it) or without tools/emu/node_modules (`npm ci --prefix
tools/emu`, done by `make`)."""

import statistics
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import emu_boot  # noqa: E402
from simctl import SimProcess  # noqa: E402

CP = "CP1"
WHY = emu_boot.missing()
pytestmark = pytest.mark.skipif(
    WHY is not None,
    reason=f"emu_pico not available ({WHY}): build the rp2 image as ../shared/rp2040/README.md says "
    "(or set EMU_PICO_FIRMWARE) and run `npm ci --prefix tools/emu`",
)

SETS = {
    "MeterValueSampleInterval": 1,
    "MessageTimeout": 5,
    "TransactionMessageRetryInterval": 1,
    "RetryBackOffWaitMinimum": 1,
    "RetryBackOffRandomRange": 0,
    "RetryBackOffRepeatTimes": 1,
}
BOOT_S = 60  # the emulator runs about 2.7 times slower than real time while busy


class EmuSim(SimProcess):
    """A SimProcess for `tools/sim.py --board emu_pico`."""

    def __init__(self, data, **kw):
        super().__init__(data, **kw)
        self.args += ["--board", "emu_pico"]


@pytest.fixture
def make_emu(csms, tmp_path, request):
    sims = []

    def make(data=None, sets=SETS, **kw):
        sim = EmuSim(
            data or tmp_path / "data",
            csms=csms.url,
            cp_id=CP,
            sets=sets,
            log_path=tmp_path / f"emu{len(sims)}.log",
            **kw,
        )
        sims.append(sim)
        return sim.start(timeout=BOOT_S)

    yield make
    for i, sim in enumerate(sims):
        sim.close()
        request.node.add_report_section("teardown", f"emu{i} log", sim.log_tail(60))


def conn(state):
    return state["connectors"][0]


def wait_status(csms, status, timeout=30):
    return csms.wait_for_call(
        CP,
        "StatusNotification",
        timeout=timeout,
        predicate=lambda p: p["connectorId"] == 1 and p["status"] == status,
    )


def test_refuses_what_emu_pico_cannot_do(tmp_path):
    import subprocess

    for extra, text in (
        (["--connectors", "2"], "--connectors must be 1"),
        (["--ca", str(tmp_path / "ca.pem")], "TLS"),
        (["--heap", "300K"], "--heap is at most"),
    ):
        p = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "sim.py"), "--board", "emu_pico", *extra],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert p.returncode == 2 and text in p.stderr, (extra, p.returncode, p.stderr)


def test_boot_state_and_reset(csms, make_emu):
    t0 = time.monotonic()
    sim = make_emu(heap=128000)
    t_ready = time.monotonic()
    boot = csms.wait_for_call(CP, "BootNotification", timeout=BOOT_S)
    t_boot = time.monotonic()
    assert boot["chargePointModel"] == "EMU-PICO-AC1"
    wait_status(csms, "Available")
    st = sim.wait_state(lambda s: s["registration"] == "Accepted" and s["connected"], 10)
    c = conn(st)
    assert (c["status"], c["cp"], c["pwm_duty"], c["relay"]) == ("Available", "A", 100, False)
    heap = st["heap"]
    assert heap["size"] < 140000 and 0 < heap["used"] <= heap["peak"], heap
    # the cable's PP resistor reaches the ADC: plug, then the EV in B
    sim.ok({"cmd": "plug", "connector": 1, "cable_amps": 20})
    wait_status(csms, "Preparing")
    assert sim.wait_state(lambda s: conn(s)["cp"] == "B", 10)
    # a residual-current fault reaches the firmware through the RCD pin; it clears again
    since = sim.events()[-1]["seq"]
    sim.ok({"cmd": "fault", "kind": "rcd", "connector": 1, "active": True})
    wait_status(csms, "Faulted")
    sim.ok({"cmd": "fault", "kind": "rcd", "connector": 1, "active": False})
    wait_status(csms, "Preparing")
    fw = [(e["kind"], e["value"]) for e in sim.events(since) if e["kind"] in ("fault", "fault_clear")]
    assert ("fault", "rcd") in fw and ("fault_clear", "rcd") in fw, fw
    # the network link: down is offline at once, up reconnects
    sim.ok({"cmd": "network", "up": False})
    sim.wait_state(lambda s: not s["connected"], 10, "offline")
    sim.ok({"cmd": "network", "up": True})
    sim.wait_state(lambda s: s["connected"], 20, "online again")
    # --set is applied: the key reads back as set
    conf = csms.call(CP, "GetConfiguration", {"key": ["MeterValueSampleInterval"]})
    assert conf["configurationKey"][0]["value"] == "1"
    change = {"key": "MeterValueSampleInterval", "value": "7"}
    assert csms.call(CP, "ChangeConfiguration", change) == {"status": "Accepted"}
    n = csms.count(CP, "BootNotification")
    t_reset = time.monotonic()
    assert csms.call(CP, "Reset", {"type": "Soft"}) == {"status": "Accepted"}
    sim.wait_ready(BOOT_S)
    t_ready2 = time.monotonic()
    csms.wait_for_call(
        CP, "BootNotification", timeout=BOOT_S, predicate=lambda p: csms.count(CP, "BootNotification") > n
    )
    t_boot2 = time.monotonic()
    st = sim.state()
    assert st["boots"] == 2
    boots = [e for e in sim.events() if e["kind"] == "boot"]
    assert [e["value"] for e in boots] == [1, 2]
    print(
        f"emu_pico sim (--heap 128000): SIM READY {t_ready - t0:.2f} s, BootNotification "
        f"{t_boot - t0:.2f} s wall after start; Reset -> SIM READY {t_ready2 - t_reset:.2f} s, "
        f"-> BootNotification {t_boot2 - t_reset:.2f} s; heap after boot: used {heap['used']} B of "
        f"{heap['size']} B, peak {heap['peak']} B"
    )
    sim.wait_state(lambda s: s["connected"], 20, "online after the reset")
    conf = csms.call(CP, "GetConfiguration", {"key": ["MeterValueSampleInterval"]})
    assert conf["configurationKey"][0]["value"] == "1", "--set is applied at every start"
    t_term = time.monotonic()
    assert sim.terminate() == 0  # SIGTERM: orderly, the firmware closes its websocket first
    assert not csms.connected(CP)
    print(f"emu_pico: SIGTERM -> exit 0 in {time.monotonic() - t_term:.2f} s")
    print(f"emu_pico: BootNotification sent at {_fw_ms(sim, 'BootNotification')} ms emulated after power-up")


def _fw_ms(sim, action):
    """Emulated ms (the firmware log's ticks_ms prefix) at which it first sent `action`."""
    import re

    for line in sim.log_path.read_text(errors="replace").splitlines():
        m = re.match(r"(\d+) fw > \[2,\"[^\"]*\",\"" + action + '"', line)
        if m:
            return int(m.group(1))
    return None


def _latency(sim, since):
    """(emu_ms difference, t_ms difference) from the EV leaving C (seq > since) to the contactor
    opening. Both are emulated time (t_ms: the world's clock follows the board's)."""
    sim.wait_state(lambda s: not conn(s)["relay"], 10, "contactor open")
    ev = relay = None
    for e in sim.events(since):
        if e["kind"] == "ev" and e["value"] == "B" and ev is None:
            ev = e
        if e["kind"] == "relay" and e["value"] is False and ev is not None and relay is None:
            relay = e
    assert ev and relay, sim.events(since)
    return relay["emu_ms"] - ev["emu_ms"], relay["t_ms"] - ev["t_ms"]


def _processes_using(path):
    """PIDs whose command line names `path` (the driver gets --flash DATA/flash.bin)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
            if (proc / "stat").read_text().split()[2] == "Z":
                continue
        except OSError:
            continue
        if str(path).encode() in cmd:
            found.append(int(proc.name))
    return found


def test_session_c_to_b_and_power_cut(csms, make_emu, tmp_path):
    data = tmp_path / "flash"
    sim = make_emu(data)
    csms.wait_for_call(CP, "BootNotification", timeout=BOOT_S)
    wait_status(csms, "Available")
    sim.ok({"cmd": "plug", "connector": 1, "cable_amps": 32})
    sim.ok({"cmd": "ev", "connector": 1, "state": "C"})
    wait_status(csms, "Preparing")
    sim.ok({"cmd": "rfid", "id_tag": "TAG1"})
    start = csms.wait_for_call(CP, "StartTransaction", timeout=30)
    assert start["idTag"] == "TAG1" and start["connectorId"] == 1
    wait_status(csms, "Charging")
    st = sim.wait_state(lambda s: conn(s)["relay"], 10, "contactor closed")
    assert conn(st)["pwm_duty"] == 53.3 and conn(st)["offered_amps"] == pytest.approx(32, abs=0.1)
    csms.wait_for_call(CP, "MeterValues", timeout=20)
    tx = max(csms.transactions)
    st = sim.wait_state(lambda s: conn(s)["transaction_id"] == tx and conn(s)["energy_wh"] > 0, 10)
    # C -> B opens the contactor; back to C closes it again (same transaction)
    sim.ok({"cmd": "emu_reset_max"})
    samples = []
    for _ in range(3):
        since = sim.events()[-1]["seq"]
        sim.ok({"cmd": "ev", "connector": 1, "state": "B"})
        samples.append(_latency(sim, since))
        sim.ok({"cmd": "ev", "connector": 1, "state": "C"})
        sim.wait_state(lambda s: conn(s)["relay"], 15, "contactor closed again")
    emu = [round(a, 1) for a, _ in samples]
    t_ms = [b for _, b in samples]
    st = sim.state()
    safety = st["emu"]["safety"]
    print(
        f"emu_pico C->B to contactor open: emulated ms {emu} (median {statistics.median(emu)}), "
        f"t_ms {t_ms}; safety loop (emulated, during these cycles): iteration last "
        f"{safety['last_us']} us, max {safety['max_us']} us, longest period {safety['gap_max_us']} us; "
        f"heap in session: used "
        f"{st['heap']['used']} B, peak {st['heap']['peak']} B"
    )
    assert max(emu) < 100, samples  # IEC 61851-1: 100 ms
    # power cut mid-session (charging), then the charger comes back on the same flash
    csms.wait_for_call(CP, "MeterValues", timeout=20)
    sim.power_cut()
    assert _processes_using(data) == [], "a process outlived the power cut"
    sim = make_emu(data)
    sim.ok({"cmd": "plug", "connector": 1, "cable_amps": 32})
    stop = csms.wait_for_call(CP, "StopTransaction", timeout=BOOT_S)
    assert stop["transactionId"] == tx and stop["reason"] == "PowerLoss", stop
    assert csms.count(CP, "StartTransaction") == 1
    assert sim.state()["connectors"][0]["relay"] is False
    assert csms.violations == []
