# Reservations (OCPP 1.6 §5.13 ReserveNow, §5.1 CancelReservation): the ReserveNow rules, which
# connector an identification may take while connectors are reserved, the status Reserved, and
# the end of a reservation (used by a transaction, cancelled, expired, its connector or the charge
# point Faulted or Unavailable).
#
# Charging.reservations (cp/charging.py) is a Reservations object while reservations exist and
# None otherwise: this module is in RAM only while something is reserved. The entries, [id,
# connector, idTag, parentIdTag, expiry epoch s], are kept on flash across reboots.
#
# Connector 0 reserves "a connector": as many free connectors as there are such reservations are
# held back from other idTags (shown Reserved once no other free connector is left).
from cp import clock
from cp.charging import RESERVATIONS
from log import log
from store import atomic

_ID = 0
_CONNECTOR = 1
_TAG = 2
_PARENT = 3
_EXPIRY = 4


def reserve(ch, reservation_id, c, tag, parent, expiry):
    """ReserveNow on connector c (0: any connector) until `expiry` (epoch s): the status to answer
    (Accepted, Faulted, Occupied, Unavailable). A reservation with the same id is replaced: it
    does not count against the new one, and stays if the new one is not accepted."""
    r = ch.reservations or Reservations(ch, [])
    kept = r.items
    old = r.find(reservation_id)
    r.items = [x for x in kept if x is not old]
    status = r.status_for(c)
    if status != "Accepted":
        r.items = kept
        return status
    r.items.append([reservation_id, c, tag, parent, expiry])
    ch.reservations = r
    r.save()
    log("reservation", reservation_id, "connector", c, "for", tag, "(replaced)" if old else "")
    ch.publish_status()
    return "Accepted"


def _same(a, b):
    return bool(a) and bool(b) and a.upper() == b.upper()  # IdToken is case-insensitive


class Reservations:
    def __init__(self, ch, items):
        self.ch = ch
        self.items = items
        self._expiry_wait = clock.Due()  # the soonest expiry, checked every tick in ticks

    # --- the status and the checks of every tick (cp/charging.py) ---------------------------------
    def reserved(self, c):
        """What holds connector c: its own reservation entry, True when it is one of the last free
        connectors held for reservations of connector 0, else None."""
        zero = 0
        for x in self.items:
            if x[_CONNECTOR] == c:
                return x
            if x[_CONNECTOR] == 0 and not self._identified(x[_ID]):
                zero += 1
        if not zero or not self._spare(c):
            return None
        return True if sum(1 for i in range(1, self.ch.n + 1) if self._spare(i)) <= zero else None

    def _identified(self, reservation_id):
        # Its idTag was presented and waits for a plug: the connector it waits on serves it.
        return any(p is not None and p[4] == reservation_id for p in self.ch.pending)

    def _spare(self, c):
        # Free, without a reservation of its own.
        return self._usable(c) and self._own(c) is None

    def _usable(self, c):
        return self.ch.free(c) and self.ch.pending[c] is None

    def _own(self, c):
        for x in self.items:
            if x[_CONNECTOR] == c:
                return x
        return None

    def may_move(self, p, c):
        """May identification p (a cp/charging.py pending entry) waiting elsewhere take connector
        c, plugged first? Not if c is held, unless for p's own reservation."""
        h = self.reserved(c)
        return not h or (p[4] is not None and (h is True or h[_ID] == p[4]))

    def check(self):
        """End a reservation that expired or whose connector (or the charge point) became Faulted
        or Unavailable: one per call (cp/charging.py publish_status)."""
        ch = self.ch
        soonest = None
        for x in self.items:
            if soonest is None or x[_EXPIRY] < soonest:
                soonest = x[_EXPIRY]
        now = None if soonest is None else self._expiry_wait.reached(soonest)  # None: none expired
        for x in self.items:
            c = x[_CONNECTOR]
            expired = now is not None and x[_EXPIRY] <= now
            if expired or ch.inoperative[0] or (c and (ch.inoperative[c] or ch.fault_bits(c))):
                self.end(x[_ID], "expired" if expired else "connector unusable")
                return

    # --- ReserveNow ---------------------------------------------------------------------------------
    def status_for(self, c):
        ch = self.ch
        if c == 0:
            if ch.inoperative[0]:
                return "Unavailable"
            conns = range(1, ch.n + 1)
            if all(ch.fault_bits(i) for i in conns):
                return "Faulted"
            if all(ch.inoperative[i] or ch.fault_bits(i) for i in conns):
                return "Unavailable"
            # A connector nobody uses or reserved must be left for every reservation of connector 0.
            spare = sum(1 for i in conns if self._idle(i) and self._own(i) is None)
            zero = sum(1 for x in self.items if x[_CONNECTOR] == 0)
            return "Accepted" if spare > zero else "Occupied"
        if ch.fault_bits(c):
            return "Faulted"
        if ch.inoperative[0] or ch.inoperative[c]:
            return "Unavailable"
        if not self._idle(c) or self.reserved(c):
            return "Occupied"  # in use, or reserved already (for this idTag or another)
        return "Accepted"

    def _idle(self, c):
        # Free, and no EV, identification or finished transaction on it.
        return self._usable(c) and not self.ch.finishing[c] and not self.ch.plugged(c)

    # --- identification -----------------------------------------------------------------------------
    def connector_for(self, tag, parent, wanted=None):
        """Where an accepted idTag (with its parentIdTag) may start: (connector, reservationId or
        None, fixed) or (None, None, False). A reservation is used by its idTag, or by an idTag with
        the same parentIdTag as the reservation's; it names its connector (fixed) or, for connector
        0, any connector not reserved on its own. Other idTags only get a connector no reservation
        holds. `wanted`: the connector asked for (RemoteStart), else a plugged one first."""
        for x in self.items:
            if _same(x[_TAG], tag) or (x[_PARENT] and _same(x[_PARENT], parent)):
                c = x[_CONNECTOR]
                if c == 0:
                    return self._pick(wanted, lambda i: self._own(i) is None), x[_ID], False
                if wanted is None or wanted == c:
                    return (c, x[_ID], True) if self._usable(c) else (None, None, False)
        return self._pick(wanted, lambda i: not self.reserved(i)), None, False

    def _pick(self, wanted, ok):
        if wanted is not None:
            return wanted if 1 <= wanted <= self.ch.n and self._usable(wanted) and ok(wanted) else None
        first = None
        for c in range(1, self.ch.n + 1):
            if self._usable(c) and ok(c):
                if self.ch.plugged(c):
                    return c
                if first is None:
                    first = c
        return first

    # --- the end ------------------------------------------------------------------------------------
    def find(self, reservation_id):
        for x in self.items:
            if x[_ID] == reservation_id:
                return x
        return None

    def end(self, reservation_id, why):
        """End a reservation: False when there is none with that id. The caller publishes the
        statuses; with the last one gone Charging forgets this object (and the module)."""
        x = self.find(reservation_id)
        if x is None:
            return False
        self.items.remove(x)
        if not self.items:
            self.ch.reservations = None
        self.save()
        log("reservation", reservation_id, "ended:", why)
        return True

    def save(self):
        path = self.ch.board.flash + RESERVATIONS
        if self.items:
            atomic.write_json(path, self.items)
        else:
            atomic.remove(path)
