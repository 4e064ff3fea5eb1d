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


def create(target, force_without_pip=False):
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
        wheel = fetch_pip_wheel(tmp)
        subprocess.check_call([py, str(wheel / "pip"), "install", "-q", str(wheel)])


if __name__ == "__main__":
    create(sys.argv[1] if len(sys.argv) > 1 else ".venv", force_without_pip="--without-ensurepip" in sys.argv)
