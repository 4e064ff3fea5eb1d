# The simulated charger's MicroPython process, as it runs (started by sim_boot for tools/sim.py,
# the supervisor, which holds the physical world and the control socket). sim_setup mounts the
# flash and takes the initial world state; then the firmware runs (`main.run(board, preset)`)
# while the bus task applies what the supervisor pushes on stdin. A Reset ends the process
# (exit status 3) and the supervisor starts a fresh one, as a hardware reset clears RAM. EOF on
# stdin is an orderly shutdown: the firmware is cancelled, the flash unmounted, exit status 0.
import gc
import sys
import time

# asyncio is imported where it is used, once sim_setup has measured what it costs (docs/SIM.md).

EXIT_RESET = 3  # main.run returned "reset" (or anything but "exit"): start me again
EXIT_CRASH = 1  # the firmware raised, or could not be imported


async def _bus(b, rd, fw):
    while True:
        line = await rd.readline()
        if not line:
            break
        try:
            if b.feed(line):
                continue
            e = "not understood"
        except Exception as x:  # a bad push must not take the board down
            e = repr(x)
        sys.stderr.write("SIM: bus line %r: %s\n" % (line[:60], e))
    fw.cancel()  # EOF: the supervisor is stopping us


async def _run(b, rd, preset, platform, rom):
    import asyncio

    asyncio.create_task(_bus(b, rd, asyncio.current_task()))
    await asyncio.sleep_ms(0)  # the bus task is running: its objects count as the sim's
    # The sim's own share of the heap: everything before the firmware but what a real board has
    # too (the interpreter, asyncio, the littlefs mount). See docs/SIM.md.
    sim = b.sample_heap() - platform
    try:
        import main

        gc.collect()
        used = gc.mem_alloc() - rom
        size = gc.mem_free() + used
        b._out(b"\x1eR %d %d %d %d %d\n" % (time.ticks_ms(), size, sim, used, platform))
        # The bus task runs from the firmware's first await on: `state` sees what run() published.
        result = await main.run(b, preset)
    except asyncio.CancelledError:
        return 0  # orderly shutdown: run()'s finally has closed the websocket
    except Exception as e:
        sys.stderr.write("SIM: firmware crashed:\n")
        sys.print_exception(e, sys.stderr)
        return EXIT_CRASH
    if result == "exit":
        return 0
    if result != "reset":
        sys.stderr.write("SIM: main.run returned %r: restarting\n" % (result,))
    return EXIT_RESET


def _clear_stack(depth):
    # MicroPython's GC scans the C stack conservatively, frames' unused slots included: pointers
    # the one-shot setup left there would keep it alive (~2.4 KB) for the whole run. Calls with
    # many locals overwrite that part of the stack.
    a = b = c = d = e = f = g = h = i = j = 0
    if depth:
        _clear_stack(depth - 1)
    return a + b + c + d + e + f + g + h + i + j


def boot(argv, base, rom):
    """Run the sim; `base` is the live heap of the bare interpreter, `rom` the heap the app's
    ROMFS image takes (0 without one: left out of every figure). Returns the exit status."""
    import sim_setup

    ready = sim_setup.start(argv, base)
    del sys.modules["sim_setup"]  # one-shot code: not kept in the heap
    sim_setup = None
    if isinstance(ready, int):
        return ready  # bad arguments, or stopped before the firmware started
    b, rd, preset, platform, img, point = ready
    ready = None
    b.heap_hidden = rom
    _clear_stack(20)
    rc = EXIT_CRASH
    try:
        import asyncio

        rc = asyncio.run(_run(b, rd, preset, platform, rom))
    except KeyboardInterrupt:
        rc = 0
    finally:
        import vfs

        try:
            vfs.umount(point)
        except OSError:
            pass
        img.close()
    return rc
