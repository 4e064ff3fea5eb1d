# Firmware frozen into a MicroPython build for the pico_w board (docs/BOARDS.md "Frozen firmware"):
#   tools/build.py --board pico_w    # first: board.mpy and app.mpy come from build/pico_w/fallback/
#   cd micropython/ports/... && make BOARD=... FROZEN_MANIFEST=/path/to/repo/boards/manifest_pico_w.py
# The packages are frozen from source, compiled by the firmware's own mpy-cross (-O2 as ours).
# board and app are renamed modules (boards/pico_w.py, firmware/main.py), which module() cannot do,
# so their .mpy from the build tree is frozen as is. What stays on littlefs: /main.py (the boot
# stub, source). The data tables are modules too (ocpp/schema_tables.py, cp/keys.py): frozen with
# the rest, they stay in flash.
# ruff: noqa: F821 -- include, package, module, freeze_mpy: given by makemanifest when it runs this
include("$(PORT_DIR)/boards/manifest.py")
for _pkg in ("cp", "evse", "hal", "ocpp", "store"):
    package(_pkg, base_path="../firmware", opt=2)
for _mod in ("lazy.py", "log.py", "version.py"):
    module(_mod, base_path="../firmware", opt=2)
freeze_mpy("../build/pico_w/fallback", ("board.mpy", "app.mpy"))
