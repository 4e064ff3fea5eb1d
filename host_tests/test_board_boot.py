"""Boot smoke test of the real boards' configurations (boards/esp32.py, boards/pico_w.py) on the
MicroPython Unix port, with the fake machine/network modules (host_tests/fakes) standing in for
the hardware: the board is built, its background tasks started, and main.run must reach the CSMS
with a BootNotification carrying the board's identity while the safety loop reads state A."""

import pytest

from board_boot import CP_ID, boot


@pytest.fixture(scope="module")
def boards_built():
    from build import build

    for name in ("esp32", "pico_w"):
        build(name, quiet=True)


@pytest.mark.parametrize("name", ["esp32", "pico_w"])
def test_board_boots_to_boot_notification(name, boards_built, tmp_path):
    from csms import CsmsSimulator

    with CsmsSimulator(port=0, log_file=str(tmp_path / "csms.log")) as csms:
        ident, report, stderr = boot(name, csms.url, tmp_path)
        boot_payload = csms.wait_for_call(CP_ID, "BootNotification", timeout=5)
        assert csms.violations == []
    serial, vendor, model = ident
    assert serial == "FA6E01020304", "serial: machine.unique_id() in hex"
    assert boot_payload["chargePointVendor"] == vendor == "MicroEVSE"
    assert boot_payload["chargePointModel"] == model == {"esp32": "ESP32-AC1", "pico_w": "PICOW-AC1"}[name]
    assert boot_payload["chargePointSerialNumber"] == serial
    used, duty, cp, feeds, stopped_by, link, watched, pilot_driver, base = report
    assert pilot_driver == {"esp32": "Pilot", "pico_w": "PilotRp2"}[name], "RP2040: ADC FIFO + DMA capture"
    assert duty == "1000", "the pilot stays at steady +12 V (not offering) in state A"
    assert cp == "A", f"the safety loop classifies the fake +12 V pilot as state A, got {cp}"
    assert int(feeds) >= 1 and stopped_by == "None", "the watchdog is fed while every task is alive"
    assert {"loop", "safety"} <= set(watched.split(",")), "the watchdog watches the safety loop"
    assert link == "True"
    assert "Traceback" not in stderr and "exception" not in stderr.lower(), stderr[-3000:]
    assert (tmp_path / "flash" / "config.json").exists(), "config persisted under board.flash"
    assert 0 < int(base) < int(used)
    print(f"\n{name}: firmware + board heap at BootNotification (64-bit): {int(used) - int(base)} bytes")
