from pydantic import Field

from services.common.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    port: int = 8001
    # Not on a dispatch's way: its consumer may wait longer for bigger batches.
    kafka_fetch_max_wait_ms: int = Field(250, ge=10, le=5000)
    kafka_idle_fetch_max_wait_ms: int = Field(1000, ge=10, le=5000)
    # Filing (filing.py): reports that arrive while a transaction runs are filed together,
    # by this many writers side by side, at most this many in one transaction.
    filing_writers: int = Field(2, ge=1, le=16)
    filing_batch_max: int = Field(64, ge=1, le=1000)
    # How long a client waits before retrying when PostgreSQL is unavailable.
    retry_after_seconds: int = Field(5, ge=1, le=300)
    # An Idempotency-Key is remembered this long; after that the same key starts a new report.
    idempotency_ttl_hours: float = Field(24, gt=0, le=24 * 30)
    # Related reports: same category, within this window, same desa or within this distance.
    link_related_reports: bool = True
    link_window_minutes: float = Field(30, gt=0, le=24 * 60)
    link_distance_m: float = Field(500, gt=0, le=50_000)
    # A caller with this many pranks within the period is flagged for the operators (never blocked).
    prank_flag_threshold: int = Field(3, ge=1)
    prank_flag_days: int = Field(30, ge=1, le=365)
    # The watchdog (watchdog.py): a report accepted but not dispatched to its agencies
    # within the bound (NFPA 1225's 60 s for processing an alarm) is re-driven and the
    # on-duty operators alerted. Each replica looks every interval; one at a time.
    watchdog_bound_seconds: float = Field(60, gt=0, le=3600)
    watchdog_interval_seconds: float = Field(10, gt=0, le=600)
    # Re-drives wait while a pipeline consumer group (router, notifier, this timeline)
    # has more than this many events to read: a late dispatch is not a lost one.
    watchdog_hold_backlog: int = Field(100, ge=0, le=1_000_000)
    watchdog_max_attempts: int = Field(6, ge=1, le=100)
