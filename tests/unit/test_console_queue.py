"""The operator's queue: my tasks first, the most urgent first (an agency to phone, then
verifications, before escalations), then the reports waiting for anyone's verdict,
oldest first, each once."""

from services.console.queue import queue_items

ME = "aaaaaaaa-0000-0000-0000-000000000001"
OTHER = "aaaaaaaa-0000-0000-0000-000000000002"


def summary(report_id, received, *, verification="before_dispatch", verdict=None, assigned_to=None):
    return {
        "id": report_id,
        "received_at": f"2026-11-28T08:{received:02d}:00+07:00",
        "category": "kerusuhan",
        "subtype": None,
        "kecamatan": "Srengat",
        "desa": None,
        "channel": "sms",
        "kind": "emergency",
        "status": "awaiting_verification",
        "verification": verification,
        "verdict": verdict,
        "assigned_to": assigned_to,
    }


def test_mine_first_most_urgent_first_then_others_oldest_first():
    pending = [
        summary("p-new", 30),
        summary("p-old", 5),
        summary("mine-verify", 20, assigned_to=ME),
        summary("theirs", 1, assigned_to=OTHER),
    ]
    tasks = [
        {"task_id": "t1", "report_id": "mine-verify", "reason": "verify"},
        {"task_id": "t2", "report_id": "escalated-one", "reason": "escalated"},
        {"task_id": "t3", "report_id": "unreached", "reason": "phone_agency"},
    ]
    summaries = {
        "escalated-one": summary("escalated-one", 1, verification="not_required"),
        "unreached": summary("unreached", 50, verification="not_required"),
    }
    items = queue_items(tasks, pending, summaries, ME)
    assert [i["report_id"] for i in items] == ["unreached", "mine-verify", "escalated-one", "theirs", "p-old", "p-new"]
    assert [i["mine"] for i in items] == [True, True, True, False, False, False]
    assert items[0]["task"]["task_id"] == "t3" and items[0]["needs_verdict"] is False
    assert items[1]["needs_verdict"] is True and items[1]["reason"] == "verify"


def test_a_report_assigned_to_me_without_a_task_list_is_still_mine():
    items = queue_items([], [summary("r", 3, assigned_to=ME)], {}, ME)
    assert items[0]["mine"] is True and items[0]["task"] is None


def test_a_task_whose_report_cannot_be_read_still_shows():
    items = queue_items(
        [{"task_id": "t", "report_id": "gone", "reason": "unrouted", "created_at": "2026-11-28T08:00:00+07:00"}],
        [],
        {},
        ME,
    )
    assert items[0]["report_id"] == "gone" and items[0]["category"] is None


def test_two_tasks_on_one_report_are_two_items_and_a_pending_report_with_my_task_shows_once():
    tasks = [
        {"task_id": "t-esc", "report_id": "r", "reason": "escalated"},
        {"task_id": "t-stall", "report_id": "r", "reason": "stalled"},
        {"task_id": "t-verify", "report_id": "p", "reason": "verify"},
    ]
    items = queue_items(tasks, [summary("p", 1, assigned_to=ME)], {"r": summary("r", 2)}, ME)
    assert [(i["key"], i["reason"]) for i in items] == [
        ("task:t-verify", "verify"),
        ("task:t-stall", "stalled"),
        ("task:t-esc", "escalated"),
    ]


def test_without_the_report_a_task_shows_what_shifts_knows():
    task = {
        "task_id": "t",
        "report_id": "r",
        "reason": "escalated",
        "created_at": "2026-11-28T08:00:00+07:00",
        "detail": {"category": "kebakaran", "kecamatan": "Wlingi", "channel": "call"},
    }
    item = queue_items([task], [], {}, ME)[0]
    assert (item["category"], item["kecamatan"], item["key"]) == ("kebakaran", "Wlingi", "task:t")
