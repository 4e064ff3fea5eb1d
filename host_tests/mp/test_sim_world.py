# The sim board's physical model: EV current, meter integration, pilot levels, faults, network
# link, event log and flash image. Time is stepped by hand through the world's clock.
import asyncio
import os

import board

import sim_flash
import sim_net
import sim_world
from evse import pilot


class Clock:
    def __init__(self):
        self.t = 1000

    def __call__(self):
        return self.t


def charging_world(offer_amps=16, cable=32):
    clk = Clock()
    w = sim_world.World(1, seed=3, clock=clk)
    w.plug(1, cable)
    w.set_ev(1, "C")
    w.set_duty(1, pilot.amps_to_permille(offer_amps))
    w.set_relay(1, True)
    return w, clk


def advance(w, clk, ms, step=100):
    end = clk.t + ms
    while clk.t < end:
        clk.t += step
        w.update()


def test_meter_integrates_energy_at_16a():
    w, clk = charging_world(16)
    seconds = 600
    advance(w, clk, seconds * 1000)
    expected = 3 * 230 * 16 * seconds / 3600  # 1840 Wh
    got = w.meter_reading(1)["energy_wh"]
    assert abs(got - expected) <= expected * 0.01, (got, expected)
    r = w.meter_reading(1)
    assert abs(r["power_w"] - 3 * 230 * 16) <= 3 * 230 * 16 * 0.01, r
    assert len(r["current_a"]) == 3 and len(r["voltage_v"]) == 3
    assert all(abs(v - 230) <= 1.0 for v in r["voltage_v"]), r


def test_energy_is_integer_wh_with_fractional_carry():
    w, clk = charging_world(6)  # 4140 W: 1.15 Wh per second
    last = 0
    for _ in range(20):
        advance(w, clk, 1000)
        wh = w.meter_reading(1)["energy_wh"]
        assert isinstance(wh, int) and wh >= last
        last = wh
    assert abs(last - 3 * 230 * 6 * 20 / 3600) <= 1, last


def test_ev_follows_offer_within_one_second():
    w, clk = charging_world(16)
    advance(w, clk, 1000)
    assert abs(w.conns[1].current_a - 15.96) < 0.01, w.conns[1].current_a
    w.set_duty(1, pilot.amps_to_permille(32))
    advance(w, clk, 1000)
    assert abs(w.conns[1].current_a - 31.98) < 0.01, w.conns[1].current_a
    w.set_duty(1, pilot.NOT_OFFERING)  # PWM stopped: the EV stops drawing
    advance(w, clk, 1000)
    assert w.conns[1].current_a == 0


def test_ev_follows_its_own_limit_and_the_cable():
    w, clk = charging_world(32)
    w.set_ev_limit(1, 10)
    advance(w, clk, 1000)
    assert w.conns[1].current_a == 10
    w.set_ev_limit(1, 6)
    advance(w, clk, 1000)
    assert w.conns[1].current_a == 6
    w2, clk2 = charging_world(32, cable=13)
    advance(w2, clk2, 1000)
    assert w2.conns[1].current_a == 13


def test_no_current_with_relay_open_or_ev_in_b():
    w, clk = charging_world(16)
    w.set_relay(1, False)
    advance(w, clk, 5000)
    assert w.conns[1].current_a == 0 and w.meter_reading(1)["energy_wh"] == 0
    assert w.meter_reading(1)["power_w"] == 0
    w.set_relay(1, True)
    w.set_ev(1, "B")
    advance(w, clk, 5000)
    assert w.conns[1].current_a == 0 and w.meter_reading(1)["energy_wh"] == 0
    w.set_ev(1, "C")
    advance(w, clk, 1000)
    assert w.conns[1].current_a > 15
    w.unplug(1)
    advance(w, clk, 100)
    assert w.conns[1].current_a == 0


def test_welded_contactor_conducts_and_reports_closed():
    b = board.Board({"connectors": 1})
    w = b.world
    clk = Clock()
    w.clock = clk
    w._last = clk.t
    w.plug(1, 32)
    w.set_ev(1, "C")
    w.set_duty(1, pilot.amps_to_permille(16))
    assert b.relay(1).feedback is False
    w.set_fault("weld", 1, True)
    assert b.relay(1).value is False and b.relay(1).feedback is True
    advance(w, clk, 1000)
    assert w.conns[1].current_a > 15  # current flows through the welded contacts


def test_meter_fault_raises_oserror_and_other_faults_are_visible():
    b = board.Board({"connectors": 2})
    w = b.world
    w.set_fault("meter", 2, True)
    try:
        b.meter(2).read()
        raise AssertionError("meter read should fail")
    except OSError:
        pass
    assert b.meter(1).read()["energy_wh"] == 0
    w.set_fault("rcd", 1, True)
    assert b.rcd_tripped(1) and not b.rcd_tripped(2)
    assert b.temperature_c(1) < 40
    w.set_fault("overtemp", 1, True)
    assert b.temperature_c(1) > 85
    w.set_fault("lock", 1, True)
    b.lock(1).set(True)
    assert b.lock(1).value is True and b.lock(1).feedback is False
    w.set_fault("lock", 1, False)
    assert b.lock(1).feedback is True
    kinds = [w.log.get(s)[1] for s in range(w.log.first(), w.log.seq + 1)]
    assert kinds.count("fault") == 5 and "lock" in kinds


def test_pilot_plateaus_follow_the_circuit():
    w = sim_world.World(1, noise_mv=0)
    k = w.conns[1]
    assert (k.hi_mv, k.lo_mv) == (12000, -12000)
    w.plug(1, 32)
    assert abs(k.hi_mv - 9000) < 150 and k.lo_mv == -12000
    w.set_ev(1, "C")
    assert abs(k.hi_mv - 6000) < 150
    w.set_ev(1, "D")
    assert abs(k.hi_mv - 3000) < 150
    w.set_ev(1, "diode_fault")  # D resistor, shorted diode: symmetric divider
    assert k.lo_mv == -k.hi_mv and k.lo_mv > -10000
    w.set_ev(1, "E")
    assert (k.hi_mv, k.lo_mv) == (0, 0)


def test_bad_world_requests_raise_valueerror():
    w = sim_world.World(2)
    for fn, args in (
        (w.plug, (3, 32)),
        (w.plug, (1, 16)),
        (w.set_ev, (1, "C")),  # not plugged
        (w.set_fault, ("smoke", 1, True)),
        (w.set_ev_limit, (1, 200)),
    ):
        try:
            fn(*args)
            raise AssertionError("accepted %r" % (args,))
        except ValueError:
            pass


def test_event_log_is_a_bounded_ring():
    log = sim_world.EventLog(8)
    assert log.first() == 1 and log.seq == 0
    for i in range(20):
        log.add("x", 1, i)
    assert log.seq == 20 and log.first() == 13
    t, kind, conn, value = log.get(13)
    assert (kind, conn, value) == ("x", 1, 12)
    assert log.get(20)[3] == 19


def test_rfid_queue():
    b = board.Board({})
    assert b.rfid_read() is None
    b.world.present_card("TAG1")
    b.world.present_card("TAG2")
    assert b.rfid_read() == "TAG1" and b.rfid_read() == "TAG2" and b.rfid_read() is None


async def _echo(reader, writer):
    try:
        while True:
            data = await reader.read(64)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    finally:
        await writer.wait_closed()


async def test_network_down_stalls_streams_and_refuses_new_ones():
    b = board.Board({})
    server = None
    port = 18000 + (sim_world.now_ms() % 2000)
    while server is None:  # MicroPython cannot tell which port 0 got: try until one is free
        try:
            server = await asyncio.start_server(_echo, "127.0.0.1", port)
        except OSError:
            port += 7
    try:
        s = await b.open_connection("127.0.0.1", port)
        s.write(b"one")
        await s.drain()
        assert await s.read(16) == b"one"
        b.world.set_link(False)
        s.write(b"two")
        await s.drain()  # held like in a socket buffer: returns
        try:
            await asyncio.wait_for_ms(s.read(16), 300)
            raise AssertionError("a read got data while the link was down")
        except asyncio.TimeoutError:
            pass
        t0 = sim_world.now_ms()
        try:
            await b.open_connection("127.0.0.1", port)
            raise AssertionError("connected while the link was down")
        except OSError as e:
            assert e.errno == sim_net.EHOSTUNREACH
        assert sim_world.now_ms() - t0 >= sim_net.NO_ROUTE_DELAY_MS - 10
        b.world.set_link(True)
        assert await asyncio.wait_for_ms(s.read(16), 1000) == b"two"
        await s.wait_closed()
        assert not sim_net._open
    finally:
        server.close()
        await server.wait_closed()


def test_flash_image_persists_and_erases_to_ff():
    path = "/tmp/evse_sim_world_test_%d.img" % sim_world.now_ms()
    try:
        dev = sim_flash.mount(path, "/flash_t", blocks=64)
        assert dev.created
        with open("/flash_t/a.txt", "w") as f:
            f.write("hello")
        assert dev.erases > 0 and dev.writes > 0
        sim_flash.unmount(dev, "/flash_t")
        dev = sim_flash.mount(path, "/flash_t", blocks=64)
        assert not dev.created
        with open("/flash_t/a.txt") as f:
            assert f.read() == "hello"
        buf = bytearray(16)
        dev.ioctl(6, 63)
        dev.readblocks(63, buf, 100)
        assert buf == b"\xff" * 16
        sim_flash.unmount(dev, "/flash_t")
    finally:
        os.remove(path)
