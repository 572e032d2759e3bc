"""Input no service should ever see, refused before any route runs, the same way in every
service: a body above the size limit (413, decided from `Content-Length` or while the
body streams in, never after reading it whole), and control characters, lone surrogates
or integers PostgreSQL cannot hold anywhere in the path, the query or a JSON body (422
naming the field).

Why at the edge and not in the models: PostgreSQL refuses a NUL in text and a lone
surrogate cannot be encoded, so such a value would fail deep in a store as a 5xx (intake
even answered 503 "retry", and a gateway would retry it for ever). Every text field of
every model would need the same validator; one check here cannot be forgotten by the
next model.
"""

import json
import re
from collections.abc import Iterator
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.problems import problem_body

DEFAULT_MAX_BODY_BYTES = 1024 * 1024

# C0 controls except tab, newline and carriage return; DEL; C1 controls; lone surrogates.
FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# A JSON text can only carry those characters as a \u escape, \b, \f, or (C1) as UTF-8
# bytes starting 0xC2, and a bigint overflow needs 19 digits in a row: a body without
# any of these needs no parse here.
SUSPECT = re.compile(rb"\\[ubf]|\xc2|[0-9]{19}")
INT64 = range(-(2**63), 2**63)


def forbidden_character_message(text: str) -> str | None:
    match = FORBIDDEN.search(text)
    if match is None:
        return None
    return f"contains a control character (U+{ord(match.group()):04X}), which is not allowed"


def json_problems(value, path: str = "") -> Iterator[tuple[str, str]]:
    """(field, message) for every string or key with a forbidden character and every
    integer outside PostgreSQL's bigint, in a parsed JSON value."""
    if isinstance(value, str):
        message = forbidden_character_message(value)
        if message:
            yield path or "(body)", message
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if value not in INT64:
            yield path or "(body)", "is out of range (a 64-bit integer at most)"
    elif isinstance(value, dict):
        for key, item in value.items():
            field = f"{path}.{key}" if path else str(key)
            message = forbidden_character_message(key)
            if message:
                yield (path or "(body)"), f"has a key that {message}"
            yield from json_problems(item, field)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from json_problems(item, f"{path}.{index}" if path else str(index))


def url_problems(scope: Scope) -> list[tuple[str, str]]:
    problems = []
    message = forbidden_character_message(scope.get("path", ""))
    if message:
        problems.append(("path", message))
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        message = forbidden_character_message(name) or forbidden_character_message(value)
        if message:
            problems.append((f"query.{name}", message))
    return problems


def body_problems(body: bytes, content_type: str) -> list[tuple[str, str]]:
    if "json" not in content_type:
        return [("(body)", "contains a NUL byte")] if b"\x00" in body else []
    if SUSPECT.search(body) is None:
        return []
    try:
        parsed = json.loads(body)
    except ValueError:
        return []  # not JSON: the route's own parsing answers 400
    return list(json_problems(parsed))


class RequestGuard:
    """Plain ASGI (no BaseHTTPMiddleware: it would run every request through an extra task)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problems = url_problems(scope)
        if problems:
            await _answer_invalid(send, problems)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await _answer_too_large(send, self.max_body_bytes)
            return
        if scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS") and declared in (None, b"0"):
            await self.app(scope, receive, send)
            return
        body, last = await self._read_bounded(receive)
        if body is None:
            await _answer_too_large(send, self.max_body_bytes)
            return
        problems = body_problems(body, headers.get(b"content-type", b"").decode("latin-1").lower())
        if problems:
            await _answer_invalid(send, problems)
            return
        await self.app(scope, _replay(body, last, receive), send)

    async def _read_bounded(self, receive: Receive) -> tuple[bytes | None, Message]:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks), message  # the client went away: let the app see it
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None, message
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), message


def _replay(body: bytes, last: Message, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if last["type"] != "http.request":
                return last
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _answer(send: Send, status: int, body: dict) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _answer_invalid(send: Send, problems: list[tuple[str, str]]) -> None:
    errors = [{"field": field, "message": message} for field, message in problems]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    await _answer(send, 422, problem_body(422, "Invalid request", detail, errors=errors))


async def _answer_too_large(send: Send, limit: int) -> None:
    detail = f"The request body is larger than this service accepts ({limit} bytes at most)."
    await _answer(send, 413, problem_body(413, "Content too large", detail, max_bytes=limit))
