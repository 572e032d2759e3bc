"""`GET /api/board`: a page of open incidents, newest first, with each agency's state and
lateness (board.py), filtered by category, kecamatan and state, and totals that count
every open incident and every late dispatch, not just the page. `state=late` lists the
incidents with a dispatch past its acknowledgement deadline, as the notifier counts them."""

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from schemas.catalog import Category
from services.common.web import Problem
from services.console.board import board
from services.console.dependencies import Settings, Upstream
from services.console.session import CurrentOperator
from services.console.work_api import report_or_none

# The states of an open incident (intake's statuses) the board filters by, and `late`.
BOARD_STATES = (
    "awaiting_verification",
    "received",
    "unrouted",
    "routed",
    "delivered",
    "delivery_failed",
    "acknowledged",
    "responding",
    "done",
)
BoardState = Literal[BOARD_STATES + ("late",)]  # type: ignore[valid-type]


router = APIRouter(prefix="/api", tags=["board"])


@router.get("/board", summary="Open incidents, newest first, a page at a time, with totals that count them all")
async def dispatch_board(
    operator: CurrentOperator,
    upstream: Upstream,
    settings: Settings,
    category: Category | None = None,
    kecamatan: Annotated[str | None, Query(max_length=40)] = None,
    state: BoardState | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict:
    page_size = settings.board_page_size
    where = {"kind": "emergency", "incident": "true", "closed": "false"}
    where |= {k: v for k, v in (("category", category), ("kecamatan", kecamatan)) if v}
    counts, late, (deadlines, deadlines_known) = await asyncio.gather(
        upstream.json("intake", "GET", "/v1/stats/reports", params=where), _late(upstream), _deadlines(upstream)
    )
    next_cursor = None
    if state == "late":
        ids = [str(i) for i in late.get("report_ids", [])] if late else []
    else:
        params = where | {"limit": page_size} | {k: v for k, v in (("status", state), ("cursor", cursor)) if v}
        page = await upstream.json("intake", "GET", "/v1/reports", params=params)
        ids, next_cursor = [str(item["id"]) for item in page["items"]], page["next_cursor"]
    limiter = asyncio.Semaphore(8)

    async def one(report_id: str):
        async with limiter:
            return await report_or_none(upstream, report_id)

    reports = [r for r in await asyncio.gather(*(one(i) for i in ids)) if r]
    if state == "late":  # the notifier's list knows no category or place: filtered here
        reports = [r for r in reports if _matches(r, category, kecamatan) and r["status"] != "closed"][:page_size]
    now = datetime.now(UTC)
    late = late or {"late": None, "by_agency": {}}
    totals = {
        "open": counts["total"],
        "by_status": counts["by_status"],
        "late": late["late"],
        "late_by_agency": late["by_agency"],
    }
    return {
        "now": now.isoformat(),
        "rows": board(reports, deadlines, now),
        "next_cursor": next_cursor,
        "totals": totals,
        "deadlines": deadlines,
        "deadlines_known": deadlines_known,
    }


def _matches(report: dict, category: str | None, kecamatan: str | None) -> bool:
    place = (report.get("location") or {}).get("kecamatan") or ""
    return (category is None or report.get("category") == category) and (
        kecamatan is None or place.casefold() == kecamatan.casefold()
    )


async def _late(upstream) -> dict | None:
    """The notifier's late count; the board still shows without it."""
    try:
        return await upstream.json("notifier", "GET", "/v1/dispatches/late")
    except Problem:
        return None


async def _deadlines(upstream) -> tuple[dict[str, int], bool]:
    """Each agency's acknowledgement deadline; the board still shows without them."""
    try:
        agencies = await upstream.json("notifier", "GET", "/v1/agencies")
    except Problem:
        return {}, False
    return {a["agency"]: a["ack_deadline_seconds"] for a in agencies}, True
