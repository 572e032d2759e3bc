"""services/intake/status.py: a report's status derived from its timeline."""

import itertools
import uuid
from datetime import UTC, datetime, timedelta

from services.intake.status import STATUS_NEUTRAL_EVENTS, Entry, summarise

T0 = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
DAMKAR = uuid.UUID("11111111-1111-4111-8111-111111111111")
PLN = uuid.UUID("22222222-2222-4222-8222-222222222222")
POLRES = uuid.UUID("33333333-3333-4333-8333-333333333333")


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def received() -> Entry:
    return Entry(at(0), "received", None, None, {})


def routed(*dispatches: tuple[uuid.UUID, str, str], minute: int = 1) -> Entry:
    # As read back from the database: JSON detail, ids as strings.
    items = [{"dispatch_id": str(d), "agency": a, "role": r} for d, a, r in dispatches]
    return Entry(at(minute), "routed", None, None, {"dispatches": items})


def outcome(event: str, dispatch: uuid.UUID, agency: str, minute: int) -> Entry:
    return Entry(at(minute), event, agency, dispatch, {})


FIRE = routed((DAMKAR, "damkar", "primary"), (PLN, "pln", "supporting"), (POLRES, "polres", "supporting"))
ANIMAL = routed((DAMKAR, "damkar", "primary"))


def test_only_received_is_received():
    status, dispatches = summarise("emergency", [received()])
    assert status == "received"
    assert dispatches == []


def test_routed_and_nothing_delivered_is_routed():
    status, dispatches = summarise("emergency", [received(), FIRE])
    assert status == "routed"
    assert {d.agency: d.state for d in dispatches} == {"damkar": "requested", "pln": "requested", "polres": "requested"}


def test_some_delivered_some_pending_is_routed():
    entries = [received(), FIRE, outcome("delivered", DAMKAR, "damkar", 2)]
    assert summarise("emergency", entries)[0] == "routed"


def test_every_agency_delivered_is_delivered():
    entries = [received(), FIRE] + [
        outcome("delivered", d, a, 2 + i)
        for i, (d, a) in enumerate([(DAMKAR, "damkar"), (PLN, "pln"), (POLRES, "polres")])
    ]
    status, dispatches = summarise("emergency", entries)
    assert status == "delivered"
    assert all(d.state == "delivered" for d in dispatches)


def test_one_failed_and_the_rest_delivered_is_delivery_failed():
    entries = [
        received(),
        FIRE,
        outcome("delivered", DAMKAR, "damkar", 2),
        outcome("delivered", POLRES, "polres", 2),
        outcome("failed", PLN, "pln", 9),
    ]
    status, dispatches = summarise("emergency", entries)
    assert status == "delivery_failed"
    assert {d.agency: d.state for d in dispatches}["pln"] == "failed"


def test_failed_while_others_pending_is_still_routed():
    entries = [received(), FIRE, outcome("failed", PLN, "pln", 9)]
    assert summarise("emergency", entries)[0] == "routed"


def test_unrouted_is_unrouted():
    entries = [received(), Entry(at(1), "unrouted", None, None, {"reason": "no rule"})]
    assert summarise("emergency", entries) == ("unrouted", [])


def test_late_failed_does_not_undo_delivered():
    entries = [received(), ANIMAL, outcome("delivered", DAMKAR, "damkar", 2), outcome("failed", DAMKAR, "damkar", 5)]
    status, dispatches = summarise("emergency", entries)
    assert status == "delivered"
    assert dispatches[0].state == "delivered"
    assert dispatches[0].updated_at == at(2)


def test_delivered_after_failed_wins():
    entries = [received(), ANIMAL, outcome("failed", DAMKAR, "damkar", 2), outcome("delivered", DAMKAR, "damkar", 5)]
    status, dispatches = summarise("emergency", entries)
    assert status == "delivered"
    assert dispatches[0].updated_at == at(5)


def test_outcome_for_unknown_dispatch_is_ignored():
    stray = uuid.UUID("99999999-9999-4999-8999-999999999999")
    entries = [received(), ANIMAL, outcome("delivered", stray, "pmi", 2)]
    status, dispatches = summarise("emergency", entries)
    assert status == "routed"
    assert [d.agency for d in dispatches] == ["damkar"]


def test_routed_twice_keeps_one_dispatch_per_agency():
    entries = [
        received(),
        ANIMAL,
        outcome("delivered", DAMKAR, "damkar", 2),
        routed((DAMKAR, "damkar", "primary"), minute=3),
    ]
    status, dispatches = summarise("emergency", entries)
    assert len(dispatches) == 1
    assert status == "delivered"


def test_dispatches_list_primary_first():
    entries = [
        received(),
        routed((PLN, "pln", "supporting"), (POLRES, "polres", "supporting"), (DAMKAR, "damkar", "primary")),
    ]
    _, dispatches = summarise("emergency", entries)
    assert dispatches[0].agency == "damkar" and dispatches[0].role == "primary"
    assert {d.role for d in dispatches[1:]} == {"supporting"}


def test_non_emergency_is_recorded():
    for kind in ("prank", "ghost", "information"):
        assert summarise(kind, [received()]) == ("recorded", [])


def test_events_stored_before_their_routing_entry_still_count():
    # Dispatch-status events and the routing event come from different topics: a
    # delivery can be stored before the routing entry that names its dispatch.
    from datetime import UTC, datetime

    from services.intake.status import Entry, summarise

    at = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
    routed = Entry(
        at, "routed", None, None, {"dispatches": [{"dispatch_id": "d1", "agency": "damkar", "role": "primary"}]}
    )
    delivered = Entry(at, "delivered", "damkar", "d1", {})
    escalated = Entry(at, "escalated", "damkar", "d1", {"step": "resent"})
    status, dispatches = summarise("emergency", [delivered, escalated, routed])
    assert status == "delivered"
    assert dispatches[0].state == "delivered" and dispatches[0].escalated is True


def verified(verdict: str, minute: int) -> Entry:
    return Entry(at(minute), "verified", None, None, {"verdict": verdict})


def test_a_report_held_for_its_verdict_is_awaiting_verification_until_routed():
    assert summarise("emergency", [received()], awaiting_verdict=True)[0] == "awaiting_verification"
    assert summarise("emergency", [received(), verified("genuine", 2), ANIMAL], awaiting_verdict=False)[0] == "routed"


def test_a_false_verdict_cancels_every_dispatch_not_done_and_a_genuine_one_nothing():
    done_damkar = Entry(at(3), "field_status", "damkar", DAMKAR, {"status": "done"})
    entries = [received(), FIRE, outcome("delivered", PLN, "pln", 2), done_damkar, verified("prank", 4)]
    status, dispatches = summarise("prank", entries)
    assert status == "recorded"
    assert {d.agency: d.state for d in dispatches} == {"damkar": "done", "pln": "cancelled", "polres": "cancelled"}
    _, kept = summarise("emergency", [*entries[:-1], verified("genuine", 4)])
    assert {d.agency: d.state for d in kept} == {"damkar": "done", "pln": "delivered", "polres": "requested"}


def _timelines() -> list[list[Entry]]:
    """Timelines in every state a report goes through, each agency's outcome varied."""
    timelines = [[received()], [received(), Entry(at(1), "unrouted", None, None, {"reason": "no rule"})]]
    for states in itertools.product(
        ["requested", "failed", "delivered", "acknowledged", "field:on_scene", "field:done"], repeat=2
    ):
        entries = [received(), routed((DAMKAR, "damkar", "primary"), (PLN, "pln", "supporting"))]
        for minute, (dispatch, agency, state) in enumerate(
            zip((DAMKAR, PLN), ("damkar", "pln"), states, strict=True), start=2
        ):
            if state.startswith("field:"):
                entries.append(Entry(at(minute), "field_status", agency, dispatch, {"status": state[6:]}))
            elif state != "requested":
                entries.append(outcome(state, dispatch, agency, minute))
        timelines.append(entries)
    timelines.append(timelines[-1] + [Entry(at(9), "verified", None, None, {"verdict": "prank"})])
    return timelines


def _neutral(event: str) -> list[Entry]:
    """The entry as intake writes it, against each dispatch and against none."""
    details = {
        "escalated": {"step": 1, "reason": "late"},
        "held": {"reason": "503", "attempts": 1},
        "update_delivered": {"update_type": "caller_added"},
        "update_failed": {"reason": "x"},
        "assigned": {"operator_id": "o"},
        "task_closed": {"outcome": "done"},
    }
    detail = details.get(event, {"report_id": "r"})
    return [
        Entry(at(10), event, agency, dispatch, detail)
        for agency, dispatch in (("damkar", DAMKAR), ("pln", PLN), (None, None))
    ]


def test_status_neutral_events_never_change_a_status():
    # intake writes these without re-reading the timeline (store.add_timeline_entry):
    # an event that did change a status would leave a stale one stored.
    for kind, linked, awaiting in itertools.product(["emergency", "information"], [False, True], [False, True]):
        for timeline in _timelines():
            before = summarise(kind, timeline, linked=linked, awaiting_verdict=awaiting)[0]
            for event in STATUS_NEUTRAL_EVENTS:
                for entry in _neutral(event):
                    after = summarise(kind, [*timeline, entry], linked=linked, awaiting_verdict=awaiting)[0]
                    assert after == before, (event, entry, before, after)


def test_the_events_that_change_a_status_are_not_neutral():
    # The check above could pass with a set that wrongly took in a status event.
    assert not STATUS_NEUTRAL_EVENTS & {
        "routed",
        "unrouted",
        "delivered",
        "failed",
        "acknowledged",
        "field_status",
        "verified",
        "unlinked",
    }
    unrouted = Entry(at(1), "unrouted", None, None, {"reason": "no rule"})
    assert summarise("emergency", [received(), unrouted])[0] != summarise("emergency", [received()])[0]


def test_a_closed_incident_and_its_callers_are_closed_whatever_their_dispatches_say():
    at = datetime(2026, 12, 2, tzinfo=UTC)
    routed = Entry(
        at, "routed", None, None, {"dispatches": [{"dispatch_id": "d1", "agency": "damkar", "role": "primary"}]}
    )
    delivered = Entry(at, "delivered", "damkar", "d1", {})
    assert summarise("emergency", [routed, delivered], closed=True)[0] == "closed"
    assert summarise("emergency", [routed, delivered], closed=False)[0] == "delivered"
    assert summarise("emergency", [], linked=True, closed=True)[0] == "closed"
    assert summarise("prank", [], closed=True)[0] == "recorded"  # a contact that was never an incident
