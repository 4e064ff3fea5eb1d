# The sim board twin (boards/sim.py) as the firmware and the supervisor see it: pushes in (the
# bus lines tools/sim.py sends), outputs and events out (the lines it reads), the hardware the
# firmware reads (meter, faults, lock, cards), the network link (sim_net) and the flash
# (sim_flash, mounted by sim_setup). docs/SIM.md describes the bus.
import asyncio
import gc
import json
import os

import board

import mptmp
import sim_flash
import sim_net
import sim_setup


def push(b, *msg):
    return b.feed(json.dumps(msg))


def lines(sent):
    """The bus lines the twin wrote (a bytearray sink), without the leading RS."""
    out = []
    for line in bytes(sent).split(b"\n"):
        if line:
            assert line[0] == 0x1E, line
            out.append(line[1:])
    return out


def test_outputs_go_out_once_per_change_with_a_timestamp():
    sent = bytearray()
    b = board.Board({"connectors": 2}, sent.extend)
    b.pilot(2).set_duty(533)
    b.pilot(2).set_duty(533)  # unchanged: nothing sent
    b.relay(2).set(True)
    b.lock(1).set(True)
    b.relay(2).set(False)
    b.pilot(1).set_duty(1000)  # the power-on value already
    got = [x.split() for x in lines(sent)]
    assert [(x[0], x[2], x[3]) for x in got] == [
        (b"d", b"2", b"533"),
        (b"r", b"2", b"1"),
        (b"l", b"1", b"1"),
        (b"r", b"2", b"0"),
    ], got
    assert all(int(x[1]) > 0 for x in got)  # time.ticks_ms() of the change
    assert b.pilot(2).duty == 533 and b.relay(2).value is False and b.lock(1).value is True
    for bad in (-1, 1001, 50.0, None):
        try:
            b.pilot(1).set_duty(bad)
            raise AssertionError("duty %r accepted" % (bad,))
        except ValueError:
            pass


def test_connector_numbers_out_of_range_get_no_port():
    b = board.Board({"connectors": 2})
    assert b.pilot(0) is None and b.relay(0) is None and b.lock(0) is None
    assert b.pilot(3) is None and b.relay(3) is None
    try:
        b.lock(3)
        raise AssertionError("lock(3) on a 2-connector board")
    except IndexError:
        pass
    try:
        board.Board({"connectors": 9})
        raise AssertionError("9 connectors accepted")
    except ValueError:
        pass


def test_events_carry_json_values():
    sent = bytearray()
    b = board.Board({}, sent.extend)
    b.event("status", 1, "Preparing")
    b.event("preset", 0, {"a": [1, 2], "b": None})
    got = [x.split(b" ", 2) for x in lines(sent)]
    assert [x[0] for x in got] == [b"e", b"e"] and int(got[0][1]) > 0
    assert json.loads(got[0][2]) == ["status", 1, "Preparing"]
    assert json.loads(got[1][2]) == ["preset", 0, {"a": [1, 2], "b": None}]


def test_snapshot_request_answers_with_heap_figures():
    sent = bytearray()
    b = board.Board({}, sent.extend)
    assert push(b, "s", 7)
    b.publish(lambda: {"connected": True, "registration": "Accepted", "connectors": {1: {"status": "A"}}})
    assert push(b, "s", 8)
    b.publish(lambda: 1 // 0)
    assert push(b, "s", 9)
    got = [x.split(b" ", 5) for x in lines(sent)]
    assert [x[:2] for x in got] == [[b"S", b"7"], [b"S", b"8"], [b"S", b"9"]]
    assert got[0][5] == b"null"
    snap = json.loads(got[1][5])
    assert snap["connected"] is True and snap["connectors"]["1"]["status"] == "A"
    assert "ZeroDivisionError" in json.loads(got[2][5])["error"]
    free, used, peak = int(got[1][2]), int(got[1][3]), int(got[1][4])
    assert free > 0 and 0 < used <= peak <= b.heap_peak
    assert free + used == gc.mem_free() + gc.mem_alloc()


def test_meter_registers_and_faults():
    b = board.Board({"connectors": 2})
    try:
        b.meter(1).read()
        raise AssertionError("a reading before the first push")
    except OSError:
        pass
    assert push(b, "m", 1, 1840, 11040, 1596, 1601, 1599, 2301, 2299, 2300)
    r = b.meter(1).read()
    assert r == {
        "energy_wh": 1840,
        "power_w": 11040,
        "current_a": [15.96, 16.01, 15.99],
        "voltage_v": [230.1, 229.9, 230.0],
    }, r
    assert push(b, "f", 1, 16)  # meter
    try:
        b.meter(1).read()
        raise AssertionError("read through a meter fault")
    except OSError as e:
        assert e.errno == 5
    assert not b.rcd_tripped(1) and b.temperature_c(2) < 40
    assert push(b, "f", 2, 1 | 8)  # rcd, overtemp
    assert b.rcd_tripped(2) and b.temperature_c(2) > 85 and not b.rcd_tripped(1)


def test_weld_and_lock_feedback():
    b = board.Board({})
    r = b.relay(1)
    assert r.value is False and r.feedback is False
    push(b, "f", 1, 2)  # weld: the auxiliary contact shows closed while the coil is off
    assert r.value is False and r.feedback is True
    push(b, "f", 1, 4)  # lock actuator stuck
    b.lock(1).set(True)
    assert b.lock(1).value is True and b.lock(1).feedback is False
    push(b, "f", 1, 0)  # repaired: it catches up
    assert b.lock(1).feedback is True
    b.lock(1).set(False)
    assert b.lock(1).feedback is False


def test_cards_queue_and_taken_report():
    sent = bytearray()
    b = board.Board({}, sent.extend)
    assert b.rfid_read() is None
    assert push(b, "c", "TAG1") and push(b, "c", "TAG2")
    assert b.rfid_read() == "TAG1" and b.rfid_read() == "TAG2" and b.rfid_read() is None
    assert lines(sent) == [b"k", b"k"]
    for i in range(8):
        assert push(b, "c", "T%d" % i)
    assert not push(b, "c", "T8")  # the reader's queue is bounded
    assert not push(b, "c", 5)


def test_bad_pushes_are_refused_or_raise():
    b = board.Board({})
    for msg in (["p", 2, 882, 1, 220], ["p", "1", 882, 1, 220], ["x", 1], ["q"], ["f", 0, 1]):
        assert not b.feed(json.dumps(msg)), msg
    for raw in (b"not json\n", b"[]\n", b'["p", 1]\n'):
        try:
            b.feed(raw)
            raise AssertionError("accepted %r" % raw)
        except (ValueError, IndexError):
            pass
    assert push(b, "n", False) and b.link_up() is False
    assert push(b, "n", True) and b.link_up() is True
    assert push(b, "h") and b.heap_peak > 0


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
    port = 18000 + (os.urandom(1)[0] * 7) % 2000
    while server is None:  # MicroPython cannot tell which port 0 got: try until one is free
        try:
            server = await asyncio.start_server(_echo, "127.0.0.1", port)
        except OSError:
            port += 7
    try:
        s = await b.open_connection("127.0.0.1", port)
        buf = bytearray(16)
        s.write(b"one")
        await s.drain()
        assert await s.readinto(buf) == 3 and buf[:3] == b"one"
        push(b, "n", False)
        s.write(b"two")
        await s.drain()  # held like in a socket buffer: returns
        try:
            await asyncio.wait_for_ms(s.readinto(buf), 300)
            raise AssertionError("a read got data while the link was down")
        except asyncio.TimeoutError:
            pass
        t0 = asyncio.ticks()
        try:
            await b.open_connection("127.0.0.1", port)
            raise AssertionError("connected while the link was down")
        except OSError as e:
            assert e.errno == sim_net.EHOSTUNREACH
        assert asyncio.ticks_diff(asyncio.ticks(), t0) >= sim_net.NO_ROUTE_DELAY_MS - 10
        push(b, "n", True)
        assert await asyncio.wait_for_ms(s.readexactly(3), 1000) == b"two"
        await s.wait_closed()
        try:
            s.write(b"x")
            raise AssertionError("write after close")
        except OSError:
            pass
    finally:
        server.close()
        await server.wait_closed()


def test_flash_image_is_littlefs_that_persists_and_erases_to_ff():
    path = mptmp.path("evse_sim_twin_test_%d.img" % (os.urandom(2)[0] * 256 + os.urandom(1)[0]))
    try:
        f, cost = sim_setup.mount(path, "/flash_t", blocks=64)
        assert 0 < cost < 4096  # what the mounted filesystem holds in the heap
        with open("/flash_t/a.txt", "w") as g:
            g.write("hello")
        sim_setup.unmount(f, "/flash_t")
        assert os.stat(path)[6] == 64 * sim_flash.BLOCK_SIZE
        f, _ = sim_setup.mount(path, "/flash_t", blocks=64)
        with open("/flash_t/a.txt") as g:
            assert g.read() == "hello"
        sim_setup.unmount(f, "/flash_t")
        with open(path, "r+b") as g:
            dev = sim_flash.FileBlockDevice(g, 64)
            assert dev.ioctl(4, 0) == 64 and dev.ioctl(5, 0) == 4096
            dev.ioctl(6, 63)
            buf = bytearray(16)
            dev.readblocks(63, buf, 100)
            assert buf == b"\xff" * 16
            dev.writeblocks(63, b"abc", 100)
            dev.readblocks(63, buf, 99)
            assert buf[:5] == b"\xffabc\xff"
    finally:
        os.remove(path)


def test_initial_state_and_preset_from_the_arguments():
    args = {"csms": "ws://h/ocpp", "id": "CP9", "set": {"HeartbeatInterval": "5"}, "connectors": 2}
    assert sim_setup.preset(args) == {
        "CentralSystemURL": "ws://h/ocpp",
        "ChargePointId": "CP9",
        "HeartbeatInterval": "5",
    }
    assert sim_setup.preset({}) == {}
    b = board.Board(args)
    assert b.serial == "SIM-CP9" and b.connectors == 2
