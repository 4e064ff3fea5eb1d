# Fake `network` for the MicroPython Unix port (which has none): a Wi-Fi station whose access
# point the test controls. Tests put host_tests/fakes first on sys.path.
# NEVER deploy this to a board: it would shadow the real module there too.
STA_IF = 0
AP_IF = 1
# The ESP32 port's values
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_CONNECT_FAIL = 203

# ---- the access point, as the test sets it --------------------------------------------------
_ap = {"ssid": None, "password": None, "reachable": True}
_wlans = {}


def set_ap(ssid=None, password=None):
    """Only this SSID/password associates (None: any)."""
    _ap["ssid"] = ssid
    _ap["password"] = password


def drop():
    """The access point goes away: every station loses its association, new ones fail."""
    _ap["reachable"] = False
    for w in _wlans.values():
        w._connected = False
        w._status = STAT_NO_AP_FOUND if w._active else STAT_IDLE


def restore():
    """The access point is back (stations reconnect on their own)."""
    _ap["reachable"] = True


def reset():
    """Forget all stations and the AP settings (between tests)."""
    _wlans.clear()
    set_ap()
    restore()


class WLAN:
    def __new__(cls, interface=STA_IF):
        w = _wlans.get(interface)  # one object per interface, as on the ports
        if w is None:
            w = object.__new__(cls)
            w._init(interface)
            _wlans[interface] = w
        return w

    def __init__(self, interface=STA_IF):
        pass

    def _init(self, interface):
        self.interface = interface
        self._active = False
        self._connected = False
        self._status = STAT_IDLE
        self.connect_calls = []  # (ssid, password) of each connect()
        self._config = {}

    def active(self, on=None):
        if on is None:
            return self._active
        self._active = bool(on)
        if not on:
            self._connected = False

    def connect(self, ssid=None, key=None):
        if not self._active:
            raise OSError("STA must be active")
        self.connect_calls.append((ssid, key))
        if not _ap["reachable"] or (_ap["ssid"] is not None and ssid != _ap["ssid"]):
            self._status = STAT_NO_AP_FOUND
            self._connected = False
        elif _ap["password"] is not None and key != _ap["password"]:
            self._status = STAT_WRONG_PASSWORD
            self._connected = False
        else:
            self._status = STAT_GOT_IP
            self._connected = True

    def disconnect(self):
        self._connected = False
        self._status = STAT_IDLE

    def isconnected(self):
        return self._connected

    def status(self, param=None):
        if param is not None:
            return self._config.get(param)
        return self._status

    def ifconfig(self, cfg=None):
        if cfg is not None:
            return None
        if self._connected:
            return ("192.168.4.23", "255.255.255.0", "192.168.4.1", "192.168.4.1")
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def config(self, *args, **kw):
        if kw:
            self._config.update(kw)
            return None
        return self._config.get(args[0]) if args else None
