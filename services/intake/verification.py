"""Which reports an operator verifies before (or while) they are dispatched, and what a
verdict does to a report. Pure: the policy is data (stored versioned by intake, changed
through the admin API), the rules here only read it.

Anyone can send an SMS, a WhatsApp message or a web form unseen; a call is taken by an
operator who has already heard the caller. So reports from public channels wait for an
operator's verdict before the agencies are called out, except where a category cannot
wait: there the dispatch goes out at once, flagged unverified, and is cancelled if the
operator finds it false. A wrong fire engine costs less than a late one.
"""

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from schemas.catalog import PUBLIC_CHANNELS, Category, ContactKind, Verdict, Verification

PublicChannel = Literal["sms", "app", "web", "whatsapp"]
assert set(PublicChannel.__args__) == set(PUBLIC_CHANNELS)  # one list, two spellings for pydantic

# Categories whose public reports dispatch at once, flagged unverified, by default: a
# fire, a disaster, an accident or an illness can kill in the minutes a verification
# takes. A riot report or a snake waits for the operator's call-back.
LIFE_THREATENING: tuple[str, ...] = ("kebakaran", "bencana_alam", "kecelakaan", "penyakit")


class PolicyRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: PublicChannel = Field(description="A public channel; calls are never held (the operator took them)")
    category: Category | None = Field(None, description="null: every category of this channel without its own rule")
    verification: Verification


class PolicyChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[PolicyRule] = Field(max_length=len(PUBLIC_CHANNELS) * 7)
    changed_by: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]

    @model_validator(mode="after")
    def _one_rule_per_channel_and_category(self) -> "PolicyChange":
        seen: set[tuple[str, str | None]] = set()
        for rule in self.rules:
            key = (rule.channel, rule.category)
            if key in seen:
                raise ValueError(f"two rules for channel {rule.channel}, category {rule.category or 'any'}")
            seen.add(key)
        return self


def default_rules() -> list[PolicyRule]:
    return [
        PolicyRule(
            channel=channel,
            category=category,
            verification="after_dispatch" if category in LIFE_THREATENING else "before_dispatch",
        )
        for channel in PUBLIC_CHANNELS
        for category in (None, *LIFE_THREATENING)
    ]


def verification_for(rules: list[PolicyRule], *, kind: str, channel: str, category: str | None) -> Verification:
    """The most specific rule decides: channel and category, then the channel's catch-all.
    A public channel without any rule is held before dispatch: the safe side of a gap in
    the policy is a person looking, not an agency called out by anyone with a phone."""
    if kind != "emergency" or channel not in PUBLIC_CHANNELS:
        return "not_required"
    by_key = {(rule.channel, rule.category): rule.verification for rule in rules}
    return by_key.get((channel, category)) or by_key.get((channel, None)) or "before_dispatch"


# What the verdict makes of the report's kind of contact (the statistics follow it).
KIND_OF_VERDICT: dict[str, ContactKind] = {
    "genuine": "emergency",
    "prank": "prank",
    "information": "information",
    "duplicate": "emergency",  # another caller of a real incident: linked, not dispatched again
}


class VerdictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Verdict
    duplicate_of: UUID | None = Field(None, description="With verdict duplicate: the report of the same incident")
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None

    @model_validator(mode="after")
    def _duplicate_names_its_report(self) -> "VerdictIn":
        if self.verdict == "duplicate" and self.duplicate_of is None:
            raise ValueError("verdict duplicate needs duplicate_of: the report of the same incident")
        if self.verdict != "duplicate" and self.duplicate_of is not None:
            raise ValueError("duplicate_of goes with verdict duplicate only")
        return self
