"""`make` makes its virtualenv even where python3 has no ensurepip (Debian without python3-venv):
pip is then installed from its wheel. The test brings its own wheel, made from the pip of this
venv (a wheel is a zip of the package and its dist-info), so it downloads nothing."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pip

ROOT = Path(__file__).resolve().parent.parent


def _wheel_of_installed_pip(directory):
    site = Path(pip.__file__).resolve().parent.parent
    info = next(site.glob(f"pip-{pip.__version__}.dist-info"))
    wheel = Path(directory) / f"pip-{pip.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for top in (site / "pip", info):
            for f in top.rglob("*"):
                if f.is_file() and "__pycache__" not in f.parts:
                    z.write(f, f.relative_to(site))
    return wheel


def test_venv_without_ensurepip_gets_pip_from_a_wheel(tmp_path):
    wheel = _wheel_of_installed_pip(tmp_path)
    target = tmp_path / "venv"
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bootstrap_venv.py"), str(target), "--without-ensurepip"]
        + ["--pip-wheel", str(wheel)],
        check=True,
        timeout=300,
    )
    python = target / "bin" / "python"
    out = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith(f"pip {pip.__version__} "), out
