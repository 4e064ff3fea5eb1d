# A real board's clock gate for TLS: McuBoard.wait_clock and the link waiting on it.
import sys

import mptmp

sys.path.insert(0, "../fakes")  # cwd is host_tests/mp: the fakes shadow the built-in machine

import network  # noqa: E402

from hal.mcu_board import McuBoard  # noqa: E402


class TinyBoard(McuBoard):
    name = "tiny"
    vendor = "T"
    model = "T1"
    pins = {"led": 2}
    caps = {"connectors": 1, "fixed_cable": False, "meter": None}
    adc_full_mv = 3300
    pilot_mv_per_count = 0.6
    pilot_offset_mv = -15000
    pp_pullup_ohms = 1000
    pp_vref_mv = 3300
    adc_atten = None
    hard_irq = False


async def test_without_sntp_the_clock_gate_is_open():
    b = TinyBoard({"flash": mptmp.path("mp_tiny_flash"), "wdt_ms": 0})
    tasks = b.start()
    try:
        assert await b.wait_clock(10) is True
    finally:
        for t in tasks:
            t.cancel()


async def test_with_sntp_the_gate_waits_for_a_time_sync():
    network.reset()
    # Nobody answers SNTP on this address: the clock is never set.
    b = TinyBoard(
        {
            "flash": mptmp.path("mp_tiny_flash"),
            "wdt_ms": 0,
            "wifi_ssid": "site",
            "wifi_password": "pw",
            "ntp_host": "127.0.0.1",
        }
    )
    tasks = b.start()
    try:
        assert await b.wait_clock(300) is False
    finally:
        for t in tasks:
            t.cancel()


class GateBoard:
    def __init__(self, ok):
        self.ok = ok
        self.asked = []

    async def wait_clock(self, timeout_ms):
        self.asked.append(timeout_ms)
        return self.ok


async def test_link_asks_the_board_before_tls():
    from cp import config, link

    cfg = config.Config(mptmp.path("mp_test_clock_link.json"))
    for ok in (True, False):  # a late clock is logged, the connect still goes on
        board = GateBoard(ok)
        lk = link.Link(None, board, cfg)
        await lk.clock_ready()
        assert board.asked == [link.CLOCK_WAIT_MS]
    await link.Link(None, object(), cfg).clock_ready()  # a board without a clock gate: no wait
