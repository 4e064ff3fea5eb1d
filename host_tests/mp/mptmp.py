# A scratch directory of one MicroPython test process: host_tests/mp_plugin.py makes a fresh one
# per file and port (MP_TMP), so runs in parallel, one after the other or on both ports never
# see each other's files.
import os

DIR = os.getenv("MP_TMP") or "/tmp"


def path(name):
    return DIR + "/" + name
