"""Meter values (OCTT TC_070, TC_071; sampled, clock-aligned, transactionData) on the simulated
charger against the CSMS simulator."""

from datetime import datetime

from core import CP, card, charge, start_charger, wait_status


def _t(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _values(mv):
    return {(v["measurand"], v.get("phase")): v for v in mv["sampledValue"]}


def test_sampled_meter_values_every_interval(csms, make_sim):
    sets = {
        "MeterValueSampleInterval": 2,
        "MeterValuesSampledData": "Energy.Active.Import.Register,Power.Active.Import,Current.Import,"
        "Voltage,Current.Offered,Temperature",
    }
    sim = start_charger(csms, make_sim, sets=sets)
    tx = charge(csms, sim)
    mvs = [csms.wait_for_call(CP, "MeterValues", timeout=6) for _ in range(3)]
    for m in mvs:
        assert m["connectorId"] == 1 and m["transactionId"] == tx
        assert len(m["meterValue"]) == 1
    times = [_t(m["meterValue"][0]["timestamp"]) for m in mvs]
    assert [b - a for a, b in zip(times, times[1:], strict=False)] == [2, 2]
    v = _values(mvs[-1]["meterValue"][0])
    assert {x["context"] for x in v.values()} == {"Sample.Periodic"}
    assert v[("Energy.Active.Import.Register", None)]["unit"] == "Wh"
    assert float(v[("Power.Active.Import", None)]["value"]) > 10000  # 3 x 230 V x 32 A
    for phase in ("L1", "L2", "L3"):
        assert abs(float(v[("Current.Import", phase)]["value"]) - 32) < 2
        assert v[("Voltage", phase + "-N")]["unit"] == "V"
    assert float(v[("Current.Offered", None)]["value"]) == 32
    assert v[("Temperature", None)]["location"] == "Body"
    energies = [
        int(_values(m["meterValue"][0])[("Energy.Active.Import.Register", None)]["value"]) for m in mvs
    ]
    assert energies == sorted(energies) and energies[-1] > energies[0]
    assert csms.violations == []


def test_clock_aligned_meter_values(csms, make_sim):
    sets = {"MeterValueSampleInterval": 0, "ClockAlignedDataInterval": 2}
    sim = start_charger(csms, make_sim, sets=sets)
    tx = charge(csms, sim)
    for _ in range(2):
        m = csms.wait_for_call(CP, "MeterValues", timeout=6, predicate=lambda p: "transactionId" in p)
        assert m["transactionId"] == tx
        ts = _t(m["meterValue"][0]["timestamp"])
        assert ts % 2 == 0, m
        (v,) = m["meterValue"][0]["sampledValue"]
        assert v["context"] == "Sample.Clock" and v["measurand"] == "Energy.Active.Import.Register"


def test_transaction_data_in_stop_transaction(csms, make_sim):
    sets = {
        "MeterValueSampleInterval": 1,
        "StopTxnSampledData": "Energy.Active.Import.Register,Power.Active.Import",
    }
    sim = start_charger(csms, make_sim, sets=sets)
    charge(csms, sim)
    for _ in range(3):
        csms.wait_for_call(CP, "MeterValues", timeout=5)
    card(sim, "TAG1")
    stop = csms.wait_for_call(CP, "StopTransaction")
    data = stop["transactionData"]
    contexts = [mv["sampledValue"][0]["context"] for mv in data]
    assert contexts[0] == "Transaction.Begin" and contexts[-1] == "Transaction.End"
    assert contexts.count("Sample.Periodic") >= 3
    end = _values(data[-1])
    assert int(end[("Energy.Active.Import.Register", None)]["value"]) == stop["meterStop"]
    assert csms.violations == []


def test_no_transaction_data_when_not_configured(csms, make_sim):
    sim = start_charger(csms, make_sim, sets={"MeterValueSampleInterval": 1})
    charge(csms, sim)
    csms.wait_for_call(CP, "MeterValues", timeout=5)
    card(sim, "TAG1")
    assert "transactionData" not in csms.wait_for_call(CP, "StopTransaction")
    wait_status(csms, 1, "Finishing")


def test_unsupported_measurand_is_rejected_and_nothing_changes(csms, make_sim):
    start_charger(csms, make_sim)
    for key in (
        "MeterValuesSampledData",
        "MeterValuesAlignedData",
        "StopTxnSampledData",
        "StopTxnAlignedData",
    ):
        conf = csms.call(
            CP, "ChangeConfiguration", {"key": key, "value": "Energy.Active.Import.Register,Foo.Bar"}
        )
        assert conf == {"status": "Rejected"}, key
    got = csms.call(CP, "GetConfiguration", {"key": ["MeterValuesSampledData"]})
    assert got["configurationKey"][0]["value"] == "Energy.Active.Import.Register"
