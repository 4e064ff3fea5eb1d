# The transaction message journal: order, durability across reloads, torn and corrupt records,
# thinning, and RAM that does not grow with the journal.
import gc
import os

import vfs

import heapcheck
import mptmp
import sim_flash
import sim_setup
from store.journal import Journal

DIR = mptmp.path("mp_test_journal")
LOG = DIR + "/log"
HDR = 11  # record header bytes


def fresh(max_bytes=24576):
    try:
        for name in os.listdir(DIR):
            os.remove(DIR + "/" + name)
    except OSError:
        pass
    return Journal(DIR, max_bytes)


def size():
    return os.stat(LOG)[6]


def payload(i, pad=0):
    return {"connectorId": 1, "n": i, "pad": "x" * pad}


def actions(j):
    return [(r[1], r[2]["n"]) for r in j.records()]


def test_append_first_done_in_order_across_reload():
    j = fresh()
    assert j.first() is None and len(j) == 0
    s1 = j.append("StartTransaction", payload(1))
    s2 = j.append("MeterValues", payload(2), tx=s1, droppable=True)
    s3 = j.append("StopTransaction", payload(3), tx=s1)
    assert s1 < s2 < s3
    assert j.first() == (s1, "StartTransaction", payload(1), None)
    j = Journal(DIR)  # a reboot
    assert len(j) == 3
    assert list(j.records()) == [
        (s1, "StartTransaction", payload(1), None),
        (s2, "MeterValues", payload(2), s1),
        (s3, "StopTransaction", payload(3), s1),
    ]
    j.done(s1)
    assert j.first()[0] == s2
    j.done(s1)  # again: nothing happens
    j = Journal(DIR)
    assert len(j) == 2 and j.first()[0] == s2
    j.done(s2)
    j.done(s3)
    assert j.first() is None and len(j) == 0
    assert Journal(DIR).first() is None


def test_done_out_of_order_is_refused():
    j = fresh()
    a = j.append("StartTransaction", payload(1))
    b = j.append("StopTransaction", payload(2), tx=a)
    try:
        j.done(b)
    except ValueError:
        pass
    else:
        raise AssertionError("done() of a record behind the oldest was accepted")
    assert j.first()[0] == a and len(j) == 2


def test_done_writes_the_cursor_not_the_log_and_compaction_reclaims_it():
    j = fresh(max_bytes=4000)
    seqs = [j.append("MeterValues", payload(i, 60), droppable=True) for i in range(10)]
    before = size()
    j.done(seqs[0])
    assert size() == before  # 8 bytes in a cursor slot, no rewrite
    assert os.stat(DIR + "/done0")[6] == 8
    for s in seqs[1:]:
        j.done(s)
    # the done records passed max_bytes / 4 at some point: the log was rewritten smaller
    assert size() < before
    assert len(j) == 0


def test_seq_never_reused_after_compaction_and_reboot():
    j = fresh(max_bytes=2000)
    issued = []
    for i in range(40):
        s = j.append("StopTransaction", payload(i, 40))
        issued.append(s)
        j.done(s)  # empties the journal; compactions run on the way
    last = j.append("MeterValues", payload(99), droppable=True)
    issued.append(last)
    j = Journal(DIR)
    # thin the last record away: the compacted file no longer holds its seq
    j.max_bytes = 60
    j.append("StartTransaction", payload(100, 80))
    assert j.dropped == 1
    issued.append(j.first()[0])
    j = Journal(DIR)
    nxt = j.append("StartTransaction", payload(101))
    assert nxt > max(issued)
    assert len(set(issued)) == len(issued)


def _three(j):
    a = j.append("StartTransaction", payload(1, 20))
    j.append("MeterValues", payload(2, 20), tx=a, droppable=True)
    j.append("StopTransaction", payload(3, 20), tx=a)


def _read_log():
    with open(LOG, "rb") as f:
        return f.read()


def _write_log(data):
    with open(LOG, "wb") as f:
        f.write(data)


def _starts(data):
    # Offsets of the records in a log image (the body length is the u16 at header offset 4).
    starts = []
    pos = 0
    while pos < len(data):
        starts.append(pos)
        pos += HDR + (data[pos + 4] | data[pos + 5] << 8)
    return starts


def test_torn_tail_at_every_byte_keeps_earlier_records():
    j = fresh()
    _three(j)
    whole = _read_log()
    last_start = _starts(whole)[2]
    for cut in range(last_start + 1, len(whole)):
        _write_log(whole[:cut])
        j = Journal(DIR)
        assert actions(j) == [("StartTransaction", 1), ("MeterValues", 2)], cut
        assert size() == HDR + last_start  # repaired: rewritten (after a FLOOR marker) without it
        s = j.append("StopTransaction", payload(4))  # and appends land after them
        assert actions(Journal(DIR))[-1] == ("StopTransaction", 4)
        assert s == 3  # the torn append never returned its seq


def test_torn_cursor_write_sends_one_record_again_at_most():
    j = fresh()
    _three(j)
    j.done(1)  # slot 0
    j.done(2)  # slot 1
    with open(DIR + "/done1", "rb") as f:
        good = f.read()
    for cut in range(len(good)):
        with open(DIR + "/done1", "wb") as f:
            f.write(good[:cut])
        assert [n for _, n in actions(Journal(DIR))] == [2, 3]  # slot 0 still says 1 is done
    with open(DIR + "/done1", "wb") as f:
        f.write(good)
    j = Journal(DIR)
    assert [n for _, n in actions(j)] == [3]
    j.done(3)  # overwrites the older slot, 0
    assert len(Journal(DIR)) == 0


def test_flipped_byte_loses_only_that_record():
    j = fresh()
    _three(j)
    whole = _read_log()
    starts = _starts(whole)
    for at in range(starts[1], starts[2]):
        data = bytearray(whole)
        data[at] ^= 0x5A
        _write_log(data)
        j = Journal(DIR)
        assert actions(j) == [("StartTransaction", 1), ("StopTransaction", 3)], at
        assert len(j) == 2
        assert actions(Journal(DIR)) == [("StartTransaction", 1), ("StopTransaction", 3)]


def test_garbage_before_a_record_is_skipped():
    j = fresh()
    _three(j)
    _write_log(b"\x00\x01\x02\xff" * 9 + _read_log())
    assert [n for _, n in actions(Journal(DIR))] == [1, 2, 3]


def test_thinning_drops_droppable_records_only():
    j = fresh(max_bytes=3000)
    kept = []
    for i in range(200):
        if i % 25 == 0:
            kept.append(j.append("StartTransaction", payload(i, 30)))
        j.append("MeterValues", payload(i, 30), droppable=True)
    assert j.dropped > 100
    assert size() <= 3000
    got = list(j.records())
    assert [r[0] for r in got if r[1] == "StartTransaction"] == kept
    seqs = [r[0] for r in got]
    assert seqs == sorted(seqs)
    meter = [r[2]["n"] for r in got if r[1] == "MeterValues"]
    assert meter[-1] == 199  # the newest values survive; older ones are thinned
    assert len(j) == len(got)
    assert list(Journal(DIR, 3000).records()) == got


def test_thinning_drops_every_second_oldest_first():
    j = fresh(max_bytes=1000)
    for i in range(8):
        j.append("MeterValues", payload(i, 60), droppable=True)  # 8 x 100 bytes
    j.append("StopTransaction", payload(8, 300))  # needs one thinning round
    assert [n for _, n in actions(j)] == [1, 3, 5, 7, 8]
    assert j.dropped == 4


def test_non_droppable_records_go_past_max_bytes():
    j = fresh(max_bytes=500)
    seqs = [j.append("StopTransaction", payload(i, 100)) for i in range(10)]
    assert size() > 500
    assert [r[0] for r in j.records()] == seqs
    assert j.append("MeterValues", payload(10), droppable=True) is None  # no room, nothing to thin
    assert j.dropped == 1
    assert len(j) == 10


def test_done_of_a_record_thinned_while_in_flight_is_ignored():
    j = fresh(max_bytes=700)
    j.append("MeterValues", payload(0, 60), droppable=True)
    in_flight = j.first()[0]  # being sent
    for i in range(1, 6):
        j.append("MeterValues", payload(i, 60), droppable=True)
    j.append("StopTransaction", payload(6, 100))  # thins: the oldest goes first
    assert j.first()[0] != in_flight
    j.done(in_flight)
    assert len(j) == len(list(j.records()))
    assert actions(j)[-1] == ("StopTransaction", 6)


def test_records_sees_appends_done_and_compaction_while_iterating():
    j = fresh(max_bytes=2000)
    seqs = [j.append("StopTransaction", payload(i, 40)) for i in range(6)]
    it = j.records()
    assert next(it)[0] == seqs[0]
    for s in seqs[:4]:  # passes max_bytes / 4: compacts under the iterator
        j.done(s)
    extra = j.append("StopTransaction", payload(6))
    assert [r[0] for r in it] == [seqs[4], seqs[5], extra]


def _fill(n, pad):
    j = fresh(max_bytes=1 << 20)
    for i in range(n):
        j.append("MeterValues", payload(i, pad), tx=1, droppable=True)
    return j


def _squeeze(free):
    # Fill the heap so that only about `free` bytes are left.
    gc.collect()
    ballast = []
    while gc.mem_free() > free + 2048:
        ballast.append(bytearray(1024))
    return ballast


def test_large_journal_loads_and_iterates_in_little_ram():
    _fill(400, 200)  # ~100 KB on flash
    assert size() > 90000
    ballast = _squeeze(20000)
    try:
        j = Journal(DIR, 1 << 20)
        n = 0
        for rec in j.records():
            assert rec[2]["n"] == n
            n += 1
    finally:
        del ballast
    assert n == 400 and len(j) == 400


def test_first_and_done_cost_one_record_of_ram():
    j = _fill(400, 200)
    assert heapcheck.allocated(j.first) < 2500
    seq = j.first()[0]
    assert heapcheck.allocated(lambda: j.done(seq)) < 2500
    assert j.first()[2]["n"] == 1


def test_on_littlefs():
    image = mptmp.path("mp_test_journal_lfs.img")
    try:
        os.remove(image)
    except OSError:
        pass
    f, _ = sim_setup.mount(image, "/jlfs", blocks=64)
    try:
        j = Journal("/jlfs/tx", max_bytes=3000)
        seqs = [j.append("StopTransaction", payload(i, 50)) for i in range(30)]
        for s in seqs[:25]:
            j.done(s)
        for i in range(40):
            j.append("MeterValues", payload(100 + i, 50), droppable=True)
        assert j.dropped > 0
        got = [r[0] for r in j.records()]
        sim_setup.unmount(f, "/jlfs")
        f, _ = sim_setup.mount(image, "/jlfs", blocks=64)
        j = Journal("/jlfs/tx", max_bytes=3000)
        assert [r[0] for r in j.records()] == got
        assert got[:5] == seqs[25:]
        assert j.append("StartTransaction", payload(1)) > max(got)
    finally:
        sim_setup.unmount(f, "/jlfs")
        os.remove(image)


# --- power cuts on littlefs ------------------------------------------------------------------
# The sim's flash device, cut after a given number of block writes/erases: every later one fails
# (and changes nothing), so the image holds exactly what reached the flash before the cut.
CUT_IMAGE = mptmp.path("mp_test_journal_cut.img")
CUT_BLOCKS = 32
CUT_OPS = (  # ("a", action, n, droppable) appends; ("d",) marks the oldest done
    ("a", "StartTransaction", 1, False),
    ("a", "MeterValues", 2, True),
    ("a", "MeterValues", 3, True),
    ("d",),
    ("a", "MeterValues", 4, True),
    ("a", "MeterValues", 5, True),
    ("a", "StopTransaction", 6, False),  # past max_bytes: compacts and thins
    ("d",),
    ("d",),
    ("a", "StartTransaction", 7, False),
)


def _cut_device(f, budget):
    class CutDevice(sim_flash.FileBlockDevice):
        def writeblocks(self, block, buf, offset=0):
            if self.budget <= 0:
                return -5  # EIO
            self.budget -= 1
            sim_flash.FileBlockDevice.writeblocks(self, block, buf, offset)

        def ioctl(self, op, arg):
            if op == 6:  # erase
                if self.budget <= 0:
                    return -5
                self.budget -= 1
            return sim_flash.FileBlockDevice.ioctl(self, op, arg)

    dev = CutDevice(f, CUT_BLOCKS)
    dev.budget = budget
    return dev


def _state(j):
    return [(r[0], r[1], r[2]["n"]) for r in j.records()]


def _run_ops(budget):
    # The scenario on a fresh littlefs cut after `budget` writes. Returns (states after each
    # completed op, highest seq returned, index of the op the cut hit or None).
    with open(CUT_IMAGE, "wb") as f:
        f.write(_CUT_TEMPLATE[0])
    f = open(CUT_IMAGE, "r+b")
    vfs.mount(vfs.VfsLfs2(_cut_device(f, budget)), "/jcut")
    states = [[]]
    top = 0
    try:
        j = Journal("/jcut/tx", max_bytes=700)
        for i, op in enumerate(CUT_OPS):
            if op[0] == "a":
                seq = j.append(op[1], payload(op[2], 100), droppable=op[3])
                top = max(top, seq or 0)
            else:
                j.done(j.first()[0])
            states.append(_state(j))
        return states, top, None
    except OSError:
        return states, top, len(states) - 1
    finally:
        vfs.umount("/jcut")
        f.close()


_CUT_TEMPLATE = []


def test_power_cut_at_every_flash_write_on_littlefs():
    try:
        os.remove(CUT_IMAGE)
    except OSError:
        pass
    f, _ = sim_setup.mount(CUT_IMAGE, "/jcut", blocks=CUT_BLOCKS)
    sim_setup.unmount(f, "/jcut")
    with open(CUT_IMAGE, "rb") as f:
        _CUT_TEMPLATE.append(f.read())
    full, _, cut = _run_ops(1 << 30)
    assert cut is None
    assert [n for _, _, n in full[7]] == [3, 5, 6]  # the Stop thinned MeterValues 2 and 4
    assert [n for _, _, n in full[-1]] == [6, 7]
    budget = 0
    try:
        while True:
            states, top, cut = _run_ops(budget)
            if cut is None:
                break
            assert states == full[: len(states)]
            f = open(CUT_IMAGE, "r+b")
            vfs.mount(vfs.VfsLfs2(sim_flash.FileBlockDevice(f, CUT_BLOCKS)), "/jcut")
            try:
                j = Journal("/jcut/tx", max_bytes=700)
                after = _state(j)
                # the op that was cut happened entirely or not at all; an append may have
                # thinned droppable records before its own record was written
                allowed = [full[cut], full[cut + 1]]
                if CUT_OPS[cut][0] == "a":
                    allowed.append(full[cut + 1][:-1])
                assert after in allowed, (budget, cut, after)
                assert j.append("StartTransaction", payload(99)) > top, budget  # no seq reused
            finally:
                vfs.umount("/jcut")
                f.close()
            budget += 1
        assert budget > 20  # the scenario was cut at every one of its flash writes
    finally:
        os.remove(CUT_IMAGE)
