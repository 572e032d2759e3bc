"""What the shifts routes take from their app: set on `app.state` in app.py (the coverage
monitor and the assigner once the pool is open, in `build`)."""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated

from services.common.web import from_state
from services.shifts.assigner import Assigner
from services.shifts.metrics import ShiftMetrics
from services.shifts.monitor import CoverageMonitor
from services.shifts.rotation import RestRule

Clock = Annotated[Callable[[], datetime], from_state("clock")]
Metrics = Annotated[ShiftMetrics, from_state("metrics")]
Coverage = Annotated[CoverageMonitor, from_state("coverage")]
Assignments = Annotated[Assigner, from_state("assigner")]
RosterRule = Annotated[RestRule, from_state("rest_rule")]
# How early a check-in counts for the next shift (CHECK_IN_EARLY_MINUTES).
CheckInEarly = Annotated[timedelta, from_state("check_in_early")]
