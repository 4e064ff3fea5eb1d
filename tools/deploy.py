"""Copy a board's .mpy build to the board with mpremote, then soft-reset it.

  make deploy BOARD=esp32 PORT=/dev/ttyUSB0          # copy and restart
  make deploy BOARD=esp32 PORT=/dev/ttyUSB0 DRY_RUN=1  # list what would be copied

mpremote skips files whose SHA-256 on the board already matches, so a redeploy copies only
what changed. The board's own settings (/flash config, certificates) are never touched.

  tools/deploy.py --board esp32 --romfs --port /dev/ttyUSB0 [--dry-run]

writes the .mpy tree as a ROMFS image instead (`mpremote romfs build --no-mpy`, then
`mpremote romfs deploy`): imported from /rom, bytecode stays in flash (docs/BOARDS.md). Stock
ESP32 and Pico W firmware has no ROMFS partition: this needs a MicroPython build with one.
"""

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from build import build

ROOT = Path(__file__).resolve().parent.parent
MPREMOTE = Path(sys.executable).parent / "mpremote"


def deploy_plan(out):
    """(source file, path on the board) for every file of the build, directories first."""
    files = sorted(p for p in out.rglob("*") if p.is_file())
    dirs = sorted({p.parent.relative_to(out) for p in files} - {Path(".")})
    return dirs, [(p, ":" + str(p.relative_to(out))) for p in files]


def mpremote_commands(port, dirs, files):
    """One mpremote run: connect, make directories, copy each file, soft-reset."""
    cmd = [str(MPREMOTE), "connect", port]
    for d in dirs:
        # `exec` rather than `mkdir`, so that an existing directory is not an error
        parent, name = (str(d.parent) if d.parent != Path(".") else ""), d.name
        cmd += ["exec", f"import os;'{name}' in os.listdir('{parent}') or os.mkdir('{d}')", "+"]
    for src, dst in files:
        cmd += ["cp", str(src), dst, "+"]
    return cmd + ["soft-reset"]


def romfs_commands(port, out):
    """Build the image from the precompiled tree (--no-mpy: mpremote would recompile without -O2),
    then write it to the board's ROMFS partition and soft-reset."""
    image = out.parent / f"{out.name}.romfs"
    build = [str(MPREMOTE), "romfs", "--no-mpy", "-o", str(image), "build", str(out)]
    return build, [str(MPREMOTE), "connect", port, "romfs", "deploy", str(image), "+", "soft-reset"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", required=True)
    ap.add_argument("--port", help="serial port of the board, e.g. /dev/ttyUSB0 (or an mpremote shortcut)")
    ap.add_argument("--dry-run", action="store_true", help="list the files and the mpremote command")
    ap.add_argument("--romfs", action="store_true", help="deploy as a ROMFS image (needs a ROMFS partition)")
    args = ap.parse_args()
    out = build(args.board, quiet=True)
    if args.romfs:
        cmds = romfs_commands(args.port or "PORT", out)
        if args.dry_run:
            for c in cmds:
                print("command:", shlex.join(c))
            return 0
        if not args.port:
            raise SystemExit("deploy --romfs needs PORT=... (for example PORT=/dev/ttyUSB0), or DRY_RUN=1")
        return subprocess.call(cmds[0]) or subprocess.call(cmds[1])
    dirs, files = deploy_plan(out)
    total = sum(src.stat().st_size for src, _ in files)
    if args.dry_run:
        for src, dst in files:
            print(f"{src.stat().st_size:8d}  {src.relative_to(ROOT)} -> {dst}")
        print(f"{len(files)} files, {total} bytes, {len(dirs)} directories")
        print("command:", shlex.join(mpremote_commands(args.port or "PORT", dirs, files)))
        return 0
    if not args.port:
        raise SystemExit("deploy needs PORT=... (for example PORT=/dev/ttyUSB0), or DRY_RUN=1")
    cmd = mpremote_commands(args.port, dirs, files)
    print(f"deploying {len(files)} files ({total} bytes) from {out.relative_to(ROOT)} to {args.port}")
    # mpremote prints one line per copied file: that is the progress display.
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
