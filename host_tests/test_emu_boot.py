"""The firmware boots on the emulated Pico (board emu_pico, the real rp2 port in rp2040js) and
registers with the CSMS simulator over the UART0 network bridge of tools/emu_boot.py."""

import re
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import emu_boot  # noqa: E402

CP_ID = "EMU1"

pytestmark = pytest.mark.skipif(
    emu_boot.missing() is not None, reason=f"emulator not available: {emu_boot.missing()}"
)


def _emulated_ms(console, text):
    """The ticks_ms prefix of the first firmware log line holding text (None if absent)."""
    for line in console:
        i = line.find(text)
        if i >= 0:
            m = re.search(r"(\d+) fw ", line)
            if m:
                return int(m.group(1))
    return None


def test_boot_notification_and_status_over_the_uart_bridge(tmp_path):
    from csms import CsmsSimulator

    with CsmsSimulator(port=0, log_file=str(tmp_path / "csms.log")) as csms:
        t0 = time.time()
        with emu_boot.EmuBoot(csms.url, CP_ID) as emu:
            boot = csms.wait_for_call(CP_ID, "BootNotification", timeout=60)
            t_boot = time.time()
            status = csms.wait_for_call(
                CP_ID, "StatusNotification", timeout=30, predicate=lambda p: p["connectorId"] == 1
            )
            stat = emu.stat()  # right after Accepted and the first status reports
            conf = csms.call(CP_ID, "GetConfiguration", {})  # a few KB up through the bridge
            console = list(emu.console)
        assert boot["chargePointModel"] == "EMU-PICO-AC1"
        assert boot["chargePointVendor"] == "MicroEVSE"
        # The idle board model (tools/emu/idle_model.mjs): pilot +12 V, no cable.
        assert (status["status"], status["errorCode"]) == ("Available", "NoError")
        assert len(conf["configurationKey"]) > 10
        assert csms.violations == []
    assert any("registration Accepted" in line for line in console), console[-20:]
    assert stat["connects"] == 1 and stat["free"] > 0
    boot_ms = _emulated_ms(console, '"BootNotification"')
    figures = (
        f"emu_pico: BootNotification sent at {boot_ms} ms emulated, "
        f"{t_boot - emu.t_reset:.2f} s wall after the reset ({t_boot - t0:.2f} s from driver start); "
        "after Accepted (gc.collect): "
        f"free {stat['free']} B, in use {stat['alloc']} B"
    )
    print(figures)
    (tmp_path / "figures.txt").write_text(figures + "\n")
