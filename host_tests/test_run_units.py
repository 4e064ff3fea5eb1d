"""tools/run.py's parts without a charger: the log merge, clocks, the noise filter, transaction
names, hardware event lines, the security options and the data directory."""

import io
import re
import time

import pytest

import run


def test_log_shows_lines_in_time_order_with_one_timestamp_format(tmp_path):
    out = io.StringIO()
    log = run.Log(out, tmp_path / "run.log", hold=0.2)
    now = time.time()
    log.add(now, "csms", "CP001 <- second")
    log.add(now - 0.1, "fw", "first")  # arrives later, happened earlier
    log.add(now + 0.05, "hw", "third\nits second line")
    log.close()
    lines = out.getvalue().splitlines()
    assert [line[13:] for line in lines] == [
        "fw   first",
        "csms CP001 <- second",
        "hw   third",
        "hw   its second line",
    ]
    assert all(re.match(r"\d\d:\d\d:\d\d\.\d{3} ", line) for line in lines)
    assert (tmp_path / "run.log").read_text().splitlines() == lines


def test_noise_filter_hides_heartbeat_meter_values_and_their_answers():
    f = run.NoiseFilter()
    assert f.noisy("CP1", "cp", '[2,"a1","Heartbeat",{}]')
    assert not f.noisy("CP1", "csms", '[3,"1",{}]')  # another call's answer with another id
    assert f.noisy("CP1", "csms", '[3,"a1",{"currentTime":"x"}]')
    assert not f.noisy("CP1", "csms", '[3,"a1",{}]')  # answered once only
    assert f.noisy("CP1", "cp", '[2, "a2", "MeterValues", {"connectorId":1}]')
    assert f.noisy("CP1", "csms", '[4,"a2","InternalError","",{}]')
    assert not f.noisy("CP1", "cp", '[2,"a3","StatusNotification",{}]')
    assert not f.noisy("CP1", "csms", '[2,"a4","TriggerMessage",{"requestedMessage":"Heartbeat"}]')

    out = io.StringIO()
    log = run.Log(out, quiet=True, hold=0)
    log.frame(time.time(), "csms", "CP1", "cp", "CP1 <- ", '[2,"b","Heartbeat",{}]')
    log.frame(time.time(), "csms", "CP1", "csms", "CP1 -> ", '[3,"b",{}]')
    log.frame(time.time(), "csms", "CP1", "cp", "CP1 <- ", '[2,"c","Authorize",{}]')
    log.close()
    assert "Heartbeat" not in out.getvalue() and "[3," not in out.getvalue() and "Authorize" in out.getvalue()


def test_firmware_ticks_and_event_times_become_wall_clock():
    clock = run.Clock()
    mono_ms = time.monotonic() * 1000
    t = clock.ticks(int(mono_ms) - 500, arrival=0.0)
    assert abs(t - (time.time() - 0.5)) < 0.05
    t = clock.ticks(int(mono_ms - 500) % (1 << 30), arrival=0.0)  # a 32-bit port's wrapped ticks
    assert abs(t - (time.time() - 0.5)) < 0.05
    assert clock.ticks(123, arrival=42.0) == 42.0  # not our clock: when it arrived
    assert clock.event(1000, arrival=7.0) == 7.0  # not calibrated yet
    clock.calibrate(2000, time.monotonic() + 0.003)
    clock.calibrate(2000, time.monotonic())  # the earlier estimate wins
    assert abs(clock.event(1500, 0.0) - (time.time() - 0.5)) < 0.05


def test_transactions_are_named_by_their_ocpp_transaction_id():
    txs = run.Transactions()
    start = {"kind": "tx_start", "connector": 1, "value": 3, "t_ms": 0}
    assert "no transactionId yet" in run.describe_event(start, txs)
    assert txs.pending == {1: 3}
    txs.ids[3] = 17
    assert run.describe_event(start, txs) == "connector 1 transaction started: transactionId 17"
    stop = {"kind": "tx_stop", "connector": 1, "value": "Local", "t_ms": 0}
    assert run.describe_event(stop, txs) == "connector 1 transactionId 17 stopped: Local"
    assert txs.rewrite("fw", "session: connector 1 transaction 3 started for T") == (
        "session: connector 1 transactionId 17 started for T"
    )
    assert txs.rewrite("fw", "power loss: transaction 9 stopped") == (
        "power loss: transaction (no transactionId yet) stopped"
    )
    assert txs.rewrite("csms", "transaction 3 started") == "transaction 3 started"


@pytest.mark.parametrize(
    "kind, value, text",
    [
        ("pwm", 16.6, "connector 1 PWM 16.6 %: 10 A offered"),
        ("pwm", 53.3, "connector 1 PWM 53.3 %: 32 A offered"),
        ("pwm", 100, "connector 1 PWM off (100 %): no current offered"),
        ("lock", True, "connector 1 cable locked"),
        ("lock", False, "connector 1 cable unlocked"),
        ("relay", True, "connector 1 contactor closed"),
        ("limit", 10.0, "connector 1 charging profile limit 10 A"),
        ("limit", None, "connector 1 charging profile limit: none"),
        ("status", "Charging", "connector 1 status Charging"),
        ("fault", "GroundFailure", "connector 1 fault GroundFailure detected"),
    ],
)
def test_hardware_event_lines(kind, value, text):
    ev = {"kind": kind, "connector": 1, "value": value, "t_ms": 0}
    assert run.describe_event(ev, run.Transactions()) == text


def _plan(*argv):
    return run.parse_args(list(argv))


def test_security_options():
    a = _plan("--tls")
    assert a.plan["profile"] == 2 and a.plan["tls"] and a.plan["pki"] and len(a.plan["key"]) == 40
    a = _plan("--tls", "--profile", "3")
    assert a.plan["profile"] == 3 and a.plan["key"] is None
    assert _plan("--profile", "3").plan["tls"]  # 2 and 3 imply --tls
    assert _plan("--profile", "1", "--auth-key", "0123456789abcdef").plan == {
        "profile": 1,
        "tls": False,
        "key": "0123456789abcdef",
        "pki": False,
    }
    a = _plan("--csms", "wss://h/ocpp", "--ca", "ca.pem", "--profile", "2", "--auth-key", "k" * 16)
    assert a.plan == {"profile": 2, "tls": True, "key": "k" * 16, "pki": False}
    assert _plan().plan["profile"] == 0 and not _plan().plan["tls"]
    for bad in (
        ["--tls", "--profile", "1"],
        ["--ca", "ca.pem"],
        ["--csms", "wss://h/ocpp"],
        ["--csms", "ws://h/ocpp", "--profile", "2", "--auth-key", "k" * 16],
        ["--csms", "wss://h/ocpp", "--ca", "c", "--profile", "2"],
        ["--csms", "wss://h/ocpp", "--ca", "c", "--profile", "3"],
        ["--csms", "ws://h", "--tls"],
        ["--auth-key", "short"],
        ["--set", "SecurityProfile=5"],
        ["--csms", "http://h/ocpp"],
    ):
        with pytest.raises(SystemExit):
            _plan(*bad)
    assert run.basic_password("ab" * 20) == bytes.fromhex("ab" * 20)
    assert run.basic_password("ab" * 20, as_text=True) == "ab" * 20
    assert run.basic_password("0123456789abcdefXY") == "0123456789abcdefXY"


def test_data_directory_fresh_unless_kept(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "flash.img").write_bytes(b"old flash")
    (d / "firmware.log").write_text("1 fw old line\n")
    run.prepare_data(d, keep=True)
    assert (d / "flash.img").exists() and (d / "firmware.prev.log").read_text() == "1 fw old line\n"
    assert not (d / "firmware.log").exists()  # a fresh log per run, even kept
    run.prepare_data(d, keep=False)
    assert list(d.iterdir()) == []
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="not a charger's"):
        run.prepare_data(other, keep=False)
    assert (other / "thesis.tex").exists()
