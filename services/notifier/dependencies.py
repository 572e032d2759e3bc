"""What the notifier's routes take from their app: set on `app.state` in app.py."""

from typing import Annotated

from services.common.web import from_state
from services.notifier import clock
from services.notifier.acks import AckMetrics
from services.notifier.agency_configs import AgencyConfigs
from services.notifier.egress import EgressPolicy
from services.notifier.settings import NotifierSettings

Clock = Annotated[clock.Clock, from_state("clock")]
Settings = Annotated[NotifierSettings, from_state("settings")]
Metrics = Annotated[AckMetrics, from_state("ack_metrics")]
Configs = Annotated[AgencyConfigs, from_state("configs")]
# The check of a webhook URL an admin sets (the deliverer's channel has its own).
Egress = Annotated[EgressPolicy, from_state("egress")]
