# One-shot start-up of the simulated charger (used by sim_run, then dropped from memory): read
# the arguments tools/sim.py wrote, mount the flash image, copy the certificates into the flash,
# and take the initial state of the world from the hardware bus before the firmware starts.
import gc
import json
import os
import sys

import vfs

import sim_flash

CERT_FILES = ("csms_root.der", "cp_cert.der", "cp_key.der")


def _makedirs(path):
    cur = ""
    for part in path.split("/"):
        if part:
            cur += "/" + part
            try:
                os.mkdir(cur)
            except OSError:
                pass


def install_certs(certs, directory):
    """Copy the DER files tools/sim.py prepared into the flash (when they differ)."""
    if not certs:
        return
    _makedirs(directory)
    for name in CERT_FILES:
        src = certs.get(name)
        if not src:
            continue
        with open(src, "rb") as f:
            data = f.read()
        dst = directory + "/" + name
        try:
            with open(dst, "rb") as f:
                if f.read() == data:
                    continue
        except OSError:
            pass
        with open(dst + ".tmp", "wb") as f:
            f.write(data)
        os.rename(dst + ".tmp", dst)


def mount(image, mountpoint="/flash", blocks=sim_flash.DEFAULT_BLOCKS):
    """Mount littlefs2 from the file `image` (created if missing, formatted if it does not
    mount). Returns (the open image file: close it after vfs.umount, the heap the mounted
    filesystem holds: a real board has it too)."""
    try:
        size = os.stat(image)[6]
    except OSError:
        size = 0
    created = size < sim_flash.BLOCK_SIZE * 2
    if created:
        with open(image, "wb") as f:  # sparse: reads 0x00 until littlefs formats it
            f.seek(blocks * sim_flash.BLOCK_SIZE - 1)
            f.write(b"\x00")
        size = blocks * sim_flash.BLOCK_SIZE
    f = open(image, "r+b")
    dev = sim_flash.FileBlockDevice(f, size // sim_flash.BLOCK_SIZE)
    gc.collect()
    cost = gc.mem_alloc()
    try:
        fs = vfs.VfsLfs2(dev)  # raises when there is no filesystem
    except OSError as e:
        if not created:  # an image that existed and does not mount: say so, loudly
            sys.stderr.write("SIM: flash image %s does not mount (%r): formatting\n" % (image, e))
        vfs.VfsLfs2.mkfs(dev)
        fs = vfs.VfsLfs2(dev)
    vfs.mount(fs, mountpoint)
    fs = None
    gc.collect()
    return f, gc.mem_alloc() - cost


def unmount(f, mountpoint="/flash"):
    try:
        vfs.umount(mountpoint)
    except OSError:
        pass
    f.close()


def start(argv, base):
    """Everything before the firmware runs: the arguments file read, asyncio loaded, the flash
    mounted, certificates copied, the board made and given the world's initial state.
    Returns (board, stdin stream, preset, platform heap, image file, mount point), or an exit
    status. `base` is the heap the bare interpreter holds; with asyncio and the littlefs mount
    (a real board has them too) it makes the platform figure (docs/SIM.md)."""
    if len(argv) < 2:
        sys.stderr.write("SIM: usage: micropython -m sim_boot ARGS.json [IMAGE.romfs]\n")
        return 2
    with open(argv[1]) as f:
        args = json.load(f)
    gc.collect()
    platform = gc.mem_alloc()
    import asyncio

    rd = asyncio.StreamReader(sys.stdin.buffer)  # loads asyncio's stream module (firmware's too)
    gc.collect()
    platform = base + gc.mem_alloc() - platform
    import board

    point = args.get("flash_mount", "/flash")
    img, cost = mount(args["flash_image"], point, args.get("flash_blocks", sim_flash.DEFAULT_BLOCKS))
    try:
        install_certs(args.get("certs"), point + "/certs")
        b = board.Board(args, sys.stdout.buffer.write)
        if not initial_state(b):
            unmount(img, point)
            return 0  # stopped before the firmware started
    except BaseException:
        unmount(img, point)
        raise
    return b, rd, preset(args), platform + cost, img, point


def preset(args):
    """Configuration keys written before boot: URL and id from the options, then --set."""
    p = {}
    if args.get("csms"):
        p["CentralSystemURL"] = args["csms"]
    if args.get("id"):
        p["ChargePointId"] = args["id"]
    p.update(args.get("set") or {})
    return p


def initial_state(board):
    """Apply the supervisor's pushes up to ["g"] (go). False on EOF (we are being stopped)."""
    rd = sys.stdin.buffer
    while True:
        line = rd.readline()
        if not line:
            return False
        if line == b'["g"]\n':
            return True
        board.feed(line)
