"""GetConfiguration / ChangeConfiguration over every Core key (OCTT TC_019, TC_021, TC_040) and the
two settings of the reference product (integer booleans, vendor keys)."""

import time

from core import CP, start_charger
from csms import CallError

CORE_KEYS = {  # OCTT TC_019: required Core keys and whether the backend may write them
    "AuthorizeRemoteTxRequests": None,
    "ClockAlignedDataInterval": False,
    "ConnectionTimeOut": False,
    "ConnectorPhaseRotation": False,
    "GetConfigurationMaxKeys": True,
    "HeartbeatInterval": False,
    "LocalAuthorizeOffline": False,
    "LocalPreAuthorize": False,
    "MeterValuesAlignedData": False,
    "MeterValuesSampledData": False,
    "MeterValueSampleInterval": False,
    "NumberOfConnectors": True,
    "ResetRetries": False,
    "StopTransactionOnInvalidId": False,
    "StopTxnAlignedData": False,
    "StopTxnSampledData": False,
    "SupportedFeatureProfiles": True,
    "TransactionMessageAttempts": False,
    "TransactionMessageRetryInterval": False,
    "UnlockConnectorOnEVSideDisconnect": None,
}


def _all(csms):
    return {k["key"]: k for k in csms.call(CP, "GetConfiguration", {})["configurationKey"]}


def test_every_core_key_with_its_access(csms, make_sim):
    start_charger(csms, make_sim, connectors=2)
    keys = _all(csms)
    for name, readonly in CORE_KEYS.items():
        assert name in keys, name
        if readonly is not None:
            assert keys[name]["readonly"] is readonly, name
    assert keys["NumberOfConnectors"]["value"] == "2"
    assert "AuthorizationKey" not in keys
    assert "MaxCurrent" in keys  # vendor keys are reported by default
    names = list(CORE_KEYS)
    conf = csms.call(CP, "GetConfiguration", {"key": names})
    assert {k["key"] for k in conf["configurationKey"]} == set(names)
    assert "unknownKey" not in conf
    assert csms.violations == []


def test_change_then_get(csms, make_sim):
    start_charger(csms, make_sim)
    assert csms.call(CP, "ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "17"}) == {
        "status": "Accepted"
    }
    conf = csms.call(CP, "GetConfiguration", {"key": ["MeterValueSampleInterval", "Nope"]})
    assert conf["configurationKey"] == [{"key": "MeterValueSampleInterval", "readonly": False, "value": "17"}]
    assert conf["unknownKey"] == ["Nope"]


def test_change_errors(csms, make_sim):
    start_charger(csms, make_sim)

    def change(key, value):
        return csms.call(CP, "ChangeConfiguration", {"key": key, "value": value})["status"]

    assert change("Testing", "true") == "NotSupported"
    assert change("MeterValueSampleInterval", "-1") == "Rejected"
    assert change("MeterValueSampleInterval", "soon") == "Rejected"
    assert change("NumberOfConnectors", "4") == "Rejected"  # read-only
    assert change("SupportedFeatureProfiles", "Core") == "Rejected"
    assert change("LocalPreAuthorize", "maybe") == "Rejected"
    assert change("ChargePointId", "CP-NEW") == "RebootRequired"
    assert change("AuthorizationKey", "0011223344556677889900112233445566778899") == "Accepted"
    deadline = time.monotonic() + 15
    while csms.connection_count(CP) < 2 or not csms.connected(CP):  # a new key: reconnects with it
        assert time.monotonic() < deadline, "no reconnect after the AuthorizationKey change"
        time.sleep(0.05)
    conf = csms.call(CP, "GetConfiguration", {"key": ["AuthorizationKey"]})
    assert all("value" not in k for k in conf["configurationKey"])  # write-only


def test_integer_booleans_and_vendor_keys_settings(csms, make_sim):
    start_charger(csms, make_sim)
    assert _all(csms)["LocalPreAuthorize"]["value"] == "false"
    csms.call(CP, "ChangeConfiguration", {"key": "IntegerBooleans", "value": "true"})
    keys = _all(csms)
    assert keys["LocalPreAuthorize"]["value"] == "0" and keys["AuthorizationCacheEnabled"]["value"] == "1"
    # a backend that writes integers for booleans is understood too
    assert csms.call(CP, "ChangeConfiguration", {"key": "LocalPreAuthorize", "value": "1"}) == {
        "status": "Accepted"
    }
    assert _all(csms)["LocalPreAuthorize"]["value"] == "1"
    csms.call(CP, "ChangeConfiguration", {"key": "ReportVendorKeys", "value": "false"})
    keys = _all(csms)
    assert "MaxCurrent" not in keys and "ReportVendorKeys" not in keys
    assert set(CORE_KEYS) <= set(keys)
    # asked by name, a vendor key is still answered
    conf = csms.call(CP, "GetConfiguration", {"key": ["MaxCurrent"]})
    assert conf["configurationKey"][0]["value"] == "32"


def test_get_configuration_max_keys(csms, make_sim):
    start_charger(csms, make_sim)
    conf = csms.call(CP, "GetConfiguration", {"key": ["GetConfigurationMaxKeys"]})
    n = int(conf["configurationKey"][0]["value"])
    try:
        csms.call(CP, "GetConfiguration", {"key": ["HeartbeatInterval"] * (n + 1)})
    except CallError as e:
        assert e.code in ("OccurenceConstraintViolation", "OccurrenceConstraintViolation")
    else:
        raise AssertionError("more keys than GetConfigurationMaxKeys were answered")
