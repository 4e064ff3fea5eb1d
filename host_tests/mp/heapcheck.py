# Heap measurement for MicroPython tests.
import gc


def allocated(fn):
    """Bytes allocated by fn() with the collector off: an upper bound of its peak heap use."""
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        fn()
        return gc.mem_alloc() - before
    finally:
        gc.enable()
