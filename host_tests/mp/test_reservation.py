# Reservation rules (cp.reservation.reservations) on a stand-in for cp.charging.Charging: ReserveNow statuses,
# connector 0 holding, which connector an idTag may take, the end of a reservation and its file.
import os

import mptmp
from cp import clock
from cp.charging import RESERVATIONS
from cp.reservation.reservations import reserve
from store import atomic

FLASH = mptmp.path("mp_test_reservation")


class Board:
    flash = FLASH


class FakeCharging:
    """What cp.reservation.reservations uses of Charging: connectors 1..n, free/plugged/faults, pending."""

    def __init__(self, n=2):
        self.n = n
        self.board = Board()
        self.pending = [None] * (n + 1)
        self.finishing = [False] * (n + 1)
        self.inoperative = [False] * (n + 1)
        self.busy = set()  # connectors with a transaction
        self.plugs = set()
        self.faults = set()
        self.reservations = None
        self.published = 0

    def free(self, c):
        return (
            c not in self.busy
            and c not in self.faults
            and not self.inoperative[0]
            and not self.inoperative[c]
        )

    def plugged(self, c):
        return c in self.plugs

    def fault_bits(self, c):
        return 1 if c in self.faults else 0

    def publish_status(self):
        self.published += 1


def fresh():
    atomic.makedirs(FLASH)
    atomic.remove(FLASH + RESERVATIONS)
    return FakeCharging()


def saved():
    return atomic.read_json(FLASH + RESERVATIONS, None)


def test_reserve_statuses_and_replacement():
    ch = fresh()
    later = clock.now() + 600
    ch.faults.add(1)
    assert reserve(ch, 7, 1, "A", None, later) == "Faulted"
    assert ch.reservations is None and saved() is None
    ch.faults.clear()
    ch.plugs.add(1)
    assert reserve(ch, 7, 1, "A", None, later) == "Occupied"
    ch.plugs.clear()
    ch.inoperative[1] = True
    assert reserve(ch, 7, 1, "A", None, later) == "Unavailable"
    ch.inoperative[1] = False
    assert reserve(ch, 7, 1, "A", None, later) == "Accepted"
    assert ch.reservations.reserved(1)[0] == 7 and not ch.reservations.reserved(2)
    assert reserve(ch, 8, 1, "B", None, later) == "Occupied"  # reserved already
    assert reserve(ch, 7, 2, "A", None, later) == "Accepted"  # same id: moved
    assert not ch.reservations.reserved(1) and ch.reservations.reserved(2)[0] == 7
    assert saved() == [[7, 2, "A", None, later]]
    ch.busy.add(2)  # a refused replacement keeps the old reservation
    assert reserve(ch, 7, 2, "A", None, later) == "Occupied"
    assert ch.reservations.find(7) is not None


def test_connector_zero_holds_the_last_free_connector():
    ch = fresh()
    later = clock.now() + 600
    assert reserve(ch, 5, 0, "Z", None, later) == "Accepted"
    r = ch.reservations
    assert not r.reserved(1) and not r.reserved(2)  # two free: nothing shown Reserved
    assert r.connector_for("OTHER", None) == (1, None, False)
    ch.busy.add(1)
    assert r.reserved(2) is True
    assert r.connector_for("OTHER", None) == (None, None, False)
    assert reserve(ch, 6, 0, "Y", None, later) == "Occupied"
    assert r.connector_for("z", None) == (2, 5, False)  # idTags are case-insensitive
    # Its idTag waiting for a plug on connector 2: that serves it, nothing else is held.
    ch.busy.clear()
    ch.pending[2] = ["Z", {}, 0, False, 5]
    assert not r.reserved(1)
    assert r.may_move(ch.pending[2], 1)


def test_parent_and_fixed_connector():
    ch = fresh()
    later = clock.now() + 600
    assert reserve(ch, 7, 2, "OWNER", "FAMILY", later) == "Accepted"
    r = ch.reservations
    assert r.connector_for("CHILD", "FAMILY") == (2, 7, True)
    assert r.connector_for("CHILD", "FAMILY", wanted=1) == (1, None, False)  # not its connector
    assert r.connector_for("STRANGER", "OTHERS", wanted=2) == (None, None, False)
    assert r.connector_for("STRANGER", None) == (1, None, False)
    # A card waiting on connector 1 may not move to the reserved connector 2 when plugged there.
    assert not r.may_move(["STRANGER", {}, 0, False, None], 2)
    assert r.may_move(["OWNER", {}, 0, False, 7], 2)


def test_end_by_expiry_and_unavailability_forgets_the_file():
    ch = fresh()
    now = clock.now()
    assert reserve(ch, 1, 1, "A", None, now + 600) == "Accepted"
    assert reserve(ch, 2, 2, "B", None, now + 600) == "Accepted"
    r = ch.reservations
    r.items[0][4] = now - 1  # expired
    r.check()
    assert [x[0] for x in r.items] == [2] and saved() == r.items
    ch.faults.add(2)
    r.check()
    assert ch.reservations is None and saved() is None
    assert not r.end(2, "cancelled")
    assert not os.listdir(FLASH)
