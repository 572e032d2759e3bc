"""What the notifier's integration tests share: a local agency endpoint that verifies
signatures, a local SMTP server (aiosmtpd), settings and dispatch factories (the
`endpoint` and `smtp` fixtures are in conftest.py)."""

import email
import email.policy
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from devstack.processes import free_port
from schemas import topics
from schemas.envelope import KafkaRecord, encode
from schemas.events import DispatchRequested, EventCaller, EventLocation
from services.notifier.settings import NotifierSettings
from services.notifier.webhook_verify import InvalidSignature, verify_webhook
from tests.conftest import API_KEY
from tests.support import read_topics

ACK = "id.go.blitarkab.e112.dispatch.acknowledged.v1"
DELIVERED = "id.go.blitarkab.e112.dispatch.delivered.v1"
FAILED = "id.go.blitarkab.e112.dispatch.failed.v1"
ESCALATED = "id.go.blitarkab.e112.dispatch.escalated.v1"
FIELD = "id.go.blitarkab.e112.dispatch.field_status.v1"
HELD = "id.go.blitarkab.e112.dispatch.held.v1"


def notifier_settings(database_url: str, bootstrap: str, **overrides) -> NotifierSettings:
    values = dict(
        database_url=database_url,
        kafka_bootstrap_servers=bootstrap,
        e112_api_key=API_KEY,
        outbox_poll_interval=0.2,
        kafka_session_timeout_ms=2000,
        delivery_backoff_base_seconds=0.05,
        delivery_backoff_cap_seconds=0.2,
        delivery_max_attempts=4,
        webhook_timeout_seconds=2,
        smtp_timeout_seconds=2,
        delivery_poll_interval=0.2,
        escalation_poll_interval=0.1,
    )
    return NotifierSettings(**(values | overrides))


def dispatch_event(agency: str = "damkar") -> DispatchRequested:
    now = datetime.now(UTC)
    return DispatchRequested(
        dispatch_id=uuid.uuid4(),
        report_id=uuid.uuid4(),
        agency=agency,
        role="primary",
        category="kebakaran",
        subtype="rumah",
        description="Rumah terbakar dekat pasar",
        location=EventLocation(kecamatan="Wlingi"),
        caller=EventCaller(name="Budi", phone="+6281234567890"),
        channel="call",
        received_at=now,
        requested_at=now,
    )


def record_of(event: DispatchRequested) -> KafkaRecord:
    return encode(event, topic=topics.dispatch_topic(event.agency), key=str(event.report_id), source="e112/router")


async def status_events(bootstrap: str, until, *, settle: float = 0.5, timeout: float = 30.0):
    return await read_topics(bootstrap, [topics.DISPATCH_STATUS], until=until, settle=settle, timeout=timeout)


def of_type(messages, ce_type: str, dispatch_id=None) -> list:
    return [
        m
        for m in messages
        if m.headers.get("ce_type") == ce_type and (dispatch_id is None or m.data["dispatch_id"] == str(dispatch_id))
    ]


@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes
    status: int
    signature_ok: bool


@dataclass
class AgencyEndpoint:
    """An agency's webhook receiver: answers `status` (or `refused_keys`' status for those
    dispatches) after `delay` seconds, records
    what it answered, and checks each signature with the reference verifier against
    the secrets it was given (`secrets`), at the time `now()` says."""

    status: int = 200
    delay: float = 0.0
    secrets: list[str] = field(default_factory=list)
    now: object = time.time
    hits: list[Hit] = field(default_factory=list)
    in_flight: int = 0  # requests received and not answered yet
    most_in_flight: int = 0  # the most at any one time
    refused_keys: dict[str, int] = field(default_factory=dict)  # Idempotency-Key -> the status it always gets

    def __post_init__(self):
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with endpoint._lock:
                    endpoint.in_flight += 1
                    endpoint.most_in_flight = max(endpoint.most_in_flight, endpoint.in_flight)
                if endpoint.delay:
                    time.sleep(endpoint.delay)
                status = endpoint.refused_keys.get(headers.get("idempotency-key", ""), endpoint.status)
                with endpoint._lock:
                    endpoint.in_flight -= 1
                    endpoint.hits.append(Hit(headers, body, status, endpoint._verified(headers, body)))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that died mid-request (the SIGKILL test) is expected

        self._lock = threading.Lock()
        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _verified(self, headers: dict[str, str], body: bytes) -> bool:
        for secret in self.secrets:
            try:
                # v2: the signature covers the Idempotency-Key the agency dedupes on.
                key = headers.get("idempotency-key", "")
                verify_webhook(secret, headers.get("e112-signature", ""), body, idempotency_key=key, now=self.now())
                return True
            except InvalidSignature:
                continue
        return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/112"

    def accepted(self) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if 200 <= h.status < 300]

    def accepted_keys(self) -> list[str]:
        return [h.headers["idempotency-key"] for h in self.accepted()]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Collect:
    def __init__(self, sink: "SmtpSink"):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.sink.rcpt_reply:
            return self.sink.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.sink.messages.append(
            (envelope.rcpt_tos, email.message_from_bytes(envelope.content, policy=email.policy.default))
        )
        return "250 Message accepted"


class SmtpSink:
    """A local SMTP server (aiosmtpd) keeping every message it accepts. Set
    `rcpt_reply` (e.g. "550 no such user") to refuse recipients."""

    def __init__(self):
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.rcpt_reply: str | None = None
        self.port = free_port()
        self._controller = Controller(_Collect(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def to(self, address: str) -> list[EmailMessage]:
        return [m for rcpts, m in self.messages if address in rcpts]

    def close(self) -> None:
        self._controller.stop()


async def set_agency(client, agency: str, **config) -> dict:
    response = await client.put(f"/v1/agencies/{agency}", json={"updated_by": "test", **config})
    assert response.status_code == 200, response.text
    return response.json()


async def agency_key(client, agency: str) -> str:
    response = await client.post(f"/v1/agencies/{agency}/api-keys", json={"created_by": "test", "label": "cad"})
    assert response.status_code == 201, response.text
    return response.json()["key"]


def text_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()
