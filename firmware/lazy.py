# Modules for rarely used features are imported for one use and dropped from sys.modules at
# once: what refers to them (a running handler, an object) keeps them alive while it needs
# them, then the GC takes them. A backend call, a card or a boot step is rare next to the RAM a
# resident module holds for good.
import sys


def load(name):
    """Import the module `name` ("pkg.mod") and forget it again: returns the module."""
    parent = mod = __import__(name)
    part = None
    for part in name.split(".")[1:]:
        parent = mod
        mod = getattr(mod, part)
    sys.modules.pop(name, None)
    if parent is not mod:
        delattr(parent, part)  # the package refers to its submodule too
    return mod
