"""Put a board's build onto the board with mpremote: the app as a ROMFS image, the boot stub and
the fallback copy on littlefs, then soft-reset it.

  make deploy BOARD=esp32 PORT=/dev/ttyUSB0             # ROMFS image + /main.py + /fallback/
  make deploy BOARD=esp32 PORT=/dev/ttyUSB0 DRY_RUN=1   # what would be written, and the command
  make deploy BOARD=esp32 PORT=/dev/ttyUSB0 MPY_ONLY=1  # no ROMFS partition: littlefs only

The image (build/<board>.romfs, tools/build.py) goes to the board's ROMFS partition with
`mpremote romfs deploy`: mounted at /rom, its bytecode and constants stay in flash. The boot stub
(/main.py) runs the app from /rom, or from /fallback when the image is missing or damaged, and
says so on the console (docs/BOARDS.md). Stock ESP32 and Pico W firmware has no ROMFS partition:
that needs a MicroPython build with one (docs/BOARDS.md), or MPY_ONLY=1, which runs the app from
/fallback at about twice the heap.

mpremote skips littlefs files whose SHA-256 on the board already matches, so a redeploy copies
only what changed. The board's own settings (/flash: config, certificates) are never touched.
"""

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from build import SIM, build, romfs

ROOT = Path(__file__).resolve().parent.parent
MPREMOTE = Path(sys.executable).parent / "mpremote"


def littlefs_plan(out):
    """(directories, [(source file, path on the board)]) for the littlefs part of the build."""
    files = sorted(p for p in out.rglob("*") if p.is_file())
    dirs = sorted({q for p in files for q in p.relative_to(out).parents} - {Path(".")})
    return dirs, [(p, ":" + str(p.relative_to(out))) for p in files]


def mpremote_command(port, image, dirs, files):
    """One mpremote run: write the ROMFS image, make directories, copy each file, soft-reset."""
    cmd = [str(MPREMOTE), "connect", port]
    if image is not None:
        cmd += ["romfs", "deploy", str(image), "+"]
    for d in dirs:
        # `exec` rather than `mkdir`, so that an existing directory is not an error
        parent, name = (str(d.parent) if d.parent != Path(".") else ""), d.name
        cmd += ["exec", f"import os;'{name}' in os.listdir('/{parent}') or os.mkdir('/{d}')", "+"]
    for src, dst in files:
        cmd += ["cp", str(src), dst, "+"]
    return cmd + ["soft-reset"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", required=True)
    ap.add_argument("--port", help="serial port of the board, e.g. /dev/ttyUSB0 (or an mpremote shortcut)")
    ap.add_argument("--dry-run", action="store_true", help="list what would be written and the command")
    ap.add_argument(
        "--mpy-only", action="store_true", help="no ROMFS image: littlefs only (no ROMFS partition)"
    )
    args = ap.parse_args()
    if args.board == SIM:
        raise SystemExit("the sim board runs on this machine (tools/sim.py): nothing to deploy")
    out = build(args.board, quiet=True)
    image = None if args.mpy_only else romfs(args.board, quiet=True)
    dirs, files = littlefs_plan(out)
    cmd = mpremote_command(args.port or "PORT", image, dirs, files)
    total = sum(src.stat().st_size for src, _ in files)
    if args.dry_run:
        if image is not None:
            print(f"{image.stat().st_size:8d}  {image.relative_to(ROOT)} -> ROMFS partition (/rom)")
        for src, dst in files:
            print(f"{src.stat().st_size:8d}  {src.relative_to(ROOT)} -> {dst}")
        print(f"littlefs: {len(files)} files, {total} bytes, {len(dirs)} directories")
        print("command:", shlex.join(cmd))
        return 0
    if not args.port:
        raise SystemExit("deploy needs PORT=... (for example PORT=/dev/ttyUSB0), or DRY_RUN=1")
    what = "no ROMFS image" if image is None else f"ROMFS image {image.stat().st_size} bytes"
    print(f"deploying {what}, {len(files)} files ({total} bytes) to {args.port}")
    # mpremote prints one line per copied file: that is the progress display.
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
