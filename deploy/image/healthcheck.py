"""The image's HEALTHCHECK: GET /healthz of the service this container runs.

One image runs every service (`python -m services.<name>`), each on its own port: the
port is $PORT when set (the Kubernetes manifests set it), else that service's default,
read from its settings class rather than repeated here. Kubernetes uses its own probes
(deploy/k8s); this serves `docker run` and Compose. Exit status 0 means healthy."""

import importlib
import os
import sys
import urllib.request
from pathlib import Path


def service_of(cmdline: list[str]) -> str:
    """`python -m services.intake` -> `intake`."""
    for arg in cmdline:
        if arg.startswith("services.") and arg.count(".") == 1:
            return arg.removeprefix("services.")
    raise LookupError(f"no services.<name> in {cmdline}")


def default_port(service: str) -> int:
    from services.common.settings import ServiceSettings

    module = importlib.import_module(f"services.{service}.settings")
    classes = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, ServiceSettings) and value is not ServiceSettings
    ]
    return int(classes[0].model_fields["port"].default)


def port(env: dict[str, str], cmdline: list[str]) -> int:
    return int(env["PORT"]) if env.get("PORT") else default_port(service_of(cmdline))


def main() -> int:
    cmdline = Path("/proc/1/cmdline").read_bytes().decode().split("\0")
    url = f"http://127.0.0.1:{port(dict(os.environ), cmdline)}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 0 if response.status == 200 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
