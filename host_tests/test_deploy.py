"""make deploy and the real boards' build: the app as a ROMFS image, the boot stub and the fallback
copy on littlefs; the boot stub runs the app from /rom, else from /fallback, and says so."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = Path(sys.executable).parent / "micropython"


def _tools():
    sys.path.insert(0, str(ROOT / "tools"))
    import build

    return build


def _dry_run(*extra):
    return subprocess.run(
        [sys.executable, "tools/deploy.py", "--board", "esp32", "--dry-run", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_dry_run_writes_the_image_the_stub_and_the_fallback():
    out = _dry_run()
    build = _tools()
    image = build.image_path("esp32")
    lines = out.splitlines()
    assert lines[0].split()[1:] == [str(image.relative_to(ROOT)), "->", "ROMFS", "partition", "(/rom)"]
    littlefs = ROOT / "build" / "esp32"
    built = sorted(str(p.relative_to(ROOT)) for p in littlefs.rglob("*") if p.is_file())
    listed = sorted(line.split()[1] for line in lines if " -> :" in line)
    assert listed == built
    assert [n for n in listed if n.endswith(".py")] == ["build/esp32/main.py"], "only the stub is source"
    assert "build/esp32/fallback/app.mpy" in listed
    cmd = shlex.split(lines[-1].removeprefix("command: "))
    assert cmd[1:6] == ["connect", "PORT", "romfs", "deploy", str(image)]
    assert cmd[-1] == "soft-reset"
    assert ["cp", str(littlefs / "main.py"), ":main.py"] == cmd[cmd.index(str(littlefs / "main.py")) - 1 :][
        :3
    ]


def test_mpy_only_deploys_no_image():
    out = _dry_run("--mpy-only")
    assert "ROMFS" not in out and "romfs" not in out.splitlines()[-1]
    assert "-> :fallback/app.mpy" in out


def test_deploy_refuses_without_port_and_for_the_sim():
    res = subprocess.run(
        [sys.executable, "tools/deploy.py", "--board", "esp32"], cwd=ROOT, capture_output=True, text=True
    )
    assert res.returncode != 0 and "PORT" in res.stderr
    res = subprocess.run(
        [sys.executable, "tools/deploy.py", "--board", "sim"], cwd=ROOT, capture_output=True, text=True
    )
    assert res.returncode != 0 and "nothing to deploy" in res.stderr


def test_romfs_image_holds_the_app_and_its_tables_but_not_the_stub():
    build = _tools()
    image = build.romfs("esp32", quiet=True)
    data = image.read_bytes()
    assert data[:3] == b"\xd2\xcd\x31", "a ROMFS image"
    for name in (b"app.mpy", b"board.mpy", b"schema_tables.mpy", b"keys.mpy"):
        assert name in data, name
    assert b"main.py" not in data, "the boot stub lives on littlefs, never in the image"
    app = build.app_dir("esp32")
    assert not [p for p in app.rglob("*") if p.is_file() and p.suffix != ".mpy"], "no data files beside code"


# ---- real boards: the boot stub (build/<board>/main.py) ----


def test_each_board_gets_only_its_own_port_drivers():
    build = _tools()
    for board, has_rp2 in (("esp32", False), ("pico_w", True), ("sim", True)):
        out = build.app_dir(board)
        build.build(board, quiet=True)
        assert (out / "hal" / "pilot_rp2.mpy").exists() == has_rp2, board
        assert (out / "hal" / "pilot.mpy").exists(), board


def test_real_board_build_boots_from_a_source_stub():
    build = _tools()
    out = build.build("esp32", quiet=True)
    stub = (out / "main.py").read_text()
    assert stub.startswith("#") and "app.run" in stub, "main.py is the boot stub, as source"
    assert (out / "fallback" / "app.mpy").read_bytes()[:1] == b"M", "the firmware's main is app.mpy"
    assert not (out / "fallback" / "main.mpy").exists(), "no main.mpy for the stub to shadow"
    assert len(stub) < 4000, "the stub is compiled on the device at every boot: keep it tiny"
    sim = build.build("sim", quiet=True)
    assert (sim / "main.mpy").exists() and not (sim / "main.py").exists() and not (sim / "app.mpy").exists()


# Runs the boot stub as /main.py runs on a board, after mounting the ROMFS image at /rom as the
# port does at boot (the image's bytes sit in RAM here: the Unix port has no ROMFS partition).
ROM_BOOT = """
import sys, os, vfs
image = bytearray(os.stat(sys.argv[3])[6])
with open(sys.argv[3], "rb") as f:
    f.readinto(image)
vfs.mount(vfs.VfsRom(image), "/rom")
del sys.argv[3:]
exec(open(STUB).read())  # as __main__, like /main.py at boot
"""


def _boot_stub(tmp_path, image=None):
    """Run build/esp32/main.py against the CSMS simulator until a backend Reset ends it in
    machine.reset(); returns (console output, the BootNotification, the flash directory)."""
    from csms import CsmsSimulator

    build = _tools()
    out = build.build("esp32", quiet=True)
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "site.json").write_text(
        json.dumps({"wifi_ssid": "site", "wifi_password": "pw", "ntp_host": None})
    )
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([str(ROOT / "host_tests" / "fakes"), ".frozen"])
    if image is None:
        cmd = [str(MICROPYTHON), "-X", "heapsize=512K", str(out / "main.py"), str(flash), str(out)]
    else:
        wrapper = tmp_path / "rom_boot.py"
        wrapper.write_text(ROM_BOOT.replace("STUB", repr(str(out / "main.py"))))
        # The littlefs root has no /fallback: the app can only come from the image.
        root = tmp_path / "empty"
        cmd = [str(MICROPYTHON), "-X", "heapsize=768K", str(wrapper), str(flash), str(root), str(image)]
    with CsmsSimulator(port=0, log_file=str(tmp_path / "csms.log")) as csms:
        preset = {"CentralSystemURL": csms.url, "ChargePointId": "STUB1", "SecurityProfile": 0}
        (flash / "preset.json").write_text(json.dumps(preset))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        try:
            boot = csms.wait_for_call("STUB1", "BootNotification", timeout=15)
            assert csms.call("STUB1", "Reset", {"type": "Soft"}) == {"status": "Accepted"}
            output = proc.communicate(timeout=15)[0].decode(errors="replace")
        finally:
            proc.kill()
            proc.wait()
        assert csms.violations == []
    return output, boot, flash


def test_boot_stub_runs_the_app_from_the_romfs_image(tmp_path):
    build = _tools()
    output, boot, _flash = _boot_stub(tmp_path, image=build.romfs("esp32", quiet=True))
    assert boot["chargePointModel"] == "ESP32-AC1"
    assert "no valid ROMFS image" not in output, output[-2000:]
    assert "machine.reset()" in output and "Traceback" not in output, output[-2000:]


def test_boot_stub_without_an_image_runs_the_fallback_and_says_so(tmp_path):
    output, boot, flash = _boot_stub(tmp_path)
    assert boot["chargePointModel"] == "ESP32-AC1"
    assert "boot: no valid ROMFS image (/rom/app.mpy)" in output and "/fallback" in output, output[-2000:]
    assert "machine.reset()" in output, f"a backend Reset ends in machine.reset(); output: {output[-2000:]}"
    assert "Traceback" not in output, output[-2000:]
    assert not (flash / "preset.json").exists(), "the preset is applied once, then removed"
    config = (flash / "config.json").read_text()
    assert "STUB1" in config, "the preset went into the persisted configuration"


def test_frozen_manifests_cover_the_firmware():
    calls = []
    build = _tools()
    for name in ("esp32", "pico_w"):
        build.build(name, quiet=True)
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
