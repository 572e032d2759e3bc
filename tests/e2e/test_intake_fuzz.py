"""schemathesis over intake's own OpenAPI, against intake running for real: no input
it can generate gets a 5xx, and every status it gets is one the OpenAPI documents."""

import subprocess
import sys
from pathlib import Path

import pytest

from devstack.broker import TansuBroker
from devstack.postgres import ensure_database
from devstack.processes import ServiceProcess, free_port
from tests.conftest import API_KEY

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def intake_url(pg_admin_uri, tmp_path_factory):
    logs = tmp_path_factory.mktemp("fuzz")
    broker = TansuBroker(free_port(), log_file=logs / "broker.log")
    broker.start()
    env = {
        "DATABASE_URL": ensure_database(pg_admin_uri, "fuzz_intake"),
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "E112_API_KEY": API_KEY,
        "KAFKA_SESSION_TIMEOUT_MS": "2000",
    }
    intake = ServiceProcess("intake", free_port(), env, logs / "intake.log")
    intake.start()
    try:
        intake.wait_ready()
        yield intake.url
    finally:
        intake.stop()
        broker.stop()
        assert "Traceback" not in (logs / "intake.log").read_text()


def test_no_input_gets_a_5xx_or_an_undocumented_status(intake_url, tmp_path):
    # The schemathesis CLI: its pytest plugin does not yet work with pytest 9.
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{intake_url}/openapi.json",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance",
            "--header",
            f"Authorization: Bearer {API_KEY}",
            "--max-examples",
            "40",
            "--seed",
            "112",
            "--phases",
            "examples,coverage,fuzzing",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,  # its example database stays out of the repo
    )
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary
    assert "passed" in summary.lower()
