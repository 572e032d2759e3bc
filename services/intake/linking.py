"""Which open incident a new emergency belongs to, as pure functions.

In a disaster many people call about the same thing. A new emergency of the same
category, received within the window of an open report, in the same desa (same
kecamatan) or — when both have coordinates — within the distance, is another caller
for that incident: it is linked to the incident's first report instead of being
dispatched again."""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class Place:
    kecamatan: str | None
    desa: str | None
    lat: float | None
    lon: float | None


@dataclass(frozen=True)
class Candidate:
    report_id: UUID
    received_at: datetime
    place: Place


@dataclass(frozen=True)
class Link:
    incident_report_id: UUID
    reason: str  # same_desa | within_distance
    distance_m: float | None


def distance_m(a: Place, b: Place) -> float | None:
    """Great-circle (haversine) distance; None unless both places have coordinates."""
    if None in (a.lat, a.lon, b.lat, b.lon):
        return None
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat, dlon = lat2 - lat1, math.radians(b.lon - a.lon)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def desa_key(desa: str | None) -> str | None:
    """What the same-desa rule compares: the name without case or spacing differences
    ("Beru", " beru ", "BERU" are one desa); None for no name. Stored with each report,
    so that the search for an incident compares it in the database."""
    key = " ".join(desa.split()).casefold() if desa else ""
    return key or None


def _same_desa(a: Place, b: Place) -> bool:
    return bool(
        a.kecamatan
        and b.kecamatan
        and a.kecamatan.casefold() == b.kecamatan.casefold()
        and desa_key(a.desa) is not None
        and desa_key(a.desa) == desa_key(b.desa)
    )


def find_incident(
    place: Place, received_at: datetime, candidates: list[Candidate], *, window: timedelta, max_distance_m: float
) -> Link | None:
    """The earliest open candidate the new report belongs to, or None.

    Distance, when both sides have coordinates, decides on its own: two callers in the
    same desa a few kilometres apart are reporting two fires. Without coordinates, the
    same desa links."""
    for candidate in sorted(candidates, key=lambda c: c.received_at):
        if candidate.received_at < received_at - window:
            continue
        metres = distance_m(place, candidate.place)
        if metres is not None:
            if metres <= max_distance_m:
                return Link(candidate.report_id, "within_distance", round(metres, 1))
            continue
        if _same_desa(place, candidate.place):
            return Link(candidate.report_id, "same_desa", None)
    return None


@dataclass(frozen=True)
class Suggestion:
    candidate: Candidate
    distance_m: float | None
    same_desa: bool
    same_kecamatan: bool
    minutes_apart: float
    link: Link | None  # set when the system's own rule (find_incident) would link them


def suggest(
    place: Place,
    at: datetime,
    candidates: list[Candidate],
    *,
    window: timedelta,
    max_distance_m: float,
    limit: int = 5,
) -> list[Suggestion]:
    """Open incidents (of the same category, the caller's query) that a new report could
    be another caller of, most likely first: the one the rule links, then the nearest
    (by distance where both have coordinates, else same desa, then same kecamatan), the
    closest in time breaking ties. Far ones are left out: a candidate in another
    kecamatan and, with coordinates, more than ten times the link distance away is not
    the same incident."""
    rule = find_incident(place, at, candidates, window=window, max_distance_m=max_distance_m)
    found = []
    for candidate in candidates:
        metres = distance_m(place, candidate.place)
        same_kecamatan = bool(
            place.kecamatan
            and candidate.place.kecamatan
            and place.kecamatan.casefold() == candidate.place.kecamatan.casefold()
        )
        near = metres is not None and metres <= 10 * max_distance_m
        if not (same_kecamatan or near):
            continue
        found.append(
            Suggestion(
                candidate,
                None if metres is None else round(metres, 1),
                _same_desa(place, candidate.place),
                same_kecamatan,
                round(abs((at - candidate.received_at).total_seconds()) / 60, 1),
                rule if rule and rule.incident_report_id == candidate.report_id else None,
            )
        )

    def rank(s: Suggestion) -> tuple:
        nearness = s.distance_m if s.distance_m is not None else (0.0 if s.same_desa else 10 * max_distance_m)
        return (s.link is None, nearness, not s.same_desa, s.minutes_apart)

    return sorted(found, key=rank)[:limit]
