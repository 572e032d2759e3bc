"""The routing rules as pure functions: no database, no broker.

A routing table maps a category to its primary agency and supporting agencies. The
shipped default is the contract's table for Kabupaten Blitar; the live table is data
in PostgreSQL that operators change at run time, every change a new version."""

import uuid
from dataclasses import dataclass
from uuid import UUID

from pydantic import BaseModel, Field, field_validator, model_validator

from schemas.catalog import CATEGORIES, Agency, Category


class Rule(BaseModel):
    primary: Agency
    supporting: list[Agency] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct(self) -> "Rule":
        if self.primary in self.supporting or len(set(self.supporting)) != len(self.supporting):
            raise ValueError("an agency appears twice in one rule")
        return self


class RoutingTable(BaseModel):
    rules: dict[Category, Rule]

    @field_validator("rules")
    @classmethod
    def _every_category(cls, rules: dict) -> dict:
        missing = [c for c in CATEGORIES if c not in rules]
        if missing:
            # A category with no rule would leave its reports to operators alone:
            # allowed only on purpose, never by omission.
            raise ValueError(f"no rule for: {', '.join(missing)}")
        return rules


DEFAULT_TABLE = RoutingTable(
    rules={
        "kebakaran": Rule(primary="damkar", supporting=["pln", "polres"]),
        "bencana_alam": Rule(primary="bpbd", supporting=["pmi", "dinkes"]),
        "kerusuhan": Rule(primary="polres", supporting=["satpolpp"]),
        "kecelakaan": Rule(primary="polres", supporting=["dinkes"]),
        "penyakit": Rule(primary="dinkes", supporting=["pmi"]),
        "binatang_buas": Rule(primary="damkar", supporting=[]),
    }
)


@dataclass(frozen=True)
class Assignment:
    dispatch_id: UUID
    agency: str
    role: str  # primary | supporting


def dispatch_id(report_id: UUID, agency: str) -> UUID:
    """One dispatch per agency per report, with an id anyone can recompute: routing the
    same report twice can never make two dispatches for one agency."""
    return uuid.uuid5(report_id, f"dispatch:{agency}")


def decide(table: RoutingTable, report_id: UUID, category: str | None) -> list[Assignment]:
    """The agencies a report goes to, primary first; empty when no rule routes it."""
    rule = table.rules.get(category) if category else None
    if rule is None:
        return []
    agencies = [(rule.primary, "primary")] + [(a, "supporting") for a in rule.supporting]
    return [Assignment(dispatch_id(report_id, agency), agency, role) for agency, role in agencies]
