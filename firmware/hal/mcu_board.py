# What every microcontroller board has in common: the board interface of docs/ARCHITECTURE.md
# built from a board file's tables. A board file (boards/esp32.py, boards/pico_w.py) subclasses
# McuBoard and sets name, pins, caps, vendor, model, the ADC calibration and hard_irq.
import asyncio
import os
import time

import machine
from micropython import const

_EVENTS = const(32)  # events kept in RAM for the local UI
_BEAT_MS = const(500)


class McuBoard:
    """Board(settings=None). settings (all optional): flash (data directory, default "/flash"),
    wifi_ssid, wifi_password, ntp_host ("pool.ntp.org"; None: no SNTP), wdt_ms (8000; 0: no
    watchdog), meter ("sdm" | "s0" | None), meter_model, meter_unit, s0_pulses_per_kwh.
    Drivers are made on first use. start() -> the tasks the board needs (see docs/BOARDS.md)."""

    # What a board file sets (annotations only: they cost nothing at run time).
    name: str
    vendor: str
    model: str
    pins: dict  # pin table
    caps: dict  # connectors, fixed_cable, meter, meter_model
    adc_full_mv: int  # ADC pin millivolts at read_u16() full scale
    pilot_mv_per_count: float  # pilot volts per ADC count of the sense divider ...
    pilot_offset_mv: int  # ... and the pilot voltage at count 0
    pp_pullup_ohms: int
    pp_vref_mv: int
    adc_atten: int | None  # machine.ADC attenuation (ESP32), None where there is none
    hard_irq: bool  # whether the S0 counter may use a hard IRQ
    pilot_dma = False  # RP2040: capture the pilot with the ADC free-running into DMA (hal.pilot_rp2)

    def __init__(self, settings=None):
        s = dict(self.caps)
        s.update(settings or {})
        self._s = s
        self.connectors = s["connectors"]
        self.fixed_cable = s["fixed_cable"]
        self.serial = "".join("%02X" % b for b in machine.unique_id())[:25]
        self.flash = s.get("flash", "/flash")
        try:
            os.mkdir(self.flash)  # the data directory on the littlefs root
        except OSError:
            pass  # exists
        self._drv = {}
        self._clock_set = asyncio.Event()
        self._rfid_retry = 0
        self._events = []
        self._publish = None
        self.wifi = None
        ssid = s.get("wifi_ssid")
        if ssid:
            from hal.net import WifiLink

            self.wifi = WifiLink(ssid, s.get("wifi_password", ""))
        self.watchdog = None
        wdt_ms = s.get("wdt_ms", 8000)
        if wdt_ms:
            from hal.watchdog import Watchdog

            self.watchdog = Watchdog(wdt_ms)

    def _get(self, key, maker):
        # Drivers are made on first use; later calls (the safety loop's, every 20 ms) only look
        # them up: the maker's name is a constant string, so a call allocates nothing.
        d = self._drv.get(key)
        if d is None:
            d = self._drv[key] = getattr(self, maker)()
        return d

    def _check(self, c):
        if not 1 <= c <= self.connectors:
            raise IndexError("connector %r" % (c,))

    # ---- hardware (connectors are numbered from 1) ----

    def pilot(self, c):
        self._check(c)
        return self._get("pilot", "_make_pilot")

    def proximity(self, c):
        self._check(c)
        return self._get("pp", "_make_proximity")

    def relay(self, c):
        self._check(c)
        return self._get("relay", "_make_relay")

    def lock(self, c):
        self._check(c)
        return self._get("lock", "_make_lock")

    def meter(self, c):
        """SdmMeter (read() raises OSError until board.start()'s poll task has read it) or S0Meter;
        None when the board has no meter configured."""
        self._check(c)
        if self._s.get("meter") not in ("sdm", "s0"):
            return None
        return self._get("meter", "_make_meter")

    def rcd_tripped(self, c):
        self._check(c)
        return self._get("rcd", "_make_rcd").value() == 1

    def rcd_test(self, c, on):
        """Drive the RCD module's test winding (the self-test before each session)."""
        self._check(c)
        self._get("rcd_test", "_make_rcd_test").value(1 if on else 0)

    # ---- driver makers (first use only) ----

    def _make_pilot(self):
        from hal.pilot import Pilot

        cls = Pilot
        if self.pilot_dma:
            from hal.pilot_rp2 import PilotRp2

            cls = PilotRp2
        return cls(
            self.pins["pilot_pwm"],
            self.pins["pilot_adc"],
            self.pilot_mv_per_count,
            self.pilot_offset_mv,
            atten=self.adc_atten,
        )

    def _make_proximity(self):
        from hal.proximity import Proximity

        return Proximity(
            self.pins["pp_adc"],
            self.pp_pullup_ohms,
            self.pp_vref_mv,
            mv_per_count=self.adc_full_mv / 65535,
            atten=self.adc_atten,
        )

    def _make_relay(self):
        from hal.relay import Relay

        return Relay(self.pins["relay"], self.pins["relay_fb"])

    def _make_lock(self):
        from hal.relay import Lock

        return Lock(self.pins["lock_a"], self.pins["lock_b"], self.pins["lock_fb"])

    def _make_meter(self):
        if self._s["meter"] == "s0":
            from hal.meter_s0 import S0Meter

            return S0Meter(self.pins["s0"], self._s.get("s0_pulses_per_kwh", 1000), hard=self.hard_irq)
        from hal.meter_sdm import SdmMeter
        from hal.modbus import ModbusRtu

        uart = machine.UART(
            self.pins["uart"],
            9600,
            tx=machine.Pin(self.pins["uart_tx"]),
            rx=machine.Pin(self.pins["uart_rx"]),
        )
        de = machine.Pin(self.pins["rs485_de"], machine.Pin.OUT, value=0)
        return SdmMeter(ModbusRtu(uart, de), self._s.get("meter_unit", 1), self._s["meter_model"])

    def _make_rcd(self):
        return machine.Pin(self.pins["rcd_fault"], machine.Pin.IN)

    def _make_rcd_test(self):
        return machine.Pin(self.pins["rcd_test"], machine.Pin.OUT, value=0)

    def temperature_c(self, c):
        self._check(c)
        return None  # no sensor on this board

    def rfid_read(self):
        """UID of a card at the MFRC522 (hex), or None. A reader that does not answer is tried
        again every 10 s, so a missing reader costs nothing and does not stop the charger."""
        r = self._drv.get("rfid")
        if r is None:
            if time.ticks_diff(time.ticks_ms(), self._rfid_retry) < 0:
                return None
            try:
                from hal.mfrc522 import Mfrc522

                spi = machine.SPI(
                    self.pins["spi"],
                    baudrate=1000000,
                    sck=machine.Pin(self.pins["spi_sck"]),
                    mosi=machine.Pin(self.pins["spi_mosi"]),
                    miso=machine.Pin(self.pins["spi_miso"]),
                )
                r = self._drv["rfid"] = Mfrc522(spi, self.pins["rfid_cs"], self.pins["rfid_rst"])
            except Exception as e:  # no reader, a bus fault: keep running without cards
                self._rfid_retry = time.ticks_add(time.ticks_ms(), 10000)
                self.event("rfid", 0, repr(e))
                return None
        try:
            return r.read_uid()
        except OSError:
            return None

    def link_up(self):
        return self.wifi is None or self.wifi.up()  # no Wi-Fi configured: a wired/host link

    async def open_connection(self, host, port, ssl_ctx=None, server_hostname=None):
        """The websocket opener: fails at once while Wi-Fi is down."""
        if not self.link_up():
            raise OSError(113, "no network")  # EHOSTUNREACH
        from hal.net import open_connection

        return await open_connection(host, port, ssl_ctx, server_hostname)

    def event(self, kind, connector, value):
        """Hardware event log: the last _EVENTS (ticks_ms, kind, connector, value) in RAM."""
        ev = self._events
        if len(ev) >= _EVENTS:
            ev.pop(0)
        ev.append((time.ticks_ms(), kind, connector, value))

    def events(self):
        return list(self._events)

    def publish(self, fn):
        self._publish = fn

    def snapshot(self):
        return None if self._publish is None else self._publish()

    def alive(self, name):
        """Liveness check-in for the watchdog (the safety loop calls alive("safety"))."""
        if self.watchdog is not None:
            self.watchdog.alive(name)

    async def wait_clock(self, timeout_ms):
        """True once the clock was set by SNTP (or no SNTP is configured), False after timeout_ms.
        TLS checks certificate dates: the link waits for this before its first wss:// connect."""
        try:
            await asyncio.wait_for_ms(self._clock_set.wait(), timeout_ms)
            return True
        except asyncio.TimeoutError:
            return False

    # ---- background tasks ----

    def start(self):
        """Create and return the tasks this board needs (call inside the running event loop,
        next to main.run): Wi-Fi supervision + SNTP, meter polling, the heartbeat (status LED and
        the watchdog's "loop" source) and the watchdog feeder."""
        tasks = [asyncio.create_task(self._heartbeat())]
        syncing = False
        if self.wifi is not None:
            tasks.append(asyncio.create_task(self.wifi.run()))
            if self._s.get("ntp_host", "pool.ntp.org"):
                tasks.append(asyncio.create_task(self._time_sync()))
                syncing = True
        if not syncing:
            self._clock_set.set()  # nothing will set it: the RTC is what we have
        m = self.meter(1) if self._s.get("meter") == "sdm" else None
        if m is not None:
            tasks.append(asyncio.create_task(self._poll_meter(m)))
        if self.watchdog is not None:
            self.watchdog.register("loop", 4 * _BEAT_MS)
            tasks.append(asyncio.create_task(self.watchdog.run()))
        return tasks

    async def _heartbeat(self):
        led = machine.Pin(self.pins["led"], machine.Pin.OUT, value=0)
        on = 0
        while True:
            self.alive("loop")
            on = 1 if self.link_up() else 1 - on  # steady with network, blinking without
            led.value(on)
            await asyncio.sleep_ms(_BEAT_MS)

    async def _poll_meter(self, m):
        while True:
            ok = await m.poll()
            await asyncio.sleep_ms(1000 if ok else 5000)

    async def _time_sync(self):
        from cp import clock
        from hal.net import sntp_sync

        while True:
            while not self.link_up():
                await asyncio.sleep_ms(1000)
            try:
                t = await sntp_sync(self._s.get("ntp_host", "pool.ntp.org"))
            except OSError:
                t = None
            if t is not None:
                clock.set_utc(t)
                self.event("ntp", 0, t)
                self._clock_set.set()
            await asyncio.sleep(86400 if t is not None else 60)
