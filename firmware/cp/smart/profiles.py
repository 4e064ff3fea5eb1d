# Smart charging (OCPP 1.6 §3.13): the charging profiles on flash and the limit they set.
#
# One small JSON file per profile in PROFILE_DIR. Its name carries what stacking and clearing
# need, "<purpose><connector>_<stackLevel>_<id>" (purpose M = ChargePointMaxProfile,
# D = TxDefaultProfile, T = TxProfile), so a directory listing answers them without reading a
# file. The content is the profile in a compact list (COMPACT below), with times in epoch
# seconds; the composite schedule reads the profiles one at a time, highest priority first, and
# each one only fills the time the profiles before it left free.
#
# The limit in force on a connector at time t is the minimum of
#   - the prevailing ChargePointMaxProfile (connector 0; here a cap per connector),
#   - the prevailing TxProfile of the running transaction, or, when that transaction has none,
#     the prevailing TxDefaultProfile of the connector or of connector 0,
#   - the local limit the caller passes (installation maximum, cable),
# where "prevailing" is the profile with the highest stackLevel that has a period at t (a
# connector's own TxDefaultProfile beats connector 0's at the same level). Where the limit falls
# below the minChargingRate of the Tx(Default) schedule in force it is 0: the EV charges
# inefficiently below that rate, so it pauses instead. Limits are compared in amperes per
# phase: W = A x nominal voltage x phases, phases = min(numberPhases (3 when absent), phases
# wired).
from cp import clock
from store import atomic

PROFILE_DIR = "/profiles"
DAY = 86400
WEEK = 7 * DAY
MAX_PIECES = 96  # bound of a composite schedule (heap and message size); the duration is cut

# COMPACT: [kind, recurrence_s, valid_from, valid_to, start, duration, unit_w, min_rate, tx_id, periods]
# kind ABSOLUTE / RECURRING / RELATIVE; recurrence_s DAY, WEEK or 0; start is the schedule's
# start (None for Relative); unit_w 1 when limits are in W; periods flat [startPeriod, limit,
# numberPhases or 0, ...]. None where the profile has no value.
ABSOLUTE = 0
RECURRING = 1
RELATIVE = 2


def _parse_name(name):
    """(purpose, connector, stack, id) of a profile file name, or None (a temp file)."""
    parts = name[1:].split("_")
    if len(parts) != 3 or name[0] not in "MDT":
        return None
    try:
        return name[0], int(parts[0]), int(parts[1]), int(parts[2])
    except ValueError:
        return None


class Store:
    def __init__(self, flash):
        self.dir = flash + PROFILE_DIR
        atomic.makedirs(self.dir)

    def entries(self):
        """(purpose, connector, stack, id, file name) of every installed profile."""
        import os

        for name in os.listdir(self.dir):
            e = _parse_name(name)
            if e is not None:
                yield e + (name,)

    def load(self, name):
        return atomic.read_json(self.dir + "/" + name)

    def add(self, purpose, c, stack, pid, compact, max_installed):
        """Install a profile (the same id, or the same purpose, connector and stack level,
        is replaced). False when that would exceed max_installed profiles."""
        n = 0
        old = []
        for p, conn, st, i, name in self.entries():
            if i == pid or (p == purpose and conn == c and st == stack):
                old.append(name)
            else:
                n += 1
        if n >= max_installed:
            return False
        new = "%s%d_%d_%d" % (purpose, c, stack, pid)
        atomic.write_json(self.dir + "/" + new, compact)
        for name in old:
            if name != new:
                atomic.remove(self.dir + "/" + name)
        return True

    def clear(self, pid=None, c=None, purpose=None, stack=None):
        """Remove the profile `pid`, or (pid None) every profile matching all the criteria
        given. Returns how many were removed."""
        gone = []
        for p, conn, st, i, name in self.entries():
            if pid is not None:
                hit = i == pid
            else:
                hit = (c is None or conn == c) and (purpose is None or p == purpose)
                hit = hit and (stack is None or st == stack)
            if hit:
                gone.append(name)
        for name in gone:
            atomic.remove(self.dir + "/" + name)
        return len(gone)

    def tx_ended(self, c):
        """A transaction ended on connector c: its TxProfiles go (OCPP 1.6 §3.13.1)."""
        return self.clear(c=c, purpose="T")

    def pools(self, c, tx_running):
        """The two profile pools that limit connector c, each a list of file names with the
        highest priority first: ChargePointMax, then TxProfile or TxDefaultProfile (connector 0
        only has the first)."""
        cap, tx, default = [], [], []
        for p, conn, st, _, name in self.entries():
            key = (st, conn != 0, name)
            if p == "M":
                cap.append(key)
            elif c and p == "T" and conn == c and tx_running:
                tx.append(key)
            elif c and p == "D" and conn in (0, c):
                default.append(key)
        out = []
        for pool in (cap, tx or default):
            pool.sort(reverse=True)
            out.append([k[2] for k in pool])
        return out


def _segments(prof, lo, hi, tx_start, origin, conv):
    """The profile's periods inside [lo, hi): (from, to, (amps, numberPhases, min_amps))."""
    kind, every, vf, vt, start, dur, unit_w, min_rate, _, pp = prof
    if vf is not None and vf > lo:
        lo = vf
    if vt is not None and vt < hi:
        hi = vt
    if lo >= hi:
        return
    span = dur
    if kind == RELATIVE:
        base = origin if tx_start is None else tx_start  # no transaction: one starting now
    elif kind == RECURRING:
        base = start + (lo - start) // every * every
        if span is None or span > every:
            span = every
    else:
        base = start
    n = len(pp) // 3
    while base < hi:
        end = hi if span is None else base + span
        for i in range(n):
            a = base + pp[3 * i]
            b = base + pp[3 * i + 3] if i + 1 < n else end
            if b > end:
                b = end
            if a < lo:
                a = lo
            if b > hi:
                b = hi
            if a < b:
                yield a, b, _amps(pp[3 * i + 1], pp[3 * i + 2], min_rate, unit_w, conv)
        if kind != RECURRING:
            return
        base += every


def _amps(limit, phases, min_rate, unit_w, conv):
    if unit_w:
        volts, wired = conv
        div = volts * min(phases or 3, wired)
        limit = limit / div
        if min_rate is not None:
            min_rate = min_rate / div
    return limit, phases, min_rate


def _cut(ts, vs, t, end):
    """Make t a piece boundary of the step function (ts, vs); return the index starting at t."""
    i = 0
    n = len(ts)
    while i < n and ts[i] < t:
        i += 1
    if i < n and ts[i] == t or t >= end:
        return i
    ts.insert(i, t)
    vs.insert(i, vs[i - 1])
    return i


def _fill(store, names, ts, vs, lo, end, tx_start, conv):
    """Fill the free pieces of (ts, vs) over [lo, end) from the profiles `names`, in order.
    Returns the end, pulled in when the pieces reach MAX_PIECES."""
    for name in names:
        prof = store.load(name)
        if prof is None:
            continue  # unreadable file: as if it were not installed
        for a, b, v in _segments(prof, lo, end, tx_start, lo, conv):
            if a >= end:
                break  # segments come in time order; MAX_PIECES pulled the end in
            i = _cut(ts, vs, a, end)
            j = _cut(ts, vs, b, end) if b < end else len(ts)
            while i < j:
                if vs[i] is None:
                    vs[i] = v
                i += 1
            if len(ts) > MAX_PIECES:
                end = ts[MAX_PIECES]
                del ts[MAX_PIECES:], vs[MAX_PIECES:]
        prof = None
    return end


def composite(store, c, start, duration, tx_start, local_amps, volts=230, wired=3):
    """The composite schedule of connector c (0: the charge point) over [start, start+duration).
    tx_start: the running transaction's start (epoch s), None without one; local_amps: the
    local limit per phase. Returns (pieces, duration): pieces is a list of
    (offset_s, amps, numberPhases or 0) with offset 0 first and no two neighbours equal; the
    duration is shorter than asked when MAX_PIECES cut it."""
    conv = (volts, wired)
    end = start + duration
    steps = []
    for names in store.pools(c, tx_start is not None):
        ts, vs = [start], [None]
        end = _fill(store, names, ts, vs, start, end, tx_start, conv)
        steps.append((ts, vs))
    out = []
    bounds = sorted(set(t for ts, _ in steps for t in ts if t < end))
    for t in bounds:
        amps, phases, floor = local_amps, 0, None
        for k in range(len(steps)):
            ts, vs = steps[k]
            i = len(ts) - 1
            while ts[i] > t:
                i -= 1
            v = vs[i]
            if v is not None:
                if v[0] < amps:
                    amps, phases = v[0], v[1]
                if k == 1:
                    floor = v[2]
        if floor is not None and amps < floor:
            amps = 0
        if not out or out[-1][1] != amps or out[-1][2] != phases:
            if len(out) == MAX_PIECES:
                end = t
                break
            out.append((t - start, amps, phases))
    return out, end - start


def limit_at(store, c, now, tx_start, volts=230, wired=3, horizon=DAY):
    """The profiles' limit on connector c now, for the pilot: (amps per phase or None for no
    limit, epoch s of the next change or None when none comes within `horizon`)."""
    pieces, _ = composite(store, c, now, horizon, tx_start, 1e9, volts, wired)
    amps = pieces[0][1]
    nxt = now + pieces[1][0] if len(pieces) > 1 else None
    return (None if amps == 1e9 else amps), nxt


def to_unit(amps, phases, unit_w, volts, wired):
    """A limit in amperes per phase as the OCPP number of unit A or W (one decimal)."""
    if unit_w:
        amps = amps * volts * min(phases or 3, wired)
    v = round(amps, 1)
    return int(v) if v == int(v) else v


LIMIT_RECHECK_S = 300  # the profiles are evaluated at least this often ...
LIMIT_MIN_S = 5  # ... and at most this often: the EV must be able to follow the PWM


def apply_limits(ch):
    """cp/charging.py, when ch.smart_due has come: the composite limit of every connector now
    goes to ch.limit and the PWM; ch.smart_due becomes the next schedule change (not sooner than
    LIMIT_MIN_S), or None once no profile is installed."""
    store = Store(ch.board.flash)
    now = clock.now()
    due = None  # no profile installed: nothing to evaluate until one is
    for _ in store.entries():
        due = now + LIMIT_RECHECK_S
        break
    cfg = ch.config
    for c in range(1, ch.n + 1):
        tx = ch.tx[c]
        lim = None
        if due is not None:
            lim, nxt = limit_at(
                store, c, now, tx.start_s if tx else None, cfg.get("NominalVoltage"), cfg.get("SupplyPhases")
            )
            if nxt is not None and nxt < due:
                due = nxt
        if lim != ch.limit[c]:
            ch.limit[c] = lim
            ch.board.event("limit", c, lim)
            if tx is not None:
                ch.safety.offer(c, ch.offer_amps(c))
    ch.smart_due = None if due is None else max(due, now + LIMIT_MIN_S)
