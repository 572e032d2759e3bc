"""Webhook URLs that cannot reach inside: the address check, the URL rules, and an
attempt bound to the address that was checked (no DNS rebinding)."""

import ipaddress

import httpx
import pytest
from aiohttp import web

from services.notifier.channels import WebhookChannel, webhook_session
from services.notifier.egress import EgressPolicy, Refused, Unresolved, parse_networks
from services.notifier.policy import Verdict

REAL_PUBLIC = "36.91.12.34"  # an Indonesian (Telkom) address


def resolver_of(answers: dict[str, list[str]]):
    calls = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        if host not in answers:
            raise OSError("no such host")
        return answers[host]

    resolve.calls = calls
    return resolve


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8002/v1/routing-table",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8001/",
        "http://10.0.0.1/",
        "http://0x7f000001/",
        "http://2130706433/",
        "http://192.168.1.10/",
        "http://[fd00::1]/",
        "http://100.64.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://inside.example/",
    ],
)
async def test_internal_targets_are_refused_when_configured_and_when_sent(url):
    resolve = resolver_of({"inside.example": ["10.1.2.3"], "0x7f000001": ["127.0.0.1"], "2130706433": ["127.0.0.1"]})
    policy = EgressPolicy(require_https=False, resolver=resolve)
    assert "internal" in (await policy.check_configured(url) or "")
    with pytest.raises(Refused):
        await policy.pin(url)


async def test_a_name_with_one_internal_address_among_public_ones_is_refused():
    policy = EgressPolicy(require_https=False, resolver=resolver_of({"mixed.example": [REAL_PUBLIC, "127.0.0.1"]}))
    with pytest.raises(Refused):
        await policy.pin("http://mixed.example/hook")


async def test_the_attempt_connects_to_the_checked_address_with_the_name_for_host_and_tls():
    resolve = resolver_of({"cad.damkar.blitarkab.go.id": [REAL_PUBLIC]})
    policy = EgressPolicy(require_https=True, resolver=resolve)
    pinned = await policy.pin("https://cad.damkar.blitarkab.go.id:8443/112?x=1")
    assert pinned.url == httpx.URL(f"https://{REAL_PUBLIC}:8443/112?x=1")
    assert pinned.host_header == "cad.damkar.blitarkab.go.id:8443"
    assert pinned.sni_hostname == "cad.damkar.blitarkab.go.id"


async def test_rebinding_between_configuration_and_attempt_is_caught_at_the_attempt():
    answers = {"flip.example": [REAL_PUBLIC]}
    policy = EgressPolicy(require_https=False, resolver=resolver_of(answers))
    assert await policy.check_configured("http://flip.example/") is None
    answers["flip.example"] = ["169.254.169.254"]
    with pytest.raises(Refused):
        await policy.pin("http://flip.example/")


async def test_allowed_networks_let_an_internal_agency_in_and_nothing_else():
    policy = EgressPolicy(require_https=False, allowed_networks=parse_networks("10.20.0.0/16, 127.0.0.1"))
    assert (await policy.pin("http://10.20.3.4/hook")).url.host == "10.20.3.4"
    assert (await policy.pin("http://127.0.0.1:9/x")).url.port == 9
    with pytest.raises(Refused):
        await policy.pin("http://10.21.0.1/")
    with pytest.raises(Refused):
        await policy.pin("http://127.0.0.2/")


async def test_https_only_in_production_and_no_credentials_in_the_url():
    resolve = resolver_of({"agency.example": [REAL_PUBLIC]})
    production = EgressPolicy(require_https=True, resolver=resolve)
    assert "https" in await production.check_configured("http://agency.example/")
    assert "password" in await production.check_configured("https://u:p@agency.example/")
    assert await production.check_configured("https://agency.example/") is None


async def test_a_name_that_does_not_resolve_is_accepted_in_configuration_and_retried_at_the_attempt():
    policy = EgressPolicy(require_https=False, resolver=resolver_of({}))
    assert await policy.check_configured("http://not-yet.example/") is None
    with pytest.raises(Unresolved):
        await policy.pin("http://not-yet.example/")


def test_bad_allowed_networks_are_refused_at_start():
    with pytest.raises(ValueError):
        parse_networks("10.0.0.0/8, not-a-network")
    assert parse_networks("") == ()
    assert parse_networks("192.168.1.5") == (ipaddress.ip_network("192.168.1.5/32"),)


async def test_the_webhook_channel_sends_to_the_checked_address_and_records_a_refusal_without_an_answer():
    # A real server on loopback (allowed here as the regency's own network would be);
    # `hook.example` exists only in the policy's resolver, so a request that arrives was
    # sent to the address the check returned, under the URL's own Host.
    seen = []

    async def receive(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers["host"], await request.read()))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/in", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]

    class Dispatch:  # what WebhookChannel.send reads of a due dispatch
        event_id, event_source, event_type, event_time = "ce-1", "e112/router", "t", None
        dispatch_id, round, body = "d-1", 1, b"{}"

    class Config:
        @staticmethod
        def signing_secrets(now):
            return []

    resolve = resolver_of({"hook.example": ["127.0.0.1"], "evil.example": ["10.1.2.3"]})
    policy = EgressPolicy(require_https=False, allowed_networks=parse_networks("127.0.0.1/32"), resolver=resolve)
    session = webhook_session(5.0)
    try:
        channel = WebhookChannel(session, policy)
        sent = await channel.send(f"http://hook.example:{port}/in", Dispatch, Config, now=None)
        refused = await channel.send(f"http://evil.example:{port}/in", Dispatch, Config, now=None)
        down = await channel.send("http://hook.example:1/in", Dispatch, Config, now=None)
    finally:
        await session.close()
        await runner.cleanup()
    assert sent.verdict is Verdict.DELIVERED and sent.status_code == 200
    assert seen == [("/in", f"hook.example:{port}", b"{}")]  # one request: the refused one never left
    assert refused.verdict is Verdict.PERMANENT and refused.status_code is None
    assert (
        refused.error
        == "webhook URL refused: its host is an internal address (loopback, private, link-local or reserved)"
    )
    assert down.verdict is Verdict.RETRYABLE and down.status_code is None  # nothing listens on port 1
