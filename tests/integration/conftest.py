"""Fixtures of the integration tests: a local agency endpoint and a local SMTP server,
each closed after its test (tests/integration/notifier_support.py)."""

import pytest

from tests.integration.notifier_support import AgencyEndpoint, SmtpSink


@pytest.fixture
def endpoint():
    instance = AgencyEndpoint()
    yield instance
    instance.close()


@pytest.fixture
def smtp():
    instance = SmtpSink()
    yield instance
    instance.close()
