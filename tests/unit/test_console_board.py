"""The dispatch board's rows: each agency's steps from the timeline, lateness, order."""

from datetime import UTC, datetime, timedelta

from services.console.board import board, board_row, is_late, step_times

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
DAMKAR, PLN = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def report(report_id="r1", received=0, timeline=None, dispatches=None, **extra):
    return {
        "id": report_id,
        "status": "routed",
        "category": "kebakaran",
        "subtype": "rumah",
        "channel": "call",
        "location": {"kecamatan": "Wlingi", "desa": "Beru"},
        "received_at": at(received),
        "verification": {"required": "not_required", "state": "not_required"},
        "linked_reports": [],
        "timeline": timeline or [],
        "dispatches": dispatches or [],
        **extra,
    }


def fire(acked_damkar=False, pln_state="delivered"):
    timeline = [
        {"at": at(0), "event": "received", "agency": None, "detail": {}},
        {
            "at": at(2),
            "event": "routed",
            "agency": None,
            "detail": {
                "dispatches": [
                    {"dispatch_id": DAMKAR, "agency": "damkar", "role": "primary"},
                    {"dispatch_id": PLN, "agency": "pln", "role": "supporting"},
                ]
            },
        },
        {"at": at(3), "event": "delivered", "agency": "damkar", "detail": {"dispatch_id": DAMKAR}},
        {"at": at(4), "event": "delivered", "agency": "pln", "detail": {"dispatch_id": PLN}},
    ]
    if acked_damkar:
        timeline += [
            {"at": at(30), "event": "acknowledged", "agency": "damkar", "detail": {"dispatch_id": DAMKAR}},
            {
                "at": at(60),
                "event": "field_status",
                "agency": "damkar",
                "detail": {"dispatch_id": DAMKAR, "status": "on_the_way"},
            },
        ]
    dispatches = [
        {
            "dispatch_id": DAMKAR,
            "agency": "damkar",
            "role": "primary",
            "state": "on_the_way" if acked_damkar else "delivered",
            "escalated": False,
        },
        {"dispatch_id": PLN, "agency": "pln", "role": "supporting", "state": pln_state, "escalated": False},
    ]
    return report(timeline=timeline, dispatches=dispatches)


def test_each_agency_has_the_time_of_each_of_its_steps():
    steps = step_times(fire(acked_damkar=True))
    assert steps[DAMKAR] == {"requested": at(2), "delivered": at(3), "acknowledged": at(30), "on_the_way": at(60)}
    assert steps[PLN] == {"requested": at(2), "delivered": at(4)}


def test_escalation_steps_are_told_apart():
    timeline = fire()["timeline"] + [
        {"at": at(300), "event": "escalated", "agency": "pln", "detail": {"dispatch_id": PLN, "step": "resent"}},
        {"at": at(600), "event": "escalated", "agency": "pln", "detail": {"dispatch_id": PLN, "step": "escalated"}},
    ]
    assert step_times(report(timeline=timeline))[PLN] == {
        "requested": at(2),
        "delivered": at(4),
        "resent": at(300),
        "escalated": at(600),
    }


def test_an_agency_is_late_past_its_deadline_until_it_acknowledges():
    deadlines = {"damkar": 120, "pln": 300}
    row = board_row(fire(acked_damkar=True), deadlines, T0 + timedelta(seconds=200))
    damkar, pln = row["agencies"]
    assert damkar["ack_due_at"] == at(122) and not damkar["late"]  # acknowledged (and on the way)
    assert pln["ack_due_at"] == at(302) and not pln["late"] and not row["late"]
    row = board_row(fire(acked_damkar=True), deadlines, T0 + timedelta(seconds=302))
    assert row["agencies"][1]["late"] and row["late"]


def test_done_and_cancelled_dispatches_are_never_late():
    due = T0
    assert is_late("delivered", due, T0) and is_late("failed", due, T0) and is_late("requested", due, T0)
    for state in ("acknowledged", "on_scene", "done", "cancelled"):
        assert not is_late(state, due, T0 + timedelta(hours=1))
    assert not is_late("delivered", None, T0)  # deadline unknown: nothing is claimed


def test_the_newest_come_first_late_or_not():
    deadlines = {"damkar": 60, "pln": 60}
    old_and_fine = {**fire(acked_damkar=True), "id": "old"}
    old_and_fine["dispatches"][1]["state"] = "acknowledged"
    newer_and_late = {**fire(), "id": "late", "received_at": at(10)}
    newest = report("new", received=20)
    rows = board([newest, old_and_fine, newer_and_late], deadlines, T0 + timedelta(seconds=100))
    assert [r["report_id"] for r in rows] == ["new", "late", "old"]
    assert [r["late"] for r in rows] == [False, True, False]


def test_a_row_says_what_the_board_shows_and_nothing_personal():
    shown = board_row(fire(), {}, T0)
    source = fire()
    source["caller"] = {"name": "Budi", "phone": "+6281234567890"}
    source["description"] = "Rumah Pak Budi terbakar"
    row = board_row(source, {}, T0)
    assert row == shown
    assert row["kecamatan"] == "Wlingi" and row["desa"] == "Beru" and row["unverified"] is False
    assert "+6281234567890" not in str(row) and "Budi" not in str(row)
