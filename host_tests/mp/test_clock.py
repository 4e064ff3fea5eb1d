# UTC clock and ISO 8601 timestamps.
from cp import clock


def test_format_and_parse_round_trip():
    t = 1795558514  # 2026-11-24T22:15:14Z
    assert clock.iso(t) == "2026-11-24T22:15:14Z"
    assert clock.parse_iso("2026-11-24T22:15:14Z") == t
    assert clock.parse_iso("2026-11-24T22:15:14.123Z") == t
    assert clock.parse_iso("2026-11-24T23:15:14+01:00") == t
    assert clock.parse_iso("2026-11-24T21:45:14-00:30") == t
    assert clock.parse_iso("1970-01-01T00:00:00Z") == 0
    assert clock.parse_iso("2000-02-29T00:00:00Z") == 951782400


def test_rejects_garbage():
    for bad in ("", "yesterday", "2026-13-01T00:00:00Z", "2026-11-24T25:00:00Z", "2026-11-24T22:15:14+0100"):
        assert clock.parse_iso(bad) is None, bad


def test_set_from_backend():
    clock.set_utc(2000000000)
    assert abs(clock.now() - 2000000000) <= 1
    assert clock.synced()
    assert clock.iso().startswith("2033-05-18T03:3")
