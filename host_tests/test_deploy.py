"""make deploy's dry run lists exactly the .mpy build and one mpremote command ending in soft-reset."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_dry_run_lists_the_build():
    out = subprocess.run(
        [sys.executable, "tools/deploy.py", "--board", "sim", "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    built = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "build" / "sim").rglob("*") if p.is_file())
    listed = sorted(line.split()[1] for line in out.splitlines() if " -> :" in line)
    assert listed == built
    assert all(not name.endswith(".py") for name in listed), "only compiled files go to a board"
    assert "main.mpy" in " ".join(listed)
    command = out.splitlines()[-1]
    assert command.startswith("command:") and "connect PORT" in command and command.endswith("soft-reset")


def test_deploy_without_port_refuses():
    res = subprocess.run(
        [sys.executable, "tools/deploy.py", "--board", "sim"], cwd=ROOT, capture_output=True, text=True
    )
    assert res.returncode != 0 and "PORT" in res.stderr


# ---- real boards: the boot stub (build/<board>/main.py) ----


def _build(board):
    sys.path.insert(0, str(ROOT / "tools"))
    from build import build

    return build(board, quiet=True)


def test_real_board_build_boots_from_a_source_stub():
    out = _build("esp32")
    stub = (out / "main.py").read_text()
    assert stub.startswith("#") and "app.run" in stub, "main.py is the boot stub, as source"
    assert (out / "app.mpy").read_bytes()[:1] == b"M", "the firmware's main is app.mpy"
    assert not (out / "main.mpy").exists(), "no main.mpy for the stub to shadow"
    assert len(stub) < 4000, "the stub is compiled on the device at every boot: keep it tiny"
    sim = _build("sim")
    assert (sim / "main.mpy").exists() and not (sim / "main.py").exists() and not (sim / "app.mpy").exists()


def test_boot_stub_reaches_the_backend_and_resets_on_request(tmp_path):
    import json
    import os

    from csms import CsmsSimulator

    out = _build("esp32")
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "site.json").write_text(
        json.dumps({"wifi_ssid": "site", "wifi_password": "pw", "ntp_host": None})
    )
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([str(ROOT / "host_tests" / "fakes"), str(out), ".frozen"])
    micropython = Path(sys.executable).parent / "micropython"
    with CsmsSimulator(port=0, log_file=str(tmp_path / "csms.log")) as csms:
        preset = {"CentralSystemURL": csms.url, "ChargePointId": "STUB1", "SecurityProfile": 0}
        (flash / "preset.json").write_text(json.dumps(preset))
        proc = subprocess.Popen(
            [str(micropython), "-X", "heapsize=512K", str(out / "main.py"), str(flash)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
        try:
            boot = csms.wait_for_call("STUB1", "BootNotification", timeout=15)
            assert csms.call("STUB1", "Reset", {"type": "Soft"}) == {"status": "Accepted"}
            output = proc.communicate(timeout=15)[0].decode(errors="replace")
        finally:
            proc.kill()
            proc.wait()
        assert csms.violations == []
    assert boot["chargePointModel"] == "ESP32-AC1"
    assert "machine.reset()" in output, f"a backend Reset ends in machine.reset(); output: {output[-2000:]}"
    assert "Traceback" not in output, output[-2000:]
    assert not (flash / "preset.json").exists(), "the preset is applied once, then removed"
    config = (flash / "config.json").read_text()
    assert csms.url in config and "STUB1" in config, "the preset went into the persisted configuration"


def test_romfs_dry_run_builds_a_precompiled_image_with_mpremote(tmp_path):
    import shlex

    out = subprocess.run(
        [sys.executable, "tools/deploy.py", "--board", "esp32", "--romfs", "--dry-run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    build_cmd, deploy_cmd = (shlex.split(line.removeprefix("command: ")) for line in out.splitlines())
    assert "--no-mpy" in build_cmd, "our tree is precompiled with -O2: mpremote must not recompile it"
    assert deploy_cmd[-4:] == ["deploy", build_cmd[build_cmd.index("-o") + 1], "+", "soft-reset"]
    image = tmp_path / "esp32.romfs"
    build_cmd[build_cmd.index("-o") + 1] = str(image)
    subprocess.run(build_cmd, check=True, capture_output=True, timeout=60)
    data = image.read_bytes()
    assert data[:3] == b"\xd2\xcd\x31", "a ROMFS image"
    assert b"app.mpy" in data and b"board.mpy" in data and b"BootNotification.req.json" in data


def test_frozen_manifests_cover_the_firmware():
    calls = []
    for name in ("esp32", "pico_w"):
        _build(name)
        manifest = ROOT / "boards" / f"manifest_{name}.py"
        calls.clear()
        api = {
            f: (lambda *a, _f=f, **k: calls.append((_f, a, k)))
            for f in ("include", "package", "module", "freeze", "freeze_mpy")
        }
        exec(compile(manifest.read_text(), str(manifest), "exec"), api)
        assert calls[0] == ("include", ("$(PORT_DIR)/boards/manifest.py",), {}), "the port's own modules"
        frozen = set()
        for f, a, k in calls[1:]:
            base = manifest.parent / k.get("base_path", a[1] if len(a) > 1 and f != "freeze_mpy" else ".")
            if f == "package":
                assert (base / a[0] / "__init__.py").exists() or (base / a[0]).is_dir()
                frozen.add(a[0])
            elif f == "module":
                assert (base / a[0]).is_file()
                frozen.add(a[0])
            elif f == "freeze_mpy":
                for mpy in a[1]:
                    assert (manifest.parent / a[0] / mpy).is_file(), mpy
                    frozen.add(mpy)
        fw = ROOT / "firmware"
        wanted = {p.name for p in fw.iterdir() if p.is_dir() and p.name != "__pycache__"}
        wanted |= {p.name for p in fw.glob("*.py") if p.name != "main.py"} | {"board.mpy", "app.mpy"}
        assert frozen == wanted, f"{name}: frozen {sorted(frozen)}, firmware has {sorted(wanted)}"
