# The sim board's flash: a file-backed block device with NOR semantics (erase sets 0xFF), every
# write going straight to the file (no caching here), so killing the process is a power cut at
# whatever littlefs was doing. sim_setup mounts littlefs2 on it at /flash, as on ESP32/RP2040.
# Only the extended block protocol (offsets, explicit erase) is implemented: littlefs uses it.
from micropython import const

BLOCK_SIZE = const(4096)
DEFAULT_BLOCKS = const(512)  # 2 MiB, like the ESP32 `vfs` partition of a 4 MiB module
_CHUNK = const(128)  # an erase writes this many 0xFF bytes at a time (small resident buffer)


class FileBlockDevice:
    def __init__(self, f, blocks):
        self._f = f  # the image, opened "r+b"
        self._n = blocks
        # littlefs may call us from a finaliser with the heap locked: nothing here may allocate.
        self._ff = b"\xff" * _CHUNK

    def readblocks(self, block, buf, offset=0):
        self._f.seek(block * BLOCK_SIZE + offset)
        self._f.readinto(buf)

    def writeblocks(self, block, buf, offset=0):
        self._f.seek(block * BLOCK_SIZE + offset)
        self._f.write(buf)

    def ioctl(self, op, arg):
        # 4: block count, 5: block size, 6: erase; init, deinit and sync have nothing to do.
        if op == 4:
            return self._n
        if op == 5:
            return BLOCK_SIZE
        if op == 6:
            self._f.seek(arg * BLOCK_SIZE)
            i = 0
            while i < BLOCK_SIZE:
                self._f.write(self._ff)
                i += _CHUNK
        return 0
