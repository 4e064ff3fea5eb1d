"""Helpers for the Core-profile integration tests: a registered charger and the conversation."""

import time

CP = "CP1"


def start_charger(csms, make_sim, sets=None, connectors=1, cp_id=CP, **kw):
    """A simulated charger, registered, every connector reported Available (or as it boots)."""
    sim = make_sim(csms=csms.url, cp_id=cp_id, connectors=connectors, sets=sets or {}, **kw)
    csms.wait_for_call(cp_id, "BootNotification", timeout=15)
    for c in range(connectors + 1):
        csms.wait_for_call(cp_id, "StatusNotification", predicate=lambda p, c=c: p["connectorId"] == c)
    return sim


def statuses(csms, c, cp_id=CP):
    """Every status reported for connector c, in order."""
    return [p["status"] for p in csms.calls(cp_id, "StatusNotification") if p["connectorId"] == c]


def wait_status(csms, c, status, timeout=10, cp_id=CP, **fields):
    """Wait for a StatusNotification of connector c with this status (and fields)."""

    def match(p):
        return (
            p["connectorId"] == c and p["status"] == status and all(p.get(k) == v for k, v in fields.items())
        )

    return csms.wait_for_call(cp_id, "StatusNotification", timeout=timeout, predicate=match)


def plug(sim, c=1, amps=32, ev="C"):
    sim.ok({"cmd": "plug", "connector": c, "cable_amps": amps})
    if ev != "B":
        sim.ok({"cmd": "ev", "connector": c, "state": ev})


def card(sim, tag):
    sim.ok({"cmd": "rfid", "id_tag": tag})


def wait_charging(sim, c=1, timeout=10):
    return sim.wait_state(
        lambda s: next(x for x in s["connectors"] if x["id"] == c)["relay"], timeout, "contactor closed"
    )


def charge(csms, sim, tag="TAG1", c=1):
    """Plug in, present a card, wait for StartTransaction and Charging: the transaction id."""
    plug(sim, c)
    wait_status(csms, c, "Preparing")
    card(sim, tag)
    start = csms.wait_for_call(CP, "StartTransaction")
    assert start["connectorId"] == c and start["idTag"] == tag
    wait_status(csms, c, "Charging")
    wait_charging(sim, c)
    return max(csms.transactions)


def events(sim, kind, c=None):
    return [e for e in sim.events() if e["kind"] == kind and (c is None or e["connector"] == c)]


def wait_event_values(sim, kind, c, expected, since=0, timeout=3):
    """The values of connector c's `kind` events after seq `since`, once they equal `expected`.
    The hardware event log and the OCPP conversation travel on separate channels: what the CSMS
    already saw may still be on its way to the event log."""
    end = time.monotonic() + timeout
    while True:
        got = [e["value"] for e in events(sim, kind, c) if e["seq"] > since]
        if got == expected or time.monotonic() > end:
            assert got == expected, (kind, c, got)
            return got
        time.sleep(0.05)


def no_call(csms, action, seconds, cp_id=CP):
    """Assert that no new `action` arrives within `seconds`."""
    n = csms.count(cp_id, action)
    time.sleep(seconds)
    assert csms.count(cp_id, action) == n, csms.calls(cp_id, action)[n:]
