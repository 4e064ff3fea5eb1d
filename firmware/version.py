# The firmware version reported in BootNotification (one place; the board files do not repeat it).
VERSION = "0.1.0"
