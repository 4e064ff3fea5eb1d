# Console log: one line per event, with the millisecond tick. On a board it goes to the UART/USB
# console; on the sim to stderr, so that stdout stays for the `SIM READY` contract line.
import sys
import time

_out = sys.stderr
frames = True  # log every OCPP frame (the sim and `make run` show the conversation)


def log(*parts):
    _out.write("%d fw " % time.ticks_ms())
    for p in parts:
        _out.write(p if isinstance(p, str) else repr(p))
        _out.write(" ")
    _out.write("\n")


def frame(direction, text):
    if frames:
        _out.write("%d fw %s " % (time.ticks_ms(), direction))
        _out.write(text if len(text) <= 2000 else text[:2000])  # no copy of a normal frame
        _out.write("\n")
