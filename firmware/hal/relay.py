# Main contactor and cable lock on a real board. Same interface as the sim twin's ports:
# set(on), .value (as commanded), .feedback (what the hardware reports).
import asyncio
import time

from machine import Pin


def _out(p, level):
    return Pin(p, Pin.OUT, value=level) if isinstance(p, int) else p


def _in(p):
    if p is None or not isinstance(p, int):
        return p
    return Pin(p, Pin.IN)


class Relay:
    """Relay(pin, feedback_pin=None, active_high=True, feedback_active_high=True)

    Starts open. .feedback: the auxiliary contact (True = closed; a welded contactor reads True
    while commanded open), None when the board has no feedback input."""

    def __init__(self, pin, feedback_pin=None, active_high=True, feedback_active_high=True):
        self._on_level = 1 if active_high else 0
        self._pin = _out(pin, 1 - self._on_level)  # open from the first instruction
        self._pin.value(1 - self._on_level)
        self._fb = _in(feedback_pin)
        self._fb_level = 1 if feedback_active_high else 0
        self._value = False

    def set(self, on):
        on = bool(on)
        self._pin.value(self._on_level if on else 1 - self._on_level)
        self._value = on

    @property
    def value(self):
        return self._value

    @property
    def feedback(self):
        return _feedback(self._fb, self._fb_level)


def _feedback(pin, level):
    # An auxiliary contact or position switch: True/False, None when the board has none.
    return None if pin is None else pin.value() == level


class Lock:
    """Lock(motor_a, motor_b, feedback_pin=None, pulse_ms=300, feedback_active_high=True)

    A DC lock motor on an H-bridge: set(True) drives motor_a high (lock), set(False) motor_b
    (unlock) for pulse_ms, then both low. set() only starts the pulse; a task started with it
    ends the pulse (so the motor never stays powered while the event loop runs), poll() ends an
    expired pulse now, and `await settle()` waits for the end. Both bridge inputs are never high
    at once (shoot-through). .feedback: the position switch (True = locked), None without one."""

    def __init__(self, motor_a, motor_b, feedback_pin=None, pulse_ms=300, feedback_active_high=True):
        if not 10 <= pulse_ms <= 5000:
            raise ValueError("pulse_ms must be 10..5000")
        self._a = _out(motor_a, 0)
        self._b = _out(motor_b, 0)
        self._a.value(0)
        self._b.value(0)
        self._fb = _in(feedback_pin)
        self._fb_level = 1 if feedback_active_high else 0
        self._pulse = pulse_ms
        self._value = False
        self._until = None  # ticks_ms when the running pulse ends; None = motor off
        self._task = None

    def set(self, locked):
        locked = bool(locked)
        self._a.value(0)  # stop first: never both bridge inputs high
        self._b.value(0)
        (self._a if locked else self._b).value(1)
        self._value = locked
        self._until = time.ticks_add(time.ticks_ms(), self._pulse)
        if self._task is None:
            self._task = asyncio.create_task(self._stopper())

    def poll(self):
        """End the pulse if its time is up; True while the motor still runs."""
        if self._until is None:
            return False
        if time.ticks_diff(self._until, time.ticks_ms()) > 0:
            return True
        self._a.value(0)
        self._b.value(0)
        self._until = None
        return False

    async def _stopper(self):
        try:
            while self.poll():
                await asyncio.sleep_ms(max(1, time.ticks_diff(self._until, time.ticks_ms())))
        finally:
            self._task = None

    async def settle(self):
        while self.poll():
            await asyncio.sleep_ms(5)

    @property
    def running(self):
        return self._until is not None

    @property
    def value(self):
        return self._value

    @property
    def feedback(self):
        return _feedback(self._fb, self._fb_level)
