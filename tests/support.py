"""Test helpers: an agency's plain Kafka reader, a local webhook receiver, and running
a service in-process with its lifespan."""

import asyncio
import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.envelope import KafkaRecord


@dataclass
class Message:
    topic: str
    key: str
    headers: dict[str, str]
    data: dict | None
    raw: bytes
    seen_at: float


async def read_topics(
    bootstrap: str, topics: list[str], *, until, timeout: float = 20.0, settle: float = 0.0
) -> list[Message]:
    """Read `topics` from the beginning, as an agency system would with a plain client
    (no group), until `until(messages)` holds, then `settle` seconds more to catch any
    extra (duplicate) message. Raises TimeoutError with what it saw otherwise."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
        metadata_max_age_ms=1000,
    )
    await consumer.start()
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    settled_at = None
    try:
        while True:
            now = time.monotonic()
            if settled_at is None and until(messages):
                settled_at = now + settle
            if settled_at is not None and now >= settled_at:
                return messages
            if now > deadline:
                raise TimeoutError(
                    f"condition not met after {timeout}s; saw {len(messages)} messages: "
                    f"{[(m.topic, m.headers.get('ce_type')) for m in messages][:30]}"
                )
            batch = await consumer.getmany(timeout_ms=100)
            for records in batch.values():
                for r in records:
                    raw = r.value or b""
                    try:
                        data = json.loads(raw)
                    except ValueError:
                        data = None
                    messages.append(
                        Message(
                            r.topic,
                            (r.key or b"").decode(errors="replace"),
                            {k: v.decode(errors="replace") for k, v in r.headers},
                            data,
                            raw,
                            time.monotonic(),
                        )
                    )
    finally:
        await consumer.stop()


async def produce(bootstrap: str, records: list[KafkaRecord]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for r in records:
            await producer.send_and_wait(r.topic, r.value, key=r.key, headers=r.headers)
    finally:
        await producer.stop()


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self):
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """A local agency endpoint. `responses` is a list of status codes answered in turn
    (the last one repeats); every request is recorded."""

    responses: list[int] = field(default_factory=lambda: [200])
    requests: list[ReceivedRequest] = field(default_factory=list)

    def __post_init__(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    receiver.requests.append(
                        ReceivedRequest(
                            self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()
                        )
                    )
                    index = min(len(receiver.requests), len(receiver.responses)) - 1
                    status = receiver.responses[index]
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextlib.asynccontextmanager
async def running(app, api_key: str):
    """Run an app's lifespan (pool, consumers, relay) and give a client to it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers={"Authorization": f"Bearer {api_key}"}
        ) as client:
            yield client


async def eventually(check, *, timeout: float = 20.0, interval: float = 0.1):
    """Poll `check` (sync or async) until it returns a truthy value; return it."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true after {timeout}s")
        await asyncio.sleep(interval)


# Settings every service accepts with E112_ENV=production (a service's own extras aside).
PRODUCTION_SETTINGS = {
    "e112_env": "production",
    "database_url": "postgresql://e112@db:5432/e112",
    "kafka_bootstrap_servers": "k:9092",
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_username": "e112-test",
    "kafka_sasl_password": "pw",
    "admin_api_key": "k" * 40,
    "console_api_key": "c" * 40,
}

FIRE_REPORT = {
    "category": "kebakaran",
    "subtype": "rumah",
    "description": "Rumah terbakar dekat pasar, asap tebal",
    "location": {"kecamatan": "Wlingi", "desa": "Beru", "address": "Jl. Raya Beru 12", "lat": -8.078, "lon": 112.318},
    "caller": {"name": "Budi", "phone": "081234567890"},
    "channel": "call",
}
