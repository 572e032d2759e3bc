"""What the router decided of a report: the `outcome` of its routing_decisions row, the
label of e112_routing_decisions_total and the `outcome` of GET /v1/decisions/{id}."""

from enum import StrEnum


class Outcome(StrEnum):
    ROUTED = "routed"  # dispatched to the agencies of its rules
    UNROUTED = "unrouted"  # no rule names an agency: the operators route it by hand
    NOT_EMERGENCY = "not_emergency"  # a prank, ghost call or information: nothing to dispatch
    DEADLETTERED = "deadlettered"  # its event could not be handled; decided again when re-driven
    LINKED = "linked"  # another caller of an incident already dispatched: its agencies told
    AWAITING_INCIDENT = "awaiting_incident"  # another caller of an incident not decided yet
    AWAITING_VERIFICATION = "awaiting_verification"  # held for an operator's verdict
    NOT_DISPATCHED = "not_dispatched"  # held, then judged not genuine (or its incident closed first)
    CANCELLED = "cancelled"  # dispatched, then judged not genuine: its dispatches cancelled


# Another caller's report: its row keeps the report, routed on its own if unlinked.
ANOTHER_CALLER = (Outcome.LINKED, Outcome.AWAITING_INCIDENT)
# Decisions whose row keeps the report, to route it later (unlinked, verified genuine, re-driven).
KEEPS_REPORT = (Outcome.AWAITING_VERIFICATION, *ANOTHER_CALLER)
# Decisions that are not final: a later event decides the report again.
REDECIDABLE = (Outcome.DEADLETTERED, Outcome.LINKED, Outcome.AWAITING_INCIDENT, Outcome.AWAITING_VERIFICATION)


def sql_list(outcomes) -> str:
    """`outcomes` as an SQL list of literals, for a statement's IN (…)."""
    return ", ".join(f"'{o.value}'" for o in outcomes)
