"""Re-drive dead-lettered events once their cause is fixed.

    python -m services.common.redrive --consumer router [--since 2026-01-31T08:00:00+07:00]
        [--until ...] [--ce-id ID ...] [--dry-run]
        [--bootstrap HOST:PORT]   (default $KAFKA_BOOTSTRAP_SERVERS)
        [--database-url DSN]      (default $DATABASE_URL)
        [--schema NAME]           (default: the consumer name up to its first '-')

Reads `e112.deadletter` from its start up to its end when the command starts, keeps the
dead letters of that consumer (header `e112_consumer`) written within --since/--until,
and publishes each original message again, unchanged (value, key, headers without the
`e112_*` ones), to its original topic. Each ce_id is re-driven once per run, however
often it was dead-lettered.

The inbox: consumers deduplicate by ce_id, so a re-published event must not find its
ce_id claimed. A consumer that dead-letters records that under a claim of its own,
`deadletter:<ce_id>` (`deadletter_claim`), never under the plain ce_id, which stays
free for the event to be handled. Before publishing, the command deletes the
`deadletter:` claim, so an event that fails again is dead-lettered again (and the
operators told again) instead of being dropped as a duplicate. A ce_id whose plain claim
exists was handled since (an earlier re-drive, or a redelivery that succeeded): it is
skipped, so running the command twice dispatches nothing twice. A consumer that still
claims dead letters under the plain ce_id needs `--force`, which deletes that claim too.

Messages without a ce_id can never be processed (it is the deduplication key) and are
listed, not re-driven. The output names ce_ids, topics and errors, never a message's
content (it may hold a caller's name and number).
"""

import argparse
import asyncio
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from schemas import topics
from schemas.envelope import KafkaRecord
from services.common.consumer import DEADLETTER_CLAIM_PREFIX, deadletter_claim  # noqa: F401 - re-exported
from services.common.kafka import PLAINTEXT, KafkaSecurity, new_producer, new_reader

ORIGIN_HEADER_PREFIX = "e112_"


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    at: datetime  # when it was dead-lettered (the dead letter's Kafka timestamp)
    consumer: str
    error: str
    original: KafkaRecord

    @property
    def ce_id(self) -> str | None:
        value = dict(self.original.headers).get("ce_id")
        return value.decode(errors="replace") if value else None


def parse_deadletter(record: ConsumerRecord) -> DeadLetter | None:
    """A dead letter as the common consumer writes it; None for anything else."""
    headers = [(name, bytes(value)) for name, value in (record.headers or ())]
    origin = {name: value.decode(errors="replace") for name, value in headers if name.startswith("e112_")}
    if "e112_consumer" not in origin or "e112_original_topic" not in origin:
        return None
    return DeadLetter(
        partition=record.partition,
        offset=record.offset,
        at=datetime.fromtimestamp(record.timestamp / 1000, UTC),
        consumer=origin["e112_consumer"],
        error=origin.get("e112_error", ""),
        original=KafkaRecord(
            topic=origin["e112_original_topic"],
            key=record.key or b"",
            headers=[(n, v) for n, v in headers if not n.startswith(ORIGIN_HEADER_PREFIX)],
            value=record.value or b"",
        ),
    )


def select(
    letters: Iterable[DeadLetter],
    *,
    consumer: str,
    since: datetime | None = None,
    until: datetime | None = None,
    ce_ids: set[str] | None = None,
) -> list[DeadLetter]:
    """The dead letters to re-drive, oldest first, one per ce_id (the first; every copy
    of one ce_id is the same original event)."""
    chosen: dict[str, DeadLetter] = {}
    for letter in sorted(letters, key=lambda d: (d.at, d.partition, d.offset)):
        if letter.consumer != consumer:
            continue
        if (since and letter.at < since) or (until and letter.at > until):
            continue
        key = letter.ce_id or f"no-ce-id/{letter.partition}/{letter.offset}"
        if ce_ids is not None and key not in ce_ids:
            continue
        chosen.setdefault(key, letter)
    return list(chosen.values())


async def read_deadletters(bootstrap: str, security: KafkaSecurity = PLAINTEXT) -> list[DeadLetter]:
    """Every dead letter up to the topic's end now (later ones are not waited for).
    Read without a consumer group: the command keeps no position of its own, the
    filters and the inbox decide what is re-driven."""
    consumer = new_reader(bootstrap, "e112-redrive", security, fetch_max_wait_ms=100)
    await consumer.start()
    try:
        if topics.DEADLETTER not in await consumer.topics():
            return []
        partitions = consumer.partitions_for_topic(topics.DEADLETTER) or set()
        assigned = [TopicPartition(topics.DEADLETTER, p) for p in sorted(partitions)]
        if not assigned:
            return []
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        letters: list[DeadLetter] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batch = await consumer.getmany(*assigned, timeout_ms=1000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < ends[tp]:
                        letter = parse_deadletter(record)
                        if letter is not None:
                            letters.append(letter)
        return letters
    finally:
        await consumer.stop()


async def release_claim(conn: asyncpg.Connection, consumer: str, ce_id: str, *, force: bool, dry_run: bool) -> str:
    """Make the event's ce_id processable again. Returns what was found:
    `released` (the dead-letter claim; the event will be handled when re-published),
    `unclaimed` (no claim: handle it), or `handled` (handled since: skip it)."""
    async with conn.transaction():
        plain = await conn.fetchval("SELECT true FROM inbox WHERE consumer = $1 AND event_id = $2", consumer, ce_id)
        if plain and not force:
            return "handled"
        keys = [deadletter_claim(ce_id)] + ([ce_id] if plain else [])
        if dry_run:
            found = await conn.fetchval(
                "SELECT count(*) FROM inbox WHERE consumer = $1 AND event_id = ANY($2::text[])", consumer, keys
            )
        else:
            found = await conn.fetchval(
                "WITH gone AS (DELETE FROM inbox WHERE consumer = $1 AND event_id = ANY($2::text[]) RETURNING 1) "
                "SELECT count(*) FROM gone",
                consumer,
                keys,
            )
    return "released" if found else "unclaimed"


@dataclass
class Outcome:
    letter: DeadLetter
    action: str  # redriven | would_redrive | skipped_handled | skipped_no_ce_id


async def redrive(
    *,
    bootstrap: str,
    database_url: str,
    consumer: str,
    schema: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    ce_ids: set[str] | None = None,
    dry_run: bool = False,
    force: bool = False,
    security: KafkaSecurity = PLAINTEXT,
) -> list[Outcome]:
    letters = select(
        await read_deadletters(bootstrap, security), consumer=consumer, since=since, until=until, ce_ids=ce_ids
    )
    outcomes: list[Outcome] = []
    if not letters:
        return outcomes
    conn = await asyncpg.connect(database_url, server_settings={"search_path": schema or default_schema(consumer)})
    producer = None if dry_run else new_producer(bootstrap, client_id=f"e112-redrive-{consumer}", security=security)
    try:
        if producer is not None:
            await producer.start()
        for letter in letters:
            if letter.ce_id is None:
                outcomes.append(Outcome(letter, "skipped_no_ce_id"))
                continue
            found = await release_claim(conn, consumer, letter.ce_id, force=force, dry_run=dry_run)
            if found == "handled":
                outcomes.append(Outcome(letter, "skipped_handled"))
                continue
            if producer is not None:
                # Claim released before publishing: a crash in between leaves it unclaimed,
                # and the next run publishes it.
                r = letter.original
                await producer.send_and_wait(r.topic, r.value, key=r.key or None, headers=r.headers)
            outcomes.append(Outcome(letter, "would_redrive" if dry_run else "redriven"))
    finally:
        if producer is not None:
            await producer.stop()
        await conn.close()
    return outcomes


def default_schema(consumer: str) -> str:
    # Consumers are named `<service>` or `<service>-<purpose>` (router, notifier,
    # intake-timeline) and keep their inbox in the service's schema.
    return consumer.split("-", 1)[0]


def _timestamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r}: give a time zone, e.g. 2026-01-31T08:00:00+07:00")
    return parsed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m services.common.redrive", description="Re-drive dead-lettered events to their topics."
    )
    parser.add_argument("--consumer", required=True, help="whose dead letters: router, notifier, intake-timeline, ...")
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--schema", help="the consumer's PostgreSQL schema (default: from the consumer name)")
    parser.add_argument("--since", type=_timestamp, help="only dead letters written at or after this time")
    parser.add_argument("--until", type=_timestamp, help="only dead letters written at or before this time")
    parser.add_argument("--ce-id", action="append", dest="ce_ids", help="only this event (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be re-driven; change nothing")
    parser.add_argument("--force", action="store_true", help="also re-drive events whose ce_id is claimed as handled")
    args = parser.parse_args(argv)
    if not args.bootstrap:
        parser.error("--bootstrap (or KAFKA_BOOTSTRAP_SERVERS) is required")
    if not args.database_url:
        parser.error("--database-url (or DATABASE_URL) is required")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    outcomes = asyncio.run(
        redrive(
            bootstrap=args.bootstrap,
            database_url=args.database_url,
            consumer=args.consumer,
            schema=args.schema,
            since=args.since,
            until=args.until,
            ce_ids=set(args.ce_ids) if args.ce_ids else None,
            dry_run=args.dry_run,
            force=args.force,
            security=KafkaSecurity.from_env(os.environ),
        )
    )
    for o in outcomes:
        error = o.letter.error.splitlines()[0][:200] if o.letter.error else ""
        print(
            f"{o.action}\t{o.letter.ce_id or '-'}\t{o.letter.original.topic}\t"
            f"{o.letter.at.isoformat(timespec='seconds')}\t{error}"
        )
    counts = {a: sum(o.action == a for o in outcomes) for a in dict.fromkeys(o.action for o in outcomes)}
    summary = ", ".join(f"{n} {a}" for a, n in counts.items()) or "nothing to re-drive"
    print(f"{args.consumer}: {summary}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
