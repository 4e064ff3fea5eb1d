# The boot stub: tools/build.py installs it as /main.py on a real board, the one file MicroPython
# runs at boot (it runs main.py, never main.mpy). It stays source and tiny because the device
# compiles it at every boot. The firmware itself is app.mpy (firmware/main.py). App updates must
# never replace this file: it is what brings a board with a broken app back to a known state.
#
# Site settings (written by tools/provision.py, docs/BOARDS.md "Provisioning"):
#   <flash>/site.json    board settings, read at every boot: wifi_ssid, wifi_password, ntp_host...
#   <flash>/preset.json  OCPP keys (CentralSystemURL, ChargePointId, AuthorizationKey,
#                        SecurityProfile), applied once into config.json, then deleted, so that
#                        what the backend changes later is not undone at the next boot.
# <flash> is /flash; on the unix port (tests) the first argument replaces it.
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


async def _boot(flash):
    import asyncio

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
        asyncio.run(_boot(sys.argv[1] if len(sys.argv) > 1 else "/flash"))
    except Exception as e:  # a crashed app: show why on the console, then start again
        sys.print_exception(e)
        import time

        time.sleep(5)  # leaves a chance to interrupt a crash loop from the REPL
    machine.reset()  # the backend asked for a Reset, or the app crashed
