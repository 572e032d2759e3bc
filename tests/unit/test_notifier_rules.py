"""The notifier's pure rules: escalation steps, field status order, channel order,
SMTP replies by kind, the e-mails it composes, and its production settings."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.notifier import escalation, field_status, mail
from services.notifier.policy import Verdict, classify_smtp_code, next_channel, trips_breaker
from services.notifier.settings import NotifierSettings
from services.notifier.store import AgencyConfig
from tests.support import PRODUCTION_SETTINGS

NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def test_the_first_timer_resends_and_sets_the_second():
    fired = escalation.firing(0, NOW, 300)
    assert fired.step == "resent" and fired.next_due_at == NOW + timedelta(seconds=300)


def test_the_second_timer_escalates_and_leaves_none():
    fired = escalation.firing(1, NOW, 300)
    assert fired.step == "escalated" and fired.next_due_at is None


@pytest.mark.parametrize("step_done", [2, 3, 10])
def test_nothing_fires_after_the_last_step(step_done):
    assert escalation.firing(step_done, NOW, 300) is None


def test_the_first_deadline_counts_from_queueing():
    assert escalation.first_due(NOW, 90) == NOW + timedelta(seconds=90)


@pytest.mark.parametrize(
    ("current", "new", "expected"),
    [
        (None, "on_the_way", "forward"),
        (None, "done", "forward"),
        ("on_the_way", "on_scene", "forward"),
        ("on_the_way", "done", "forward"),
        ("on_scene", "on_scene", "same"),
        ("on_scene", "on_the_way", "backward"),
        ("done", "on_scene", "backward"),
    ],
)
def test_field_status_goes_forward_only(current, new, expected):
    assert field_status.change(current, new) == expected


def test_an_unknown_field_status_is_refused():
    with pytest.raises(ValueError):
        field_status.change(None, "arrived")


def test_channels_are_tried_in_the_agency_order():
    assert next_channel(["webhook", "email"], []) == "webhook"
    assert next_channel(["webhook", "email"], ["webhook"]) == "email"
    assert next_channel(["email", "webhook"], []) == "email"
    assert next_channel(["webhook", "email"], ["webhook", "email"]) is None


@pytest.mark.parametrize(
    ("code", "verdict"),
    [
        (250, "delivered"),
        (251, "delivered"),
        (421, "retryable"),
        (450, "retryable"),
        (452, "retryable"),
        (550, "permanent"),
        (553, "permanent"),
        (554, "permanent"),
    ],
)
def test_smtp_replies_are_sorted_by_kind(code, verdict):
    assert classify_smtp_code(code) == verdict


def test_only_retryable_failures_trip_the_breaker():
    assert trips_breaker(Verdict.RETRYABLE)
    assert not trips_breaker(Verdict.PERMANENT) and not trips_breaker(Verdict.DELIVERED)


def test_the_previous_secret_signs_only_during_its_grace_period():
    config = AgencyConfig(
        agency="damkar",
        webhook_secret="new",
        previous_webhook_secret="old",
        previous_secret_until=NOW + timedelta(hours=1),
    )
    assert config.signing_secrets(NOW) == ["new", "old"]
    assert config.signing_secrets(NOW + timedelta(hours=2)) == ["new"]
    assert AgencyConfig(agency="pln").signing_secrets(NOW) == []


BODY = json.dumps(
    {
        "dispatch_id": "7d3b5f4e-1111-4222-8333-944455556666",
        "report_id": "0c1d2e3f-1111-4222-8333-944455556666",
        "agency": "dinkes",
        "role": "supporting",
        "category": "kecelakaan",
        "subtype": "lalu_lintas",
        "description": "Tabrakan motor di jalan raya",
        "casualties": 2,
        "location": {"kecamatan": "Talun", "desa": "Bendosewu", "address": "Jl. Raya Talun", "lat": -8.1, "lon": 112.3},
        "caller": {"name": "Siti", "phone": "+6285645678901"},
        "received_at": "2025-03-01T08:00:00Z",
    }
).encode()


def test_the_dispatch_email_carries_what_the_agency_needs():
    message = mail.dispatch_email(
        sender="112 <noreply@blitarkab.go.id>",
        to=["psc@dinkes.blitarkab.go.id"],
        body=BODY,
        round_=1,
        ack_url="https://112.blitarkab.go.id/v1/ack/tok",
        expires=NOW + timedelta(days=1),
        now=NOW,
    )
    text = message.get_body(("plain",)).get_content()
    assert message["Subject"] == "[112] kecelakaan/lalu_lintas - Kec. Talun"
    assert message["To"] == "psc@dinkes.blitarkab.go.id"
    assert message["Message-ID"] == "<7d3b5f4e-1111-4222-8333-944455556666.dispatch.1@e112.blitarkab.go.id>"
    expected = [
        "DINKES",
        "Tabrakan motor",
        "Desa Bendosewu",
        "Kec. Talun",
        "Siti, +6285645678901",
        "Korban / casualties : 2",
        "https://112.blitarkab.go.id/v1/ack/tok",
        "2025-03-02T08:00",
    ]
    assert [e for e in expected if e not in text] == []
    [attachment] = message.iter_attachments()
    assert attachment.get_filename() == "dispatch.json" and attachment.get_content() == BODY


def test_a_resent_email_says_so_and_is_a_new_message():
    first = mail.dispatch_email(
        sender="a@b.go.id", to=["c@d.go.id"], body=BODY, round_=1, ack_url="u", expires=NOW, now=NOW
    )
    again = mail.dispatch_email(
        sender="a@b.go.id", to=["c@d.go.id"], body=BODY, round_=2, ack_url="u", expires=NOW, now=NOW
    )
    assert "re-sent" in again["Subject"] and "re-sent" not in first["Subject"]
    assert again["Message-ID"] != first["Message-ID"]


def test_the_escalation_email_says_how_long_it_waited():
    message = mail.escalation_email(
        sender="a@b.go.id",
        to=["kepala@dinkes.blitarkab.go.id"],
        body=BODY,
        dispatch_id=uuid.uuid4(),
        waited_seconds=600,
        ack_url="https://x/v1/ack/t",
        expires=NOW,
        now=NOW,
    )
    text = message.get_body(("plain",)).get_content()
    assert message["Subject"].startswith("[112 ESKALASI] DINKES")
    assert "600 detik" in text and "600 s" in text and "https://x/v1/ack/t" in text


def production(**overrides) -> dict:
    return (
        PRODUCTION_SETTINGS
        | {
            "ack_link_secret": "l" * 40,
            "public_base_url": "https://112.blitarkab.go.id",
            "webhook_secret_keys": "Z" * 43 + "=",
        }
        | overrides
    )


def test_production_with_a_link_secret_and_a_public_url_is_accepted():
    assert NotifierSettings(**production()).e112_env == "production"


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"ack_link_secret": "short"}, "ACK_LINK_SECRET"),
        ({"public_base_url": "http://127.0.0.1:8003"}, "PUBLIC_BASE_URL"),
    ],
)
def test_production_refuses_development_link_settings(monkeypatch, override, named):
    for name in ("ACK_LINK_SECRET", "PUBLIC_BASE_URL", "E112_ENV"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError, match=named):
        NotifierSettings(**production(**override))
