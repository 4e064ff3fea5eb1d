# MicroPython entry point of the simulated charger: `micropython -m sim_boot ARGS.json`, started
# by tools/sim.py. This launcher only notes the heap the bare interpreter uses, so that the sim's
# own share can be told apart from the platform's (docs/SIM.md); sim_run does the rest.
import gc
import sys

gc.collect()
_base = gc.mem_alloc()  # the interpreter and this launcher

import sim_run  # noqa: E402

sys.exit(sim_run.boot(sys.argv, _base))
