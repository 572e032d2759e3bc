"""What intake's routes take from their app: set on `app.state` in app.py (the filing
group commit once the pool is open, in `build`)."""

from typing import Annotated

from services.common.groupcommit import GroupCommit
from services.common.web import from_state
from services.intake.clients import Authenticator
from services.intake.settings import IntakeSettings

Settings = Annotated[IntakeSettings, from_state("settings")]
# Files reports a transaction at a time, several together (services/intake/filing.py).
Filings = Annotated[GroupCommit, from_state("filing")]
Keys = Annotated[Authenticator, from_state("authenticator")]
