"""The memory budget: a complete charging session (boot, plug, card, charge with MeterValues,
stop, an offline session replayed on reconnect) works in a small MicroPython heap, with the app
from its ROMFS image as on a board, and the board twin's own share of that heap stays small
(docs/SIM.md). On the 64-bit port the heap is 128K; on the 32-bit port (../shared/micropython32,
where it exists: a board's object sizes) 80K. `make bench` bisects the smallest heap of each."""

from pathlib import Path

import pytest

from bench_session import session

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON32 = ROOT.parent / "shared" / "micropython32" / "micropython"
SIM_SHARE_MAX = 16 * 1024


@pytest.mark.parametrize(
    "port, heap_kb",
    [("64-bit", 128), pytest.param("32-bit", 80, marks=pytest.mark.skipif(
        not MICROPYTHON32.exists(), reason=f"no 32-bit MicroPython at {MICROPYTHON32}"))],
)  # fmt: skip
def test_complete_session_in_a_small_heap(built, tmp_path, port, heap_kb):
    micropython = MICROPYTHON32 if port == "32-bit" else None
    # raises on a MemoryError, a restart or a lost message
    figures = session(f"{heap_kb}K", tmp_path, app="romfs", micropython=micropython)
    heap = figures["heap"]
    assert heap["size"] <= (heap_kb + 4) * 1024, heap  # the heap asked for (the port rounds it up a bit)
    assert 0 < heap["sim"] <= SIM_SHARE_MAX, heap
    assert heap["used"] <= heap["peak"] < heap["size"], heap
