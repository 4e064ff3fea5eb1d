"""Create .venv/ with pip, on a machine that may have nothing but python3 (>= 3.11).

Debian's python3 lacks `ensurepip` unless python3-venv is installed; then the venv is made
without pip and pip is installed from its wheel on PyPI (a wheel runs as a zip: `python
pip.whl/pip install pip`). Standard library only: this runs before anything is installed.
"""

import json
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import venv
from pathlib import Path

PIP_JSON = "https://pypi.org/pypi/pip/json"


def venv_python(target):
    return Path(target) / "bin" / "python"


def fetch_pip_wheel(directory):
    with urllib.request.urlopen(PIP_JSON, timeout=60) as r:
        info = json.load(r)
    wheel = next(f for f in info["urls"] if f["packagetype"] == "bdist_wheel")
    path = Path(directory) / wheel["filename"]
    with urllib.request.urlopen(urllib.parse.urljoin(PIP_JSON, wheel["url"]), timeout=120) as r:
        path.write_bytes(r.read())
    return path


def create(target, force_without_pip=False, pip_wheel=None):
    """Make the venv at `target` with pip. Without ensurepip, pip comes from `pip_wheel` (a
    local wheel) or PyPI."""
    py = venv_python(target)
    if py.exists() and subprocess.call([py, "-m", "pip", "--version"], stdout=subprocess.DEVNULL) == 0:
        return
    try:
        if force_without_pip:
            raise RuntimeError("asked to bootstrap pip from PyPI")
        venv.EnvBuilder(with_pip=True, clear=True).create(target)
        return
    except (subprocess.CalledProcessError, RuntimeError) as e:
        print(f"venv with ensurepip failed ({e}); installing pip from PyPI", file=sys.stderr)
    venv.EnvBuilder(with_pip=False, clear=True).create(target)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = Path(pip_wheel) if pip_wheel else fetch_pip_wheel(tmp)
        subprocess.check_call([py, str(wheel / "pip"), "install", "-q", str(wheel)])


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", nargs="?", default=".venv")
    ap.add_argument(
        "--without-ensurepip", action="store_true", help="install pip as if ensurepip were missing"
    )
    ap.add_argument("--pip-wheel", help="a pip wheel to install instead of downloading one")
    args = ap.parse_args()
    create(args.target, force_without_pip=args.without_ensurepip, pip_wheel=args.pip_wheel)
