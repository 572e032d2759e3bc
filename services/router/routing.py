"""The routing rules as pure functions: no database, no broker.

A routing table has three parts, all data that operators change at run time (every
change a new version, see store.py):

- `rules`: per category, the base rule: its primary agency and supporting agencies. The
  shipped default is the contract's table. A category may be set to `null` on purpose:
  its reports then go to the on-duty operators (`report.unrouted`); leaving a category
  out is refused, so that can only happen on purpose.
- `extra_rules`: an ordered list of conditional rules. Each has an id, conditions on the
  report (categories, subtypes, kecamatan, a minimum number of casualties; all given
  conditions must hold) and an effect: agencies it adds as supporting, and optionally a
  new primary (the former primary then stays on as supporting). Every matching rule
  applies, in order, so a later primary override wins.
- `units`: per agency, per kecamatan, the local unit that acts (a Polsek, the
  kecamatan's puskesmas, the fire post that answers for it). No entry: no unit named,
  the agency's own headquarters dispatches.

`decide` returns the agencies with their roles and units, and for each agency the ids of
the rules that sent the report there, so "why did this go to X" has an answer.
"""

import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas.catalog import CATEGORIES, Agency, Category, canonical_kecamatan
from services.router.blitar_units import UNITS as BLITAR_UNITS

# Stored tables are read with the same strict models they were written with: a field
# this code does not know (a table written by a newer router) makes the table unreadable
# and the report dead-lettered, rather than routed with part of the rules ignored.
_STRICT = ConfigDict(extra="forbid")


def normalise_subtype(value: str) -> str:
    """Subtypes are free text from the apps: compare them case- and separator-blind,
    so `Pohon tumbang-kabel` matches `pohon_tumbang_kabel`."""
    return "_".join(value.casefold().replace("-", " ").split())


def _kecamatan(value: str) -> str:
    canonical = canonical_kecamatan(value)
    if canonical is None:
        raise ValueError(f"{value!r} is not a kecamatan of Kabupaten Blitar")
    return canonical


Kecamatan = Annotated[str, AfterValidator(_kecamatan)]
Subtype = Annotated[str, StringConstraints(min_length=1, max_length=60), AfterValidator(normalise_subtype)]
RuleId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,59}$")]


def _no_repeats(agencies: list[str], what: str) -> None:
    if len(set(agencies)) != len(agencies):
        raise ValueError(f"an agency appears twice in {what}")


class Unit(BaseModel):
    model_config = _STRICT
    code: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,59}$")] = Field(
        description="Stable code, e.g. polsek-wlingi"
    )
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class Rule(BaseModel):
    """A category's base rule."""

    model_config = _STRICT
    primary: Agency
    supporting: list[Agency] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct(self) -> "Rule":
        _no_repeats([self.primary, *self.supporting], "one rule")
        return self


class Condition(BaseModel):
    """What a report must be for an extra rule to apply: every condition given must hold;
    a condition left out (null) holds for every report."""

    model_config = _STRICT
    categories: list[Category] | None = None
    subtypes: list[Subtype] | None = Field(None, description="Matched ignoring case, spaces, hyphens, underscores")
    kecamatan: list[Kecamatan] | None = Field(None, description="Any case; stored in canonical spelling")
    min_casualties: int | None = Field(None, ge=1, description="Holds when the report has at least this many")

    @model_validator(mode="after")
    def _something(self) -> "Condition":
        given = (self.categories, self.subtypes, self.kecamatan, self.min_casualties)
        if all(c is None for c in given):
            # A rule for every report of a category belongs in the category's base rule.
            raise ValueError("give at least one condition (categories, subtypes, kecamatan, min_casualties)")
        if any(c == [] for c in given):
            raise ValueError("an empty list never matches: leave the condition out instead")
        return self

    def holds(self, report: "ReportFacts") -> bool:
        if self.categories is not None and report.category not in self.categories:
            return False
        if self.subtypes is not None and (
            report.subtype is None or normalise_subtype(report.subtype) not in self.subtypes
        ):
            return False
        if self.kecamatan is not None and (
            report.kecamatan is None or canonical_kecamatan(report.kecamatan) not in self.kecamatan
        ):
            return False
        if self.min_casualties is not None and (report.casualties or 0) < self.min_casualties:
            return False
        return True


class ExtraRule(BaseModel):
    model_config = _STRICT
    id: RuleId = Field(description="Unique in the table; decisions name the rules that matched by it")
    description: Annotated[str, StringConstraints(max_length=300)] | None = None
    when: Condition
    add: list[Agency] = Field(default_factory=list, description="Agencies added as supporting")
    primary: Agency | None = Field(None, description="Replaces the primary; the former primary stays as supporting")

    @model_validator(mode="after")
    def _effect(self) -> "ExtraRule":
        if not self.add and self.primary is None:
            raise ValueError(f"rule {self.id} has no effect: give `add`, `primary` or both")
        _no_repeats(self.add, f"rule {self.id}")
        return self


class RoutingTable(BaseModel):
    model_config = _STRICT
    rules: dict[Category, Rule | None] = Field(
        description="Per category its base rule; null sends the category's reports to the operators"
    )
    extra_rules: list[ExtraRule] = Field(default_factory=list, description="Applied in order, every one that matches")
    units: dict[Agency, dict[Kecamatan, Unit]] = Field(
        default_factory=dict, description="Per agency, per kecamatan, the local unit that acts"
    )

    @field_validator("rules")
    @classmethod
    def _every_category(cls, rules: dict) -> dict:
        missing = [c for c in CATEGORIES if c not in rules]
        if missing:
            # A category with no rule would leave its reports to operators alone:
            # allowed only on purpose (null), never by omission.
            raise ValueError(f"no rule for: {', '.join(missing)} (give null to send them to the operators)")
        return rules

    @field_validator("extra_rules")
    @classmethod
    def _unique_ids(cls, extra_rules: list[ExtraRule]) -> list[ExtraRule]:
        ids = [r.id for r in extra_rules]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"rule ids must be unique: {', '.join(repeated)}")
        return extra_rules

    @field_validator("units", mode="before")
    @classmethod
    def _one_unit_per_kecamatan(cls, units: Any) -> Any:
        # Two spellings of one kecamatan ("wlingi", "Wlingi") would silently keep one.
        if isinstance(units, dict):
            for agency, by_kecamatan in units.items():
                if isinstance(by_kecamatan, dict):
                    folded = [str(k).strip().casefold() for k in by_kecamatan]
                    if len(set(folded)) != len(folded):
                        raise ValueError(f"{agency}: a kecamatan is given twice")
        return units


def base_rule_id(category: str) -> str:
    return f"category:{category}"


@dataclass(frozen=True)
class ReportFacts:
    """What routing looks at in a report."""

    category: str | None
    subtype: str | None = None
    casualties: int | None = None
    kecamatan: str | None = None


@dataclass(frozen=True)
class Assignment:
    dispatch_id: UUID
    agency: str
    role: str  # primary | supporting
    unit: Unit | None = None
    because: tuple[str, ...] = ()  # ids of the rules that sent the report to this agency


@dataclass(frozen=True)
class Decision:
    assignments: tuple[Assignment, ...]
    matched_rules: tuple[str, ...]
    reason: str | None = None  # why nothing was assigned

    @property
    def routed(self) -> bool:
        return bool(self.assignments)


def dispatch_id(report_id: UUID, agency: str) -> UUID:
    """One dispatch per agency per report, with an id anyone can recompute: routing the
    same report twice can never make two dispatches for one agency."""
    return uuid.uuid5(report_id, f"dispatch:{agency}")


@dataclass
class _Draft:
    primary: str | None
    supporting: list[str] = field(default_factory=list)
    because: dict[str, list[str]] = field(default_factory=dict)

    def cite(self, agency: str, rule_id: str) -> None:
        cited = self.because.setdefault(agency, [])
        if rule_id not in cited:
            cited.append(rule_id)

    def make_primary(self, agency: str) -> None:
        if agency == self.primary:
            return
        if agency in self.supporting:
            self.supporting.remove(agency)
        if self.primary is not None:
            self.supporting.insert(0, self.primary)
        self.primary = agency

    def add_supporting(self, agency: str) -> None:
        if agency != self.primary and agency not in self.supporting:
            self.supporting.append(agency)


def decide(
    table: RoutingTable,
    report_id: UUID,
    category: str | None,
    *,
    subtype: str | None = None,
    casualties: int | None = None,
    kecamatan: str | None = None,
) -> Decision:
    """The agencies a report goes to, primary first, each with its local unit and the
    rules that chose it; no assignments (and a reason) when nothing routes it."""
    report = ReportFacts(category, subtype, casualties, kecamatan)
    if not category:
        return Decision((), (), "the report has no category")
    if category not in table.rules:
        return Decision((), (), f"no rule for category {category!r}")
    base = table.rules[category]
    matched: list[str] = []
    draft = _Draft(primary=None)
    if base is not None:
        matched.append(base_rule_id(category))
        draft.primary = base.primary
        draft.cite(base.primary, base_rule_id(category))
        for agency in base.supporting:
            draft.add_supporting(agency)
            draft.cite(agency, base_rule_id(category))
    for rule in table.extra_rules:
        if not rule.when.holds(report):
            continue
        matched.append(rule.id)
        if rule.primary is not None:
            draft.make_primary(rule.primary)
            draft.cite(rule.primary, rule.id)
        for agency in rule.add:
            draft.add_supporting(agency)
            draft.cite(agency, rule.id)
    if draft.primary is None:
        # Agencies added with nobody to lead are not a dispatch: a person decides.
        why = f"the table sends category {category} to the operators"
        return Decision((), tuple(matched), why)
    place = canonical_kecamatan(kecamatan) if kecamatan else None
    roles = [(draft.primary, "primary")] + [(a, "supporting") for a in draft.supporting]
    assignments = tuple(
        Assignment(
            dispatch_id=dispatch_id(report_id, agency),
            agency=agency,
            role=role,
            unit=table.units.get(agency, {}).get(place) if place else None,
            because=tuple(draft.because[agency]),
        )
        for agency, role in roles
    )
    return Decision(assignments, tuple(matched))


def _default_table() -> RoutingTable:
    return RoutingTable.model_validate(
        {
            # The contract's table (CONTRACT.md, "Categories").
            "rules": {
                "kebakaran": {"primary": "damkar", "supporting": ["pln", "polres"]},
                "bencana_alam": {"primary": "bpbd", "supporting": ["pmi", "dinkes"]},
                "kerusuhan": {"primary": "polres", "supporting": ["satpolpp"]},
                "kecelakaan": {"primary": "polres", "supporting": ["dinkes"]},
                "penyakit": {"primary": "dinkes", "supporting": ["pmi"]},
                "binatang_buas": {"primary": "damkar", "supporting": []},
            },
            # The contract's "reports with casualties, or subtypes such as a tree on power
            # lines, may add agencies". A report with neither routes exactly as the table.
            "extra_rules": DEFAULT_EXTRA_RULES,
            "units": BLITAR_UNITS,
        }
    )


DEFAULT_EXTRA_RULES: list[dict] = [
    {
        "id": "korban",
        "description": "Casualties: the PSC 119 ambulance (Dinkes) goes too",
        "when": {"min_casualties": 1},
        "add": ["dinkes"],
    },
    {
        "id": "korban-massal",
        "description": "Five or more casualties: PMI (blood, first aid, evacuation) goes too",
        "when": {"min_casualties": 5},
        "add": ["pmi"],
    },
    {
        "id": "jaringan-listrik",
        "description": "Power lines involved (a tree on the lines, a fallen pole): PLN",
        "when": {"subtypes": ["pohon_tumbang_kabel", "kabel_listrik_putus", "tiang_listrik_roboh"]},
        "add": ["pln"],
    },
    {
        "id": "jaringan-telkom",
        "description": "Telephone lines involved: Telkom",
        "when": {"subtypes": ["kabel_telepon_putus", "tiang_telepon_roboh"]},
        "add": ["telkom"],
    },
]

DEFAULT_TABLE = _default_table()


def upgraded_table(stored: dict) -> RoutingTable | None:
    """A table stored by the first router (only `rules`) gains the shipped extra rules and
    units, its own rules kept; None when `stored` is already in the present format."""
    if "extra_rules" in stored or "units" in stored:
        return None
    try:
        return RoutingTable.model_validate(
            {**stored, "extra_rules": DEFAULT_EXTRA_RULES, "units": BLITAR_UNITS},
        )
    except ValidationError:
        return None  # unreadable either way: routing dead-letters and says why
