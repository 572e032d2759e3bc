"""What the console's routes take from their app: set on `app.state` in app.py (the
upstream clients once the lifespan runs, in `build`)."""

from typing import Annotated

from services.common.web import from_state
from services.console import live, upstream
from services.console.metrics import ConsoleMetrics
from services.console.settings import ConsoleSettings

Settings = Annotated[ConsoleSettings, from_state("settings")]
Metrics = Annotated[ConsoleMetrics, from_state("metrics")]
# intake, shifts and notifier, over HTTP.
Upstream = Annotated[upstream.Upstream, from_state("upstream")]
Broadcaster = Annotated[live.Broadcaster, from_state("broadcaster")]
