# MicroPython entry point of the simulated charger: `micropython -m sim_boot ARGS.json [IMAGE]`,
# started by tools/sim.py. With IMAGE (build/sim.romfs) the app runs as on a real board: from a
# ROMFS image mounted at /rom, which takes the place of build/sim on sys.path. On the Unix port the
# image's bytes sit in the heap (a board keeps them in flash): they are read first, and every heap
# figure leaves them out. This launcher also notes the heap the bare interpreter uses, so that the
# sim's own share can be told apart from the platform's (docs/SIM.md); sim_run does the rest.
import gc
import sys


def _mount_rom(path):
    """Mount the ROMFS image at /rom in place of this module's directory on sys.path; returns the
    heap its bytes take."""
    import os

    import vfs

    gc.collect()
    before = gc.mem_alloc()
    image = bytearray(os.stat(path)[6])  # allocated first: one block at the bottom of the heap
    taken = gc.mem_alloc() - before
    with open(path, "rb") as f:
        f.readinto(image)
    vfs.mount(vfs.VfsRom(image), "/rom")
    here = __file__[: __file__.rfind("/")]
    sys.path[sys.path.index(here)] = "/rom"
    return taken


_rom = _mount_rom(sys.argv[2]) if len(sys.argv) > 2 else 0
gc.collect()
_base = gc.mem_alloc() - _rom  # the interpreter and this launcher

import sim_run  # noqa: E402

sys.exit(sim_run.boot(sys.argv, _base, _rom))
