# Boot only (loaded once by main, then dropped): transactions that were running when the power
# went are stopped with reason PowerLoss. A running transaction is mirrored in cp/charging.py's
# TX_DIR/<c>.json: its StopTransaction carries the last meter reading and time saved there (or
# the meter's register now, when it is higher: the meter kept counting). A StartTransaction
# journaled just before the cut, before its file was written, is stopped at its own start.
import lazy
from cp import clock
from log import log
from store import atomic


def recover(ch):
    starts = {}  # journaled StartTransactions without a journaled StopTransaction
    for seq, action, payload, tx in ch.queue.journal.records():
        if action == "StartTransaction":
            starts[seq] = payload
        elif action == "StopTransaction":
            starts.pop(tx, None)
            starts[tx] = None  # stopped already: nothing to do, file or not
    for c in range(1, ch.n + 1):
        path = ch.tx_path(c)
        saved = atomic.read_json(path, None)
        if isinstance(saved, dict) and "key" in saved:
            key = saved["key"]
            if starts.get(key, 0) is not None:  # not stopped yet
                wh = ch.energy(c)
                meter_stop = wh if wh is not None and wh >= saved["wh"] else saved["wh"]
                _stop(ch, key, saved["tag"], meter_stop, saved["t"], saved["data"])
            starts[key] = None
            ch.finishing[c] = True
            if ch.smart_due is not None:  # the transaction's TxProfiles end with it
                lazy.load("cp.smart.profiles").Store(ch.board.flash).tx_ended(c)
        atomic.remove(path)
    for key, start in starts.items():
        if start is not None:  # cut between the journal and the file: nothing ran yet
            _stop(ch, key, start["idTag"], start["meterStart"], clock.parse_iso(start["timestamp"]), None)


def _stop(ch, key, tag, meter_stop, t, data):
    payload = {"idTag": tag, "meterStop": meter_stop, "timestamp": clock.iso(t), "reason": "PowerLoss"}
    if data:
        payload["transactionData"] = data
    ch.queue.push("StopTransaction", payload, key)
    log("power loss: transaction", key, "stopped")
