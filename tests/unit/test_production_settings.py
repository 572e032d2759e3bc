"""services/common/settings.py: development defaults are refused in production, and each
service's keys are its own there."""

import pytest
from pydantic import ValidationError

from services.common.settings import ServiceSettings
from services.console.settings import ConsoleSettings
from services.intake.settings import IntakeSettings
from services.notifier.settings import NotifierSettings
from services.router.settings import RouterSettings
from services.shifts.settings import ShiftsSettings

GOOD_KEY = "k" * 40
VARS = (
    "E112_ENV",
    "DATABASE_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "E112_API_KEY",
    "ADMIN_API_KEY",
    "CONSOLE_API_KEY",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in VARS:
        monkeypatch.delenv(name, raising=False)


def production_env(monkeypatch, **overrides):
    values = {
        "E112_ENV": "production",
        "DATABASE_URL": "postgresql://e112@db.internal:5432/e112",
        "KAFKA_BOOTSTRAP_SERVERS": "kafka-0.kafka:9092,kafka-1.kafka:9092",
        "ADMIN_API_KEY": GOOD_KEY,
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_USERNAME": "e112-test",
        "KAFKA_SASL_PASSWORD": "pw",
    } | overrides
    for name, value in values.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def test_development_accepts_the_defaults():
    settings = ServiceSettings()
    assert settings.e112_env == "development"
    assert settings.e112_api_key is None and settings.admin_secret() is None


def test_development_lets_e112_api_key_stand_in_for_every_unset_key():
    settings = ServiceSettings(e112_api_key="dev-key")
    assert settings.admin_secret() == settings.console_secret() == "dev-key"
    own = ServiceSettings(e112_api_key="dev-key", admin_api_key="admin", console_api_key="console")
    assert (own.admin_secret(), own.console_secret()) == ("admin", "console")


def test_production_with_everything_set_is_accepted(monkeypatch):
    production_env(monkeypatch)
    settings = ServiceSettings()
    assert settings.e112_env == "production"
    assert settings.database_url == "postgresql://e112@db.internal:5432/e112"
    assert settings.kafka_bootstrap_servers == "kafka-0.kafka:9092,kafka-1.kafka:9092"
    assert settings.admin_secret() == GOOD_KEY


def test_production_with_kwargs_is_accepted():
    settings = ServiceSettings(
        e112_env="production",
        database_url="postgresql://e112@db:5432/e112",
        kafka_bootstrap_servers="kafka:9092",
        admin_api_key=GOOD_KEY,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="e112-test",
        kafka_sasl_password="pw",
    )
    assert settings.e112_env == "production"


@pytest.mark.parametrize("missing", ["DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "ADMIN_API_KEY"])
def test_production_refuses_a_missing_setting(monkeypatch, missing):
    production_env(monkeypatch, **{missing: None})
    with pytest.raises(ValidationError) as exc:
        ServiceSettings()
    assert missing in str(exc.value)


def test_production_refuses_the_dev_database_url_given_explicitly(monkeypatch):
    production_env(monkeypatch, DATABASE_URL="postgresql://postgres@127.0.0.1:5432/postgres")
    with pytest.raises(ValidationError):
        ServiceSettings()


def test_production_refuses_the_dev_bootstrap_given_explicitly(monkeypatch):
    production_env(monkeypatch, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9092")
    with pytest.raises(ValidationError):
        ServiceSettings()


@pytest.mark.parametrize("key", ["", "short", "x" * 31])
def test_production_refuses_a_short_api_key(monkeypatch, key):
    production_env(monkeypatch, ADMIN_API_KEY=key)
    with pytest.raises(ValidationError) as exc:
        ServiceSettings()
    assert "ADMIN_API_KEY" in str(exc.value)


def test_production_accepts_a_32_character_key(monkeypatch):
    production_env(monkeypatch, ADMIN_API_KEY="x" * 32)
    assert ServiceSettings().admin_secret() == "x" * 32


def test_production_refuses_the_one_key_for_every_service(monkeypatch):
    # Even beside a service key of its own: a key every service takes is what the
    # per-service keys are there to end.
    production_env(monkeypatch, E112_API_KEY="e" * 40)
    with pytest.raises(ValidationError, match="E112_API_KEY is one key for every service"):
        ServiceSettings()
    production_env(monkeypatch, E112_API_KEY="e" * 40, ADMIN_API_KEY=None)
    with pytest.raises(ValidationError, match="ADMIN_API_KEY must be set"):
        ServiceSettings()


@pytest.mark.parametrize("settings_class", [ShiftsSettings, NotifierSettings, ConsoleSettings])
def test_production_refuses_the_services_the_console_talks_to_without_its_own_key(monkeypatch, settings_class):
    production_env(monkeypatch)
    with pytest.raises(ValidationError, match="CONSOLE_API_KEY must be set"):
        settings_class()
    production_env(monkeypatch, CONSOLE_API_KEY=GOOD_KEY)  # the admin key again
    with pytest.raises(ValidationError, match="CONSOLE_API_KEY must differ from ADMIN_API_KEY"):
        settings_class()


def test_production_asks_no_console_key_of_the_services_the_console_does_not_call(monkeypatch):
    production_env(monkeypatch)
    assert RouterSettings().admin_secret() == IntakeSettings().admin_secret() == GOOD_KEY


def test_production_error_does_not_echo_the_api_key(monkeypatch):
    production_env(monkeypatch, ADMIN_API_KEY="secret-but-too-short")
    with pytest.raises(ValidationError) as exc:
        ServiceSettings()
    assert "secret-but-too-short" not in str(exc.value)


def test_production_refuses_all_defaults_at_once():
    with pytest.raises(ValidationError) as exc:
        ServiceSettings(e112_env="production")
    text = str(exc.value)
    assert "DATABASE_URL" in text and "KAFKA_BOOTSTRAP_SERVERS" in text and "ADMIN_API_KEY" in text
    assert "KAFKA_SECURITY_PROTOCOL" in text


def test_unknown_environment_name_is_rejected(monkeypatch):
    monkeypatch.setenv("E112_ENV", "prod")
    with pytest.raises(ValidationError):
        ServiceSettings()


def test_api_key_is_hidden_in_repr(monkeypatch):
    production_env(monkeypatch)
    assert GOOD_KEY not in repr(ServiceSettings())
