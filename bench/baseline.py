"""The bare baseline the bench compares against (`python -m bench.baseline`, env
DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS, PORT): the least a report service can do on this
machine. A FastAPI POST validates a small body, writes the row and an outbox row in one
transaction, answers 202, and hands the event to aiokafka (acks=all); acknowledged
outbox rows are deleted in batches. The bench's reader is the consumer at the other end.

No authentication, no idempotency, no linking, no second hop: a floor, not a rival."""

import asyncio
import contextlib
import json
import os
import uuid
from datetime import UTC, datetime

import asyncpg
import uvicorn
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from fastapi import FastAPI, Request
from pydantic import BaseModel

TOPIC = "bench.baseline"
SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (id uuid PRIMARY KEY, body jsonb NOT NULL, received_at timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (id bigserial PRIMARY KEY, topic text NOT NULL, key text NOT NULL,
                                   value bytea NOT NULL);
"""


class Location(BaseModel):
    kecamatan: str
    desa: str | None = None
    lat: float | None = None
    lon: float | None = None


class Report(BaseModel):
    category: str
    subtype: str | None = None
    description: str
    location: Location
    caller: dict
    channel: str = "call"


def create_app(dsn: str, bootstrap: str) -> FastAPI:
    acked: list[int] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
        async with app.state.pool.acquire() as conn:
            await conn.execute(SCHEMA)
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        if TOPIC not in await admin.list_topics():
            await admin.create_topics([NewTopic(TOPIC, 3, 1)])
        await admin.close()
        app.state.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
        await app.state.producer.start()
        sweeper = asyncio.create_task(sweep())
        yield
        sweeper.cancel()
        await app.state.producer.stop()
        await app.state.pool.close()

    async def sweep() -> None:
        while True:
            await asyncio.sleep(0.1)
            if acked:
                ids, acked[:] = list(acked), []
                async with app.state.pool.acquire() as conn:
                    await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", ids)

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/reports", status_code=202)
    async def create(report: Report, request: Request) -> dict:
        report_id, now = uuid.uuid4(), datetime.now(UTC)
        value = json.dumps({"id": str(report_id), **report.model_dump()}).encode()
        async with request.app.state.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO reports (id, body, received_at) VALUES ($1, $2::jsonb, $3)", report_id, value.decode(), now
            )
            outbox_id = await conn.fetchval(
                "INSERT INTO outbox (topic, key, value) VALUES ($1, $2, $3) RETURNING id", TOPIC, str(report_id), value
            )
        sent = await request.app.state.producer.send(
            TOPIC, value, key=str(report_id).encode(), headers=[("ce_id", str(report_id).encode())]
        )
        sent.add_done_callback(lambda f: acked.append(outbox_id) if not f.exception() else None)
        return {"id": str(report_id), "status": "received"}

    return app


def main() -> None:
    app = create_app(os.environ["DATABASE_URL"], os.environ["KAFKA_BOOTSTRAP_SERVERS"])
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
