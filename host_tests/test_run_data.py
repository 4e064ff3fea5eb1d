"""`make run` starts fresh: the last run's firmware log is not replayed as if it were live, and
what was changed at run time does not carry over unless --keep."""

from test_run import RunSession


def _session(tmp_path, data, *args, setconf=None):
    run = RunSession(tmp_path, *args, data=data)
    try:
        run.expect("CP001 ->", '"Accepted"')
        run.send("getconf MeterValueSampleInterval")
        value = run.expect("MeterValueSampleInterval", "RW").split()[-1]
        if setconf:
            run.send(f"setconf MeterValueSampleInterval {setconf}")
            run.expect('OK ChangeConfiguration {"status": "Accepted"}')
        return value, run.quit()
    finally:
        run.close()


def test_each_run_is_fresh_unless_kept(built, tmp_path):
    data = tmp_path / "data"
    value, first = _session(tmp_path, data, setconf="77")
    assert value == "60"
    assert sum("fw   link: connecting" in line for line in first) == 1

    value, second = _session(tmp_path, data, setconf="55")  # no --keep: a fresh flash and log
    assert value == "60"
    assert sum("fw   link: connecting" in line for line in second) == 1  # not the last run's again
    assert any("fresh (--keep reuses it next time)" in line for line in second)

    value, third = _session(tmp_path, data, "--keep")
    assert value == "55"  # the flash of the run before: its configuration
    assert sum("fw   link: connecting" in line for line in third) == 1
    assert (data / "firmware.prev.log").exists() and (data / "run.prev.log").exists()
    assert (data / "firmware.log").read_text().count("link: connecting") == 1
