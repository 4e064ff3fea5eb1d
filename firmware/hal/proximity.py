# Proximity pilot (PP) on a real board: the cable's coding resistor Rc (PP to PE) under a pull-up
# to vref forms a divider; the ADC reads the PP node. Same interface as the sim twin: read_ohms().
# Read once per plug-in (not in the 20 ms loop), so plain integer/float maths is fine here.
from machine import ADC, Pin

_FULL = 65535
_OPEN_DIV = 50  # v within vref/50 of vref: Rc > 49 x pull-up, i.e. no plug (cable_amps: > 4 kohm)


class Proximity:
    """Proximity(adc_pin, pullup_ohms, vref_mv, samples=16, mv_per_count=None, atten=None)

    mv_per_count: ADC calibration (mV at the pin per read_u16 count); None = ratiometric, the
    ADC full scale is vref (RP2040: the pull-up and ADC_VREF share the 3.3 V rail).
    read_ohms() -> Rc in ohms (int), 0 when PP is shorted to PE, None when open (no cable)."""

    def __init__(self, adc_pin, pullup_ohms, vref_mv, samples=16, mv_per_count=None, atten=None):
        if pullup_ohms <= 0 or vref_mv <= 0 or not 1 <= samples <= 256:
            raise ValueError("bad proximity calibration")
        pin = Pin(adc_pin) if isinstance(adc_pin, int) else adc_pin
        self._adc = ADC(pin) if atten is None else ADC(pin, atten=atten)
        self._pullup = pullup_ohms
        self._vref = vref_mv
        self._n = samples
        self._mvpc = vref_mv / _FULL if mv_per_count is None else mv_per_count

    def read_mv(self):
        """Mean PP node voltage over `samples` reads, in mV."""
        adc = self._adc
        total = 0
        for _ in range(self._n):
            total += adc.read_u16()
        return total * self._mvpc / self._n

    def read_ohms(self):
        v = self.read_mv()
        vref = self._vref
        if v >= vref - vref / _OPEN_DIV:
            return None
        if v <= 0:
            return 0
        return int(self._pullup * v / (vref - v) + 0.5)
