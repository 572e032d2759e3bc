"""The watchdog's rules: what is missing of a report, what is not watched, and when the
next re-drive is due."""

import uuid
from datetime import UTC, datetime, timedelta

from services.intake.stall_rules import (
    Attempts,
    Watched,
    dispatchable_since,
    kind_of,
    linked_since,
    missing,
    missing_updates,
    next_redrive_at,
    stalled,
)
from services.intake.status import Entry

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
BOUND = timedelta(seconds=60)
D_DAMKAR, D_PLN, D_POLRES = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def entry(event: str, at: datetime = T0, *, dispatch_id=None, agency=None, **detail) -> Entry:
    return Entry(at, event, agency, dispatch_id, detail)


def routed(at: datetime = T0) -> Entry:
    return entry(
        "routed",
        at,
        dispatches=[
            {"dispatch_id": str(D_PLN), "agency": "pln", "role": "supporting"},
            {"dispatch_id": str(D_DAMKAR), "agency": "damkar", "role": "primary"},
            {"dispatch_id": str(D_POLRES), "agency": "polres", "role": "supporting"},
        ],
    )


def fire(**changes) -> Watched:
    values = {"kind": "emergency", "linked": False, "awaiting_verdict": False, "received_at": T0} | changes
    return Watched(**values)


RECEIVED = entry("received")
LATE = T0 + BOUND


def test_a_report_never_routed_misses_routing():
    assert missing([RECEIVED]) == ["routing"]
    assert stalled(fire(), [RECEIVED], LATE, BOUND) == ["routing"]


def test_within_the_bound_nothing_is_stalled():
    assert stalled(fire(), [RECEIVED], LATE - timedelta(seconds=1), BOUND) == []


def test_routed_dispatches_nobody_heard_of_are_missing_primary_first():
    assert missing([RECEIVED, routed()]) == ["damkar", "pln", "polres"]
    heard = [entry("delivered", dispatch_id=D_DAMKAR, agency="damkar")]
    assert missing([RECEIVED, routed(), *heard]) == ["pln", "polres"]


def test_every_sign_of_the_notifier_counts_as_heard_of():
    for event in ("delivered", "acknowledged", "failed", "escalated", "field_status"):
        entries = [RECEIVED, routed(), *(entry(event, dispatch_id=d) for d in (D_DAMKAR, D_PLN, D_POLRES))]
        assert missing(entries) == [], event


def test_entries_stored_before_the_routing_entry_still_count():
    entries = [RECEIVED, *(entry("delivered", dispatch_id=d) for d in (D_DAMKAR, D_PLN, D_POLRES)), routed(LATE)]
    assert missing(entries) == []


def test_unrouted_reports_are_the_operators_not_the_watchdogs():
    assert missing([RECEIVED, entry("unrouted", reason="no rule")]) == []


def test_a_deadlettered_report_routed_after_its_redrive_is_watched_again():
    assert missing([RECEIVED, entry("unrouted", reason="dead-lettered"), routed()]) == ["damkar", "pln", "polres"]


def test_dispatches_cancelled_by_a_verdict_are_not_missing():
    assert missing([RECEIVED, routed(), entry("verified", verdict="prank")]) == []
    assert missing([RECEIVED, routed(), entry("verified", verdict="genuine")]) == ["damkar", "pln", "polres"]


def test_what_is_not_watched():
    # fire(linked=True) with no incident timeline: its incident is not routed yet.
    for report in (fire(kind="prank"), fire(kind="information"), fire(linked=True), fire(awaiting_verdict=True)):
        assert stalled(report, [RECEIVED], LATE + BOUND, BOUND) == [], report


def test_a_verdict_or_an_unlink_restarts_the_bound():
    verified = entry("verified", T0 + timedelta(minutes=10), verdict="genuine")
    assert dispatchable_since(fire(), [RECEIVED, verified]) == verified.at
    assert stalled(fire(), [RECEIVED, verified], verified.at + timedelta(seconds=30), BOUND) == []
    assert stalled(fire(), [RECEIVED, verified], verified.at + BOUND, BOUND) == ["routing"]
    unlinked = entry("unlinked", T0 + timedelta(minutes=3))
    assert dispatchable_since(fire(), [RECEIVED, unlinked]) == unlinked.at


def test_redrives_back_off_at_most_once_per_bound():
    assert next_redrive_at(None, T0, BOUND) == T0 + BOUND
    first = Attempts(1, T0 + BOUND)
    assert next_redrive_at(first, T0, BOUND) == T0 + 2 * BOUND
    assert next_redrive_at(Attempts(2, T0 + 2 * BOUND), T0, BOUND) == T0 + 4 * BOUND
    assert next_redrive_at(Attempts(3, T0 + 4 * BOUND), T0, BOUND) == T0 + 8 * BOUND
    # Doubling stops at 16 bounds: a stalled report keeps being re-driven.
    assert next_redrive_at(Attempts(12, T0), T0, BOUND) == T0 + 16 * BOUND


def test_a_later_restart_of_the_bound_wins_over_old_attempts():
    assert next_redrive_at(Attempts(1, T0), T0 + timedelta(hours=1), BOUND) == T0 + timedelta(hours=1) + BOUND


def test_the_metric_label_is_routing_or_delivery_only():
    assert kind_of(["routing"]) == "routing"
    assert kind_of(["damkar", "pln"]) == "delivery"


# Another caller's report: its incident's agencies must each get its dispatch.caller_added.
CALLER = fire(linked=True, received_at=T0 + timedelta(seconds=5))
CALLER_RECEIVED = entry("received", CALLER.received_at)


def update(event: str, agency: str, dispatch_id) -> Entry:
    return entry(event, T0, dispatch_id=dispatch_id, agency=agency, update_type="caller_added")


def test_another_caller_misses_the_incident_agencies_without_its_update_primary_first():
    incident = [RECEIVED, routed()]
    assert missing_updates([CALLER_RECEIVED], incident) == ["damkar", "pln", "polres"]
    heard = [update("update_delivered", "damkar", D_DAMKAR), update("update_failed", "pln", D_PLN)]
    assert missing_updates([CALLER_RECEIVED, *heard], incident) == ["polres"]
    assert stalled(CALLER, [CALLER_RECEIVED, *heard], CALLER.received_at + BOUND, BOUND, incident) == ["polres"]


def test_another_caller_waits_a_bound_from_its_incident_routing_or_its_own_arrival():
    routed_late = routed(T0 + timedelta(minutes=2))
    incident = [RECEIVED, routed_late]
    assert linked_since(CALLER, [CALLER_RECEIVED], incident) == routed_late.at
    assert stalled(CALLER, [CALLER_RECEIVED], routed_late.at + BOUND - timedelta(seconds=1), BOUND, incident) == []
    assert stalled(CALLER, [CALLER_RECEIVED], routed_late.at + BOUND, BOUND, incident) == ["damkar", "pln", "polres"]
    # Incident routed before the caller arrived: the caller's arrival starts the bound.
    assert linked_since(CALLER, [CALLER_RECEIVED], [RECEIVED, routed()]) == CALLER.received_at


def test_another_caller_of_an_incident_not_routed_or_cancelled_is_not_stalled():
    late = T0 + 10 * BOUND
    assert stalled(CALLER, [CALLER_RECEIVED], late, BOUND, [RECEIVED]) == []
    assert stalled(CALLER, [CALLER_RECEIVED], late, BOUND, [RECEIVED, entry("unrouted", reason="no rule")]) == []
    cancelled = [RECEIVED, routed(), entry("verified", verdict="prank")]
    assert stalled(CALLER, [CALLER_RECEIVED], late, BOUND, cancelled) == []


def test_another_caller_routed_on_its_own_is_watched_by_its_own_dispatches():
    own = [CALLER_RECEIVED, routed(CALLER.received_at)]
    late = CALLER.received_at + BOUND
    assert stalled(CALLER, own, late, BOUND, [RECEIVED]) == ["damkar", "pln", "polres"]
    delivered = [entry("delivered", dispatch_id=d) for d in (D_DAMKAR, D_PLN, D_POLRES)]
    assert stalled(CALLER, [*own, *delivered], late, BOUND, [RECEIVED]) == []


def test_a_dispatch_the_notifier_holds_is_not_missing_it_retries_and_an_operator_phones():
    held = [entry("held", dispatch_id=D_PLN, agency="pln", reason="webhook: HTTP 503")]
    assert missing([RECEIVED, routed(), *held]) == ["damkar", "polres"]
    assert stalled(fire(), [RECEIVED, routed(), *held], LATE + BOUND, BOUND) == ["damkar", "polres"]
