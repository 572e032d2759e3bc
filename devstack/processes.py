"""The services as child processes, and the whole stack put together."""

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devstack.broker import TansuBroker
from devstack.children import child_options
from devstack.console import console_env, provision_intake_key
from devstack.postgres import EmbeddedPostgres, ensure_database

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PORTS = {"intake": 8001, "router": 8002, "notifier": 8003, "shifts": 8004, "console": 8005}
DATABASE_NAME = "e112"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServiceProcess:
    name: str
    port: int
    env: dict[str, str]
    log_file: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, **self.env, "PORT": str(self.port), "PYTHONPATH": str(REPO)}
        out = open(self.log_file, "ab")  # noqa: SIM115 - the child holds it
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.name}"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            **child_options(),
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_file}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout}s; see {self.log_file}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if not self.process or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@dataclass
class Stack:
    """PostgreSQL, broker and services. Uses DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS
    when given, else starts the embedded ones."""

    data_dir: Path
    api_key: str
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    broker_port: int = 9092
    database_url: str | None = None
    bootstrap: str | None = None
    ephemeral: bool = False  # delete PostgreSQL's data on stop (tests)
    extra_env: dict[str, str] = field(default_factory=dict)
    # The console's own key to shifts and notifier, apart from the admin key (`api_key`),
    # so that every run shows the console works with no more than its own.
    console_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    postgres_preload: tuple[str, ...] = ()  # server libraries for the embedded PostgreSQL
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    _postgres: EmbeddedPostgres | None = None
    _broker: TansuBroker | None = None

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def start_infrastructure(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if not self.database_url:
            self._postgres = EmbeddedPostgres(
                self.data_dir / "postgres", delete_on_stop=self.ephemeral, preload=self.postgres_preload
            )
            self.database_url = ensure_database(self._postgres.start(), DATABASE_NAME)
        if not self.bootstrap:
            self._broker = TansuBroker(self.broker_port, log_file=self.log_dir / "broker.log")
            self.bootstrap = self._broker.start()

    def service_env(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database_url or "",
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap or "",
            "E112_API_KEY": self.api_key,
            "CONSOLE_API_KEY": self.console_key,
            "E112_ENV": "development",
            **self.extra_env,
        }

    def start_services(self, names: list[str] | None = None) -> None:
        names = names or list(self.ports)
        # The console starts last: it needs an intake key, made through the running intake.
        first = [name for name in names if name != "console"]
        for name in first:
            service = ServiceProcess(name, self.ports[name], self.service_env(), self.log_dir / f"{name}.log")
            self.services[name] = service
            service.start()
        for name in first:
            self.services[name].wait_ready()
        if "console" in names:
            urls = {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}
            env = {**self.service_env(), **console_env(urls, provision_intake_key(urls["intake"], self.api_key))}
            console = ServiceProcess("console", self.ports["console"], env, self.log_dir / "console.log")
            self.services["console"] = console
            console.start()
            console.wait_ready()

    def stop_broker(self) -> None:
        """Stop the broker the stack owns (Tansu keeps nothing: topics and messages go)."""
        assert self._broker is not None, "the stack does not own the broker"
        self._broker.stop()

    def start_broker(self) -> None:
        assert self._broker is not None, "the stack does not own the broker"
        self._broker.start()

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()
        if self._broker:
            self._broker.stop()
        if self._postgres:
            self._postgres.stop()
