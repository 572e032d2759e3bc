"""What the call form and the verdict picker ask while an operator works (intake's call
aids): open incidents the call or report may be another caller of, ranked, with the one
intake's own rule would link marked; the caller's history as the number is typed."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, StringConstraints

from schemas.catalog import Category
from services.console.dependencies import Upstream
from services.console.session import CurrentOperator


class PhoneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=40)]


router = APIRouter(prefix="/api", tags=["call aids"])


@router.get("/link-suggestions", summary="Open incidents the call being taken may be another caller of")
async def for_a_call(
    operator: CurrentOperator,
    upstream: Upstream,
    category: Category,
    kecamatan: Annotated[str | None, Query(max_length=40)] = None,
    desa: Annotated[str | None, Query(max_length=100)] = None,
) -> list[dict]:
    params = {k: v for k, v in (("category", category), ("kecamatan", kecamatan), ("desa", desa)) if v}
    return await upstream.json("intake", "GET", "/v1/link-suggestions", params=params)


@router.get("/reports/{report_id}/link-suggestions", summary="Open incidents this report may duplicate")
async def for_a_report(report_id: UUID, operator: CurrentOperator, upstream: Upstream) -> list[dict]:
    return await upstream.json("intake", "GET", f"/v1/reports/{report_id}/link-suggestions")


@router.post("/callers/lookup", summary="The caller's earlier contacts by the number typed (POST: not in URLs)")
async def caller_history(operator: CurrentOperator, upstream: Upstream, body: PhoneIn) -> dict:
    return await upstream.json("intake", "POST", "/v1/callers/lookup", json={"phone": body.phone})
