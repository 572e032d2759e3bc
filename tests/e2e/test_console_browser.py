"""The console in a real browser (headless Debian Chromium driven by Playwright) against
the whole system as processes: a call filed by keyboard alone reaches the dispatch board
and the fire brigade's acknowledgement, given through the notifier's agency API, shows
up live; a public report verified; a prank marked; check-in, break and check-out; an
incident closed from the board as a false alarm, found in the history and reopened; the
degraded-pipeline banner naming an agency whose endpoint refuses; the board after a busy
shift's 500 reports, a page at a time, filtered, with totals that count them all.

Screenshots of the main screens go to $CONSOLE_SCREENSHOTS_DIR when set (the README's
set: CONSOLE_SCREENSHOTS_DIR=docs/screenshots), else to the test's temporary folder."""

import json
import os
import random
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from devstack.console import seed_operator
from devstack.processes import Stack, free_port
from schemas.catalog import AGENCIES, KECAMATAN
from services.console.catalog import SUBTYPES
from tests.conftest import API_KEY, ON_DUTY_NOW
from tests.support import WebhookReceiver

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
AUTH = {"Authorization": f"Bearer {API_KEY}"}
PIN = "482913"
PLN_DEADLINE = 10  # seconds: short, so the board shows a late agency within the test
BOARD_API = re.compile(r"/api/board(\?|$)")


@pytest.fixture(scope="module")
def receiver():
    instance = WebhookReceiver()
    yield instance
    instance.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, receiver):
    instance = Stack(
        data_dir=tmp_path_factory.mktemp("console"),
        api_key=API_KEY,
        ephemeral=True,
        broker_port=free_port(),
        ports={name: free_port() for name in ("intake", "router", "notifier", "shifts", "console")},
        # The page's periodic reload is pushed out of the way, so whatever changes on
        # screen during a test came through the live updates.
        extra_env={"KAFKA_SESSION_TIMEOUT_MS": "2000", **ON_DUTY_NOW, "PAGE_REFRESH_SECONDS": "3600"},
    )
    try:
        instance.start_infrastructure()
        instance.start_services()
        notifier = instance.services["notifier"].url
        for agency in AGENCIES:
            config = {"channels": ["webhook"], "webhook_url": f"{receiver.url}/hooks/{agency}", "updated_by": "e2e"}
            if agency == "pln":
                config["ack_deadline_seconds"] = PLN_DEADLINE
            response = httpx.put(f"{notifier}/v1/agencies/{agency}", headers=AUTH, json=config)
            assert response.status_code == 200, response.text
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def sari(stack) -> str:
    return seed_operator(stack.services["shifts"].url, stack.services["console"].url, API_KEY, "Sari", PIN)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("CONSOLE_SCREENSHOTS_DIR") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser(stack, sari):
    # After the stack: Playwright's sync API keeps an event loop running in this thread,
    # and the stack's start-up runs its own (asyncio.run).
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, stack, sari, shots):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Asia/Jakarta")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # The page runs under a strict Content-Security-Policy: anything it blocks is a bug.
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(stack.services["console"].url)
    expect(page.locator("#signin-operator")).to_be_focused()
    page.screenshot(path=shots / "signin.png")
    page.select_option("#signin-operator", label="Sari")  # the list names no operator ids
    page.keyboard.press("Tab")
    page.keyboard.type(PIN)
    page.keyboard.press("Enter")
    expect(page.locator("#call-phone")).to_be_focused()
    expect(page.locator("#live")).to_have_attribute("data-live", "true", timeout=30_000)
    yield page
    context.close()
    assert not errors, errors


def wait_for(check, timeout: float = 30.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true after {timeout}s")
        time.sleep(interval)


def intake_report(stack, report_id: str) -> dict:
    return httpx.get(f"{stack.services['intake'].url}/v1/reports/{report_id}", headers=AUTH).json()


def agency_key(stack, agency: str) -> str:
    response = httpx.post(
        f"{stack.services['notifier'].url}/v1/agencies/{agency}/api-keys", headers=AUTH, json={"created_by": "e2e"}
    )
    assert response.status_code == 201, response.text
    return response.json()["key"]


def board_cell(page: Page, report_id: str, agency: str):
    return page.locator(f'#board-rows tr[data-report="{report_id}"] .agency[data-agency="{agency}"]')


def test_a_call_filed_by_keyboard_alone_reaches_the_board_and_the_acknowledgement_arrives_live(
    page, stack, sari, shots
):
    keys = page.keyboard
    keys.type("0812-3456-7890")
    keys.press("Enter")  # -> category
    keys.press("1")  # kebakaran -> subtype
    keys.press("1")  # rumah -> kecamatan
    keys.type("wli")
    expect(page.locator("#call-kecamatan-list li.on")).to_have_text("Wlingi")
    keys.press("Enter")  # accept -> desa
    keys.type("Beru")
    keys.press("Enter")  # -> address
    keys.type("Jl. Raya Beru 12, dekat pasar")
    keys.press("Enter")  # -> casualties
    keys.type("1")
    keys.press("Enter")  # -> details
    keys.type("Rumah terbakar, asap tebal, satu orang sesak napas")
    page.screenshot(path=shots / "call.png")
    keys.press("Enter")  # send

    expect(page.locator("#toast")).to_contain_text("Laporan terkirim")
    expect(page.locator("#call-phone")).to_be_focused()  # a fresh form for the next call
    expect(page.locator("#call-phone")).to_have_value("")
    report_id = page.locator("#my-calls li[data-report]").first.get_attribute("data-report")
    report = intake_report(stack, report_id)
    assert report["operator_id"] == sari and report["channel"] == "call" and report["via"] == "console (devstack)"
    assert (report["category"], report["subtype"], report["location"]["kecamatan"]) == ("kebakaran", "rumah", "Wlingi")
    assert report["casualties"] == 1 and report["caller"]["phone"] == "+6281234567890"

    page.locator('#nav button[data-screen="board"]').click()
    for agency in ("damkar", "pln", "polres", "dinkes"):  # dinkes: one casualty
        expect(board_cell(page, report_id, agency)).to_be_visible(timeout=30_000)
    expect(board_cell(page, report_id, "damkar")).to_have_attribute("data-state", "delivered", timeout=30_000)

    dispatch_id = next(
        d["dispatch_id"] for d in intake_report(stack, report_id)["dispatches"] if d["agency"] == "damkar"
    )
    notifier, damkar = stack.services["notifier"].url, {"Authorization": f"Bearer {agency_key(stack, 'damkar')}"}
    # The board's reloads refused meanwhile (the page reloads it after an event, for the
    # totals): the acknowledgement on screen came live.
    page.route(BOARD_API, lambda route: route.abort())
    assert httpx.post(f"{notifier}/v1/dispatches/{dispatch_id}/acknowledgement", headers=damkar).status_code == 200
    expect(board_cell(page, report_id, "damkar")).to_have_attribute("data-state", "acknowledged", timeout=30_000)
    expect(board_cell(page, report_id, "damkar")).to_contain_text("dikonfirmasi")
    page.unroute(BOARD_API)

    response = httpx.post(
        f"{notifier}/v1/dispatches/{dispatch_id}/field-status", headers=damkar, json={"status": "on_the_way"}
    )
    assert response.status_code == 200
    expect(board_cell(page, report_id, "damkar")).to_have_attribute("data-state", "on_the_way", timeout=30_000)

    # PLN has not acknowledged within its 10 s: it stands out; the acknowledged fire brigade does not.
    expect(board_cell(page, report_id, "pln")).to_have_class(re.compile(r"\blate\b"), timeout=30_000)
    expect(board_cell(page, report_id, "damkar")).not_to_have_class(re.compile(r"\blate\b"))
    expect(page.locator(f'#board-rows tr[data-report="{report_id}"]')).to_have_class("late")
    expect(page.locator("#late-count")).to_contain_text("terlambat")


def public_report(stack, category: str, channel: str, kecamatan: str, description: str) -> str:
    body = {
        "category": category,
        "description": description,
        "location": {"kecamatan": kecamatan},
        "caller": {"phone": "081355556666"},
        "channel": channel,
    }
    response = httpx.post(f"{stack.services['intake'].url}/v1/reports", headers=AUTH, json=body)
    assert response.status_code == 202 and response.json()["verification"] == "before_dispatch", response.text
    return response.json()["id"]


def test_a_public_channel_report_is_verified_in_one_key_and_then_dispatched(page, stack, sari, shots):
    page.locator('#nav button[data-screen="queue"]').click()
    report_id = public_report(stack, "kerusuhan", "sms", "Srengat", "Tawuran pelajar di alun-alun Srengat")
    item = page.locator(f'#queue-list li[data-report="{report_id}"]')
    expect(item).to_be_visible(timeout=30_000)  # arrived live
    item.click()
    expect(page.locator("#queue-detail")).to_contain_text("Tawuran pelajar di alun-alun Srengat")
    expect(page.locator("#queue-detail")).to_contain_text("+6281355556666")  # to call back
    page.locator("#queue-list").focus()
    page.keyboard.press("g")  # genuine
    expect(page.locator("#toast")).to_contain_text("Asli")
    expect(item).to_have_count(0, timeout=30_000)

    report = intake_report(stack, report_id)
    assert report["verification"]["verdict"] == "genuine" and report["verification"]["operator_id"] == sari
    page.locator('#nav button[data-screen="board"]').click()
    expect(board_cell(page, report_id, "polres")).to_be_visible(timeout=30_000)  # dispatched after the verdict


def test_a_prank_is_marked_in_one_key(page, stack, sari):
    page.locator('#nav button[data-screen="queue"]').click()
    report_id = public_report(stack, "binatang_buas", "whatsapp", "Doko", "Ada ular besar di kamar saya hahaha")
    item = page.locator(f'#queue-list li[data-report="{report_id}"]')
    expect(item).to_be_visible(timeout=30_000)
    item.click()
    expect(page.locator("#queue-detail")).to_contain_text("ular besar")
    page.locator("#queue-list").focus()
    page.keyboard.press("p")
    expect(page.locator("#toast")).to_contain_text("Iseng")
    expect(item).to_have_count(0, timeout=30_000)
    report = intake_report(stack, report_id)
    assert report["kind"] == "prank" and report["status"] == "recorded"
    assert report["verification"]["verdict"] == "prank" and report["verification"]["operator_id"] == sari
    assert report["dispatches"] == []


def test_check_in_break_and_check_out_from_the_shift_panel(page, stack, sari, shots):
    shifts = stack.services["shifts"].url
    page.locator('#nav button[data-screen="shift"]').click()
    page.locator('#shift-actions button[data-action="check-in"]').click()
    expect(page.locator(f'#shift-on-duty li[data-operator="{sari}"]')).to_contain_text("Sari")
    assert httpx.get(f"{shifts}/v1/operators/{sari}", headers=AUTH).json()["on_duty"] is True
    page.screenshot(path=shots / "shift.png")

    # Checking in, she is given what waited for a free operator (PLN's escalation from the
    # first test, if it ran): handling it, she gets no break until she marks it done.
    held = httpx.get(f"{shifts}/v1/tasks", headers=AUTH, params={"operator_id": sari, "state": "assigned"}).json()
    if held:
        expect(page.locator("#shift-me")).to_contain_text("menangani laporan")
        expect(page.locator('#shift-actions button[data-action="break"]')).to_have_count(0)
        page.locator('#nav button[data-screen="queue"]').click()
        for task in held:
            item = page.locator(f'#queue-list li[data-key="task:{task["id"]}"]')
            item.click()
            expect(page.locator("#queue-detail")).to_contain_text("Tandai selesai")
            page.locator("#queue-list").focus()
            page.keyboard.press("d")
            expect(item).to_have_count(0, timeout=30_000)
        page.locator('#nav button[data-screen="shift"]').click()
        expect(page.locator("#shift-me")).to_contain_text("siap", timeout=30_000)

    page.locator('#shift-actions button[data-action="break"]').click()
    expect(page.locator("#shift-me")).to_contain_text("istirahat")
    assert httpx.get(f"{shifts}/v1/operators/{sari}", headers=AUTH).json()["status"] == "break"
    page.locator('#shift-actions button[data-action="available"]').click()
    # Back from the break she is free, and a task that waited for a free operator (an
    # earlier test's) may be hers at once: either is right, a break is not.
    expect(page.locator("#shift-me")).to_contain_text(re.compile("siap|menangani laporan"))

    page.locator("#lang").click()  # English, everywhere at once
    expect(page.locator('#nav button[data-screen="call"]')).to_have_text("Take a call")
    expect(page.locator("#shift-me")).to_contain_text(re.compile("available|handling a report"))
    page.locator('#nav button[data-screen="board"]').click()
    page.screenshot(path=shots / "board-en.png")
    page.locator('#nav button[data-screen="shift"]').click()
    page.locator("#lang").click()  # back to Bahasa Indonesia for the next page

    page.locator('#shift-actions button[data-action="check-out"]').click()
    expect(page.locator('#shift-actions button[data-action="check-in"]')).to_be_visible()
    expect(page.locator(f'#shift-on-duty li[data-operator="{sari}"]')).to_have_count(0)
    assert httpx.get(f"{shifts}/v1/operators/{sari}", headers=AUTH).json()["on_duty"] is False


def test_an_agency_the_system_cannot_reach_is_phoned_from_the_queue_in_one_key(page, stack, sari, shots, receiver):
    notifier, shifts = stack.services["notifier"].url, stack.services["shifts"].url
    httpx.post(f"{shifts}/v1/operators/{sari}/check-in", headers=AUTH)  # 409 if still in: fine
    # The fire brigade's webhook removed: its dispatches cannot be delivered.
    unreachable = {"channels": ["webhook"], "phones": ["(0342) 801113"], "updated_by": "e2e"}
    assert httpx.put(f"{notifier}/v1/agencies/damkar", headers=AUTH, json=unreachable).status_code == 200
    try:
        body = {
            "category": "kebakaran",
            "subtype": "rumah",
            "description": "Gudang terbakar di Garum",
            "location": {"kecamatan": "Garum"},
            "caller": {"phone": "081355556666"},
            "channel": "call",
        }
        report_id = httpx.post(f"{stack.services['intake'].url}/v1/reports", headers=AUTH, json=body).json()["id"]
        page.locator('#nav button[data-screen="queue"]').click()
        item = page.locator(f'#queue-list li[data-report="{report_id}"]', has_text="Damkar")
        expect(item).to_be_visible(timeout=30_000)
        item.click()
        expect(page.locator("#queue-detail")).to_contain_text("+62342801113")  # the number to dial
        expect(page.locator("#queue-totals")).to_contain_text("terbuka di pusat")  # how many wait, in all
        page.screenshot(path=shots / "queue-phone.png")
        page.locator("#queue-list").focus()
        page.keyboard.press("r")  # reached: the fire brigade has it
        expect(item).to_have_count(0, timeout=30_000)
        tasks = httpx.get(f"{shifts}/v1/tasks", headers=AUTH, params={"report_id": report_id}).json()
    finally:
        restored = {"channels": ["webhook"], "webhook_url": f"{receiver.url}/hooks/damkar", "updated_by": "e2e"}
        httpx.put(f"{notifier}/v1/agencies/damkar", headers=AUTH, json=restored)
    [phoned] = [t for t in tasks if t["reason"] == "phone_agency"]
    assert phoned["state"] == "closed" and phoned["outcome"] == "reached" and phoned["closed_by"] == sari
    dispatch = httpx.get(f"{notifier}/v1/dispatches/{phoned['detail']['dispatch_id']}", headers=AUTH).json()
    assert dispatch["acknowledged_via"] == "phone"


def filed(stack, category: str, subtype: str, kecamatan: str, desa: str, phone: str) -> str:
    body = {
        "category": category,
        "subtype": subtype,
        "description": "e2e",
        "channel": "call",
        "location": {"kecamatan": kecamatan, "desa": desa},
        "caller": {"phone": phone},
    }
    response = httpx.post(f"{stack.services['intake'].url}/v1/reports", headers=AUTH, json=body)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_an_incident_is_closed_from_the_board_as_a_false_alarm_and_reopened_from_the_history(page, stack, sari, shots):
    intake = stack.services["intake"].url
    # Two incidents closed earlier, so the history shows more than the one closed here.
    for outcome, args in (
        ("handed_over", ("kerusuhan", "tawuran", "Kademangan", "Plosorejo", "081300001111")),
        ("resolved", ("kecelakaan", "lalu_lintas", "Talun", "Jeblog", "081300002222")),
    ):
        earlier = filed(stack, *args)
        response = httpx.post(
            f"{intake}/v1/reports/{earlier}/close",
            headers={**AUTH, "E112-Operator-Id": sari},
            json={"outcome": outcome},
        )
        assert response.status_code == 200, response.text
    report_id = filed(stack, "kebakaran", "lahan_hutan", "Kanigoro", "Sawentar", "081300003333")
    page.locator('#nav button[data-screen="board"]').click()
    row = page.locator(f'#board-rows tr[data-report="{report_id}"]')
    expect(row).to_be_visible(timeout=30_000)
    close = row.locator("button.close-incident")
    expect(close).to_have_text("Tutup insiden")

    # Esc cancels the form only: the board stays, the focus goes back to the button.
    close.click()
    form = page.locator(f'#board-rows tr[data-closing="{report_id}"] form')
    expect(form.locator("select")).to_be_focused()
    page.keyboard.press("Escape")
    expect(form).to_have_count(0)
    expect(page.locator("#screen-board")).to_be_visible()
    expect(close).to_be_focused()

    page.keyboard.press("Enter")  # the form again, from the keyboard
    expect(form.locator("select")).to_be_focused()
    expect(form.locator("select option")).to_have_text(
        ["Pilih hasil", "Tertangani", "Alarm palsu", "Diserahkan ke instansi", "Tidak perlu tindakan"]
    )
    page.keyboard.press("Enter")  # no outcome chosen yet
    expect(form.locator(".error")).to_have_text("Pilih hasilnya.")
    form.locator("select").select_option("false_alarm")
    expect(form.locator(".error")).to_have_text("")
    page.keyboard.press("Tab")
    page.keyboard.type("Asap dari pembakaran sampah, bukan kebakaran lahan")
    time.sleep(1.5)  # the board redraws every second: the form and what was typed stay
    expect(form.locator("input")).to_be_focused()
    expect(form.locator("input")).to_have_value("Asap dari pembakaran sampah, bukan kebakaran lahan")
    page.screenshot(path=shots / "board-close.png")

    # Intake's refusal shows in the form. From the board a real one is a race (another
    # operator closed it a moment earlier), so here the browser answers for the console.
    detail = "Closed as resolved at 2026-12-03T01:00:00+00:00; reopen it first to close it again."
    refusal = {"type": "about:blank", "title": "Already closed", "status": 409, "detail": detail, "service": "intake"}
    page.route(
        "**/api/reports/*/close",
        lambda route: route.fulfill(status=409, content_type="application/problem+json", body=json.dumps(refusal)),
    )
    page.keyboard.press("Enter")
    expect(form.locator(".error")).to_have_text(refusal["detail"])
    expect(form.locator("input")).to_have_value("Asap dari pembakaran sampah, bukan kebakaran lahan")
    page.unroute("**/api/reports/*/close")
    page.locator("#lang").click()  # the open form in English, with what was chosen and typed
    expect(form.locator("select option:checked")).to_have_text("False alarm")
    expect(form.locator("input")).to_have_value("Asap dari pembakaran sampah, bukan kebakaran lahan")
    expect(form.locator("button[type=submit]")).to_have_text("Close")
    page.locator("#lang").click()
    expect(form.locator("select option:checked")).to_have_text("Alarm palsu")
    form.locator("input").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#toast")).to_contain_text("Insiden ditutup: Alarm palsu")
    expect(row).to_have_count(0, timeout=30_000)
    closure = intake_report(stack, report_id)["closure"]
    assert closure["outcome"] == "false_alarm" and closure["operator_id"] == sari
    assert closure["note"] == "Asap dari pembakaran sampah, bukan kebakaran lahan"

    page.locator('#nav button[data-screen="history"]').click()
    item = page.locator(f'#history-rows tr[data-report="{report_id}"]')
    expect(item).to_contain_text("Kebakaran")
    expect(item).to_contain_text("Kanigoro, Sawentar")
    expect(item.locator("[data-outcome]")).to_have_text("Alarm palsu")
    expect(page.locator("#history-rows [data-outcome]")).to_have_count(3)  # newest first: this one on top
    expect(page.locator("#history-rows tr[data-report]").first).to_have_attribute("data-report", report_id)
    expect(page.locator("#toast")).to_be_hidden(timeout=10_000)  # not in the picture
    page.screenshot(path=shots / "history.png")

    item.locator("button.reopen").click()
    reason = page.locator(f'#history-rows tr[data-reopening="{report_id}"] input')
    expect(reason).to_be_focused()
    page.keyboard.press("Enter")  # a reason is needed
    expect(page.locator(f'#history-rows tr[data-reopening="{report_id}"] .error')).to_have_text("Tulis alasannya.")
    page.keyboard.type("Api menyala lagi di lahan Sawentar")
    page.keyboard.press("Enter")
    expect(page.locator("#toast")).to_contain_text("dibuka lagi")
    expect(item).to_have_count(0)
    report = intake_report(stack, report_id)
    assert report["closure"] is None and report["status"] != "closed"

    page.locator('#nav button[data-screen="board"]').click()
    expect(row).to_be_visible(timeout=30_000)


def fmt(n: int) -> str:
    """A count as the page shows it in Bahasa Indonesia: 4.000."""
    return f"{n:,}".replace(",", ".")


def open_counts(stack, **where) -> dict:
    params = {"kind": "emergency", "incident": "true", "closed": "false", **where}
    return httpx.get(f"{stack.services['intake'].url}/v1/stats/reports", headers=AUTH, params=params).json()


def newest_open(stack, limit: int, **where) -> list[str]:
    params = {"kind": "emergency", "incident": "true", "closed": "false", "limit": limit, **where}
    page = httpx.get(f"{stack.services['intake'].url}/v1/reports", headers=AUTH, params=params).json()
    return [item["id"] for item in page["items"]]


def late_now(stack) -> int:
    return httpx.get(f"{stack.services['notifier'].url}/v1/dispatches/late", headers=AUTH).json()["late"]


def board_ids(page: Page) -> list[str]:
    return page.locator("#board-rows tr[data-report]").evaluate_all("rows => rows.map(r => r.dataset.report)")


def test_the_banner_names_an_agency_the_system_cannot_reach_and_leaves_when_it_is_back(page, stack, shots, receiver):
    notifier = stack.services["notifier"].url
    banner = page.locator("#pipeline-banner")
    unreachable = banner.locator('li[data-code="agency_unreachable"]')
    expect(banner).to_be_hidden()
    refusing = WebhookReceiver(responses=[503])
    try:
        # PLN's endpoint answers 503: five dispatches refused in a row open its breaker.
        config = {
            "channels": ["webhook"],
            "webhook_url": f"{refusing.url}/hooks/pln",
            "updated_by": "e2e",
            "ack_deadline_seconds": PLN_DEADLINE,
        }
        assert httpx.put(f"{notifier}/v1/agencies/pln", headers=AUTH, json=config).status_code == 200
        # Five incidents (five desa: one desa would make four of them callers of the first).
        for i, desa in enumerate(("Kalipang", "Jingglong", "Bacem", "Kembangarum", "Sukorejo")):
            filed(stack, "kebakaran", "kabel_listrik_putus", "Sutojayan", desa, f"08130000500{i}")
        expect(unreachable).to_have_text("PLN tidak dapat dihubungi sistem — telepon", timeout=60_000)
        expect(banner).to_have_attribute("role", "alert")
        expect(banner.locator("strong")).to_have_text("Sistem terganggu:")
        page.locator('#nav button[data-screen="board"]').click()
        expect(page.locator("#board-rows tr[data-report]").first).to_be_visible(timeout=30_000)
        page.screenshot(path=shots / "banner.png")
        page.locator("#lang").click()
        expect(unreachable).to_have_text("PLN cannot be reached by the system — phone them")
        page.locator("#lang").click()
        expect(unreachable).to_have_text("PLN tidak dapat dihubungi sistem — telepon")
    finally:
        config = {
            "channels": ["webhook"],
            "webhook_url": f"{receiver.url}/hooks/pln",
            "updated_by": "e2e",
            "ack_deadline_seconds": PLN_DEADLINE,
        }
        httpx.put(f"{notifier}/v1/agencies/pln", headers=AUTH, json=config)
        refusing.close()
    # The breaker's next trial reaches PLN again and closes it: the item goes.
    expect(unreachable).to_have_count(0, timeout=120_000)


def contact(stack, kind: str, phone: str, category: str | None = None, kecamatan: str = "Garum") -> str:
    body: dict = {"kind": kind, "channel": "call", "caller": {"phone": phone}}
    if kind == "emergency":
        body |= {"category": category, "description": "e2e", "location": {"kecamatan": kecamatan}}
    response = httpx.post(f"{stack.services['intake'].url}/v1/reports", headers=AUTH, json=body)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_the_caller_s_history_shows_as_the_number_is_typed_and_a_flagged_caller_stands_out(page, stack):
    for kind in ("prank", "prank", "prank"):
        contact(stack, kind, "081366660001")
    contact(stack, "emergency", "081366660001", "kecelakaan", "Talun")
    logged: list[str] = []
    page.on("console", lambda message: logged.append(message.text))
    lookups: list[str] = []
    page.on("request", lambda request: lookups.append(request.url) if "/api/callers/lookup" in request.url else None)
    history = page.locator("#call-history")

    page.keyboard.type("0813-6666-0001")
    expect(history).to_be_visible()
    expect(history.locator(".summary")).to_have_text(
        "Perhatian: nomor ini sering iseng. 4 kontak dalam 30 hari · 3 iseng"
    )
    expect(history).to_have_class(re.compile(r"\bflagged\b"))
    recent = history.locator(".recent li")  # the latest three, newest first
    expect(recent).to_have_count(3)
    expect(recent.first).to_have_text(re.compile(r"^Kecelakaan · (diterima|diteruskan|terkirim) · baru saja$"))
    expect(recent.nth(1)).to_have_text("Iseng · tercatat · baru saja")
    assert len(lookups) == 1  # once the number was typed, not once a digit
    assert all("6666" not in url for url in lookups)  # the number is in the body, never the URL

    page.keyboard.press("Backspace")  # another number now: the history was not its
    expect(history).to_be_hidden()
    with page.expect_response("**/api/callers/lookup") as unknown:
        page.keyboard.type("9")  # 0813-6666-0009: nobody has called from it
    assert unknown.value.json()["history"]["contacts"] == 0
    expect(history).to_be_hidden()

    page.locator("#call-phone").fill("")
    page.keyboard.type("12345")  # not a number: not even looked up
    page.wait_for_timeout(600)
    expect(history).to_be_hidden()
    assert len(lookups) == 2

    page.locator("#call-phone").fill("")
    page.keyboard.type("0813 6666 0001")
    expect(history).to_be_visible()
    page.keyboard.press("Escape")  # a new form: nothing of the last caller stays
    expect(history).to_be_hidden()
    expect(page.locator("#call-phone")).to_have_value("")
    assert not [text for text in logged if "6666" in text]  # nothing of the caller in the browser's console


def test_a_second_riot_call_in_the_same_desa_is_shown_its_incident_before_sending_and_linked_to_it(
    page, stack, sari, shots
):
    first = filed(stack, "kerusuhan", "tawuran", "Garum", "Sumberdiren", "081377770001")
    contact(stack, "emergency", "081377770002", "kecelakaan", "Garum")  # this caller rang before
    keys, timer = page.keyboard, page.locator("#call-timer")
    incidents, warning = page.locator("#call-incidents"), page.locator("#call-warning")
    expect(timer).to_have_text("00:00")
    expect(timer).to_have_attribute("data-running", "false")

    keys.type("0813-7777-0002")  # the first key starts the call's clock
    expect(timer).to_have_attribute("data-running", "true")
    expect(page.locator("#call-history .summary")).to_have_text("1 kontak dalam 30 hari")
    keys.press("Enter")
    keys.press("3")  # kerusuhan
    keys.press("1")  # tawuran
    keys.type("garum")
    keys.press("Enter")
    expect(incidents.locator(f'li[data-report="{first}"]')).to_be_visible()  # the kecamatan is enough to look
    expect(warning).to_be_hidden()  # no desa yet: nothing the rule would link
    keys.type("Sumberdiren")
    suggestion = incidents.locator(f'li[data-report="{first}"][data-rule="same_desa"]')
    expect(suggestion).to_contain_text("Kerusuhan · Tawuran · Garum, Sumberdiren")
    expect(suggestion).to_contain_text("baru saja · 1 penelepon")
    expect(suggestion.locator(".rule-note")).to_have_text(
        "Saat dikirim, panggilan ini ditautkan ke kejadian ini sebagai penelepon lain (desa yang sama)."
    )
    expect(warning).to_have_text(
        f"Akan ditautkan ke kejadian {first[:8]} (Kerusuhan · Garum, Sumberdiren) sebagai penelepon lain."
    )
    keys.press("Enter")
    keys.type("Depan balai desa")
    keys.press("Enter")
    keys.press("Enter")  # no casualties
    keys.type("Dua kelompok pemuda saling lempar batu")
    expect(timer).to_have_text(re.compile(r"^00:0[1-9]$"))  # it runs
    page.screenshot(path=shots / "call-aids.png", full_page=True)
    page.wait_for_timeout(1100)  # on screen for over a second: it has been seen, one Enter sends
    keys.press("Enter")

    expect(page.locator("#toast")).to_contain_text(f"ditautkan ke kejadian {first[:8]} sebagai penelepon lain")
    expect(timer).to_have_text("00:00")  # a fresh form, its clock waiting for the next call
    expect(timer).to_have_attribute("data-running", "false")
    expect(incidents).to_be_hidden()
    expect(page.locator("#call-history")).to_be_hidden()
    second = page.locator("#my-calls li[data-report]").first.get_attribute("data-report")
    report = intake_report(stack, second)
    assert report["status"] == "linked" and report["linked_to"] == first and report["operator_id"] == sari
    started, received = (datetime.fromisoformat(report[k]) for k in ("call_started_at", "received_at"))
    assert received - timedelta(minutes=1) < started < received - timedelta(seconds=1)

    # An incident that appears while the form is open (another operator's call in the
    # desa typed here) holds the send: the first Enter shows it, the second sends.
    keys.type("0813-7777-0003")
    keys.press("Enter")
    keys.press("3")
    keys.press("1")
    keys.type("garum")
    keys.press("Enter")
    keys.type("Tingal")
    page.locator("#call-description").fill("Pemuda berkelahi di jalan desa")
    expect(incidents.locator(f'li[data-report="{first}"]')).to_be_visible()
    expect(incidents.locator(f'li[data-report="{first}"]')).to_have_attribute("data-rule", "")  # another desa
    page.wait_for_timeout(1100)
    tingal = filed(stack, "kerusuhan", "tawuran", "Garum", "Tingal", "081377770004")
    keys.press("Control+Enter")
    expect(incidents.locator(f'li[data-report="{tingal}"]')).to_have_attribute("data-rule", "same_desa")
    expect(warning).to_have_class(re.compile(r"\bwarned\b"))
    expect(warning).to_contain_text("Kirim sekali lagi")
    expect(warning).to_contain_text(f"Akan ditautkan ke kejadian {tingal[:8]}")
    expect(page.locator("#call-submit")).to_have_text("Tetap kirim")
    expect(page.locator("#my-calls li[data-report]").first).to_have_attribute("data-report", second)  # not sent
    keys.press("Control+Enter")
    expect(page.locator("#toast")).to_contain_text(f"ditautkan ke kejadian {tingal[:8]}")
    third = page.locator("#my-calls li[data-report]").first.get_attribute("data-report")
    assert third != second and intake_report(stack, third)["linked_to"] == tingal
    expect(page.locator("#call-submit")).to_have_text("Kirim laporan")


def public_report_in(stack, kecamatan: str, desa: str, description: str) -> str:
    body = {
        "category": "kerusuhan",
        "description": description,
        "channel": "sms",
        "location": {"kecamatan": kecamatan, "desa": desa},
        "caller": {"phone": "081388880000"},
    }
    response = httpx.post(f"{stack.services['intake'].url}/v1/reports", headers=AUTH, json=body)
    assert response.status_code == 202 and response.json()["verification"] == "before_dispatch", response.text
    return response.json()["id"]


def test_the_same_incident_picker_offers_intake_s_suggestions_and_chooses_only_the_rule_s(page, stack, sari, shots):
    # Another desa of the same kecamatan: offered, never chosen for the operator.
    elsewhere = filed(stack, "kerusuhan", "tawuran", "Kesamben", "Jugo", "081388880001")
    unrelated = public_report_in(stack, "Kesamben", "Siraman", "Ribut-ribut di pasar Siraman")
    # The SMS came first, the call about it after (a report awaiting its verdict is no
    # incident, so the call was not linked to it): the rule names the call.
    ruled = public_report_in(stack, "Selopuro", "Mronjo", "Tawuran di lapangan Mronjo")
    incident = filed(stack, "kerusuhan", "tawuran", "Selopuro", "Mronjo", "081388880002")
    alone = public_report_in(stack, "Bakung", "Sumberdadi", "Tawuran di Sumberdadi")
    page.locator('#nav button[data-screen="queue"]').click()
    picker, submit = page.locator("#link-target"), page.locator("#link-submit")

    page.locator(f'#queue-list li[data-report="{unrelated}"]').click()
    expect(page.locator("#queue-detail")).to_contain_text("Ribut-ribut di pasar Siraman")
    expect(picker.locator("option")).to_have_count(2)  # "choose" and the one suggestion
    expect(picker).to_have_value("")
    expect(picker.locator(f'option[value="{elsewhere}"]')).to_contain_text("Kerusuhan · Kesamben, Jugo")
    expect(submit).to_be_disabled()
    page.locator("#queue-list").focus()
    page.keyboard.press("l")
    expect(picker).to_be_focused()
    page.keyboard.press("ArrowDown")  # the picker's arrow, not the queue's
    expect(picker).to_have_value(elsewhere)
    expect(submit).to_be_enabled()
    expect(page.locator(f'#queue-list li[data-report="{unrelated}"]')).to_have_attribute("aria-selected", "true")

    page.locator(f'#queue-list li[data-report="{alone}"]').click()
    expect(page.locator("#queue-detail")).to_contain_text("Tawuran di Sumberdadi")
    expect(page.locator("#link-form")).to_contain_text("Tidak ada laporan terbuka untuk ditautkan.")
    expect(picker).to_have_count(0)
    expect(submit).to_be_disabled()

    page.locator(f'#queue-list li[data-report="{ruled}"]').click()
    expect(page.locator("#queue-detail")).to_contain_text("Tawuran di lapangan Mronjo")
    expect(picker).to_have_value(incident)
    checked = picker.locator("option:checked")
    expect(checked).to_have_text(re.compile(rf"^✓ {incident[:8]} · Kerusuhan · Selopuro, Mronjo · \d\d\.\d\d$"))
    expect(page.locator("#link-detail")).to_have_text(
        re.compile(r"^✓ aturan tautan: desa yang sama · selisih \d+ mnt · Tawuran · 1 penelepon · “e2e”$")
    )
    expect(submit).to_be_enabled()
    page.screenshot(path=shots / "queue-link.png")
    page.locator("#queue-list").focus()
    page.keyboard.press("l")
    page.keyboard.press("Enter")
    expect(page.locator("#toast")).to_contain_text("Duplikat")
    expect(page.locator(f'#queue-list li[data-report="{ruled}"]')).to_have_count(0, timeout=30_000)
    report = intake_report(stack, ruled)
    assert report["verification"]["verdict"] == "duplicate" and report["verification"]["operator_id"] == sari
    assert report["linked_to"] == incident


def test_a_start_time_intake_refuses_does_not_hold_the_call_back(page, stack):
    # This workstation's clock runs ahead: intake refuses the start time (the browser
    # answers for it here, once), and the report goes again without it.
    bodies: list[dict] = []
    refusal = {
        "type": "about:blank",
        "title": "Invalid report",
        "status": 422,
        "service": "intake",
        "detail": "call_started_at: in the future.",
        "errors": [{"field": "call_started_at", "message": "in the future"}],
    }

    def answer(route):
        bodies.append(json.loads(route.request.post_data))
        if len(bodies) == 1:
            route.fulfill(status=422, content_type="application/problem+json", body=json.dumps(refusal))
        else:
            route.continue_()

    page.route("**/api/calls", answer)
    page.keyboard.type("081355550001")
    page.keyboard.press("p")  # a prank, logged in a second
    page.keyboard.press("Enter")
    expect(page.locator("#toast")).to_contain_text("Tercatat: Iseng")
    expect(page.locator("#toast")).to_contain_text("Waktu mulai panggilan tidak tercatat")
    assert len(bodies) == 2 and "call_started_at" in bodies[0] and "call_started_at" not in bodies[1]
    report_id = page.locator("#my-calls li[data-report]").first.get_attribute("data-report")
    report = intake_report(stack, report_id)
    assert report["kind"] == "prank" and report["call_started_at"] is None


def test_reports_received_within_one_millisecond_keep_intake_s_order_on_the_board(page):
    # Intake pages by the microsecond; the board's order in the page must agree, or a
    # live report lands a row away from where the next reload puts it.
    order = page.evaluate("""async () => {
      const { sortRows } = await import("/static/js/board-model.js");
      const rows = [
        { report_id: "ffff0000-0000-4000-8000-000000000000", received_at: "2026-12-02T15:20:24.123001Z" },
        { report_id: "00000000-0000-4000-8000-000000000000", received_at: "2026-12-02T15:20:24.123999Z" },
        { report_id: "aaaa0000-0000-4000-8000-000000000000", received_at: "2026-12-02T15:20:24Z" },
        { report_id: "bbbb0000-0000-4000-8000-000000000000", received_at: "2026-12-02T22:20:24.000001+07:00" },
      ];
      return sortRows(rows).map((r) => r.report_id.slice(0, 4));
    }""")
    assert order == ["0000", "ffff", "bbbb", "aaaa"]


# The "board after 500 reports": a shift's worth, through intake's API. It runs
# last in this module: its 500 open incidents, in every category and kecamatan, would be
# linking suggestions for the call aids' tests above, which count them.
MANY_REPORTS = int(os.environ.get("CONSOLE_BOARD_REPORTS", "500"))


def file_many(stack, count: int) -> list[str]:
    """`count` reports as a busy shift brings them: every category and kecamatan, most by
    phone, some by SMS or WhatsApp (held for a verdict: they fill the queue). Each in a
    desa of its own, so intake links none to another as a second caller."""
    chance = random.Random(112)
    bodies = []
    for i in range(count):
        category = chance.choice(list(SUBTYPES))
        channel = chance.choices(["call", "sms", "whatsapp"], weights=[8, 1, 1])[0]
        bodies.append(
            {
                "category": category,
                "subtype": chance.choice(SUBTYPES[category]),
                "channel": channel,
                "description": f"Laporan uji papan nomor {i + 1}",
                "location": {"kecamatan": chance.choice(KECAMATAN), "desa": f"Desa {i + 1}"},
                "caller": {"phone": f"0813{7000000 + i:07d}"},
            }
        )
    with httpx.Client(base_url=stack.services["intake"].url, headers=AUTH, timeout=30) as client:

        def post(body: dict) -> str:
            response = client.post("/v1/reports", json=body)
            assert response.status_code == 202, response.text
            return response.json()["id"]

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(post, bodies))


def test_the_board_of_a_busy_shift_pages_newest_first_filters_and_counts_everything(page, stack, shots):
    page.locator('#nav button[data-screen="board"]').click()
    rows = page.locator("#board-rows tr[data-report]")
    expect(rows.first).to_be_visible(timeout=30_000)
    file_many(stack, MANY_REPORTS)  # while the board is open: it follows live
    # Settled: every report past routing, every PLN dispatch past its short deadline.
    wait_for(lambda: not open_counts(stack)["by_status"].get("received"), timeout=120)
    time.sleep(PLN_DEADLINE + 1)

    # Newest first, a page of 25 (the console's BOARD_PAGE_SIZE), as intake lists them.
    expect(rows).to_have_count(25, timeout=30_000)
    wait_for(lambda: board_ids(page) == newest_open(stack, 25))
    totals = page.locator("#board-totals")
    counts = open_counts(stack)
    assert counts["total"] >= MANY_REPORTS
    expect(totals.locator("strong")).to_have_text(f"{fmt(counts['total'])} insiden terbuka", timeout=30_000)
    delivered = counts["by_status"].get("delivered", 0)
    expect(page.locator('#board-statuses [data-status="delivered"]')).to_have_text(f"terkirim {fmt(delivered)}")
    # The late count is the notifier's for every dispatch, not just the rows on screen.
    late_on_screen = page.locator("#board-rows .agency.late").count()
    wait_for(lambda: page.locator("#late-count").text_content() == f"{fmt(late_now(stack))} terlambat", timeout=60)
    late = late_now(stack)
    assert late > late_on_screen, (late, late_on_screen)
    expect(totals.locator("[data-late]")).to_contain_text(f"{fmt(late)} terlambat (PLN ")
    expect(page.locator("#board-shown")).to_have_text(f"Ditampilkan 25 dari {fmt(counts['total'])}")
    page.screenshot(path=shots / "board.png")

    # "Tampilkan lebih banyak" appends the next page below.
    first = board_ids(page)
    page.locator("#board-more").click()
    expect(rows).to_have_count(50)
    assert board_ids(page) == newest_open(stack, 50) and board_ids(page)[:25] == first
    expect(page.locator("#board-shown")).to_have_text(f"Ditampilkan 50 dari {fmt(counts['total'])}")

    # A new incident arrives on top, the pages opened stay.
    newest = filed(stack, "kecelakaan", "lalu_lintas", "Kesamben", "Siraman", "081399990000")
    expect(rows.first).to_have_attribute("data-report", newest, timeout=30_000)
    expect(rows).to_have_count(51)
    expect(totals.locator("strong")).to_have_text(f"{fmt(counts['total'] + 1)} insiden terbuka")

    # Filters: page 1 again, narrowed; the totals count what the filter holds.
    page.select_option("#board-category", "kebakaran")
    fires = open_counts(stack, category="kebakaran")["total"]
    expect(totals.locator("strong")).to_have_text(f"{fmt(fires)} insiden terbuka sesuai saringan")
    expect(rows).to_have_count(min(fires, 25))
    wait_for(lambda: board_ids(page) == newest_open(stack, 25, category="kebakaran"))
    expect(totals.locator("[data-late]")).to_contain_text("terlambat di seluruh pusat")
    page.select_option("#board-kecamatan", "Wlingi")
    in_wlingi = open_counts(stack, category="kebakaran", kecamatan="Wlingi")["total"]
    expect(totals.locator("strong")).to_have_text(f"{fmt(in_wlingi)} insiden terbuka sesuai saringan")
    wait_for(lambda: board_ids(page) == newest_open(stack, 25, category="kebakaran", kecamatan="Wlingi"))
    page.select_option("#board-kecamatan", "")
    page.select_option("#board-category", "")
    page.select_option("#board-state", "late")  # "Terlambat": every row has a late agency
    expect(page.locator("#board-state option:checked")).to_have_text("Terlambat")
    expect(rows).to_have_count(25, timeout=30_000)
    wait_for(lambda: page.locator("#board-rows tr[data-report]:not(.late)").count() == 0)
    expect(page.locator("#board-more")).to_be_hidden()
    page.select_option("#board-state", "")
    expect(rows).to_have_count(25)
    expect(page.locator("#board-more")).to_be_visible()

    # The notifier silent (the browser answers for the console): the late count unknown, said so.
    def without_late(route):
        answer = route.fetch().json()
        answer["totals"].update(late=None, late_by_agency={})
        route.fulfill(json=answer)

    page.route(BOARD_API, without_late)
    page.select_option("#board-category", "penyakit")
    expect(totals.locator('[data-late="unknown"]')).to_have_text(
        "Jumlah yang terlambat tidak diketahui: notifier tidak menjawab"
    )
    expect(page.locator("#late-count")).to_have_text("terlambat ?")
    # A board request still in `without_late` (its fetch under way) finishes first:
    # unrouted in between, the browser would send it on and the handler's answer fail.
    page.unroute_all(behavior="wait")
    page.select_option("#board-category", "")
    expect(page.locator("#late-count")).to_have_text(f"{fmt(late_now(stack))} terlambat")

    page.locator('#nav button[data-screen="queue"]').click()
    queue = page.locator("#queue-list li")
    expect(queue.first).to_be_visible(timeout=30_000)
    queue.first.click()
    expect(page.locator("#queue-detail h2")).to_be_visible()
    page.screenshot(path=shots / "queue.png")
