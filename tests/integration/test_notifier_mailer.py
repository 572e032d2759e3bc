"""The notifier's e-mail adapter against a real SMTP server (aiosmtpd)."""

import socket
from email.message import EmailMessage

import pytest

from services.notifier.channels import Mailer
from services.notifier.policy import Verdict

pytestmark = pytest.mark.integration


def message_to(*addresses: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "e112@blitarkab.go.id"
    message["To"] = ", ".join(addresses)
    message["Subject"] = "uji"
    message.set_content("isi")
    return message


async def test_mailer_delivers_to_an_smtp_server(smtp):
    mailer = Mailer(host="127.0.0.1", port=smtp.port, sender="e112@blitarkab.go.id", timeout=5)
    result = await mailer.send(message_to("ops@damkar.blitarkab.go.id"))
    assert result.verdict is Verdict.DELIVERED
    assert [m["Subject"] for m in smtp.to("ops@damkar.blitarkab.go.id")] == ["uji"]


@pytest.mark.parametrize(
    ("reply", "verdict"), [("550 no such user", Verdict.PERMANENT), ("451 try again later", Verdict.RETRYABLE)]
)
async def test_mailer_sorts_refusals_by_kind(smtp, reply, verdict):
    smtp.rcpt_reply = reply
    mailer = Mailer(host="127.0.0.1", port=smtp.port, sender="e112@blitarkab.go.id", timeout=5)
    result = await mailer.send(message_to("ops@damkar.blitarkab.go.id"))
    assert result.verdict is verdict
    assert result.status_code == int(reply[:3])
    assert smtp.messages == []


async def test_mailer_retries_a_server_that_is_not_there():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        mailer = Mailer(host="127.0.0.1", port=port, sender="e112@blitarkab.go.id", timeout=2)
        result = await mailer.send(message_to("ops@damkar.blitarkab.go.id"))
    assert result.verdict is Verdict.RETRYABLE
    assert "connection" in result.error.lower() or "timeout" in result.error.lower()


async def test_mailer_without_a_server_is_a_permanent_failure():
    result = await Mailer(host=None, port=25, sender="x@blitarkab.go.id").send(message_to("a@b.co.id"))
    assert result.verdict is Verdict.PERMANENT and "no SMTP server" in result.error
