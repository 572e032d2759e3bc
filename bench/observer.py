"""The agencies' side, a process of its own (`python -m bench.observer CONFIG`): a plain
Kafka reader on the agency topics (no group, from the beginning, as an agency system
reads) and the agencies' webhook endpoint. It records when each message and each
webhook request arrived, writes a count to STATUS every half second, and everything
to OUT when it gets SIGTERM."""

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from bench.http import serve


class Recorder:
    """What arrived and when: a row per message read and per webhook request."""

    def __init__(self) -> None:
        self.messages: list[list] = []
        self.hooks: list[list] = []

    async def on_webhook(self, method: str, path: str, headers: dict[str, str], body: bytes) -> int:
        seen = time.monotonic()
        try:
            data = json.loads(body)
        except ValueError:
            data = {}
        self.hooks.append(
            [
                path,
                headers.get("idempotency-key"),
                headers.get("ce-type"),
                headers.get("ce-id"),
                str(data.get("report_id")),
                data.get("agency"),
                str(data.get("dispatch_id")),
                seen,
            ]
        )
        return 200

    def on_message(self, record, seen: float) -> None:
        h = {k: v.decode(errors="replace") for k, v in record.headers or ()}
        try:
            data = json.loads(record.value or b"")
        except ValueError:
            data = {}
        self.messages.append(
            [
                record.topic,
                (record.key or b"").decode(),
                h.get("ce_id"),
                h.get("ce_type"),
                str(data.get("report_id", data.get("id"))),
                str(data.get("dispatch_id")),
                seen,
                record.partition,
                record.offset,
            ]
        )

    def counts(self) -> dict[str, dict[str, int]]:
        """Messages and webhook requests so far, by CloudEvents type."""
        by_type: dict[str, int] = {}
        for m in self.messages:
            by_type[m[3]] = by_type.get(m[3], 0) + 1
        hooks_by_type: dict[str, int] = {}
        for h in self.hooks:
            hooks_by_type[h[2]] = hooks_by_type.get(h[2], 0) + 1
        return {"messages": by_type, "webhooks": hooks_by_type}


async def run(config: dict) -> None:
    recorder = Recorder()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    server = await serve(recorder.on_webhook, port=config["webhook_port"])
    consumer = AIOKafkaConsumer(
        *config["topics"],
        bootstrap_servers=config["bootstrap"],
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=config.get("fetch_max_wait_ms", 20),
        metadata_max_age_ms=2000,
    )
    await consumer.start()
    tasks = [
        asyncio.create_task(_read(consumer, recorder)),
        asyncio.create_task(_write_status(recorder, config["status"])),
    ]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await consumer.stop()
    server.close()
    Path(config["out"]).write_text(json.dumps({"messages": recorder.messages, "webhooks": recorder.hooks}))


async def _read(consumer: AIOKafkaConsumer, recorder: Recorder) -> None:
    while True:
        batch = await consumer.getmany(timeout_ms=200, max_records=5000)
        seen = time.monotonic()
        for records in batch.values():
            for record in records:
                recorder.on_message(record, seen)


async def _write_status(recorder: Recorder, path: str) -> None:
    while True:
        Path(path + ".tmp").write_text(json.dumps(recorder.counts()))
        os.replace(path + ".tmp", path)
        await asyncio.sleep(0.5)


def main() -> None:
    asyncio.run(run(json.loads(open(sys.argv[1]).read())))


if __name__ == "__main__":
    main()
