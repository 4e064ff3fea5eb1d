"""The product requirement on memory: the simulated charger boots, registers, sends heartbeats and
reconnects with a 128 KiB MicroPython heap (64-bit Unix port), and the board twin's own share
of that heap stays small (docs/SIM.md)."""

import time

HEAP = "128K"
SIM_SHARE_MAX = 16 * 1024


def test_boot_heartbeat_and_reconnect_in_a_128k_heap(csms, make_sim):
    csms.boot_interval = 1  # Accepted with a 1 s heartbeat
    sim = make_sim(csms=csms.url, cp_id="CP1", heap=HEAP)
    boot = csms.wait_for_call("CP1", "BootNotification", timeout=15)
    assert boot["chargePointModel"]
    csms.wait_for_call("CP1", "StatusNotification", timeout=10)
    csms.wait_for_call("CP1", "Heartbeat", timeout=10)
    sim.wait_state(lambda s: s["connected"] and s["registration"] == "Accepted", what="registered")
    time.sleep(0.3)
    csms.stop()
    sim.wait_state(lambda s: not s["connected"], timeout=15, what="disconnected")
    csms.start()  # same port
    csms.wait_for_connection("CP1", timeout=20)
    n = csms.count("CP1", "Heartbeat")
    deadline = time.monotonic() + 10
    while csms.count("CP1", "Heartbeat") <= n:  # a heartbeat on the new connection
        assert time.monotonic() < deadline, "no Heartbeat after the reconnect"
        time.sleep(0.05)
    st = sim.state()
    heap = st["heap"]
    assert heap["size"] <= 128 * 1024 + 4096, heap  # the heap asked for (the port rounds it up a bit)
    assert 0 < heap["sim"] <= SIM_SHARE_MAX, heap
    assert heap["used"] <= heap["peak"] < heap["size"], heap
    log = sim.log_tail(100000)
    assert "MemoryError" not in log and "crashed" not in log, log[-4000:]
    assert st["boots"] == 1  # never restarted for lack of memory
    assert csms.count("CP1", "BootNotification") == 1
