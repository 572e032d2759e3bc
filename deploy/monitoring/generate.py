"""Writes prometheusrule.yaml (the PrometheusRule the cluster loads) from rules.yaml (the
plain Prometheus rule file people edit, promtool checks and the tests load into a real
Prometheus). Run after changing rules.yaml:

    .venv/bin/python deploy/monitoring/generate.py

tests/unit/test_deploy_monitoring.py fails when prometheusrule.yaml is stale.
"""

import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
RULES = HERE / "rules.yaml"
TARGET = HERE / "prometheusrule.yaml"
HEADER = "# Generated from rules.yaml by generate.py: edit rules.yaml, then run generate.py.\n"


def render(rules_text: str) -> str:
    rules = yaml.safe_load(rules_text)
    resource = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "e112-alerts"},
        "spec": {"groups": rules["groups"]},
    }
    return HEADER + yaml.safe_dump(resource, sort_keys=False, allow_unicode=True, width=120)


def main() -> int:
    TARGET.write_text(render(RULES.read_text()))
    print(f"wrote {TARGET.relative_to(Path.cwd()) if TARGET.is_relative_to(Path.cwd()) else TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
