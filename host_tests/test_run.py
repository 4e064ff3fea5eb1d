"""`make run`: a person sees the charger boot against the CSMS simulator and drives both; the log
has one wall-clock timestamp on every line, in the order things happened."""

import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) (csms|fw  |hw  |con |ev  |run |sim ) ")


class RunSession:
    """tools/run.py in a subprocess: send console lines, wait for output lines."""

    def __init__(self, tmp_path, *args, data=None):
        self.data = data or tmp_path / "data"
        self.proc = subprocess.Popen(
            [sys.executable, "tools/run.py", "--port", "0", "--data", str(self.data), *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.seen = []
        self.mark = 0  # expect() looks at the lines since the last send()
        self._lines = queue.Queue()
        threading.Thread(
            target=lambda: [self._lines.put(line) for line in self.proc.stdout], daemon=True
        ).start()

    def send(self, line):
        self.mark = len(self.seen)
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, *needles, timeout=20):
        end = time.monotonic() + timeout
        start = self.mark
        for line in self.seen[start:]:
            if all(n in line for n in needles):
                return line
        while time.monotonic() < end:
            try:
                line = self._lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line)
            if all(n in line for n in needles):
                return line
        raise AssertionError(f"no line with {needles}; saw:\n" + "".join(self.seen[start:][-40:]))

    def quit(self):
        self.send("quit")
        assert self.proc.wait(30) == 0
        time.sleep(0.2)  # the reader thread takes the last lines
        while not self._lines.empty():
            self.seen.append(self._lines.get())
        return self.seen

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def test_make_run_shows_boot_and_takes_commands(built, tmp_path):
    run = RunSession(tmp_path)
    try:
        run.expect("CP001 <-", '"BootNotification"')
        run.expect("CP001 ->", '"Accepted"')
        run.send("plug 1 --amps 20")
        run.expect("hw", "connector 1 status", "Preparing")
        run.send('call CP001 GetConfiguration {"key":["NumberOfConnectors"]}')
        run.expect("OK ", "NumberOfConnectors")
        run.send("bogus words")
        run.expect("ERROR")
        run.quit()
    finally:
        run.close()


def _seconds(line):
    m = LINE.match(line)
    assert m, f"not a timestamped log line: {line!r}"
    h, mi, s, ms = (int(x) for x in m.groups()[:4])
    return h * 3600 + mi * 60 + s + ms / 1000


def test_log_one_clock_in_order_with_offer_lock_limit_and_transaction_ids(built, tmp_path):
    """Every line (CSMS, firmware, hardware, console) starts with HH:MM:SS.mmm; the lines come in
    time order and cause before effect; the PWM offer, the lock, the profile's limit are shown;
    transactions are named by their OCPP transactionId, not the journal key."""
    run = RunSession(tmp_path)
    try:
        run.expect("CP001 ->", '"Accepted"')
        run.send("plug 1")
        run.expect("CP001 <-", '"Preparing"')
        run.send("rfid TAG1")
        run.expect("hw", "connector 1 transaction started: transactionId 1")
        run.expect("hw", "connector 1 cable locked")
        run.send("ev 1 C")
        run.expect("hw", "connector 1 status Charging")
        run.send("limit 10A")
        run.expect("hw", "connector 1 charging profile limit 10 A")
        run.expect("hw", "connector 1 PWM 16.6 %: 10 A offered")
        run.send("stop")
        run.expect("hw", "connector 1 transactionId 1 stopped: Remote")
        run.send("unplug 1")
        run.expect("CP001 <-", '"Available"', '"connectorId":1')
        run.send("plug 1")
        run.expect("CP001 <-", '"Preparing"')
        run.send("rfid TAG1")  # the second transaction: journal key 3 (after Start 1, Stop 2), id 2
        run.expect("hw", "connector 1 transaction started: transactionId 2")
        run.expect("fw", "session: connector 1 transactionId 2 started for TAG1")
        lines = run.quit()
    finally:
        run.close()
    shown = [line.rstrip("\n") for line in lines if line.strip()]
    times = [_seconds(line) for line in shown]
    assert times == sorted(times), "lines out of time order"
    assert not any(re.search(r"transaction [0-9]+ (started|stopped)", line) for line in shown)

    def first(*needles):
        return next(i for i, line in enumerate(shown) if all(n in line for n in needles))

    plugged = first("hw   connector 1 cable plugged in")
    pilot_b = first("hw   connector 1 pilot B")
    preparing = first("csms CP001 <-", '"Preparing"')
    assert plugged < pilot_b < preparing
    assert (
        first("hw   card TAG1 held")
        < first("csms CP001 <-", '"Authorize"')
        < first("csms", '"StartTransaction"')
    )
    assert first("csms CP001 ->", '"SetChargingProfile"') < first("charging profile limit 10 A")
    assert (tmp_path / "data" / "run.log").read_text().count("charging profile limit 10 A") == 1


def test_quiet_hides_heartbeat_and_meter_values_and_filter_toggles(built, tmp_path):
    run = RunSession(tmp_path, "--quiet", "--set", "MeterValueSampleInterval=1")
    try:
        run.expect("CP001 ->", '"Accepted"')
        run.send("plug 1")
        run.send("rfid TAG1")
        run.send("ev 1 C")
        run.expect("hw", "status Charging")
        run.send("trigger Heartbeat")
        run.expect("con  OK TriggerMessage")
        time.sleep(2.5)  # MeterValues every second meanwhile
        run.send("filter off")
        filter_off = run.expect("OK filter off")
        run.send("trigger Heartbeat")
        heartbeat = run.expect('"Heartbeat",{')
        lines = run.quit()
    finally:
        run.close()
    before = lines[: lines.index(filter_off)]
    assert heartbeat in lines[lines.index(filter_off) :]
    assert not [line for line in before if '"Heartbeat",{' in line or '"MeterValues",{' in line]
    full = (tmp_path / "data" / "run.log").read_text()
    assert full.count('"Heartbeat",{') >= 2 and '"MeterValues",{' in full  # the file keeps everything
    # the answer to a hidden call is hidden too: no bare {"currentTime": ...} result before
    assert not [line for line in before if "currentTime" in line and '"Accepted"' not in line]


def test_a_transaction_gets_its_id_once_the_start_is_answered(built, tmp_path):
    run = RunSession(tmp_path, "--set", "MessageTimeout=2", "--set", "TransactionMessageRetryInterval=1")
    try:
        run.expect("CP001 ->", '"Accepted"')
        run.send("reply StartTransaction none")
        run.expect("con  OK")
        run.send("plug 1")
        run.send("rfid TAG1")
        run.expect("hw", "connector 1 transaction started, no transactionId yet")
        run.expect("fw", "session: connector 1 transaction (no transactionId yet) started for TAG1")
        run.send("reply StartTransaction default")
        run.expect("hw", "connector 1 StartTransaction answered: transactionId 1", timeout=15)
        run.quit()
    finally:
        run.close()
