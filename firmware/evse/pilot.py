# Control pilot (CP) and proximity pilot (PP) decoding per IEC 61851-1 Annex A/B.
# Pure functions and tables: the safety loop calls plateaus() and classify() every ~20 ms per
# connector, so those two never allocate (module-level scratch arrays, integer millivolts).
from array import array

from micropython import const

NOT_OFFERING = const(1000)  # duty permille: steady +12 V (states x1, "no charging allowed")
STEADY_NEGATIVE = const(0)  # duty permille: steady -12 V (state F, EVSE not available)
ISO15118_PERMILLE = const(50)  # 5 % is reserved for digital communication: never an amps offer
MIN_AMPS = const(6)
MAX_AMPS = const(80)

TOP_K = const(4)  # plateau = mean of the K highest / K lowest samples of a burst
HYSTERESIS_MV = const(500)  # the previous state's band is widened by this much on both sides
DIODE_MAX_MV = const(-10000)  # with PWM on, the low plateau must be below this (diode present)

# Lower edge (mV) of the positive-plateau band of each state: midpoints of 12/9/6/3/0 V.
_A_MV = const(10500)
_B_MV = const(7500)
_C_MV = const(4500)
_D_MV = const(1500)
_E_MV = const(-1500)  # below the E band: the pilot itself sits at -12 V, i.e. state F
_TOP_MV = const(1 << 20)

STATES = ("A", "B", "C", "D", "E", "F")
_BOUNDS = (_A_MV, _B_MV, _C_MV, _D_MV, _E_MV)

# Scratch for plateaus(): the running top-K and bottom-K. Shared by all callers, which is safe
# because plateaus() never yields to the scheduler.
_top = array("i", bytes(4 * TOP_K))
_bot = array("i", bytes(4 * TOP_K))

# PP resistor (ohms) -> cable current; thresholds are the geometric midpoints of 1500/680/220/100.
PP_OPEN_OHMS = const(4000)  # above: no plug in the socket
PP_SHORT_OHMS = const(50)  # below: PP shorted to PE, not a valid coding


def plateaus(samples, out=None):
    """(high_mv, low_mv): mean of the TOP_K highest and lowest samples of a burst.

    With `out` (a preallocated 2-slot array or list) the result is written there and `out` is
    returned, without allocating; without it a new tuple is returned.
    """
    n = len(samples)
    if n == 0:
        raise ValueError("empty burst")
    k = TOP_K if n >= TOP_K else n
    top = _top
    bot = _bot
    i = 0
    while i < k:
        top[i] = -_TOP_MV
        bot[i] = _TOP_MV
        i += 1
    last = k - 1
    i = 0
    while i < n:  # index loop: iterating an array allocates an iterator
        v = samples[i]
        if v > top[last]:
            j = last
            while j > 0 and top[j - 1] < v:
                top[j] = top[j - 1]
                j -= 1
            top[j] = v
        if v < bot[last]:
            j = last
            while j > 0 and bot[j - 1] > v:
                bot[j] = bot[j - 1]
                j -= 1
            bot[j] = v
        i += 1
    hi = 0
    lo = 0
    i = 0
    while i < k:
        hi += top[i]
        lo += bot[i]
        i += 1
    if out is None:
        return (hi // k, lo // k)
    out[0] = hi // k
    out[1] = lo // k
    return out


def _band(high_mv):
    i = 0
    while i < 5:
        if high_mv >= _BOUNDS[i]:
            return STATES[i]
        i += 1
    return "F"


def classify(high_mv, low_mv, pwm_on, previous=None):
    """IEC pilot state "A".."F" from the plateaus of one burst.

    The positive plateau picks the band (A 12 V, B 9 V, C 6 V, D 3 V, E 0 V; below -1.5 V the
    pilot is held at -12 V: F). A reading within HYSTERESIS_MV of the previous state's band
    keeps that state, so noise on a threshold does not flip the result back and forth.
    With PWM on, a low plateau above DIODE_MAX_MV means the EV's diode is missing or shorted:
    the result is then "F" (not available), whatever the resistor state; see diode_ok().
    """
    state = None
    if previous is not None and previous != "F":
        i = 0
        while i < 5:
            if STATES[i] == previous:
                top = _TOP_MV if i == 0 else _BOUNDS[i - 1]
                if _BOUNDS[i] - HYSTERESIS_MV <= high_mv < top + HYSTERESIS_MV:
                    state = previous
                break
            i += 1
    if state is None:
        state = _band(high_mv)
    if pwm_on and state != "E" and state != "F" and low_mv > DIODE_MAX_MV:
        return "F"
    return state


def diode_ok(low_mv, pwm_on):
    """False when PWM runs and the negative plateau is not ~-12 V (EV diode missing/shorted).
    Without PWM there is no negative phase to check: True (unknown counts as ok here)."""
    return not pwm_on or low_mv <= DIODE_MAX_MV


def pwm_on(permille):
    return 0 < permille < NOT_OFFERING


def amps_to_permille(amps):
    """Duty (permille) that offers at most `amps` (IEC 61851-1 Table A.7, EVSE side).

    6..51 A: D = I / 0.6 %; 51..80 A: D = I / 2.5 + 64 %. Rounded down so that the EV never
    reads more than `amps`. Below 6 A: NOT_OFFERING. Above 80 A: 80 A.
    Between 51 and 52.75 A the standard has no duty (85 % is 51 A, 85.1 % is 52.75 A): 51 A.
    """
    if amps is None or amps < MIN_AMPS:
        return NOT_OFFERING
    if amps > MAX_AMPS:
        amps = MAX_AMPS
    if amps <= 51:
        return int(amps * 50 / 3 + 0.0001)  # amps / 0.6 % in permille
    p = int(amps * 4 + 640 + 0.0001)  # (amps / 2.5 + 64) % in permille
    return p if p > 850 else 850


def permille_to_amps(permille):
    """The current an EV reads from a duty (IEC 61851-1 Table A.8, EV side); 0 = no charging."""
    p = permille
    if p < 80 or p > 970:
        return 0  # < 8 %: no charging or 5 % digital mode; > 97 %: no charging (100 % = x1)
    if p < 100:
        return MIN_AMPS
    if p <= 850:
        return round(p * 0.06, 2)
    if p <= 960:
        return (p - 640) / 4
    return MAX_AMPS


def cable_amps(ohms):
    """Cable current capacity from the PP resistor (IEC 61851-1 Annex B, Type 2 socket).

    1500 ohm -> 13 A, 680 -> 20 A, 220 -> 32 A, 100 -> 63 A. 0 means no usable cable:
    `ohms` is None or above PP_OPEN_OHMS (no plug) or below PP_SHORT_OHMS (PP shorted).
    """
    if ohms is None or ohms >= PP_OPEN_OHMS or ohms < PP_SHORT_OHMS:
        return 0
    if ohms >= 1000:
        return 13
    if ohms >= 390:
        return 20
    if ohms >= 150:
        return 32
    return 63
