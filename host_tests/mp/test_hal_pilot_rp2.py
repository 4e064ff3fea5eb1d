# hal.pilot_rp2 (RP2040 pilot driver: free-running ADC + rp2.DMA burst) on the fakes: machine.mem32
# emulates the ADC registers, rp2.DMA moves the FIFO results into the driver's raw buffer, and
# the synthetic pilot signal of test_hal_pilot is sampled at the times the ADC divider sets.
import sys
from array import array

sys.path.insert(0, "../fakes")  # cwd is host_tests/mp: the fakes shadow machine and rp2

import machine  # noqa: E402
import rp2  # noqa: E402

from hal.pilot_rp2 import ADC_CS, ADC_DIV, ADC_FCS, ADC_FIFO, PilotRp2  # noqa: E402
from heapcheck import allocated  # noqa: E402
from test_hal_pilot import BURSTS, MV_PER_COUNT, OFFSET_MV, PWM_PIN, setsig, signal, states  # noqa: E402

ADC_PIN = 26  # GP26 = ADC0


def make(pin=ADC_PIN, **kw):
    machine.adc_reset()
    machine.set_adc(pin, signal)
    return PilotRp2(PWM_PIN, pin, MV_PER_COUNT, OFFSET_MV, **kw)


def test_fakes_are_in_use():
    assert hasattr(machine, "adc_dreq") and hasattr(rp2.DMA, "transfers"), (machine, rp2)


def test_ev_states_at_several_duties_come_from_the_dma():
    p = make()
    for duty in (100, 530, 900):
        p.set_duty(duty)
        for state, hi in (("B", 9000), ("C", 6000), ("D", 3000)):
            before = rp2.DMA.transfers
            seen, diode = states(p, duty, hi, -12000)
            assert seen == {state}, (duty, state, seen)
            assert diode == {True}, (duty, state)
            # every burst: 100 samples x 5 conversions, all moved by the DMA
            assert rp2.DMA.transfers - before == BURSTS * 500, rp2.DMA.transfers - before
    assert p.timeouts == 0 and p.disturbed == 0


def test_a_e_f_and_a_missing_diode():
    p = make()
    p.set_duty(1000)
    seen, diode = states(p, 1000, 12000, 12000)
    assert seen == {"A"} and diode == {True}, (seen, diode)
    seen, _ = states(p, 1000, 9000, 9000)
    assert seen == {"B"}, seen  # EV on steady +12 V: B without PWM
    p.set_duty(530)
    seen, diode = states(p, 530, 9000, -9000)  # no diode: the negative half sees the EV resistor
    assert diode == {False}, diode
    assert seen == {"F"}, seen
    seen, _ = states(p, 530, 0, 0)
    assert seen == {"E"}, seen
    p.set_duty(0)
    seen, _ = states(p, 0, -12000, -12000)
    assert seen == {"F"}, seen
    assert p.timeouts == 0


def test_adc_register_sequence_for_each_adc_pin():
    for pin, ch in ((26, 0), (27, 1), (28, 2)):
        p = make(pin)
        setsig(530, 6000, -12000)
        buf = array("h", bytes(200))
        machine.mem_log = log = []
        try:
            p.burst(buf)
        finally:
            machine.mem_log = None
        start = (ADC_CS, 1 | 8 | ch << 12)  # EN | START_MANY | AINSEL
        assert start in log, (pin, log)
        i = log.index(start)
        # before the start: FIFO on with DMA requests, 12-bit results (SHIFT = 0, ERR = 0),
        # threshold 1; the divider for 250 kS/s: 48 MHz / (1 + 191)
        assert (ADC_FCS, 1 | 8 | 1 << 24) in log[:i], log[:i]
        assert (ADC_DIV, 191 << 8) in log[:i], log[:i]
        # after it: START_MANY off with the same channel, FIFO and DREQ off, OVER/UNDER cleared
        assert (ADC_CS, 1 | ch << 12) in log[i:], log[i:]
        assert (ADC_FCS, 0) in log[i:], log[i:]
        # left stopped and drained (the fake filled the FIFO with the conversions made after the
        # DMA's last transfer, and flagged OVER)
        assert machine.mem32[ADC_CS] & 8 == 0
        fcs = machine.mem32[ADC_FCS]
        assert fcs & (1 << 8), hex(fcs)  # EMPTY
        assert fcs & (0xF << 16 | 3 << 10 | 1 | 8) == 0, hex(fcs)  # level 0, no OVER/UNDER, off
        assert p.k == 5 and p.last_burst_us == 2000, (p.k, p.last_burst_us)
        p.deinit()


def test_dma_reads_the_fifo_16_bit_into_the_raw_buffer_paced_by_the_adc():
    p = make()
    buf = array("h", bytes(200))
    p.burst(buf)
    d = p._dma
    c = rp2.DMA.unpack_ctrl(d.ctrl)
    assert c["size"] == 1 and c["inc_read"] == 0 and c["inc_write"] == 1, c
    assert c["treq_sel"] == 36 and c["enable"] == 1, c
    assert d.read == ADC_FIFO and d.write is p._raw, (d.read, d.write)
    assert len(p._raw) == 500 and d.count == 0  # all 500 transfers done
    p.deinit()


def test_raw_to_millivolts_uses_the_board_mapping():
    machine.adc_reset()
    # read_u16() values; the ADC keeps 12 bits (u16 >> 4) and the driver widens them as
    # read_u16() does, so each reading is within 16 counts (6.4 mV) of Pilot's
    machine.set_adc(ADC_PIN, [0, 32500, 65535, 2500, 62500])
    p = PilotRp2(PWM_PIN, ADC_PIN, MV_PER_COUNT, OFFSET_MV, rate=None)
    buf = array("h", bytes(10))
    p.burst(buf)
    assert p.k == 1
    want = (-13000, 0, 13214, -12000, 12000)
    for i in range(5):
        assert abs(buf[i] - want[i]) <= 7, (i, buf[i], want[i])
    p.deinit()
    machine.set_adc(ADC_PIN, [65535])
    p = PilotRp2(PWM_PIN, ADC_PIN, 1.0, 0)
    p.burst(buf)
    assert buf[0] == 32767 and buf[4] == 32767, buf  # clamped, not wrapped
    p.deinit()


def test_averaging_keeps_the_fraction_of_a_count():
    machine.adc_reset()
    # conversions alternate 2000 and 2001 (12-bit): the mean 2000.5 lies between two counts
    machine.set_adc(ADC_PIN, [2000 << 4, 2001 << 4])
    p = PilotRp2(PWM_PIN, ADC_PIN, 1.0, 0, rate=200000)  # 10 samples over 2 ms: k = 40
    buf = array("h", bytes(20))
    p.burst(buf)
    assert p.k == 40, p.k
    # 2000 and 2001 widen to 32007 and 32023 (x << 4 | x >> 8); their mean to 32015.8
    for i in range(10):
        assert 32015 <= buf[i] <= 32016, (i, buf[i])
    p.deinit()


def test_rate_and_span_follow_the_buffer_length():
    p = make(rate=None)
    buf = array("h", bytes(200))
    p.burst(buf)
    assert p.k == 1 and p.last_burst_us == 2000, (p.k, p.last_burst_us)
    assert machine.mem32[ADC_DIV] == 0  # restored for machine.ADC.read_u16() users
    p.deinit()
    p = make(span_us=1000)
    p.burst(buf)
    assert p.k == 2 and p.last_burst_us == 1000, (p.k, p.last_burst_us)
    p.deinit()
    # more samples than 500 kS/s allows in span_us: the burst takes 2 us per sample instead
    p = make()
    big = array("h", bytes(2 * 1500))
    p.burst(big)
    assert p.k == 1 and p.last_burst_us == 3000, (p.k, p.last_burst_us)
    p.deinit()


def test_a_stalled_adc_falls_back_to_read_u16_bursts():
    p = make()
    p.set_duty(530)
    machine.adc_stalled = True
    try:
        seen, diode = states(p, 530, 6000, -12000)
    finally:
        machine.adc_stalled = False
    assert seen == {"C"} and diode == {True}, (seen, diode)
    assert p.timeouts == BURSTS, p.timeouts
    assert machine.mem32[ADC_CS] & 8 == 0 and machine.mem32[ADC_FCS] & 9 == 0
    p.deinit()


def test_bad_arguments_are_refused():
    for kw in ({"rate": 0}, {"rate": 500001}, {"span_us": 500}):
        try:
            make(**kw)
        except ValueError:
            continue
        raise AssertionError(kw)
    for pin in (25, 30, "GP26"):
        try:
            PilotRp2(PWM_PIN, pin, MV_PER_COUNT, OFFSET_MV)
        except ValueError:
            continue
        raise AssertionError(pin)


def test_deinit_releases_the_dma_channel_and_a_later_burst_claims_one():
    p = make()
    buf = array("h", bytes(200))
    p.burst(buf)
    ch = p._dma.channel
    p.deinit()
    assert p._dma is None and p.duty == 1000
    d = rp2.DMA()  # the released channel is free again
    assert d.channel == ch, (d.channel, ch)
    d.close()
    p.burst(buf)
    assert p._dma is not None and p.timeouts == 0
    p.deinit()


def test_burst_allocates_nothing():
    p = make()
    p.set_duty(530)
    setsig(530, 6000, -12000)
    buf = array("h", bytes(200))
    p.burst(buf)  # warm-up: sizes the raw buffer

    def five_bursts():
        for _ in range(5):
            p.burst(buf)

    used = allocated(five_bursts)
    if sys.maxsize > 1 << 32:
        assert used == 0, used
    else:
        # 32-bit port: the fakes allocate, not the driver. The register addresses exceed 2**30
        # (heap ints) and the fake mem32 and rp2.DMA compute with them; the fake ADC's sample
        # times (ns) exceed it too. The driver's own arithmetic is checked alone.
        assert allocated(lambda: p._convert(buf, len(buf))) == 0
    assert p.timeouts == 0
    p.deinit()
