# The boot stub: tools/build.py installs it as /main.py on a real board, the one file MicroPython
# runs at boot (it runs main.py, never main.mpy). It stays source and tiny because the device
# compiles it at every boot. The firmware itself is the app (app.mpy = firmware/main.py, with
# board.mpy and the packages): from the ROMFS image at /rom, where bytecode and constants stay in
# flash; without a valid image from the frozen modules of a firmware built with
# boards/manifest_<board>.py, else from the fallback copy on littlefs (/fallback), which costs about
# twice the heap (docs/BOARDS.md). App updates must never replace this file: it is what brings a
# board with a broken app back to a known state.
#
# Site settings (written by tools/provision.py, docs/BOARDS.md "Provisioning"):
#   <flash>/site.json    board settings, read at every boot: wifi_ssid, wifi_password, ntp_host...
#   <flash>/preset.json  OCPP keys (CentralSystemURL, ChargePointId, AuthorizationKey,
#                        SecurityProfile), applied once into config.json, then deleted, so that
#                        what the backend changes later is not undone at the next boot.
# <flash> is /flash; on the unix port (tests) the first argument replaces it, and the second
# the littlefs root that holds /fallback.
# Imported as `main` (host tests), this module only forwards run() to the app.
import sys


def run(board, preset=None):
    import app

    return app.run(board, preset)


def _load(path):
    import json

    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:  # not provisioned (yet), or a damaged file
        print("boot:", path, repr(e))
        return None


def _app_path(root):
    """Put the app on sys.path, first: the ROMFS image, else frozen modules or the fallback."""
    import os

    while "" in sys.path:
        sys.path.remove("")  # a stray file in the working directory must not shadow the app
    try:
        os.stat("/rom/app.mpy")
        sys.path.insert(0, "/rom")
        return "/rom"
    except OSError:
        pass
    where = root + "/fallback"
    sys.path.append(where)  # after .frozen: a frozen app wins over the fallback copy
    print("boot: no valid ROMFS image (/rom/app.mpy): the app comes from the frozen modules or", where)
    return where


async def _boot(flash, root):
    import asyncio

    _app_path(root)
    import board

    site = _load(flash + "/site.json") or {}
    site["flash"] = flash
    b = board.Board(site)
    b.start()
    preset = _load(flash + "/preset.json")
    task = asyncio.create_task(run(b, preset))
    await asyncio.sleep_ms(0)  # app.run applies the preset before its first await
    if preset is not None:
        import os

        os.remove(flash + "/preset.json")
    return await task


if __name__ == "__main__":
    import asyncio

    import machine

    try:
        argv = sys.argv
        asyncio.run(_boot(argv[1] if len(argv) > 1 else "/flash", argv[2] if len(argv) > 2 else ""))
    except Exception as e:  # a crashed app: show why on the console, then start again
        sys.print_exception(e)
        import time

        time.sleep(5)  # leaves a chance to interrupt a crash loop from the REPL
    machine.reset()  # the backend asked for a Reset, or the app crashed
