# mp-heap: 256K
# OCPP 1.6 payload validation (firmware/ocpp/validate.py) on MicroPython, from the .mpy build.
import gc

from ocpp import validate
from ocpp.validate import FORMATION, OCCURENCE, PROPERTY, TYPE, Invalid, UnknownAction

BOOT = {"chargePointVendor": "Acme", "chargePointModel": "AC22"}
NOW = "2024-05-01T12:00:00Z"


def _error(action, kind, payload):
    # (code, text) of the rejection; fails the test if the payload is accepted.
    try:
        validate.check(action, kind, payload)
    except Invalid as e:
        assert e.args == (e.code, e.text)
        return e.code, e.text
    raise AssertionError("accepted: %s %s %r" % (action, kind, payload))


def _profile(periods, limit=16.0):
    return {
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": 7,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "validFrom": NOW,
            "chargingSchedule": {
                "startSchedule": NOW,
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [
                    {"startPeriod": i * 900, "limit": limit + (i % 10) * 0.1, "numberPhases": 3}
                    for i in range(periods)
                ],
                "minChargingRate": 6.0,
            },
        },
    }


def test_valid_boot_notification_passes():
    assert validate.check("BootNotification", "req", BOOT) is None
    full = dict(BOOT)
    full.update(
        chargePointSerialNumber="S" * 25,
        chargeBoxSerialNumber="B1",
        firmwareVersion="1.2.3",
        iccid="8931",
        imsi="2620",
        meterType="DZG",
        meterSerialNumber="M1",
    )
    assert validate.check("BootNotification", "req", full) is None
    conf = {"status": "Accepted", "currentTime": NOW, "interval": 300}
    assert validate.check("BootNotification", "conf", conf) is None


def test_missing_required_field_is_occurence_violation_naming_it():
    assert _error("BootNotification", "req", {"chargePointVendor": "Acme"}) == (
        OCCURENCE,
        "chargePointModel: missing",
    )
    assert _error("BootNotification", "conf", {"status": "Accepted", "interval": 300}) == (
        OCCURENCE,
        "currentTime: missing",
    )


def test_wrong_json_type_is_type_violation():
    sn = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    assert validate.check("StatusNotification", "req", sn) is None
    for bad in ("1", 1.5, True, None, [1], {"a": 1}):
        sn["connectorId"] = bad
        assert _error("StatusNotification", "req", sn) == (TYPE, "connectorId: expected integer")
    # 1.0 is a JSON number with a fraction part, not an integer (jsonschema Draft 4 agrees).
    sn["connectorId"] = 1.0
    assert _error("StatusNotification", "req", sn)[0] == TYPE
    sn["connectorId"] = 1
    sn["status"] = 3
    assert _error("StatusNotification", "req", sn) == (TYPE, "status: expected string")
    assert _error("BootNotification", "req", {"chargePointVendor": 5, "chargePointModel": "m"}) == (
        TYPE,
        "chargePointVendor: expected string",
    )


def test_booleans_and_numbers_are_kept_apart():
    # The only boolean of OCPP 1.6 is GetConfiguration.conf configurationKey[].readonly.
    reply = {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]}
    assert validate.check("GetConfiguration", "conf", reply) is None
    for bad in (0, 1, "false", None):
        reply["configurationKey"][0]["readonly"] = bad
        assert _error("GetConfiguration", "conf", reply) == (
            TYPE,
            "configurationKey[0].readonly: expected boolean",
        )
    # ...and a boolean is neither an integer nor a number.
    reply = {"status": "Accepted", "connectorId": False}
    assert _error("GetCompositeSchedule", "conf", reply) == (TYPE, "connectorId: expected integer")


def test_enum_violation_is_property_violation():
    sn = {"connectorId": 1, "errorCode": "NoError", "status": "Broken"}
    assert _error("StatusNotification", "req", sn) == (PROPERTY, "status: value not allowed")
    # Substrings, prefixes, case changes and the separator never match.
    for bad in ("Availabl", "vailable", "available", "Available|Faulted", "|Available", "", "Available "):
        sn["status"] = bad
        assert _error("StatusNotification", "req", sn)[0] == PROPERTY, bad
    for good in ("Available", "Preparing", "Charging", "SuspendedEVSE", "SuspendedEV", "Faulted"):
        sn["status"] = good
        assert validate.check("StatusNotification", "req", sn) is None


def test_max_length_counts_characters_and_is_property_violation():
    ok = {"chargePointVendor": "\u00e9" * 20, "chargePointModel": "m"}  # 40 bytes, 20 characters
    assert validate.check("BootNotification", "req", ok) is None
    long = {"chargePointVendor": "\u00e9" * 21, "chargePointModel": "m"}
    assert _error("BootNotification", "req", long) == (PROPERTY, "chargePointVendor: longer than 20")


def test_unknown_property_is_formation_violation():
    payload = dict(BOOT)
    payload["colour"] = "red"
    assert _error("BootNotification", "req", payload) == (FORMATION, "colour: unknown property")
    # Nested, and a hostile long name is cut short in the text.
    prof = _profile(2)
    prof["csChargingProfiles"]["chargingSchedule"]["x" * 5000] = 1
    code, text = _error("SetChargingProfile", "req", prof)
    assert code == FORMATION
    assert text == "csChargingProfiles.chargingSchedule." + "x" * 24 + "...: unknown property", text
    assert _error("Heartbeat", "req", {"a": None}) == (FORMATION, "a: unknown property")


def test_payload_that_is_not_an_object_is_formation_violation():
    for bad in ([], "x", 1, None, [BOOT]):
        assert _error("BootNotification", "req", bad) == (FORMATION, "payload: not a JSON object")


def test_nested_set_charging_profile():
    assert validate.check("SetChargingProfile", "req", _profile(5)) is None
    prof = _profile(5)
    del prof["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][2]["limit"]
    assert _error("SetChargingProfile", "req", prof) == (
        OCCURENCE,
        "csChargingProfiles.chargingSchedule.chargingSchedulePeriod[2].limit: missing",
    )
    prof = _profile(5)
    prof["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][4]["startPeriod"] = "0"
    assert _error("SetChargingProfile", "req", prof) == (
        TYPE,
        "csChargingProfiles.chargingSchedule.chargingSchedulePeriod[4].startPeriod: expected integer",
    )
    prof = _profile(1)
    prof["csChargingProfiles"]["chargingSchedule"]["chargingRateUnit"] = "kW"
    assert _error("SetChargingProfile", "req", prof) == (
        PROPERTY,
        "csChargingProfiles.chargingSchedule.chargingRateUnit: value not allowed",
    )
    prof = _profile(1)
    prof["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"] = {"startPeriod": 0}
    assert _error("SetChargingProfile", "req", prof) == (
        TYPE,
        "csChargingProfiles.chargingSchedule.chargingSchedulePeriod: expected array",
    )
    prof = _profile(1)
    prof["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0] = 5
    assert _error("SetChargingProfile", "req", prof)[1].endswith("chargingSchedulePeriod[0]: expected object")
    prof = _profile(1)
    del prof["csChargingProfiles"]["chargingSchedule"]
    assert _error("SetChargingProfile", "req", prof) == (
        OCCURENCE,
        "csChargingProfiles.chargingSchedule: missing",
    )


def test_multiple_of_tolerates_float_rounding():
    def limit(value):
        prof = _profile(1)
        prof["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = value
        return prof

    for good in (7.3, 0.1, 0.3, 16, 0, 32.0, 22000.1, 11.7, -6.4, 1234567.8):
        assert validate.check("SetChargingProfile", "req", limit(good)) is None, good
    for bad in (7.35, 0.05, 16.01, 22000.15, 1e-3):
        code, text = _error("SetChargingProfile", "req", limit(bad))
        assert code == PROPERTY and text.endswith("limit: not a multiple of 0.1"), (bad, text)
    for bad in (float("inf"), float("-inf"), float("nan")):
        assert _error("SetChargingProfile", "req", limit(bad))[0] == PROPERTY
    # Finite, but dividing by 0.1 overflows: rejected, no exception other than Invalid.
    assert _error("SetChargingProfile", "req", limit(1.7e308))[0] == PROPERTY
    assert _error("SetChargingProfile", "req", limit("7.3"))[0] == TYPE
    assert _error("SetChargingProfile", "req", limit(True))[0] == TYPE


def test_integers_are_32_bit():
    sn = {"connectorId": 2147483647, "errorCode": "NoError", "status": "Available"}
    assert validate.check("StatusNotification", "req", sn) is None
    sn["connectorId"] = -2147483648
    assert validate.check("StatusNotification", "req", sn) is None
    for bad in (2147483648, -2147483649, 10**30):
        sn["connectorId"] = bad
        assert _error("StatusNotification", "req", sn) == (PROPERTY, "connectorId: out of 32-bit range")


def test_date_time_format():
    hb = {"currentTime": NOW}
    for good in (
        "2024-05-01T12:00:00Z",
        "2024-02-29T23:59:60Z",
        "2024-05-01t12:00:00z",
        "2024-05-01T12:00:00.123Z",
        "2024-05-01T12:00:00.123456789+02:00",
        "2024-05-01T12:00:00-0530",
        "2024-05-01T12:00:00",
        "2000-02-29T00:00:00Z",
    ):
        hb["currentTime"] = good
        assert validate.check("Heartbeat", "conf", hb) is None, good
    for bad in (
        "2023-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-04-31T00:00:00Z",
        "2024-00-10T00:00:00Z",
        "2024-05-01",
        "2024-05-01 12:00:00Z",
        "2024-05-01T24:00:00Z",
        "2024-05-01T12:60:00Z",
        "2024-05-01T12:00:61Z",
        "2024-05-01T12:00:00.Z",
        "2024-05-01T12:00:00.1234567890Z",
        "2024-05-01T12:00:00+2:00",
        "2024-05-01T12:00:00+24:00",
        "2024-05-01T12:00:00Z ",
        "2024-05-01T12:00:00ZZ",
        "2024-05-01T12:00Z",
        "20240501T120000Z",
        "tomorrow, noon, UTC",
        "2024-05-01T12:00:0\u00e9Z",
        "",
    ):
        hb["currentTime"] = bad
        assert _error("Heartbeat", "conf", hb) == (PROPERTY, "currentTime: bad date-time"), bad
    hb["currentTime"] = 1714564800
    assert _error("Heartbeat", "conf", hb) == (TYPE, "currentTime: expected string")


def test_uri_format():
    req = {"location": "ftp://user:pw@10.0.0.1/logs/", "retries": 3, "startTime": NOW}
    assert validate.check("GetDiagnostics", "req", req) is None
    for good in ("https://x.example/fw.bin?v=2", "urn:ocpp:x", "s3+https://b/k"):
        req["location"] = good
        assert validate.check("GetDiagnostics", "req", req) is None, good
    for bad in ("no scheme here", "//host/path", "://x", "ftp:", "1ftp://x", "ftp://a b", "h\u00e9://x", ""):
        req["location"] = bad
        assert _error("GetDiagnostics", "req", req) == (PROPERTY, "location: bad uri"), bad


def test_unknown_action():
    for action in (
        "Foo",
        "bootnotification",
        "../ocpp/schemas/BootNotification",
        "Authorize.req [0,1,",
        "Boot.req",
        "",
        5,
        None,
        "A" * 200,
    ):
        try:
            validate.check(action, "req", {})
        except UnknownAction:
            continue
        raise AssertionError("not rejected: %r" % (action,))
    try:
        validate.check("Heartbeat", "request", {})
    except ValueError:
        pass
    else:
        raise AssertionError("bad kind accepted")


def test_security_extension_actions_validate():
    cert_hash = {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": "a1",
        "issuerKeyHash": "b2",
        "serialNumber": "0f",
    }
    valid = [
        (
            "SignedUpdateFirmware",
            "req",
            {
                "requestId": 1,
                "retries": 2,
                "firmware": {
                    "location": "https://fw.example/x.bin",
                    "retrieveDateTime": NOW,
                    "signingCertificate": "-----BEGIN CERTIFICATE-----",
                    "signature": "c2ln",
                },
            },
        ),
        ("SignedUpdateFirmware", "conf", {"status": "AcceptedCanceled"}),
        (
            "InstallCertificate",
            "req",
            {"certificateType": "CentralSystemRootCertificate", "certificate": "PEM"},
        ),
        ("InstallCertificate", "conf", {"status": "Accepted"}),
        ("DeleteCertificate", "req", {"certificateHashData": cert_hash}),
        ("GetInstalledCertificateIds", "req", {"certificateType": "ManufacturerRootCertificate"}),
        ("GetInstalledCertificateIds", "conf", {"status": "Accepted", "certificateHashData": [cert_hash]}),
        ("GetLog", "req", {"logType": "SecurityLog", "requestId": 3, "log": {"remoteLocation": "ftp://h/"}}),
        ("ExtendedTriggerMessage", "req", {"requestedMessage": "SignChargePointCertificate"}),
        ("CertificateSigned", "req", {"certificateChain": "PEM" * 3000}),
        ("SecurityEventNotification", "req", {"type": "FirmwareUpdated", "timestamp": NOW}),
        ("SignCertificate", "req", {"csr": "CSR"}),
        ("LogStatusNotification", "req", {"status": "Uploading", "requestId": 3}),
        ("SignedFirmwareStatusNotification", "req", {"status": "SignatureVerified", "requestId": 1}),
    ]
    for action, kind, payload in valid:
        assert validate.check(action, kind, payload) is None, action
    bad_hash = dict(cert_hash)
    bad_hash["hashAlgorithm"] = "MD5"
    assert _error("DeleteCertificate", "req", {"certificateHashData": bad_hash}) == (
        PROPERTY,
        "certificateHashData.hashAlgorithm: value not allowed",
    )
    # minItems 1 on an array of $ref'd objects.
    assert _error(
        "GetInstalledCertificateIds", "conf", {"status": "Accepted", "certificateHashData": []}
    ) == (
        OCCURENCE,
        "certificateHashData: fewer than 1 items",
    )
    assert _error("CertificateSigned", "req", {"certificateChain": "x" * 10001}) == (
        PROPERTY,
        "certificateChain: longer than 10000",
    )
    fw = {
        "requestId": 1,
        "firmware": {"location": "https://x/", "retrieveDateTime": NOW, "signingCertificate": "c"},
    }
    assert _error("SignedUpdateFirmware", "req", fw) == (OCCURENCE, "firmware.signature: missing")


def test_every_table_loads():
    from ocpp.schema_tables import TABLES

    names = [line.split(" ")[0] for line in TABLES.split("\n") if line]
    assert len(names) == 78, len(names)
    for name in names:
        action, kind = name.split(".")
        try:
            validate.check(action, kind, {})
        except Invalid as e:
            # Only a missing required field can be wrong with an empty payload.
            assert e.code == OCCURENCE and e.text.endswith(": missing"), (name, e.text)
    assert len(validate._cache) <= 2  # _CACHE_MAX (a const: not an attribute)


def test_cache_keeps_the_last_tables():
    validate.clear_cache()
    replies = {"Heartbeat": {"currentTime": NOW}, "UnlockConnector": {"status": "Unlocked"}}
    for action in ("Heartbeat", "UnlockConnector", "Reset"):
        validate.check(action, "conf", replies.get(action, {"status": "Accepted"}))
    assert [e[0] for e in validate._cache] == ["Reset", "UnlockConnector"]
    validate.check("UnlockConnector", "conf", {"status": "Unlocked"})  # a hit moves to the front
    assert [e[0] for e in validate._cache] == ["UnlockConnector", "Reset"]
    validate.clear_cache()
    assert validate._cache == []


def test_hostile_deep_nesting_is_rejected_without_recursion():
    deep = []
    for _ in range(500):
        deep = [deep]
    assert _error("DataTransfer", "req", {"vendorId": "v", "data": deep}) == (TYPE, "data: expected string")
    deep = None
    deep_obj = {}
    for _ in range(500):
        deep_obj = {"a": deep_obj}
    prof = _profile(1)
    prof["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = deep_obj
    assert _error("SetChargingProfile", "req", prof)[0] == TYPE
    prof["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0] = deep_obj
    assert _error("SetChargingProfile", "req", prof)[0] == FORMATION


from heapcheck import allocated as _allocated  # noqa: E402


def test_valid_check_with_cached_table_allocates_nothing():
    validate.check("BootNotification", "req", BOOT)
    assert _allocated(lambda: validate.check("BootNotification", "req", BOOT)) == 0
    meter = {
        "connectorId": 1,
        "transactionId": 5,
        "meterValue": [
            {
                "timestamp": NOW,
                "sampledValue": [{"value": "12.5", "measurand": "Energy.Active.Import.Register"}],
            }
        ],
    }
    validate.check("MeterValues", "req", meter)
    # Only the date-time check makes one small bytes object per timestamp.
    assert _allocated(lambda: validate.check("MeterValues", "req", meter)) <= 64


def test_memory_of_a_large_set_charging_profile():
    big = _profile(48)  # a day in half-hour steps, limits with one decimal
    validate.clear_cache()
    first = _allocated(lambda: validate.check("SetChargingProfile", "req", big))
    again = _allocated(lambda: validate.check("SetChargingProfile", "req", big))
    gc.collect()
    before = gc.mem_alloc()
    validate.clear_cache()
    gc.collect()
    table = before - gc.mem_alloc()
    print("SetChargingProfile: first check %d B, cached %d B, table retained %d B" % (first, again, table))
    # Measured on the 64-bit Unix port (a 32-bit board needs about half: 16-byte heap blocks):
    # table 2.5 KB retained, first check 6.2 KB allocated in all (open + decode + validate), a
    # cached check 3.2 KB = two 32-byte floats per multipleOf number (48 limits + minChargingRate)
    # and one small bytes object per date-time (validFrom, startSchedule).
    assert table < 3 * 1024, table
    assert first < 7 * 1024, first
    assert again <= 49 * 2 * 32 + 2 * 32, again
