"""The pure parts of dispatch updates: the update's stable id, its e-mail and the
type its outcome names."""

import json
import typing
import uuid
from datetime import UTC, datetime, timedelta

from schemas.events import DispatchClosed, DispatchUpdateDelivered, DispatchUpdateFailed
from services.notifier import mail
from services.notifier.deliverer import UPDATE_TYPES, update_outcome_record
from services.notifier.handler import closing_id, update_id
from services.notifier.store import DueDispatch


def test_an_update_id_is_stable_per_dispatch_and_caller():
    dispatch, caller, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert update_id(dispatch, caller) == update_id(dispatch, caller)
    assert update_id(dispatch, caller) != update_id(dispatch, other)
    assert update_id(dispatch, caller) != update_id(uuid.uuid4(), caller)
    assert update_id(dispatch, caller) != dispatch


def test_the_update_email_says_another_caller_reported_the_incident():
    dispatch_id, new_report, uid = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    body = json.dumps(
        {
            "dispatch_id": str(dispatch_id),
            "report_id": str(uuid.uuid4()),
            "agency": "damkar",
            "new_report_id": str(new_report),
            "description": "Api menjalar",
            "casualties": 2,
            "caller": {"name": "Siti", "phone": "+6281111111111"},
            "channel": "call",
        }
    ).encode()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    message = mail.update_email(
        sender="e112@x", to=["ops@damkar"], body=body, update_id=uid, ack_url="https://n/v1/ack/t", expires=now, now=now
    )
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "another caller reported the incident already dispatched to DAMKAR" in text
    assert str(new_report) in text and str(dispatch_id) in text and "Korban / casualties : 2" in text
    assert "https://n/v1/ack/t" in text
    assert message["Message-ID"] == f"<{uid}.update@{mail.MESSAGE_ID_DOMAIN}>"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content() == body


def test_a_closing_id_is_one_per_closing_of_the_dispatch():
    dispatch, at = uuid.uuid4(), datetime(2026, 1, 1, 8, tzinfo=UTC)
    assert closing_id(dispatch, at) == closing_id(dispatch, datetime(2026, 1, 1, 8, tzinfo=UTC))
    assert closing_id(dispatch, at) != closing_id(dispatch, at + timedelta(minutes=20))  # closed again, reopened
    assert closing_id(dispatch, at) != closing_id(uuid.uuid4(), at)


def test_every_update_type_an_outcome_can_name_comes_from_one_event_type():
    for model in (DispatchUpdateDelivered, DispatchUpdateFailed):
        assert set(UPDATE_TYPES.values()) == set(typing.get_args(model.model_fields["update_type"].annotation))
    assert UPDATE_TYPES[DispatchClosed.ce_type] == "closed"


def test_a_closing_notice_is_announced_as_a_closed_update():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    dispatch_id, notice_id = uuid.uuid4(), uuid.uuid4()
    row = DueDispatch(
        dispatch_id=notice_id,
        report_id=uuid.uuid4(),
        agency="damkar",
        event_id="e",
        event_type=DispatchClosed.ce_type,
        event_source="e112/router",
        event_time=now,
        body=b"{}",
        received_at=now,
        attempts=0,
        channel="webhook",
        channels_tried=[],
        channel_attempts=0,
        channel_errors=[],
        round=1,
        claim_token=uuid.uuid4(),
        kind="update",
        update_of=dispatch_id,
    )
    record = update_outcome_record(row, "delivered", "webhook", 1, None, now)
    data = json.loads(record.value)
    assert (data["update_type"], data["update_id"], data["dispatch_id"]) == ("closed", str(notice_id), str(dispatch_id))


def test_the_closing_email_gives_the_outcome_and_note_in_both_languages():
    dispatch_id, report_id, notice_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    body = (
        DispatchClosed(
            dispatch_id=dispatch_id,
            report_id=report_id,
            agency="bpbd",
            outcome="handed_over",
            note="Diserahkan ke Polres",
            closed_at=now,
        )
        .model_dump_json()
        .encode()
    )
    message = mail.closing_email(sender="e112@x", to=["ops@bpbd"], body=body, notice_id=notice_id, now=now)
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert message["Subject"] == "[112 DITUTUP / CLOSED] BPBD: handed_over"
    assert "DITUTUP:" in text and "CLOSED:" in text and "Hasil / outcome  : handed_over" in text
    assert "Diserahkan ke Polres" in text and str(dispatch_id) in text and str(report_id) in text
    assert message["Message-ID"] == f"<{notice_id}.closed@{mail.MESSAGE_ID_DOMAIN}>"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "dispatch-closed.json" and attachment.get_content() == body
