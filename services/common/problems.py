"""The RFC 9457 problem body every error answer carries (application/problem+json)."""

from typing import Any

PROBLEM_JSON = "application/problem+json"


def problem_body(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
