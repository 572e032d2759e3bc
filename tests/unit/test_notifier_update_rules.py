"""The pure parts of dispatch updates: the update's stable id and its e-mail."""

import json
import uuid
from datetime import UTC, datetime

from services.notifier import mail
from services.notifier.handler import update_id


def test_an_update_id_is_stable_per_dispatch_and_caller():
    dispatch, caller, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert update_id(dispatch, caller) == update_id(dispatch, caller)
    assert update_id(dispatch, caller) != update_id(dispatch, other)
    assert update_id(dispatch, caller) != update_id(uuid.uuid4(), caller)
    assert update_id(dispatch, caller) != dispatch


def test_the_update_email_says_another_caller_reported_the_incident():
    dispatch_id, new_report, uid = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    body = json.dumps({
        "dispatch_id": str(dispatch_id), "report_id": str(uuid.uuid4()), "agency": "damkar",
        "new_report_id": str(new_report), "description": "Api menjalar", "casualties": 2,
        "caller": {"name": "Siti", "phone": "+6281111111111"}, "channel": "call",
    }).encode()  # fmt: skip
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
