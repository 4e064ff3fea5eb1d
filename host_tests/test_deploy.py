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
