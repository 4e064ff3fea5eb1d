# Control pilot on an RP2040: the Pilot driver (hal/pilot.py: 1 kHz PWM out, same set_duty/duty/
# deinit, same raw -> millivolt fixed-point mapping) whose burst() lets the hardware sample: the ADC
# runs free (CS.START_MANY) at a rate set by its DIV register and rp2.DMA, paced by the ADC's DREQ,
# copies each conversion from the ADC FIFO into a preallocated array('H'). The sample timing is
# then exact whatever Python, interrupts or the GC do meanwhile (evse-hardware.md 3.3), so a burst
# is never "disturbed" and never taken again.
#
# Each of the len(buf) output samples is the mean of k raw conversions (k = rate * span / len(buf),
# e.g. 100 samples over 2 ms at 250 kS/s: k = 5, one output every 20 us): the averaging takes the
# RP2040 ADC's noise (~8.7 ENOB) down by sqrt(k) while the output spacing stays that of Pilot.
#
# Register facts (RP2040 datasheet 4.9 "ADC", cross-checked against the SVD-generated headers and
# the rp2040-pac docs): ADC block at 0x4004C000; CS @0x00: EN bit 0, START_MANY bit 3, READY bit 8,
# AINSEL bits 12-14; FCS @0x08: EN bit 0, SHIFT bit 1, ERR bit 2, DREQ_EN bit 3, EMPTY bit 8,
# UNDER bit 10 / OVER bit 11 (write 1 to clear), THRESH bits 24-27; FIFO @0x0C: VAL bits 0-11,
# ERR bit 15; DIV @0x10: INT bits 8-23, FRAC bits 0-7, one conversion every 1 + INT + FRAC/256
# cycles of the 48 MHz ADC clock (a conversion itself takes 96 cycles: 500 kS/s at most).
# DREQ_ADC = 36 (datasheet 2.5.3.1, pico-sdk DREQ_ADC). rp2.DMA: MicroPython docs rp2.DMA.rst.
# machine.ADC(pin) is still made (by Pilot): on rp2 it powers the ADC and puts the pad in analog
# mode (ports/rp2/machine_adc.c: adc_init, adc_gpio_init), which the registers below rely on.
import time
from array import array

from machine import mem32
from micropython import const

from hal.pilot import Pilot

# Plain globals, not const(): the addresses exceed a 32-bit port's small-int range (2**30), so
# they are big ints built once here; an address computed per burst would allocate each time.
ADC_CS = 0x4004C000
ADC_FCS = 0x4004C008
ADC_FIFO = 0x4004C00C
ADC_DIV = 0x4004C010

_CS_EN = const(1)
_CS_TS_EN = const(1 << 1)  # temperature sensor bias: kept as found (ADC(4) users)
_CS_START_MANY = const(1 << 3)
_CS_READY = const(1 << 8)
_FCS_EN = const(1)
_FCS_DREQ_EN = const(1 << 3)
_FCS_EMPTY = const(1 << 8)
_FCS_CLEAR = const(3 << 10)  # UNDER | OVER, write 1 to clear
_FCS_THRESH_1 = const(1 << 24)
DREQ_ADC = const(36)
_ADC_HZ = const(48000000)
_MIN_CYCLES = const(96)  # one conversion: the 500 kS/s ceiling
_MAX_DIV256 = const(65535 << 8 | 255)  # DIV.INT is 16 bits
RAW_MAX = const(2048)  # raw conversions per burst at most (4 KB of array('H'))
_DRAIN = const(8)  # FIFO is 4 deep; a few more reads cover a conversion finishing meanwhile


def adc_channel(gpio):
    """ADC input of an RP2040 pin: GP26..GP29 -> 0..3."""
    if not isinstance(gpio, int) or not 26 <= gpio <= 29:
        raise ValueError("adc_pin must be a GPIO number 26..29")
    return gpio - 26


class PilotRp2(Pilot):
    """PilotRp2(pwm_pin, adc_pin, mv_per_count, offset_mv, span_us=2000, invert=False, atten=None,
    rate=250000)

    As Pilot; adc_pin is the GPIO number (26..29). `rate`: raw ADC conversions per second to aim
    for (at most 500000; None: one conversion per output sample, no averaging). The burst covers
    span_us, or 2 us per output sample if len(buf) is larger than span_us / 2."""

    def __init__(
        self, pwm_pin, adc_pin, mv_per_count, offset_mv, span_us=2000, invert=False, atten=None, rate=250000
    ):
        if rate is not None and not 0 < rate <= _ADC_HZ // _MIN_CYCLES:
            raise ValueError("rate must be 1..500000 S/s")
        self._ain = adc_channel(adc_pin) << 12
        super().__init__(pwm_pin, adc_pin, mv_per_count, offset_mv, span_us, invert, atten)
        self._rate = rate
        self._n = -1  # len(buf) the capture below was sized for
        self._raw = None
        self._dma = None
        self._ctrl = 0
        self.timeouts = 0  # bursts whose DMA did not finish in time (measured by read_u16 instead)
        self.k = 1  # raw conversions averaged per output sample

    def _claim(self):
        import rp2  # lazily: only this driver needs it, and only on an RP2040

        self._dma = rp2.DMA()
        # 16-bit reads of the FIFO register (same address each time) into consecutive halfwords,
        # one per ADC DREQ (the FIFO holds a result).
        self._ctrl = self._dma.pack_ctrl(size=1, inc_read=False, inc_write=True, treq_sel=DREQ_ADC)

    def _size(self, n):
        """Size the raw buffer, k and the ADC divider for n output samples (first burst only)."""
        span = self._span
        if n * 1000000 // span > _ADC_HZ // _MIN_CYCLES:
            span = 2 * n  # more samples than 500 kS/s allows: take longer
        k = 1
        if self._rate is not None:
            k = self._rate * span // (n * 1000000)
            k = max(1, min(k, RAW_MAX // n))
        m = k * n
        div256 = (_ADC_HZ // 1000000 * span * 256 + m // 2) // m - 256  # 256 * (1 + INT + FRAC/256) - 256
        if div256 < (_MIN_CYCLES - 1) << 8:
            div256 = (_MIN_CYCLES - 1) << 8
        elif div256 > _MAX_DIV256:
            div256 = _MAX_DIV256
        self._raw = None  # drop the old one before making the new one (heap peak)
        self._raw = array("H", bytes(2 * m))
        self.k = k
        self._m = m
        self._div = div256  # DIV register: INT << 8 | FRAC
        # capture span set by the divider, us (diagnostics; Pilot's field of the same name)
        self._cap_us = m * (div256 + 256) // (_ADC_HZ // 1000000 * 256)
        self._n = n

    def burst(self, buf):
        """Fill the preallocated array('h') with pilot millivolts over span_us: ADC free-running,
        DMA into the raw buffer, then the mapping. Allocates nothing after the first burst (which
        sizes the raw buffer for len(buf)). Returns True (False: see Pilot.burst)."""
        n = len(buf)
        if n == 0:
            return True
        if self._dma is None:
            self._claim()
        if n != self._n:
            self._size(n)
        if self._capture():
            self._convert(buf, n)
            self.last_burst_us = self._cap_us
            return True
        # The ADC or the DMA did not deliver (a hardware fault or another user of the ADC):
        # measure with read_u16() bursts rather than report nothing.
        self.timeouts += 1
        return Pilot.burst(self, buf)

    def _capture(self):
        dma = self._dma
        ain = self._ain | (mem32[ADC_CS] & _CS_TS_EN)
        self._stop(ain)  # a clean FIFO, so the first DMA transfer is this burst's first conversion
        mem32[ADC_FCS] = _FCS_EN | _FCS_DREQ_EN | _FCS_THRESH_1  # SHIFT = 0: 12-bit results
        mem32[ADC_DIV] = self._div
        dma.config(read=ADC_FIFO, write=self._raw, count=self._m, ctrl=self._ctrl, trigger=True)
        mem32[ADC_CS] = _CS_EN | _CS_START_MANY | ain
        ticks = time.ticks_us
        diff = time.ticks_diff
        limit = 2 * self._cap_us + 2000
        t0 = ticks()
        ok = True
        while dma.active():
            if diff(ticks(), t0) > limit:
                dma.active(0)
                ok = False
                break
        self._stop(ain)
        return ok

    def _stop(self, ain):
        """ADC back to single conversions (as machine.ADC.read_u16 expects), FIFO off and empty."""
        mem32[ADC_CS] = _CS_EN | ain  # START_MANY off; a conversion under way still completes
        i = 0
        while not mem32[ADC_CS] & _CS_READY and i < 100:  # 2 us at most; bounded if the ADC is dead
            i += 1
        mem32[ADC_FCS] = 0  # FIFO and DREQ off: later read_u16() conversions stay out of it
        i = 0
        while not mem32[ADC_FCS] & _FCS_EMPTY and i < _DRAIN:
            mem32[ADC_FIFO]
            i += 1
        mem32[ADC_FCS] = _FCS_CLEAR
        mem32[ADC_DIV] = 0

    def _convert(self, buf, n):
        raw = self._raw
        k = self.k
        half_k = k >> 1
        scale = self._scale
        shift = self._shift
        half = (1 << shift) >> 1
        off = self._offset
        i = 0
        j = 0
        while i < n:
            s = 0
            e = j + k
            while j < e:
                s += raw[j] & 0xFFF  # FIFO VAL; bit 15 (ERR) is off anyway (FCS.ERR = 0)
                j += 1
            # read_u16()'s 12 -> 16 bit scaling, raw << 4 | raw >> 8 (ports/rp2/machine_adc.c),
            # applied to the sum so the averaged fraction is kept: then Pilot's mapping, inlined
            # as in Pilot.burst (a call per sample would cost more than the arithmetic).
            u = ((s << 4) + (s >> 8) + half_k) // k
            v = ((u * scale + half) >> shift) + off
            if v > 32767:
                v = 32767
            elif v < -32768:
                v = -32768
            buf[i] = v
            i += 1

    def deinit(self):
        """Steady +12 V (Pilot.deinit), ADC stopped, the DMA channel released (a later burst
        claims one again)."""
        super().deinit()
        if self._dma is not None:
            self._stop(self._ain | (mem32[ADC_CS] & _CS_TS_EN))
            self._dma.close()
            self._dma = None
