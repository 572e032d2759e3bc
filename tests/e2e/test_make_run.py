"""`make run` as a newcomer meets it: `python -m devstack run` starts everything, the
printed curl files a fire report that reaches the fire brigade, PLN and the police,
Ctrl-C leaves no process behind, and a second run finds the first run's data."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from devstack.processes import REPO
from tests.support import read_topics

pytestmark = pytest.mark.e2e


def free_offset() -> int:
    """A port offset under which 8001-8005 and 9092 are all free."""
    import socket

    for offset in range(21000, 40000, 97):
        try:
            for port in (8001 + offset, 8002 + offset, 8003 + offset, 8004 + offset, 8005 + offset, 9092 + offset):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return offset
        except OSError:
            continue
    raise RuntimeError("no free ports")


class Launcher:
    def __init__(self, data_dir: Path, offset: int):
        env = {
            k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "E112_API_KEY")
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devstack", "run", "--data-dir", str(data_dir), "--port-offset", str(offset)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []

    def read_until(self, marker: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line and self.process.poll() is not None:
                break
            self.lines.append(line)
            if marker in line:
                return "".join(self.lines)
        raise AssertionError(f"never printed {marker!r}:\n{''.join(self.lines)}")

    def processes(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(60)
        self.lines.append(self.process.stdout.read())
        return code


def printed_curl(output: str) -> str:
    start = output.index("curl -i -X POST")
    lines = []
    for line in output[start:].splitlines():
        lines.append(line.strip())
        if not line.rstrip().endswith("\\"):
            break
    return " ".join(part.rstrip("\\").strip() for part in lines)


async def test_make_run_files_the_printed_report_and_stops_cleanly(tmp_path):
    offset = free_offset()
    data_dir = tmp_path / "data"
    first = Launcher(data_dir, offset)
    try:
        output = first.read_until("Ctrl-C stops everything.")
        children = first.processes()
        assert len(children) >= 5  # four services and the broker
        api_key = re.search(r"API key \(E112_API_KEY\)[^\n]*\n\s+(\S+)", output).group(1)
        curl = printed_curl(output)
        assert api_key in curl and f"127.0.0.1:{8001 + offset}" in curl

        posted = time.monotonic()
        result = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30)
        assert " 202 " in result.stdout.splitlines()[0], result.stdout + result.stderr
        report_id = re.search(r'"id":"([0-9a-f-]{36})"', result.stdout).group(1)

        fire = ["e112.dispatch.damkar", "e112.dispatch.pln", "e112.dispatch.polres"]
        messages = await read_topics(
            f"127.0.0.1:{9092 + offset}",
            fire,
            timeout=20,
            until=lambda ms: {m.topic for m in ms if m.key == report_id} == set(fire),
        )
        print(f"\nprinted curl -> all three fire topics: {(max(m.seen_at for m in messages) - posted) * 1000:.0f} ms")
        postmaster_pid = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    finally:
        code = first.interrupt()
    assert code == 0, "".join(first.lines)
    time.sleep(0.5)
    left = [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"still running after Ctrl-C: {[p.cmdline() for p in left]}"
    assert not psutil.pid_exists(postmaster_pid) or psutil.Process(postmaster_pid).status() == psutil.STATUS_ZOMBIE
    assert "Stopped: no process left running." in "".join(first.lines)

    # A second `make run` keeps the reports of the first.
    second = Launcher(data_dir, offset)
    try:
        output = second.read_until("Ctrl-C stops everything.")
        api_key = re.search(r"API key \(E112_API_KEY\)[^\n]*\n\s+(\S+)", output).group(1)
        response = httpx.get(
            f"http://127.0.0.1:{8001 + offset}/v1/reports/{report_id}", headers={"Authorization": f"Bearer {api_key}"}
        )
        assert response.status_code == 200 and response.json()["category"] == "kebakaran"
    finally:
        assert second.interrupt() == 0
