"""The services behind the console, over HTTP. An upstream's 4xx problem is passed on
to the browser as it is (intake's field errors name the form's fields); an upstream
that is down or failing is a 502/503 problem naming which service, never a 500."""

import logging
from dataclasses import dataclass
from typing import Any

import httpx

from services.common.web import Problem
from services.console.settings import ConsoleSettings

log = logging.getLogger(__name__)

SERVICES = ("intake", "shifts", "notifier")


@dataclass
class Upstream:
    clients: dict[str, httpx.AsyncClient]

    @classmethod
    def from_settings(cls, settings: ConsoleSettings, transports: dict[str, httpx.AsyncBaseTransport] | None = None):
        """`transports` lets tests put the services in-process (httpx.ASGITransport)."""
        transports = transports or {}
        console = settings.console_secret()
        keys = {"intake": settings.intake_key(), "shifts": console, "notifier": console}
        urls = {"intake": settings.intake_url, "shifts": settings.shifts_url, "notifier": settings.notifier_url}
        clients = {
            name: httpx.AsyncClient(
                base_url=urls[name],
                transport=transports.get(name),
                timeout=settings.upstream_timeout_seconds,
                headers={"Authorization": f"Bearer {keys[name]}"} if keys[name] else {},
            )
            for name in SERVICES
        }
        return cls(clients)

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        passthrough: tuple[int, ...] = (),
        request_id: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """The response when 2xx or in `passthrough`; a Problem otherwise."""
        headers = kwargs.pop("headers", {}) or {}
        if request_id:
            headers["X-Request-ID"] = request_id
        try:
            response = await self.clients[service].request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            log.warning("upstream unreachable", extra={"fields": {"service": service, "error": type(exc).__name__}})
            raise Problem(
                503,
                "Service unavailable",
                f"The {service} service cannot be reached; try again.",
                service=service,
                headers={"Retry-After": "5"},
            ) from None
        if response.is_success or response.status_code in passthrough:
            return response
        raise upstream_problem(service, response)

    async def json(self, service: str, method: str, path: str, **kwargs: Any) -> Any:
        return (await self.call(service, method, path, **kwargs)).json()


def upstream_problem(service: str, response: httpx.Response) -> Problem:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if status >= 500 or status in (401, 403):
        # A 401/403 from a service means the console's own key is wrong: the operator
        # can do nothing about it, so it is a gateway error here.
        log.warning("upstream error", extra={"fields": {"service": service, "status": status}})
        headers = {"Retry-After": response.headers["retry-after"]} if "retry-after" in response.headers else None
        return Problem(
            503 if status == 503 else 502,
            "Upstream error",
            f"The {service} service answered {status}; try again or call the supervisor.",
            service=service,
            headers=headers,
        )
    extra = {k: v for k, v in body.items() if k not in ("type", "title", "status", "detail", "headers")}
    extra["service"] = service
    return Problem(status, body.get("title") or "Error", body.get("detail") or f"{service} answered {status}", **extra)
