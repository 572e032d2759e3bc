"""The console's two dictionaries: the same keys, and a label for every code the
screens show (categories, subtypes, agencies, states, ...)."""

import json
import re
from pathlib import Path

import pytest

from schemas.catalog import AGENCIES, CATEGORIES, CHANNELS, CLOSE_OUTCOMES, CONTACT_KINDS, TASK_REASONS, VERDICTS
from services.console.board import STEPS
from services.console.board_api import BOARD_STATES
from services.console.catalog import SUBTYPES
from services.console.pipeline import WATCHED_SERVICES, Readings, assess
from services.intake.api import REPORT_STATUSES
from services.intake.app import PIPELINE_GROUPS

STATIC = Path(__file__).resolve().parents[2] / "services" / "console" / "static"
LANGS = {name: json.loads((STATIC / "i18n" / f"{name}.json").read_text()) for name in ("id", "en")}
# Everything wrong at once: every code the pipeline banner can show.
TROUBLE = Readings(
    ready={"intake": None, "notifier": {"database": False, "broker": False}},
    backlog={"g": 1.0},
    stalled=1,
    breaker_open=["pln"],
)
BANNER_CODES = sorted({item["code"] for item in assess(TROUBLE, backlog_bound=0)})


def test_both_languages_have_the_same_keys_and_no_empty_string():
    assert set(LANGS["id"]) == set(LANGS["en"])
    for strings in LANGS.values():
        assert all(isinstance(v, str) and v.strip() for v in strings.values())


@pytest.mark.parametrize(
    "prefix, codes",
    [
        ("category", CATEGORIES),
        ("agency", AGENCIES),
        ("kind", CONTACT_KINDS),
        ("channel", CHANNELS),
        ("reason", TASK_REASONS),
        ("verdict", VERDICTS),
        ("state", STEPS),
        ("status", REPORT_STATUSES),
        ("outcome", CLOSE_OUTCOMES),
        ("subtype", sorted({s for subtypes in SUBTYPES.values() for s in subtypes})),
        ("opstatus", ("available", "handling_report", "break", "offline")),
        ("shiftcode", ("pagi", "siang", "malam")),
        ("status", BOARD_STATES),
        ("pipeline", BANNER_CODES),
        ("pipeline.service", WATCHED_SERVICES),
        ("pipeline.check", ("database", "broker")),
        ("pipeline.group", [g.group_id for g in PIPELINE_GROUPS]),
    ],
)
def test_every_code_shown_has_a_label_in_both_languages(prefix, codes):
    for strings in LANGS.values():
        missing = [c for c in codes if f"{prefix}.{c}" not in strings]
        assert not missing


def test_the_page_and_its_scripts_use_only_keys_that_exist():
    used = set()
    for path in [STATIC / "index.html", *(STATIC / "js").glob("*.js")]:
        text = path.read_text()
        used |= set(re.findall(r'data-i18n(?:-title|-aria-label)?="([a-z_.]+)"', text))
        used |= set(re.findall(r'\bt\("([a-z_.]+)"', text))
    assert used and not used - set(LANGS["id"])


def test_the_same_placeholders_in_both_languages():
    for key, text in LANGS["id"].items():
        assert set(re.findall(r"\{(\w+)\}", text)) == set(re.findall(r"\{(\w+)\}", LANGS["en"][key])), key
