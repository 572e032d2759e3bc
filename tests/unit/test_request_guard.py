"""The request guard every service puts in front of its routes: control characters,
lone surrogates and out-of-range integers are a 422 naming the field; bodies over the
limit a 413, whether declared or streamed."""

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from services.common.request_guard import RequestGuard, json_problems

LIMIT = 4096


class Echo(BaseModel):
    text: str = ""
    items: list[dict] = []
    count: int = 0


def app() -> FastAPI:
    application = FastAPI()
    application.add_middleware(RequestGuard, max_body_bytes=LIMIT)

    @application.post("/echo")
    async def echo(body: Echo) -> Echo:
        return body

    @application.get("/things/{name}")
    async def thing(name: str, q: str = "") -> dict:
        return {"name": name, "q": q}

    return application


async def call(method: str, url: str, **kwargs) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app()), base_url="http://t") as client:
        return await client.request(method, url, **kwargs)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "a\u0000b"}, "text"),
        ({"text": "bell\u0007"}, "text"),
        ({"text": "c1\u0085"}, "text"),
        ({"text": "\ud83d"}, "text"),
        ({"items": [{"ok": "fine"}, {"name": "x\u001f"}]}, "items.1.name"),
        ({"count": 10**19}, "count"),
    ],
)
async def test_forbidden_values_are_422_naming_the_field(body, field):
    import json

    response = await call("POST", "/echo", content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_tabs_newlines_and_indonesian_text_pass():
    text = "Rumah terbakar\tdekat pasar\r\nasap tebal — Jl. Raya Beru № 12, café"
    response = await call("POST", "/echo", json={"text": text, "count": 2**63 - 1})
    assert response.status_code == 200 and response.json()["text"] == text


async def test_declared_oversized_body_is_413_without_reading_it():
    response = await call("POST", "/echo", content=b"x" * (LIMIT + 1), headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["max_bytes"] == LIMIT


async def test_streamed_oversized_body_is_413():
    async def chunks():
        for _ in range(10):
            yield b"x" * 1000

    response = await call("POST", "/echo", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


async def test_a_body_at_the_limit_reaches_the_route():
    body = b'{"text": "' + b"y" * (LIMIT - 12) + b'"}'
    assert len(body) == LIMIT
    response = await call("POST", "/echo", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200


async def test_control_characters_in_path_and_query_are_422():
    assert (await call("GET", "/things/a%00b")).status_code == 422
    response = await call("GET", "/things/a", params={"q": "x\u0001"})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "query.q"
    assert (await call("GET", "/things/ok", params={"q": "Wlingi"})).json() == {"name": "ok", "q": "Wlingi"}


def test_keys_are_checked_too():
    assert [f for f, _ in json_problems({"a\u0000": 1})] == ["(body)"]
    assert list(json_problems({"ok": [True, 1.5, None, "fine"]})) == []
