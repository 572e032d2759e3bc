"""The ways a dispatch reaches an agency: its webhook, and e-mail over SMTP. Each
channel says whether an agency's configuration gives it somewhere to send, and makes
one attempt, sorting the result by kind (policy.py). Adding a channel (SMS, a radio
gateway) means one more class here and its name in an agency's `channels`."""

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from uuid import UUID

import aiohttp
import aiosmtplib
from yarl import URL

from services.notifier import mail, signing
from services.notifier.egress import EgressPolicy, Refused, Unresolved
from services.notifier.policy import Verdict, classify_smtp_code, classify_status
from services.notifier.store import AgencyConfig, DueDispatch


@dataclass(frozen=True)
class Result:
    verdict: Verdict
    status_code: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class AckLinks:
    """Signed links that acknowledge one dispatch until they expire."""

    base_url: str
    secret: str
    ttl_seconds: int

    def make(self, dispatch_id: UUID, now: datetime) -> tuple[str, datetime]:
        expires = now + timedelta(seconds=self.ttl_seconds)
        token = signing.ack_token(self.secret, dispatch_id, int(expires.timestamp()))
        return f"{self.base_url.rstrip('/')}/v1/ack/{token}", expires


@dataclass(frozen=True)
class Mailer:
    host: str | None
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    tls: bool = False
    timeout: float = 20.0

    async def send(self, message: EmailMessage) -> Result:
        if not self.host:
            return Result(Verdict.PERMANENT, error="no SMTP server configured")
        try:
            refused, _ = await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.tls,
                start_tls=self.starttls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            verdict = Verdict.RETRYABLE if any(400 <= c < 500 for c in codes) else Verdict.PERMANENT
            return Result(verdict, min(codes, default=None), f"every recipient refused: SMTP {codes}")
        except aiosmtplib.SMTPResponseException as exc:
            return Result(classify_smtp_code(exc.code), exc.code, f"SMTP {exc.code}: {exc.message}"[:300])
        except (aiosmtplib.SMTPTimeoutError, TimeoutError):
            return Result(Verdict.RETRYABLE, error="SMTP timeout")
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, OSError) as exc:
            return Result(Verdict.RETRYABLE, error=f"SMTP connection: {type(exc).__name__}: {exc}"[:300])
        except aiosmtplib.SMTPException as exc:  # e.g. STARTTLS not offered: configuration, not luck
            return Result(Verdict.PERMANENT, error=f"SMTP: {type(exc).__name__}: {exc}"[:300])
        if refused:  # some recipients took it: delivered, and say who did not
            return Result(Verdict.DELIVERED, 250, f"refused by {len(refused)} recipient(s)")
        return Result(Verdict.DELIVERED, 250)


# What is read of an agency's answer: its status matters, its body does not (and an
# endpoint must not be able to make the notifier read without end).
ANSWER_READ_LIMIT = 64 * 1024


def webhook_session(timeout_seconds: float) -> aiohttp.ClientSession:
    """The webhook client. aiohttp, not httpx: under load httpx's connection pool cost
    the notifier about a millisecond of CPU per request, aiohttp a tenth of that
    (bench/). No cookies are kept between agencies, no environment proxy is used."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout_seconds),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        auto_decompress=False,
    )


class WebhookChannel:
    name = "webhook"

    def __init__(self, session: aiohttp.ClientSession, egress: EgressPolicy):
        self.session = session
        self.egress = egress

    def target(self, config: AgencyConfig) -> tuple[str | None, str]:
        return config.webhook_url, "no webhook configured for this agency"

    async def send(self, target: str, dispatch: DueDispatch, config: AgencyConfig, now: datetime) -> Result:
        headers = {
            "content-type": "application/json",
            "ce-specversion": "1.0",
            "ce-id": dispatch.event_id,
            "ce-source": dispatch.event_source,
            "ce-type": dispatch.event_type,
            "idempotency-key": str(dispatch.dispatch_id),
            "e112-round": str(dispatch.round),
            "user-agent": "e112-notifier/0.2",
        }
        if dispatch.event_time:
            headers["ce-time"] = dispatch.event_time.isoformat().replace("+00:00", "Z")
        secrets_ = config.signing_secrets(now)
        if secrets_:  # always, for a webhook set through the API (it makes the secret)
            # Signed at send time: a retry after a long outage carries a fresh timestamp.
            headers[signing.SIGNATURE_HEADER] = signing.signature_header(
                secrets_, int(now.timestamp()), dispatch.body, idempotency_key=headers["idempotency-key"]
            )
        try:
            pinned = await self.egress.pin(target)
        except Refused as exc:
            return Result(Verdict.PERMANENT, error=str(exc))
        except Unresolved as exc:
            return Result(Verdict.RETRYABLE, error=str(exc))
        headers["host"] = pinned.host_header
        try:
            async with self.session.post(
                URL(str(pinned.url), encoded=True),
                data=dispatch.body,
                headers=headers,
                allow_redirects=False,
                server_hostname=pinned.sni_hostname,
            ) as response:
                await response.content.read(ANSWER_READ_LIMIT)
                status = response.status
        except aiohttp.InvalidURL as exc:
            return Result(Verdict.PERMANENT, error=f"invalid URL: {exc}")
        except TimeoutError:
            return Result(Verdict.RETRYABLE, error="timeout")
        except (aiohttp.ClientError, OSError) as exc:
            return Result(Verdict.RETRYABLE, error=f"{type(exc).__name__}: {exc}"[:300])
        verdict = classify_status(status)
        return Result(verdict, status, None if verdict is Verdict.DELIVERED else f"HTTP {status}")


class EmailChannel:
    name = "email"

    def __init__(self, mailer: Mailer, links: AckLinks):
        self.mailer = mailer
        self.links = links

    def target(self, config: AgencyConfig) -> tuple[str | None, str]:
        if not self.mailer.host:
            return None, "no SMTP server configured"
        return (", ".join(config.email_to) or None), "no e-mail address configured for this agency"

    async def send(self, target: str, dispatch: DueDispatch, config: AgencyConfig, now: datetime) -> Result:
        if dispatch.kind == "update" and dispatch.event_type.endswith(".dispatch.cancelled.v1"):
            message = mail.cancellation_email(
                sender=self.mailer.sender,
                to=list(config.email_to),
                body=dispatch.body,
                notice_id=dispatch.dispatch_id,
                now=now,
            )
            return await self.mailer.send(message)
        if dispatch.kind == "update" and dispatch.event_type.endswith(".dispatch.closed.v1"):
            message = mail.closing_email(
                sender=self.mailer.sender,
                to=list(config.email_to),
                body=dispatch.body,
                notice_id=dispatch.dispatch_id,
                now=now,
            )
            return await self.mailer.send(message)
        if dispatch.kind == "update":
            # The link acknowledges the dispatch the update belongs to: an update is not
            # acknowledged on its own.
            url, expires = self.links.make(dispatch.update_of, now)
            message = mail.update_email(
                sender=self.mailer.sender,
                to=list(config.email_to),
                body=dispatch.body,
                update_id=dispatch.dispatch_id,
                ack_url=url,
                expires=expires,
                now=now,
            )
            return await self.mailer.send(message)
        url, expires = self.links.make(dispatch.dispatch_id, now)
        message = mail.dispatch_email(
            sender=self.mailer.sender,
            to=list(config.email_to),
            body=dispatch.body,
            round_=dispatch.round,
            ack_url=url,
            expires=expires,
            now=now,
        )
        return await self.mailer.send(message)


def elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
