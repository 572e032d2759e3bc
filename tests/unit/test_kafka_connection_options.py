"""The Kafka clients' TLS and SASL options (services/common/kafka.py connection_options)."""

import ssl

import pytest

from services.common.kafka import connection_options


def test_development_broker_gets_plaintext_and_nothing_else():
    assert connection_options({}) == {"security_protocol": "PLAINTEXT"}


def test_production_cluster_gets_tls_and_scram_from_the_environment(tmp_path):
    options = connection_options(
        {"KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "KAFKA_SASL_USERNAME": "e112-router", "KAFKA_SASL_PASSWORD": "pw"}
    )
    assert options["security_protocol"] == "SASL_SSL"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "e112-router",
        "pw",
    )


def test_sasl_without_credentials_is_refused_by_name():
    with pytest.raises(ValueError, match="KAFKA_SASL_PASSWORD"):
        connection_options({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u"})


def test_unknown_protocol_is_refused():
    with pytest.raises(ValueError, match="unknown protocol"):
        connection_options({"KAFKA_SECURITY_PROTOCOL": "TLS"})
