# The sim board's flash: a file-backed block device with NOR semantics (erase sets 0xFF), every
# write going straight to the file (no caching here), so killing the process is a power cut at
# whatever littlefs was doing. littlefs2 is mounted on it at /flash, as on ESP32/RP2040.
import os
import sys

import vfs
from micropython import const

BLOCK_SIZE = const(4096)
DEFAULT_BLOCKS = const(512)  # 2 MiB, like the ESP32 `vfs` partition of a 4 MiB module

# ioctl ops of MicroPython's block device protocol
_IOCTL_BLOCK_COUNT = const(4)
_IOCTL_BLOCK_SIZE = const(5)
_IOCTL_BLOCK_ERASE = const(6)


class FileBlockDevice:
    def __init__(self, path, blocks=DEFAULT_BLOCKS):
        try:
            size = os.stat(path)[6]
        except OSError:
            size = 0
        self.created = size < BLOCK_SIZE * 2
        if self.created:
            with open(path, "wb") as f:  # sparse: reads 0x00 until littlefs formats it
                f.seek(blocks * BLOCK_SIZE - 1)
                f.write(b"\x00")
            size = blocks * BLOCK_SIZE
        self.blocks = size // BLOCK_SIZE
        self._f = open(path, "r+b")
        # littlefs may call us from a finaliser with the heap locked: nothing here may allocate.
        self._erased = b"\xff" * BLOCK_SIZE
        self.reads = 0
        self.writes = 0
        self.erases = 0

    def readblocks(self, block, buf, offset=0):
        self._f.seek(block * BLOCK_SIZE + offset)
        self._f.readinto(buf)
        self.reads += 1

    def writeblocks(self, block, buf, offset=None):
        if offset is None:  # simple protocol: whole blocks, erase first
            n = len(buf) // BLOCK_SIZE
            i = 0
            while i < n:
                self.ioctl(_IOCTL_BLOCK_ERASE, block + i)
                i += 1
            offset = 0
        self._f.seek(block * BLOCK_SIZE + offset)
        self._f.write(buf)
        self.writes += 1

    def ioctl(self, op, arg):
        if op == _IOCTL_BLOCK_COUNT:
            return self.blocks
        if op == _IOCTL_BLOCK_SIZE:
            return BLOCK_SIZE
        if op == _IOCTL_BLOCK_ERASE:
            self._f.seek(arg * BLOCK_SIZE)
            self._f.write(self._erased)
            self.erases += 1
            return 0
        return 0  # init, deinit, sync: nothing is cached

    def close(self):
        self._f.close()


def mount(image, mountpoint="/flash", blocks=DEFAULT_BLOCKS):
    """Mount littlefs2 from `image` (created if missing, formatted if it does not mount)."""
    dev = FileBlockDevice(image, blocks)
    try:
        vfs.mount(vfs.VfsLfs2(dev), mountpoint)
    except OSError as e:
        if not dev.created:  # an image that existed and does not mount: say so, loudly
            sys.stderr.write("SIM: flash image %s does not mount (%r): formatting\n" % (image, e))
        vfs.VfsLfs2.mkfs(dev)
        vfs.mount(vfs.VfsLfs2(dev), mountpoint)
    return dev


def unmount(dev, mountpoint="/flash"):
    try:
        vfs.umount(mountpoint)
    except OSError:
        pass
    dev.close()
