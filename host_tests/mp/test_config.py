# The configuration registry: typed values, OCPP statuses, persistence on flash.
import os

import mptmp
from cp import config
from cp.core import h_config

PATH = mptmp.path("mp_test_config.json")


def fresh(fixed=None):
    try:
        os.remove(PATH)
    except OSError:
        pass
    return config.Config(PATH, fixed)


def test_defaults_and_typed_values():
    c = fresh({"NumberOfConnectors": 2})
    assert c.get("HeartbeatInterval") == 300
    assert c.get("NumberOfConnectors") == 2
    assert c.change("HeartbeatInterval", "60") == "Accepted"
    assert c.get("HeartbeatInterval") == 60


def test_change_statuses():
    c = fresh({"NumberOfConnectors": 2})
    assert c.change("NoSuchKey", "1") == "NotSupported"
    assert c.change("NumberOfConnectors", "3") == "Rejected"  # read-only
    assert c.change("GetConfigurationMaxKeys", "3") == "Rejected"  # read-only
    assert c.change("WebSocketPingInterval", "-1") == "Rejected"
    assert c.change("HeartbeatInterval", "ten") == "Rejected"
    assert c.change("HeartbeatInterval", "1.5") == "Rejected"
    assert c.change("SecurityProfile", "4") == "Rejected"
    assert c.change("AuthorizationKey", "short") == "Rejected"
    assert c.change("AuthorizationKey", "0123456789abcdef0123") == "Accepted"
    assert c.change("CentralSystemURL", "ws://x/ocpp") == "RebootRequired"


def test_persists_and_survives_reload():
    c = fresh()
    c.change("HeartbeatInterval", "42")
    c.change("ChargePointId", "CP-9")
    again = config.Config(PATH)
    assert again.get("HeartbeatInterval") == 42
    assert again.get("ChargePointId") == "CP-9"
    # back to the default: no longer stored
    again.change("HeartbeatInterval", "300")
    with open(PATH) as f:
        assert "HeartbeatInterval" not in f.read()


def test_corrupt_file_falls_back_to_defaults():
    with open(PATH, "w") as f:
        f.write("{not json")
    c = config.Config(PATH)
    assert c.get("HeartbeatInterval") == 300


def test_secret_is_never_read_back():
    c = fresh()
    assert c.get("AuthorizationKey") == ""  # not set
    c.change("AuthorizationKey", "0123456789abcdef0123")
    everything = list(h_config.entries(c))
    assert all(e[0] != "AuthorizationKey" for e in everything)
    (entry,) = list(h_config.entries(c, ["AuthorizationKey"]))
    assert entry == ("AuthorizationKey", False, None, True)


def test_entries_for_get_configuration():
    c = fresh({"NumberOfConnectors": 1})
    got = {e[0]: e for e in h_config.entries(c, ["HeartbeatInterval", "Nope", "NumberOfConnectors"])}
    assert got["HeartbeatInterval"] == ("HeartbeatInterval", False, "300", True)
    assert got["Nope"][3] is False
    assert got["NumberOfConnectors"] == ("NumberOfConnectors", True, "1", True)


def test_booleans_accept_integers():
    row = ["X", "bool", "false", "RW", "Core", "", "x"]
    assert config.parse(row, "true") is True
    assert config.parse(row, "1") is True
    assert config.parse(row, "FALSE") is False
    assert config.parse(row, "0") is False
    assert config.parse(row, "yes") is None
    assert config.render(row, True) == "true"


def test_every_row_is_well_formed():
    seen = set()
    for name in config.names():
        r = config.row(name)
        assert len(r) == 7 and r[0] == name and name not in seen, r
        seen.add(name)
        assert r[config.TYPE] in ("int", "bool", "str", "csl"), r
        default = r[config.DEFAULT]
        assert default == "" or config.parse(r, default) is not None, "bad default: %s" % name
        assert r[config.LABEL], "every key has a UI label: %s" % name
    assert "HeartbeatInterval" in seen and len(seen) >= 13
    assert config.row("Heartbeat") is None and config.row("a|b") is None


def test_table_costs_little_heap():
    import gc

    gc.collect()
    before = gc.mem_alloc()
    c = fresh()
    for name in config.names():
        c.get(name)
    gc.collect()
    per_key = (gc.mem_alloc() - before) // len(list(config.names()))
    assert per_key < 120, per_key


def test_listeners_hear_changes():
    c = fresh()
    heard = []
    c.on_change(lambda n, v: heard.append((n, v)))
    c.change("WebSocketPingInterval", "5")
    c.change("WebSocketPingInterval", "5")  # unchanged: no event
    assert heard == [("WebSocketPingInterval", 5)]


def test_preset_reports_refused_keys():
    c = fresh()
    assert c.preset({"HeartbeatInterval": 10, "Bogus": "1", "SecurityProfile": "9"}) == [
        "Bogus",
        "SecurityProfile",
    ]
    assert c.get("HeartbeatInterval") == 10


def test_reboot_keys_keep_their_boot_value_until_the_reboot():
    c = fresh()
    c.change("ChargePointId", "CP-OLD", by_backend=False)  # provisioning, before the boot
    assert c.boot_value("ChargePointId") == "CP-OLD"
    assert c.change("ChargePointId", "CP-NEW") == "RebootRequired"
    assert c.get("ChargePointId") == "CP-NEW"  # stored, and reported by GetConfiguration
    assert c.boot_value("ChargePointId") == "CP-OLD"  # the link keeps using the old one
    assert c.change("HeartbeatInterval", "11") == "Accepted"
    assert c.boot_value("HeartbeatInterval") == 11
    assert config.Config(PATH).boot_value("ChargePointId") == "CP-NEW"  # after the reboot


def test_measurand_lists():
    from cp.core import metering

    c = fresh()
    assert config._LISTS["$measurand"] == metering.MEASURANDS
    assert c.change("MeterValuesSampledData", metering.MEASURANDS) == "Accepted"
    assert c.change("MeterValuesSampledData", "Energy.Active.Import.Register,Foo") == "Rejected"
    assert c.get("MeterValuesSampledData") == metering.MEASURANDS  # nothing changed
    assert c.change("StopTxnSampledData", "Voltage, Voltage ,Power.Active.Import") == "Accepted"
    assert c.get("StopTxnSampledData") == "Voltage,Power.Active.Import"
    assert c.change("StopTxnSampledData", "") == "Accepted"
    assert c.get("StopTxnSampledData") == ""
