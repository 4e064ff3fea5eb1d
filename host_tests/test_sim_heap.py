"""The memory budget: a complete charging session (boot, plug, card, charge with MeterValues,
stop, an offline session replayed on reconnect) works with a 160 KiB MicroPython heap on the
64-bit Unix port, and the board twin's own share of that heap stays small (docs/SIM.md)."""

from bench_session import session

HEAP = "160K"
SIM_SHARE_MAX = 16 * 1024


def test_complete_session_in_a_160k_heap(built, tmp_path):
    figures = session(HEAP, tmp_path)  # raises on a MemoryError, a restart or a lost message
    heap = figures["heap"]
    assert heap["size"] <= 160 * 1024 + 4096, heap  # the heap asked for (the port rounds it up a bit)
    assert 0 < heap["sim"] <= SIM_SHARE_MAX, heap
    assert heap["used"] <= heap["peak"] < heap["size"], heap
