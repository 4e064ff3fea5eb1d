# Boot only (imported once by main, then dropped): transactions that were running when the
# power went are stopped with reason PowerLoss. Each running transaction is mirrored in
# cp/charging.py's TX_DIR/<c>.json; its StopTransaction carries the last meter reading and time
# saved there (or the meter's register now, when it is higher: the meter kept counting).
from cp import clock, metering
from log import log
from store import atomic


def recover(ch):
    stopping = set()  # transactions whose StopTransaction was journaled just before the cut
    for _, action, _, tx in ch.queue.journal.records():
        if action == "StopTransaction":
            stopping.add(tx)
    for c in range(1, ch.n + 1):
        path = ch.tx_path(c)
        saved = atomic.read_json(path, None)
        if isinstance(saved, dict) and "key" in saved:
            if saved["key"] not in stopping:
                wh = metering.energy_wh(ch.board, c)
                payload = {
                    "idTag": saved["tag"],
                    "meterStop": wh if wh is not None and wh >= saved["wh"] else saved["wh"],
                    "timestamp": clock.iso(saved["t"]),
                    "reason": "PowerLoss",
                }
                if saved["data"]:
                    payload["transactionData"] = saved["data"]
                ch.queue.push("StopTransaction", payload, saved["key"])
                log("power loss: connector", c, "transaction", saved["key"], "stopped")
            ch.finishing[c] = True
        atomic.remove(path)
