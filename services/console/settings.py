from typing import ClassVar

from pydantic import Field, SecretStr, model_validator

from services.common.settings import ServiceSettings

DEV_URLS = {
    "intake_url": "http://127.0.0.1:8001",
    "shifts_url": "http://127.0.0.1:8004",
    "notifier_url": "http://127.0.0.1:8003",
}


class ConsoleSettings(ServiceSettings):
    """The console: a backend-for-frontend. The browser talks only to it; it talks to
    intake with its own intake key (role `console`), shifts and notifier with
    CONSOLE_API_KEY, which those two take for what the console does and nothing more.
    Its ADMIN_API_KEY sets operators' PINs. It holds no key that changes routing,
    agencies' configuration, the roster or anyone's keys."""

    takes_console_key: ClassVar[bool] = True

    port: int = 8005
    intake_url: str = DEV_URLS["intake_url"]
    shifts_url: str = DEV_URLS["shifts_url"]
    notifier_url: str = DEV_URLS["notifier_url"]
    # The console's own intake key (`POST /v1/admin/api-keys {"name": "console", "role":
    # "console"}`): intake knows the console filed a report and takes verdicts from it for
    # the signed-in operator only; `make run` makes one at start.
    intake_api_key: SecretStr | None = None
    upstream_timeout_seconds: float = Field(10.0, gt=0, le=120)
    # A session outlives an 8-hour shift with room for a late handover, no more.
    session_hours: float = Field(10.0, gt=0, le=24)
    # Without a request from its page this long, a session ends (an open console polls,
    # so this ends the sessions of closed or abandoned ones, not of a quiet night).
    session_idle_minutes: float = Field(30.0, gt=0, le=24 * 60)
    # Over plain http (development) a Secure cookie would never come back.
    cookie_secure: bool = False
    # Wrong PINs in a row before an operator's sign-in is locked, and for how long.
    signin_max_failures: int = Field(5, ge=1, le=100)
    signin_lock_minutes: float = Field(5.0, gt=0, le=24 * 60)
    # Wrong PINs for one operator from every address together before the operator is
    # locked everywhere (an alert): each address is locked on its own much sooner.
    signin_operator_ceiling: int = Field(30, ge=1, le=10_000)
    # The page reloads every screen this often besides the live updates, in case one was missed.
    page_refresh_seconds: int = Field(30, ge=5, le=86_400)
    # Open incidents on one page of the dispatch board.
    board_page_size: int = Field(25, ge=1, le=200)
    # A consumer group with more events than this to read puts the pipeline banner up
    # (the same bound at which intake's watchdog holds re-drives back).
    pipeline_backlog_bound: int = Field(100, ge=0, le=1_000_000)
    # Events waiting for one slow browser before it is told to reload instead.
    live_queue_size: int = Field(500, ge=10, le=100_000)

    @model_validator(mode="after")
    def _production_needs_real_upstreams(self) -> "ConsoleSettings":
        if self.e112_env != "production":
            return self
        problems = [f"{name.upper()} must be set" for name, dev in DEV_URLS.items() if getattr(self, name) == dev]
        key = self.intake_api_key.get_secret_value() if self.intake_api_key else ""
        if len(key) < 32:
            problems.append("INTAKE_API_KEY must be set to the console's intake key")
        if not self.cookie_secure:
            problems.append("COOKIE_SECURE must be true (the console is served over HTTPS)")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    def intake_key(self) -> str | None:
        return self.intake_api_key.get_secret_value() if self.intake_api_key else None
