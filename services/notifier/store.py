"""Notifier's SQL: agency configuration and keys, the durable delivery queue, the
attempt log, acknowledgements and the escalation timers.

Every time written or compared here comes from the caller's clock (`now`), never from
PostgreSQL's `now()`, so tests can move time forward (see clock.py).
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import asyncpg

from schemas.envelope import KafkaRecord
from services.common.outbox import headers_json
from services.notifier.vault import SecretVault

DEFAULT_CHANNELS = ("webhook", "email")
SECRET_COLUMNS = ("webhook_secret", "previous_webhook_secret")  # sealed at rest (vault.py)


@dataclass(frozen=True)
class AgencyConfig:
    agency: str
    channels: list[str] = field(default_factory=lambda: list(DEFAULT_CHANNELS))
    webhook_url: str | None = None
    webhook_secret: str | None = None
    previous_webhook_secret: str | None = None
    previous_secret_until: datetime | None = None
    email_to: list[str] = field(default_factory=list)
    ack_deadline_seconds: int | None = None
    escalation_contacts: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)  # 24-hour numbers, E.164
    updated_by: str | None = None
    updated_at: datetime | None = None

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets a webhook request is signed with now: the current one, and the
        previous one while its grace period lasts."""
        out = [self.webhook_secret] if self.webhook_secret else []
        if self.previous_webhook_secret and self.previous_secret_until and now < self.previous_secret_until:
            out.append(self.previous_webhook_secret)
        return out


async def agency_config(conn: asyncpg.Connection, agency: str, vault: SecretVault) -> AgencyConfig:
    """The agency's configuration, its webhook secrets opened (they are sealed at rest)."""
    row = await conn.fetchrow("SELECT * FROM agencies WHERE agency = $1", agency)
    if row is None:
        return AgencyConfig(agency=agency)
    fields = dict(row)
    for name in SECRET_COLUMNS:
        fields[name] = vault.open(fields[name])
    return AgencyConfig(**fields)


async def save_agency_config(conn: asyncpg.Connection, config: AgencyConfig, now: datetime, vault: SecretVault) -> None:
    await conn.execute(
        """
        INSERT INTO agencies (agency, channels, webhook_url, webhook_secret, previous_webhook_secret,
                              previous_secret_until, email_to, ack_deadline_seconds, escalation_contacts,
                              updated_by, updated_at, phones)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        ON CONFLICT (agency) DO UPDATE SET
            channels = excluded.channels, webhook_url = excluded.webhook_url,
            webhook_secret = excluded.webhook_secret, previous_webhook_secret = excluded.previous_webhook_secret,
            previous_secret_until = excluded.previous_secret_until, email_to = excluded.email_to,
            ack_deadline_seconds = excluded.ack_deadline_seconds,
            escalation_contacts = excluded.escalation_contacts, updated_by = excluded.updated_by,
            updated_at = excluded.updated_at, phones = excluded.phones
        """,
        config.agency,
        config.channels,
        config.webhook_url,
        vault.seal(config.webhook_secret),
        vault.seal(config.previous_webhook_secret),
        config.previous_secret_until,
        config.email_to,
        config.ack_deadline_seconds,
        config.escalation_contacts,
        config.updated_by,
        now,
        config.phones,
    )


async def reseal_secrets(conn: asyncpg.Connection, vault: SecretVault) -> int:
    """Seal every stored webhook secret under the vault's first key (plain ones from
    before sealing, and those under a key being rotated out); how many rows changed."""
    changed = 0
    async with conn.transaction():
        for row in await conn.fetch(f"SELECT agency, {', '.join(SECRET_COLUMNS)} FROM agencies FOR UPDATE"):
            sealed = [vault.reseal(row[name]) for name in SECRET_COLUMNS]
            if sealed != [row[name] for name in SECRET_COLUMNS]:
                await conn.execute(
                    "UPDATE agencies SET webhook_secret = $2, previous_webhook_secret = $3 WHERE agency = $1",
                    row["agency"],
                    *sealed,
                )
                changed += 1
    return changed


async def lock_agency(conn: asyncpg.Connection, agency: str) -> None:
    """Serialise read-modify-write changes of one agency's configuration."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"e112-notifier-agency-{agency}")


# --- agency API keys -------------------------------------------------------------


async def add_api_key(conn, *, agency: str, key_hash: str, label: str | None, created_by: str, now: datetime):
    return await conn.fetchrow(
        """
        INSERT INTO agency_api_keys (agency, key_hash, label, created_by, created_at) VALUES ($1, $2, $3, $4, $5)
        RETURNING id, agency, label, created_by, created_at, revoked_at
        """,
        agency,
        key_hash,
        label,
        created_by,
        now,
    )


async def api_keys(conn: asyncpg.Connection, agency: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, agency, label, created_by, created_at, revoked_at FROM agency_api_keys "
        "WHERE agency = $1 ORDER BY created_at",
        agency,
    )


async def revoke_api_key(conn: asyncpg.Connection, agency: str, key_id: UUID, now: datetime) -> bool:
    done = await conn.fetchval(
        "UPDATE agency_api_keys SET revoked_at = coalesce(revoked_at, $3) WHERE id = $1 AND agency = $2 RETURNING true",
        key_id,
        agency,
        now,
    )
    return bool(done)


async def agency_for_key(conn: asyncpg.Connection, key_hash: str) -> str | None:
    return await conn.fetchval(
        "SELECT agency FROM agency_api_keys WHERE key_hash = $1 AND revoked_at IS NULL", key_hash
    )


# --- the delivery queue ----------------------------------------------------------


@dataclass(frozen=True)
class DueDispatch:
    dispatch_id: UUID
    report_id: UUID
    agency: str
    event_id: str
    event_type: str
    event_source: str
    event_time: datetime | None
    body: bytes
    received_at: datetime
    attempts: int  # made so far, before the one about to be made
    channel: str | None  # None: delivery has not started on any channel yet
    channels_tried: list[str]
    channel_attempts: int
    channel_errors: list[str]
    round: int
    claim_token: UUID
    kind: str = "dispatch"  # or "update": new information for a dispatch already delivered (see 003_*.sql)
    update_of: UUID | None = None  # kind "update": the dispatch it updates; dispatch_id is then the update's id
    new_report_id: UUID | None = None  # kind "update" of another caller: that caller's report


@dataclass(frozen=True)
class NewDispatch:
    """A row for the delivery queue: a dispatch, with its acknowledgement timer, or an
    update to one (`update_of` set; `dispatch_id` is then the update's own id), with no
    timer and the dispatch's row left as it is (see 003_*.sql)."""

    dispatch_id: UUID
    report_id: UUID
    agency: str
    event_id: str
    event_type: str
    event_source: str
    event_time: datetime | None
    body: bytes
    received_at: datetime
    ack_deadline_seconds: int | None = None  # a dispatch's
    escalation_due_at: datetime | None = None  # a dispatch's
    update_of: UUID | None = None  # an update's
    new_report_id: UUID | None = None  # an update about another caller: that caller's report


async def enqueue(conn: asyncpg.Connection, rows: Sequence[NewDispatch], now: datetime) -> None:
    """Queue `rows`, due now: one statement for the dispatches, one for the updates,
    however many (a consumer batch's; one each cost a statement and a NOTIFY). A row
    queued already (the same dispatch, or the same update, under another ce_id) is left
    as it is."""
    dispatches = [r for r in rows if r.update_of is None]
    updates = [r for r in rows if r.update_of is not None]
    if dispatches:
        await conn.execute(
            f"""
            INSERT INTO dispatches ({_QUEUED_COLUMNS}, ack_deadline_seconds, escalation_due_at)
            SELECT {_QUEUED_VALUES}, ack, escalation
            FROM unnest({_QUEUED_ARRAYS}, $11::int[], $12::timestamptz[])
                AS q(id, report, agency, ce_id, ce_type, ce_source, ce_time, body, received, ack, escalation)
            ON CONFLICT (dispatch_id) DO NOTHING
            """,
            *_queued_arrays(dispatches),
            now,
            [r.ack_deadline_seconds for r in dispatches],
            [r.escalation_due_at for r in dispatches],
        )
    if updates:
        await conn.execute(
            f"""
            INSERT INTO dispatches ({_QUEUED_COLUMNS}, kind, update_of, new_report_id)
            SELECT {_QUEUED_VALUES}, 'update', update_of, new_report
            FROM unnest({_QUEUED_ARRAYS}, $11::uuid[], $12::uuid[])
                AS q(id, report, agency, ce_id, ce_type, ce_source, ce_time, body, received, update_of, new_report)
            ON CONFLICT DO NOTHING
            """,
            *_queued_arrays(updates),
            now,
            [r.update_of for r in updates],
            [r.new_report_id for r in updates],
        )


_QUEUED_COLUMNS = """dispatch_id, report_id, agency, event_id, event_type, event_source, event_time, body,
    received_at, next_attempt_at, created_at"""
_QUEUED_VALUES = "id, report, agency, ce_id, ce_type, ce_source, ce_time, body, received, $10, $10"
_QUEUED_ARRAYS = """$1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[],
    $8::bytea[], $9::timestamptz[]"""


def _queued_arrays(rows: Sequence[NewDispatch]) -> list[list]:
    return [
        [r.dispatch_id for r in rows],
        [r.report_id for r in rows],
        [r.agency for r in rows],
        [r.event_id for r in rows],
        [r.event_type for r in rows],
        [r.event_source for r in rows],
        [r.event_time for r in rows],
        [r.body for r in rows],
        [r.received_at for r in rows],
    ]


async def stop_dispatch(conn: asyncpg.Connection, dispatch_id: UUID, now: datetime) -> None:
    """Stop a dispatch nothing more is to come for (found false, or its incident closed):
    no re-send or escalation from now on, and no delivery at all if it is still waiting
    for one (state 'cancelled'; a lease holder mid-attempt may still deliver it, and the
    notice follows it then). `cancelled_at` is when it was called off, for either reason;
    a second stop (a closing after a cancellation, a re-close) leaves it as it is."""
    await conn.execute(
        """
        UPDATE dispatches SET cancelled_at = $2, escalation_due_at = NULL,
               state = CASE WHEN state = 'pending' THEN 'cancelled' ELSE state END,
               finished_at = CASE WHEN state = 'pending' THEN $2 ELSE finished_at END
        WHERE dispatch_id = $1 AND kind = 'dispatch' AND cancelled_at IS NULL
        """,
        dispatch_id,
        now,
    )


_DUE_COLUMNS = """d.dispatch_id, d.report_id, d.agency, d.event_id, d.event_type, d.event_source, d.event_time,
    d.body, d.received_at, d.attempts, d.channel, d.channels_tried, d.channel_attempts, d.channel_errors, d.round,
    d.claim_token, d.kind, d.update_of, d.new_report_id"""


async def claim_due(
    conn: asyncpg.Connection, free: Mapping[str, int], limit: int, now: datetime, lease_until: datetime
) -> list[DueDispatch]:
    """Take up to `limit` due dispatches, the earliest due first, and of each agency at
    most its `free` slots, and lease them: each stays hidden until `lease_until` and
    carries a fresh claim token. Only the token's holder moves the dispatch on; a worker
    that died mid-attempt lets it come due again when the lease ends, and its late
    answer, if any, can no longer reschedule it."""
    agencies = [a for a, n in free.items() if n > 0]
    if not agencies or limit <= 0:
        return []
    rows = await conn.fetch(
        f"""
        UPDATE dispatches d SET next_attempt_at = $4, claim_token = gen_random_uuid()
        FROM (SELECT due.dispatch_id
              FROM unnest($1::text[], $2::int[]) AS a(agency, free)
              CROSS JOIN LATERAL (
                  SELECT dispatch_id, next_attempt_at FROM dispatches
                  WHERE state = 'pending' AND agency = a.agency AND next_attempt_at <= $3
                  ORDER BY next_attempt_at LIMIT a.free FOR UPDATE SKIP LOCKED
              ) AS due
              ORDER BY due.next_attempt_at LIMIT $5) AS due
        WHERE d.dispatch_id = due.dispatch_id
        RETURNING {_DUE_COLUMNS}
        """,
        agencies,
        [free[a] for a in agencies],
        now,
        lease_until,
        limit,
    )
    return [DueDispatch(**dict(r)) for r in rows]


async def pending_count(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT count(*) FROM dispatches WHERE state = 'pending'")


@dataclass(frozen=True)
class QueueState:
    pending: int  # dispatches not yet delivered or failed
    # First deliveries due now and not leased: the queue of new dispatches the deliverer
    # has not reached; waiting retries, breaker postponements, attempts in flight and the
    # re-sends of an escalation (round 2) are not in it.
    due: int
    seconds_until_next_due: float | None  # None: nothing pending


async def queue_state(conn: asyncpg.Connection, now: datetime) -> QueueState:
    """The deliverer's look at its queue, in one round trip."""
    row = await conn.fetchrow(
        """
        SELECT count(*) AS pending, count(*) FILTER (WHERE next_attempt_at <= $1 AND round = 1) AS due,
               extract(epoch FROM min(next_attempt_at) - $1)::float8 AS next_due
        FROM dispatches WHERE state = 'pending'
        """,
        now,
    )
    return QueueState(row["pending"], row["due"], not_before_now(row["next_due"]))


def not_before_now(seconds: float | None) -> float | None:
    """Seconds until a time that may have passed; None (nothing due at all) stays None.
    Not SQL's greatest(0, x): it skips a NULL and answers 0, "due now", when nothing is
    due, and the loops waiting that long spun at rest (most of a core, bench/)."""
    return None if seconds is None else max(0.0, seconds)


async def record_attempt(
    conn: asyncpg.Connection,
    *,
    dispatch_id: UUID,
    attempt: int,
    channel: str,
    target: str | None,
    started_at: datetime,
    duration_ms: int,
    outcome: str,
    status_code: int | None,
    error: str | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO delivery_attempts (dispatch_id, attempt, channel, target, started_at, duration_ms,
                                       outcome, status_code, error)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        """,
        dispatch_id,
        attempt,
        channel,
        target,
        started_at,
        duration_ms,
        outcome,
        status_code,
        error,
    )


async def update_progress(
    conn: asyncpg.Connection,
    dispatch: DueDispatch,
    *,
    channel: str | None,
    channels_tried: list[str],
    attempts: int,
    channel_attempts: int,
    channel_errors: list[str],
    next_attempt_at: datetime,
    error: str | None,
) -> bool:
    """Store where a pending dispatch's delivery stands and when to try next, if this
    worker still holds its lease; False otherwise (the lease passed on, or the agency
    acknowledged meanwhile)."""
    done = await conn.fetchval(
        """
        UPDATE dispatches SET channel = $3, channels_tried = $4, attempts = $5, channel_attempts = $6,
                              channel_errors = $7, next_attempt_at = $8, last_error = coalesce($9, last_error),
                              claim_token = NULL
        WHERE dispatch_id = $1 AND claim_token = $2 AND state = 'pending' RETURNING true
        """,
        dispatch.dispatch_id,
        dispatch.claim_token,
        channel,
        channels_tried,
        attempts,
        channel_attempts,
        channel_errors,
        next_attempt_at,
        error,
    )
    return bool(done)


async def mark_held(conn: asyncpg.Connection, dispatch_id: UUID, now: datetime) -> bool:
    """Note that the dispatch was announced as held; False if it was already."""
    return bool(
        await conn.fetchval(
            "UPDATE dispatches SET held_at = $2 WHERE dispatch_id = $1 AND held_at IS NULL RETURNING true",
            dispatch_id,
            now,
        )
    )


async def finish(
    conn: asyncpg.Connection,
    dispatch: DueDispatch,
    *,
    state: str,
    channel: str | None,
    attempts: int,
    channel_errors: list[str],
    error: str | None,
    now: datetime,
) -> bool:
    """Mark a pending dispatch delivered or failed; False if that is no longer this
    worker's to say. A success counts even from a worker whose lease ran out (the
    agency has the dispatch); a failure only from the lease holder."""
    done = await conn.fetchval(
        """
        UPDATE dispatches SET state = $3, channel = $4, attempts = greatest(attempts, $5), channel_errors = $6,
                              last_error = $7, finished_at = $8, claim_token = NULL
        WHERE dispatch_id = $1 AND state = 'pending' AND ($3 = 'delivered' OR claim_token = $2) RETURNING true
        """,
        dispatch.dispatch_id,
        dispatch.claim_token,
        state,
        channel,
        attempts,
        channel_errors,
        error,
        now,
    )
    return bool(done)


@dataclass(frozen=True)
class Delivered:
    """An attempt that delivered its dispatch, to be recorded (finish_delivered)."""

    dispatch_id: UUID
    attempts: int
    channel: str
    target: str
    channel_errors: list[str]
    started_at: datetime
    duration_ms: int
    status_code: int | None
    announce: KafkaRecord  # dispatch.delivered
    now: datetime


async def finish_delivered(conn: asyncpg.Connection, delivered: list[Delivered]) -> list[bool]:
    """The common end of attempts, in one statement (its own transaction, no BEGIN or
    COMMIT) for however many: each attempt recorded, its dispatch marked delivered, and
    its `announce` written to the outbox if this call is the one that finished it. False
    for one finished already (acknowledged meanwhile, or by another worker). The same as
    record_attempt + finish + enqueue in a transaction each: the notifier's most frequent
    path (bench --profile). The dispatches must be distinct."""
    finished = await conn.fetch(
        """
        WITH d AS (
            SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::timestamptz[], $6::int[],
                                 $7::int[], $8::text[], $9::timestamptz[], $10::text[], $11::bytea[], $12::text[],
                                 $13::bytea[])
                WITH ORDINALITY AS d(dispatch_id, attempt, channel, target, started_at, duration_ms, status_code,
                                     channel_errors, now, topic, key, headers, value, n)
        ), attempt AS (
            INSERT INTO delivery_attempts (dispatch_id, attempt, channel, target, started_at, duration_ms,
                                           outcome, status_code, error)
            SELECT dispatch_id, attempt, channel, target, started_at, duration_ms, 'delivered', status_code, NULL
            FROM d ORDER BY n
        ), finished AS (
            UPDATE dispatches SET state = 'delivered', channel = d.channel, attempts = greatest(attempts, d.attempt),
                                  channel_errors = ARRAY(SELECT jsonb_array_elements_text(d.channel_errors::jsonb)),
                                  last_error = NULL, finished_at = d.now, claim_token = NULL
            FROM d WHERE dispatches.dispatch_id = d.dispatch_id AND dispatches.state = 'pending'
            RETURNING d.dispatch_id, d.n
        ), announced AS (
            INSERT INTO outbox (topic, key, headers, value)
            SELECT d.topic, d.key, d.headers::jsonb, d.value FROM d JOIN finished USING (n) ORDER BY d.n
        )
        SELECT dispatch_id FROM finished
        """,
        *(
            [getattr(x, name) for x in delivered]
            for name in ("dispatch_id", "attempts", "channel", "target", "started_at", "duration_ms", "status_code")
        ),
        [json.dumps(x.channel_errors) for x in delivered],
        [x.now for x in delivered],
        [x.announce.topic for x in delivered],
        [x.announce.key for x in delivered],
        [headers_json(x.announce) for x in delivered],
        [x.announce.value for x in delivered],
    )
    done = {r["dispatch_id"] for r in finished}
    return [x.dispatch_id in done for x in delivered]


async def bring_forward(conn: asyncpg.Connection, agency: str, channel: str, now: datetime) -> int:
    """Make the agency's waiting dispatches on `channel` due now (its breaker closed
    again: the endpoint is back). Leased ones are left to their worker."""
    result = await conn.execute(
        """
        UPDATE dispatches SET next_attempt_at = $3
        WHERE agency = $1 AND channel = $2 AND state = 'pending' AND claim_token IS NULL AND next_attempt_at > $3
        """,
        agency,
        channel,
        now,
    )
    return int(result.split()[-1])


# --- acknowledgement and field status ---------------------------------------------


async def dispatch_row(conn: asyncpg.Connection, dispatch_id: UUID, *, for_update: bool = False):
    """A dispatch (never an update's row: an update is not acknowledged or given field
    status on its own; the agency acts on the dispatch it belongs to)."""
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(
        f"SELECT * FROM dispatches WHERE dispatch_id = $1 AND kind = 'dispatch'{lock}", dispatch_id
    )


async def updates_of(conn: asyncpg.Connection, dispatch_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT dispatch_id AS update_id, new_report_id, event_id, event_type, state, attempts, channel, last_error, "
        "created_at, finished_at FROM dispatches WHERE update_of = $1 AND kind = 'update' "
        "ORDER BY created_at, event_time",  # one consumer batch queues several at one created_at
        dispatch_id,
    )


async def acknowledge(conn: asyncpg.Connection, dispatch_id: UUID, via: str, now: datetime):
    """Record the first acknowledgement and stop everything still to come for the
    dispatch: further delivery attempts, the escalation timer, a queued escalation
    e-mail. Returns the row if this call acknowledged it, None if it already was."""
    row = await conn.fetchrow(
        """
        UPDATE dispatches SET acknowledged_at = $2, acknowledged_via = $3, escalation_due_at = NULL,
                              state = CASE WHEN state = 'pending' THEN 'stopped' ELSE state END,
                              finished_at = coalesce(finished_at, $2), claim_token = NULL
        WHERE dispatch_id = $1 AND acknowledged_at IS NULL RETURNING *
        """,
        dispatch_id,
        now,
        via,
    )
    if row is not None:
        await conn.execute(
            "UPDATE escalation_notices SET state = 'cancelled', claim_token = NULL "
            "WHERE dispatch_id = $1 AND state = 'pending'",
            dispatch_id,
        )
    return row


async def escalate_now(conn: asyncpg.Connection, dispatch_id: UUID, now: datetime) -> bool:
    """Bring the dispatch's next escalation step forward to now (an operator could not
    reach the agency by phone); False if it is acknowledged or has no step left."""
    return bool(
        await conn.fetchval(
            "UPDATE dispatches SET escalation_due_at = $2 WHERE dispatch_id = $1 AND acknowledged_at IS NULL "
            "AND escalation_due_at IS NOT NULL RETURNING true",
            dispatch_id,
            now,
        )
    )


async def add_field_status(conn, dispatch_id: UUID, status: str, note: str | None, now: datetime) -> None:
    await conn.execute(
        "INSERT INTO field_statuses (dispatch_id, status, note, at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        dispatch_id,
        status,
        note,
        now,
    )
    await conn.execute(
        "UPDATE dispatches SET field_status = $2, field_status_at = $3 WHERE dispatch_id = $1", dispatch_id, status, now
    )


async def field_statuses(conn: asyncpg.Connection, dispatch_id: UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT status, note, at FROM field_statuses WHERE dispatch_id = $1 ORDER BY at", dispatch_id
    )


# --- escalation timers and notices -----------------------------------------------


async def take_due_timers(conn: asyncpg.Connection, now: datetime, limit: int) -> list[asyncpg.Record]:
    """Lock up to `limit` unacknowledged dispatches whose timer is due (inside the
    caller's transaction). A dispatch being acknowledged right now is locked by that
    transaction and skipped; next time it is acknowledged and no longer matches."""
    return await conn.fetch(
        """
        SELECT * FROM dispatches
        WHERE escalation_due_at <= $1 AND acknowledged_at IS NULL
        ORDER BY escalation_due_at LIMIT $2 FOR UPDATE SKIP LOCKED
        """,
        now,
        limit,
    )


async def advance_timer(conn, dispatch_id: UUID, step_done: int, next_due: datetime | None) -> bool:
    """Move the timer from step `step_done` to the next; the expected step in the WHERE
    makes a second firing of the same timer a no-op."""
    done = await conn.fetchval(
        """
        UPDATE dispatches SET escalation_step = $2 + 1, escalation_due_at = $3
        WHERE dispatch_id = $1 AND escalation_step = $2 AND acknowledged_at IS NULL RETURNING true
        """,
        dispatch_id,
        step_done,
        next_due,
    )
    return bool(done)


async def resend(
    conn, dispatch_id: UUID, *, channel: str | None, channels_tried: list[str], now: datetime, new_round: bool
) -> None:
    """Deliver again: a new round from `channel` if the last one had finished, or the
    pending round moved on to `channel` now."""
    await conn.execute(
        """
        UPDATE dispatches SET state = 'pending', channel = $2, channels_tried = $3, channel_attempts = 0,
                              next_attempt_at = $4, claim_token = NULL, finished_at = NULL,
                              round = round + CASE WHEN $5 THEN 1 ELSE 0 END,
                              channel_errors = CASE WHEN $5 THEN '{}'::text[] ELSE channel_errors END
        WHERE dispatch_id = $1 AND acknowledged_at IS NULL
        """,
        dispatch_id,
        channel,
        channels_tried,
        now,
        new_round,
    )


async def queue_notice(conn, dispatch_id: UUID, recipients: list[str], now: datetime) -> None:
    await conn.execute(
        "INSERT INTO escalation_notices (dispatch_id, recipients, next_attempt_at) VALUES ($1, $2, $3) "
        "ON CONFLICT DO NOTHING",
        dispatch_id,
        recipients,
        now,
    )


async def claim_due_notices(conn, limit: int, now: datetime, lease_until: datetime) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        UPDATE escalation_notices n SET next_attempt_at = $3, claim_token = gen_random_uuid()
        FROM (SELECT n2.dispatch_id FROM escalation_notices n2 JOIN dispatches d USING (dispatch_id)
              WHERE n2.state = 'pending' AND n2.next_attempt_at <= $2 AND d.acknowledged_at IS NULL
              ORDER BY n2.next_attempt_at LIMIT $1 FOR UPDATE OF n2 SKIP LOCKED) due,
             dispatches d
        WHERE n.dispatch_id = due.dispatch_id AND d.dispatch_id = n.dispatch_id
        RETURNING n.dispatch_id, n.recipients, n.attempts, n.claim_token, d.report_id, d.agency, d.body,
                  d.attempts AS dispatch_attempts, d.ack_deadline_seconds
        """,
        limit,
        now,
        lease_until,
    )


async def settle_notice(
    conn,
    dispatch_id: UUID,
    token: UUID,
    *,
    state: str,
    attempts: int,
    next_attempt_at: datetime,
    error: str | None,
    now: datetime,
) -> bool:
    done = await conn.fetchval(
        """
        UPDATE escalation_notices SET state = $3, attempts = $4, next_attempt_at = $5, last_error = $6,
                                      sent_at = CASE WHEN $3 = 'sent' THEN $7 ELSE sent_at END, claim_token = NULL
        WHERE dispatch_id = $1 AND claim_token = $2 AND state = 'pending' RETURNING true
        """,
        dispatch_id,
        token,
        state,
        attempts,
        next_attempt_at,
        error,
        now,
    )
    return bool(done)


async def seconds_until_next_timer(conn: asyncpg.Connection, now: datetime) -> float | None:
    seconds = await conn.fetchval(
        """
        SELECT extract(epoch FROM least(
            (SELECT min(escalation_due_at) FROM dispatches WHERE acknowledged_at IS NULL),
            (SELECT min(next_attempt_at) FROM escalation_notices WHERE state = 'pending')) - $1)::float8
        """,
        now,
    )
    return not_before_now(seconds)


_LATE = """
    FROM dispatches WHERE kind = 'dispatch' AND acknowledged_at IS NULL AND cancelled_at IS NULL
                          AND created_at + make_interval(secs => ack_deadline_seconds) <= $1
"""


async def late_by_agency(conn: asyncpg.Connection, now: datetime) -> list[asyncpg.Record]:
    """Unacknowledged dispatches past their acknowledgement deadline, per agency."""
    return await conn.fetch(f"SELECT agency, count(*) AS late {_LATE} GROUP BY agency ORDER BY agency", now)


async def late_reports(conn: asyncpg.Connection, now: datetime, limit: int) -> list[UUID]:
    """The reports with a late dispatch, the most recently dispatched first."""
    rows = await conn.fetch(
        f"SELECT report_id, max(created_at) AS last {_LATE} GROUP BY report_id ORDER BY last DESC LIMIT $2", now, limit
    )
    return [r["report_id"] for r in rows]
