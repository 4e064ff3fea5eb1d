# Append-only journal of messages that must not be lost (OCPP transaction messages): a record is
# on flash when append() returns, survives a power cut at any byte, and is handed out in order
# until it is done.
#
# <directory>/log: a sequence of records, each an 11-byte header and a body:
#   crc32 u32 | body length u16 | kind u8 | seq u32      (little-endian; the CRC covers the
#                                                          header after itself and the body)
#   MSG, MSG_DROPPABLE  body = compact JSON [action, payload, tx]
#   FLOOR               first record of a compacted file: seqs up to `seq` were issued (the
#                       records that carried them may be gone), so they are never reused
# An append opens the file, writes one record and closes it: littlefs commits a file at close,
# atomically, so a power cut leaves the earlier length. Where a file system can tear a write,
# the CRC catches it: on load a record that fails its CRC is skipped (the scan moves on a byte at
# a time to the next valid record) and the file is rewritten without it. MicroPython cannot
# truncate a file, so every rewrite is a compaction: the records not done are copied to a temp
# file that is renamed over the log.
#
# <directory>/done0 and done1: the done cursor, seq u32 + its crc32, written in turn. Delivery is
# in order, so "every record up to seq is done" says it all. 8 bytes fit inside littlefs
# metadata: a done() is one small metadata commit, where appending to the log would copy its
# last block. A torn cursor write leaves the other slot, one record behind: that record is sent
# again rather than lost.
#
# RAM holds counters and the offset of the oldest record not done, never the records: first()
# and records() read them from the file.
import binascii
import json
import struct

from micropython import const

import lazy
from log import log
from store import atomic

HDR = const(11)
_FORMAT = "<IHBI"
MSG = const(1)
MSG_DROPPABLE = const(2)
FLOOR = const(3)
MAX_BODY = const(65535)
CHUNK = const(128)
_COMPACT = (",", ":")


def _u32(b, i):
    return b[i] | b[i + 1] << 8 | b[i + 2] << 16 | b[i + 3] << 24


class Journal:
    def __init__(self, directory, max_bytes=24576):
        atomic.makedirs(directory)
        self.directory = directory
        self.max_bytes = max_bytes  # appends thin droppable records to stay under it
        self.dropped = 0  # droppable records thinned away (or refused) since construction
        self._path = directory + "/log"
        self._cursor_path = directory + "/done"
        self._hdr = bytearray(HDR)
        self._hdr_tail = memoryview(self._hdr)[4:]  # what the CRC covers of the header
        self._buf = bytearray(CHUNK)
        self._mv = memoryview(self._buf)
        self._cur = bytearray(8)  # a done cursor slot: seq, crc32 of the seq
        self._cur_seq = memoryview(self._cur)[:4]
        self._gen = 0  # counts compactions: file offsets held by a records() iterator are stale
        atomic.clean_temp(directory)  # a compaction or an id map write cut short: the files are intact
        lazy.load("store.journal_upkeep").load(self)

    # --- public -----------------------------------------------------------------------------
    def __len__(self):
        return self._count

    def append(self, action, payload, tx=None, droppable=False):
        """Write a record; it is on flash when this returns. Its seq, or None when the record is
        droppable and there is no room even after thinning the others. OSError when the flash
        is full (nothing is written then)."""
        body = json.dumps([action, payload, tx], separators=_COMPACT).encode()
        if len(body) > MAX_BODY:
            raise ValueError("record too large")
        need = HDR + len(body)
        if (
            self._size + need > self.max_bytes
            and not lazy.load("store.journal_upkeep").make_room(self, need)
            and droppable
        ):
            self.dropped += 1
            log("journal: full, dropped a new", action, "record")
            return None
        seq = self._next_seq
        kind = MSG_DROPPABLE if droppable else MSG
        with open(self._path, "ab") as f:
            self._put(f, kind, seq, body)
        self._next_seq = seq + 1
        self._size += need
        self._live += need
        self._count += 1
        if droppable:
            self._droppable += 1
        return seq

    def first(self):
        """(seq, action, payload, tx) of the oldest record not done, or None."""
        if not self._count:
            return None
        found = self._read(self._head, self._done)
        if found is None:
            return None
        rec, start, end, kind = found
        self._head = start
        self._head_info = (rec[0], end, kind)
        return rec

    def done(self, seq):
        """Record `seq` (the oldest not done) is delivered or given up: never returned again.
        A seq already gone (done, or thinned while it was being sent) is ignored."""
        if seq <= self._done:
            return
        if self._head_info is None and self.first() is None:
            return  # thinned away
        head_seq, end, kind = self._head_info
        if seq < head_seq:
            return  # thinned away
        if seq > head_seq:
            raise ValueError("done() out of order")
        cur = self._cur
        struct.pack_into("<I", cur, 0, seq)
        struct.pack_into("<I", cur, 4, binascii.crc32(self._cur_seq))
        self._slot ^= 1
        with open(self._cursor_path + str(self._slot), "wb") as f:
            f.write(cur)
        self._done = seq
        self._live -= end - self._head
        self._count -= 1
        if kind == MSG_DROPPABLE:
            self._droppable -= 1
        self._head = end
        self._head_info = None
        if self._size - self._live >= self.max_bytes // 4:
            lazy.load("store.journal_upkeep").compact(self, False)

    def records(self):
        """Iterator over (seq, action, payload, tx) of the records not done, oldest first, read
        from the file one at a time. Records appended or done meanwhile are seen."""
        pos, gen, after = self._head, self._gen, self._done
        while self._count:
            if gen != self._gen:  # compacted: offsets changed, seqs did not
                pos, gen = self._head, self._gen
            found = self._read(pos, max(after, self._done))
            if found is None:
                return
            rec, _, pos, _ = found
            after = rec[0]
            yield rec

    # --- the file ---------------------------------------------------------------------------
    def _put(self, f, kind, seq, body):
        hdr = self._hdr
        struct.pack_into(_FORMAT, hdr, 0, 0, len(body), kind, seq)
        struct.pack_into("<I", hdr, 0, binascii.crc32(body, binascii.crc32(self._hdr_tail)))
        f.write(hdr)
        if body:
            f.write(body)

    def _check(self, f, pos, end):
        # Body length of the valid record at pos, or -1 (torn, corrupt, or not a record start).
        f.seek(pos)
        hdr = self._hdr
        if f.readinto(hdr) != HDR:
            return -1
        n = hdr[4] | hdr[5] << 8
        kind = hdr[6]
        if not MSG <= kind <= FLOOR or pos + HDR + n > end or (kind == FLOOR and n):
            return -1
        crc = binascii.crc32(self._hdr_tail)
        buf = self._buf
        left = n
        while left:
            k = f.readinto(buf, min(left, CHUNK))
            if not k:
                return -1
            crc = binascii.crc32(buf if k == CHUNK else self._mv[:k], crc)
            left -= k
        return n if crc == _u32(hdr, 0) else -1

    def _walk(self, f, pos, end):
        # (offset, kind, seq, body length) of each valid record from pos on. Bytes that do not
        # start one are skipped one at a time; JSON text never passes the kind check, so the
        # scan through a corrupt record is quick.
        hdr = self._hdr
        while pos + HDR <= end:
            n = self._check(f, pos, end)
            if n < 0:
                pos += 1
                continue
            yield pos, hdr[6], _u32(hdr, 7), n
            pos += HDR + n

    def _open_log(self):
        # (the log opened for reading, its size), or None while there is no log.
        try:
            f = open(self._path, "rb")
        except OSError:
            return None
        return f, f.seek(0, 2)

    def _read(self, pos, after):
        # The first record from pos on with a seq above `after`: (rec, start, end, kind), or None.
        o = self._open_log()
        if o is None:
            return None
        f, end = o
        with f:
            for start, kind, seq, n in self._walk(f, pos, end):
                if kind != FLOOR and seq > after:
                    f.seek(start + HDR)
                    action, payload, tx = json.loads(f.read(n))
                    return (seq, action, payload, tx), start, start + HDR + n, kind
        return None
