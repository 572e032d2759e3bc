from typing import ClassVar

from pydantic import Field

from services.common.settings import ServiceSettings


class ShiftsSettings(ServiceSettings):
    takes_console_key: ClassVar[bool] = True  # the console reads and acts on shifts and tasks
    port: int = 8004
    # Not on a dispatch's way: its consumer may wait longer for bigger batches.
    kafka_fetch_max_wait_ms: int = Field(250, ge=10, le=5000)
    kafka_idle_fetch_max_wait_ms: int = Field(1000, ge=10, le=5000)
    # The coverage check also runs with every check-in and check-out; the loop notices
    # what only time changes (a shift starting with nobody there).
    coverage_check_interval: float = Field(15.0, gt=0, le=3600)
    # Minutes into a shift before a shortage is alerted: people are still arriving.
    coverage_grace_minutes: float = Field(10.0, ge=0, le=120)
    # A check-in this many minutes before a shift starts counts for that shift.
    check_in_early_minutes: float = Field(30.0, ge=0, le=120)
    # The rest rule's minimum between shifts; 16 cannot be met by six operators
    # (services/shifts/rotation.py says why): generation then refuses.
    roster_min_rest_hours: float = Field(8.0, ge=0, le=24)
    # Tasks an operator holds at once before others get the next (services/shifts/assignment.py).
    # Three: a report to call back while two more are read; more would sit unread.
    assign_capacity: int = Field(3, ge=1, le=50)
