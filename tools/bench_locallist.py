"""The Local Authorization List at its capacity (LocalAuthListMaxLength = 10,000 entries), for
`make bench` (`local_list_figures()`, called from tools/bench.py) and the integration tests.

A Full list longer than SendLocalListMaxLength is sent as OCPP 1.6 allows (cp/localauth/local_list.py): a
Full SendLocalList with the first chunk, then Differentials with increasing versions, each
applied atomically by the charger. `upload()` does that from the CSMS simulator.

`read_flash_list()` is the test hook that reads the list the way the firmware stores it: it runs
MicroPython on the sim's flash image (`DATA/flash.img`, the sim stopped), mounts it like the sim
does and reads `/flash/local_list.bin` with cp/localauth/local_list.py. `lookup_times()` times lookups there.
"""

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = Path(sys.executable).parent / "micropython"
LIST_FILE = "/flash/local_list.bin"
CP = "BENCH"
FAST = {
    "RetryBackOffWaitMinimum": 1,
    "RetryBackOffRandomRange": 0,
    "RetryBackOffRepeatTimes": 1,
    "WebSocketPingInterval": 1,
    "WebSocketPongTimeout": 1,
}


def tag(prefix, i):
    return f"{prefix}{i:05d}"


def entries(prefix, n, status="Accepted"):
    """n listed idTags prefix00000.. with idTagInfo (every 7th with a parentIdTag)."""
    out = []
    for i in range(n):
        info = {"status": status}
        if i % 7 == 0:
            info["parentIdTag"] = f"FLEET{i % 3}"
        out.append({"idTag": tag(prefix, i), "idTagInfo": info})
    return out


def key_value(csms, cp_id, name):
    conf = csms.call(cp_id, "GetConfiguration", {"key": [name]})
    return conf["configurationKey"][0]["value"]


def upload(csms, cp_id, items, first_version, chunk=None, on_answer=None):
    """Send `items` as a Full SendLocalList (first chunk, version first_version) and Differentials
    (first_version + 1, ...) of `chunk` entries (default: the charger's SendLocalListMaxLength).
    Returns the seconds each message took from call to answer; raises AssertionError if one is
    not Accepted. on_answer(k) runs after the k-th (1-based) answer."""
    chunk = chunk or int(key_value(csms, cp_id, "SendLocalListMaxLength"))
    times = []
    for k in range(0, max(len(items), 1), chunk):
        payload = {
            "listVersion": first_version + k // chunk,
            "updateType": "Full" if k == 0 else "Differential",
            "localAuthorizationList": items[k : k + chunk],
        }
        t = time.monotonic()
        conf = csms.call(cp_id, "SendLocalList", payload, timeout=30)
        times.append(time.monotonic() - t)
        assert conf == {"status": "Accepted"}, (payload["listVersion"], conf)
        if on_answer:
            on_answer(k // chunk + 1)
    return times


def _micropython(code, timeout=120):
    env = dict(os.environ, MICROPYPATH=f"{ROOT / 'build' / 'sim'}:.frozen")
    out = subprocess.run(
        [str(MICROPYTHON), "-X", "heapsize=1M", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if out.returncode:
        raise RuntimeError(f"micropython failed: {out.stderr[-2000:]}")
    return out.stdout


_MOUNT = """
import json, sim_setup, time, gc
from cp.localauth import local_list as ll
img, _ = sim_setup.mount(%r, "/flash")
P = %r
"""


def read_flash_list(data_dir):
    """(version, {idTag key: idTagInfo}) of the list in a stopped sim's flash image."""
    code = _MOUNT % (str(Path(data_dir) / "flash.img"), LIST_FILE) + (
        "print(json.dumps(ll.version(P)))\n"
        "for k, info in ll.records(P):\n"
        "    print(json.dumps([k, info]))\n"
        "sim_setup.unmount(img, '/flash')\n"
    )
    lines = _micropython(code).splitlines()
    return json.loads(lines[0]), dict(json.loads(line) for line in lines[1:])


def lookup_times(data_dir, tags):
    """Per lookup: the microseconds of cp.local_list.get() on the sim's flash image (littlefs on
    the file-backed block device) and the bytes it allocates, for each of `tags`."""
    code = _MOUNT % (str(Path(data_dir) / "flash.img"), LIST_FILE) + (
        f"for t in {list(tags)!r}:\n"
        "    gc.collect(); gc.disable(); a = gc.mem_alloc(); t0 = time.ticks_us()\n"
        "    info = ll.get(P, t)\n"
        "    us = time.ticks_diff(time.ticks_us(), t0); b = gc.mem_alloc() - a; gc.enable()\n"
        "    print(json.dumps([us, b, info is not None]))\n"
        "sim_setup.unmount(img, '/flash')\n"
    )
    return [json.loads(line) for line in _micropython(code).splitlines()]


def local_list_figures(workdir, n=10000, heap=None, app=None, micropython=None):
    """Figures of a 10,000-entry list: upload end to end (CSMS simulator -> sim) in chunks of
    SendLocalListMaxLength, the sim's peak heap during it and after a reboot with an offline
    card authorized from the list, lookup time and allocation, record and file size."""
    from csms import CsmsSimulator
    from simctl import SimProcess

    workdir = Path(workdir)
    data = workdir / f"data-locallist-{app}-{Path(micropython or MICROPYTHON).parent.name}"
    items = entries("T", n)
    figures = {}

    def boot(n):
        return SimProcess(
            data, csms=csms.url, cp_id=CP, heap=heap, sets=FAST, log_path=workdir / f"ll{n}.log",
            app=app, micropython=micropython,
        )  # fmt: skip

    with CsmsSimulator(port=0) as csms:
        sim = boot(0)
        try:
            sim.start(timeout=20)
            csms.wait_for_call(CP, "BootNotification", timeout=10)
            csms.wait_for_call(CP, "StatusNotification", timeout=10)
            t = time.monotonic()
            times = upload(csms, CP, items, 1)
            figures["full_upload_s"] = round(time.monotonic() - t, 1)
            figures["messages"] = len(times)
            figures["first_chunk_full_ms"] = round(times[0] * 1000, 1)
            figures["differential_ms_median"] = round(statistics.median(times[1:]) * 1000, 1)
            figures["differential_ms_last"] = round(times[-1] * 1000, 1)  # merging into 9,900 entries
            figures["heap_peak_upload"] = sim.state()["heap"]["peak"]
            assert csms.call(CP, "GetLocalListVersion", {}) == {"listVersion": len(times)}
            # a fresh process (heap peak from zero), offline: a listed card starts charging
            sim.power_cut()
            sim.close()
            sim = boot(1)  # a SimProcess does not start again after a power cut: a new one
            sim.start(timeout=20)
            csms.wait_for_call(CP, "BootNotification", timeout=10)
            sim.ok({"cmd": "network", "up": False})
            sim.wait_state(lambda s: not s["connected"], timeout=20, what="offline")
            sim.ok({"cmd": "plug", "connector": 1, "cable_amps": 32})
            sim.ok({"cmd": "ev", "connector": 1, "state": "C"})
            sim.ok({"cmd": "rfid", "id_tag": tag("t", n - 1)})
            sim.wait_state(lambda s: s["connectors"][0]["relay"], timeout=10, what="charging offline")
            figures["heap_peak_offline_card_from_list"] = sim.state()["heap"]["peak"]
            figures["heap_size"] = sim.state()["heap"]["size"]
        finally:
            sim.close()
    figures["file_bytes"] = read_flash_list_size(data)
    figures["record_bytes"] = (figures["file_bytes"] - 12) // n  # after the 12-byte header
    sample = [tag("T", i) for i in range(0, n, n // 200)] + [tag("X", i) for i in range(50)]
    res = lookup_times(data, sample)
    assert all(found for _, _, found in res[:-50]) and not any(found for _, _, found in res[-50:])
    us = sorted(r[0] for r in res)
    figures["lookup_us"] = {"median": statistics.median(us), "max": us[-1]}
    figures["lookup_alloc_bytes_max"] = max(r[1] for r in res)
    return figures


def read_flash_list_size(data_dir):
    code = _MOUNT % (str(Path(data_dir) / "flash.img"), LIST_FILE) + (
        "import os\nprint(os.stat(P)[6])\nsim_setup.unmount(img, '/flash')\n"
    )
    return int(_micropython(code).strip())


if __name__ == "__main__":
    import tempfile

    sys.path[:0] = [str(ROOT / "tools")]
    from build import build

    build("sim", quiet=True)
    with tempfile.TemporaryDirectory() as d:
        print(json.dumps(local_list_figures(Path(d)), indent=2))
