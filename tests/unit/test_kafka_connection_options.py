"""The Kafka clients' TLS and SASL options (services/common/kafka.py KafkaSecurity), from
a service's settings (checked when the settings are read) and from a command's environment."""

import ssl

import pytest
from pydantic import ValidationError

from services.common.kafka import KafkaSecurity
from services.common.settings import ServiceSettings


def test_development_broker_gets_plaintext_and_nothing_else():
    assert ServiceSettings().kafka_security.client_options() == {"security_protocol": "PLAINTEXT"}
    assert KafkaSecurity.from_env({}).client_options() == {"security_protocol": "PLAINTEXT"}


def test_production_cluster_gets_tls_and_scram_from_the_settings():
    settings = ServiceSettings(
        kafka_security_protocol="sasl_ssl", kafka_sasl_username="e112-router", kafka_sasl_password="pw"
    )
    options = settings.kafka_security.client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "e112-router",
        "pw",
    )
    assert "pw" not in repr(settings.kafka_security)


def test_the_redrive_command_reads_the_same_variables():
    env = {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "e112-ops", "KAFKA_SASL_PASSWORD": "pw"}
    assert KafkaSecurity.from_env(env).client_options()["sasl_plain_username"] == "e112-ops"


def test_sasl_without_credentials_is_refused_by_name_when_the_settings_are_read():
    with pytest.raises(ValidationError, match="KAFKA_SASL_PASSWORD"):
        ServiceSettings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="u")
    with pytest.raises(ValueError, match="KAFKA_SASL_PASSWORD"):
        KafkaSecurity.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u"})


def test_unknown_protocol_is_refused():
    with pytest.raises(ValidationError, match="kafka_security_protocol"):
        ServiceSettings(kafka_security_protocol="TLS")
    with pytest.raises(ValueError, match="unknown protocol"):
        KafkaSecurity.from_env({"KAFKA_SECURITY_PROTOCOL": "TLS"})


def test_production_refuses_a_cluster_reached_without_tls():
    with pytest.raises(ValidationError, match="KAFKA_SECURITY_PROTOCOL must be SSL or SASL_SSL"):
        ServiceSettings(
            e112_env="production",
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_username="u",
            kafka_sasl_password="p",
        )
