"""`make` makes its virtualenv even where python3 has no ensurepip (Debian without python3-venv)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_venv_without_ensurepip_gets_pip_from_pypi(tmp_path):
    target = tmp_path / "venv"
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bootstrap_venv.py"), str(target), "--without-ensurepip"],
        check=True,
        timeout=300,
    )
    python = target / "bin" / "python"
    out = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("pip "), out
