# The journal's upkeep (store/journal.py), loaded when it is needed and dropped after: loading
# and repairing the log at boot, and compacting it (rewriting the records not done, thinning
# droppable ones when the journal is full). These work on the Journal's own fields.
import binascii
import os

from log import log
from store import atomic
from store.journal import CHUNK, FLOOR, HDR, MSG_DROPPABLE, _u32


def load_cursor(j):
    # The done cursor: the higher of the two valid slots; the next write goes to the other.
    j._done = 0  # every record with a seq up to this one is done
    j._slot = 1
    cur = j._cur
    for slot in (0, 1):
        try:
            with open(j._cursor_path + str(slot), "rb") as f:
                n = f.readinto(cur)
        except OSError:
            continue
        seq = _u32(cur, 0)
        if n == 8 and _u32(cur, 4) == binascii.crc32(j._cur_seq) and seq > j._done:
            j._done = seq
            j._slot = slot


def load(j):
    load_cursor(j)
    j._head = 0  # offset of the oldest record not done (everything before it is done)
    j._head_info = None  # (seq, end offset, kind) of that record once read
    top = 0
    size = 0
    intact = True
    o = j._open_log()
    if o is not None:
        f, size = o
        with f:
            expect = 0
            for pos, kind, seq, n in j._walk(f, 0, size):
                intact = intact and pos == expect
                expect = pos + HDR + n
                if seq > top:
                    top = seq
            intact = intact and expect == size
    j._next_seq = max(top, j._done) + 1
    j._size = size
    if not intact:
        log("journal: repairing", j._path, "(torn or corrupt record)")
        compact(j, False)
        return
    live = count = droppable = 0
    head = size
    if size:
        with open(j._path, "rb") as f:
            for pos, kind, seq, n in j._walk(f, 0, size):
                if kind != FLOOR and seq > j._done:
                    head = min(head, pos)
                    live += HDR + n
                    count += 1
                    droppable += kind == MSG_DROPPABLE
    j._head = head
    j._live = live
    j._count = count
    j._droppable = droppable


def make_room(j, need):
    # Compact, and thin droppable records while that is not enough. True when `need` fits.
    while j._size + need > j.max_bytes:
        thin = j._droppable > 0 and j._live + HDR + need > j.max_bytes
        if not thin and j._size <= j._live + HDR:
            return False  # only records that may not be dropped left
        compact(j, thin)
    return True


def compact(j, thin):
    # Rewrite the log with the records not done; with `thin`, drop every second droppable
    # one, oldest first (the 1st, 3rd, ...).
    tmp = j._path + atomic.TMP_SUFFIX
    buf = j._buf
    live = count = droppable = dropped = 0
    first_dropped = last_dropped = 0
    with open(tmp, "wb") as out:
        j._put(out, FLOOR, j._next_seq - 1, b"")
        o = j._open_log()
        if o is not None:
            f, end = o
            with f:
                for pos, kind, seq, n in j._walk(f, j._head, end):
                    if kind == FLOOR or seq <= j._done:
                        continue
                    if kind == MSG_DROPPABLE:
                        if thin and not (droppable + dropped) & 1:
                            dropped += 1
                            first_dropped = first_dropped or seq
                            last_dropped = seq
                            continue
                        droppable += 1
                    f.seek(pos)
                    left = HDR + n
                    while left:
                        k = f.readinto(buf, min(left, CHUNK))
                        out.write(buf, k)
                        left -= k
                    live += HDR + n
                    count += 1
    os.rename(tmp, j._path)
    j._gen += 1
    j._size = HDR + live
    j._live = live
    j._count = count
    j._droppable = droppable
    j._head = HDR
    j._head_info = None
    if dropped:
        j.dropped += dropped
        log("journal: full, dropped", dropped, "droppable records: seq", first_dropped, "to", last_dropped)
