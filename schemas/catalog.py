"""The contract's fixed vocabularies (../shared/CONTRACT.md).

These are codes other systems are built against, so they live here as data types,
not scattered string literals. The category-to-agency *table* is not here: it is
routing data that operators change at run time (see services/router).
"""

from typing import Literal, get_args

Category = Literal[
    "kebakaran",  # fire
    "bencana_alam",  # natural disaster
    "kerusuhan",  # riot / civil unrest
    "kecelakaan",  # accident
    "penyakit",  # illness / medical emergency
    "binatang_buas",  # dangerous animal (wasp nest, snake, wild dog)
]
CATEGORIES: tuple[str, ...] = get_args(Category)

Agency = Literal["damkar", "bpbd", "polres", "dinkes", "pmi", "pln", "telkom", "satpolpp"]
AGENCIES: tuple[str, ...] = get_args(Agency)

AGENCY_NAMES: dict[str, str] = {
    "damkar": "Pemadam Kebakaran dan Penyelamatan (fire and rescue)",
    "bpbd": "Badan Penanggulangan Bencana Daerah (disaster management)",
    "polres": "Kepolisian Resor Blitar (police)",
    "dinkes": "Dinas Kesehatan / PSC 119 (health office, ambulance)",
    "pmi": "Palang Merah Indonesia (Red Cross)",
    "pln": "PLN (electricity)",
    "telkom": "Telkom (telecoms)",
    "satpolpp": "Satpol PP (public order)",
}

Role = Literal["primary", "supporting"]

Channel = Literal["call", "sms", "app", "web", "whatsapp"]
CHANNELS: tuple[str, ...] = get_args(Channel)

ContactKind = Literal["emergency", "prank", "ghost", "information"]
CONTACT_KINDS: tuple[str, ...] = get_args(ContactKind)

# Channels on which anyone can file a report unseen: their reports are verified by an
# operator (services/intake/verification.py); a call is taken by the operator already.
PUBLIC_CHANNELS: tuple[str, ...] = ("sms", "app", "web", "whatsapp")

# What a report's verification holds for its dispatch, decided at intake from the policy:
# not_required (dispatch at once), before_dispatch (wait for the verdict),
# after_dispatch (dispatch at once flagged unverified; the operator verifies meanwhile).
Verification = Literal["not_required", "before_dispatch", "after_dispatch"]
VERIFICATIONS: tuple[str, ...] = get_args(Verification)

# An operator's verdict on a public-channel report; it decides the report's kind:
# genuine -> emergency, prank -> prank, information -> information, duplicate -> linked.
Verdict = Literal["genuine", "prank", "duplicate", "information"]
VERDICTS: tuple[str, ...] = get_args(Verdict)

# How an incident ended, given by the operator who closes it, or `resolved` when every
# dispatched agency reported `done` (services/intake/lifecycle_api.py).
CloseOutcome = Literal["resolved", "false_alarm", "handed_over", "no_action_needed"]
CLOSE_OUTCOMES: tuple[str, ...] = get_args(CloseOutcome)

# Why a report needs an operator (services/shifts assigns these as tasks).
TaskReason = Literal["verify", "unrouted", "escalated", "stalled", "phone_agency"]
TASK_REASONS: tuple[str, ...] = get_args(TaskReason)
# The order tasks go out and are shown, most urgent first: an agency not reached (phone
# it), reports held for a verdict before dispatch, reports nobody could route, stalled
# ones, unanswered escalations (the agency has those dispatches already).
TASK_URGENCY: dict[str, int] = {"phone_agency": 0, "verify": 1, "unrouted": 2, "stalled": 3, "escalated": 4}

# The 22 kecamatan of Kabupaten Blitar, canonical spelling.
KECAMATAN: tuple[str, ...] = (
    "Bakung",
    "Binangun",
    "Doko",
    "Gandusari",
    "Garum",
    "Kademangan",
    "Kanigoro",
    "Kesamben",
    "Nglegok",
    "Panggungrejo",
    "Ponggok",
    "Sanankulon",
    "Selopuro",
    "Selorejo",
    "Srengat",
    "Sutojayan",
    "Talun",
    "Udanawu",
    "Wates",
    "Wlingi",
    "Wonodadi",
    "Wonotirto",
)
_KECAMATAN_BY_FOLDED = {name.casefold(): name for name in KECAMATAN}


def canonical_kecamatan(name: str) -> str | None:
    """The canonical spelling of a kecamatan named in any case, or None if unknown."""
    return _KECAMATAN_BY_FOLDED.get(name.strip().casefold())


# A generous box around the regency (its extent is about 7.95–8.40 S, 111.95–112.55 E),
# so a coordinate outside it is almost surely a typo or a swapped lat/lon.
REGENCY_BOUNDS = {"lat_min": -8.60, "lat_max": -7.80, "lon_min": 111.80, "lon_max": 112.75}
