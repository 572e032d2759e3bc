"""The bench's conductor: starts PostgreSQL and the broker, runs the baseline and then
our stack under the same load, watches every process, and hands the raw records to
bench.figures."""

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import psutil

from bench import figures
from bench.figures import SERVICES
from devstack.broker import wait_for_port
from devstack.children import child_options
from devstack.postgres import create_database
from devstack.processes import REPO, Stack, free_port
from schemas import topics
from schemas.catalog import AGENCIES, CHANNELS

REQUESTED = "id.go.blitarkab.e112.dispatch.requested.v1"


@dataclass
class Sizes:
    surge_reports: int
    surge_concurrency: int
    steady_rate: float
    steady_seconds: float
    drain_stall: float  # seconds without progress after which what has not arrived counts as lost
    idle_seconds: float = 30.0  # the last phase: nothing sent, every process's CPU measured at rest

    @classmethod
    def of(cls, quick: bool) -> "Sizes":
        if quick:
            return cls(
                surge_reports=150,
                surge_concurrency=16,
                steady_rate=40,
                steady_seconds=3,
                drain_stall=60,
                idle_seconds=3,
            )
        return cls(surge_reports=3000, surge_concurrency=64, steady_rate=200, steady_seconds=30, drain_stall=60)

    def phases(self) -> list[dict]:
        return [
            {"name": "surge", "count": self.surge_reports, "concurrency": self.surge_concurrency},
            {"name": "steady", "rate": self.steady_rate, "duration": self.steady_seconds, "concurrency": 64},
        ]


class Sampler:
    """CPU seconds and peak resident memory of named process trees, sampled in a thread.
    A process tree's CPU is the sum over every process seen in it (PostgreSQL's backends
    come and go); its memory is the root's RSS plus its children's unshared RSS, so
    PostgreSQL's shared buffers count once."""

    def __init__(self, interval: float = 0.25):
        self.interval = interval
        self.roots: dict[str, psutil.Process] = {}
        self.cpu: dict[str, dict[int, float]] = {}
        self.peak_rss: dict[str, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def watch(self, name: str, pid: int) -> None:
        with self._lock:
            self.roots[name] = psutil.Process(pid)
            self.cpu.setdefault(name, {})
            self.peak_rss.setdefault(name, 0)

    def forget(self, name: str) -> None:
        with self._lock:
            self.sample()
            self.roots.pop(name, None)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                self.sample()

    def sample(self) -> None:
        for name, root in self.roots.items():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            rss = 0
            for proc in procs:
                try:
                    with proc.oneshot():
                        t = proc.cpu_times()
                        self.cpu[name][proc.pid] = t.user + t.system
                        memory = proc.memory_info()
                        # A child's shared pages (PostgreSQL's shared buffers) count once, in the root.
                        rss += memory.rss if proc is root else memory.rss - memory.shared
                except psutil.Error:
                    pass
            self.peak_rss[name] = max(self.peak_rss[name], rss)

    def cpu_seconds(self) -> dict[str, float]:
        with self._lock:
            self.sample()
            return {name: sum(per_pid.values()) for name, per_pid in self.cpu.items()}


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


@dataclass
class Observer:
    workdir: Path
    name: str
    bootstrap: str
    topics: list[str]
    webhook_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def status_file(self) -> Path:
        return self.workdir / f"{self.name}-observer-status.json"

    @property
    def out_file(self) -> Path:
        return self.workdir / f"{self.name}-observer.json"

    def start(self) -> None:
        config = self.workdir / f"{self.name}-observer-config.json"
        config.write_text(
            json.dumps(
                {
                    "bootstrap": self.bootstrap,
                    "topics": self.topics,
                    "out": str(self.out_file),
                    "status": str(self.status_file),
                    "webhook_port": self.webhook_port,
                }
            )
        )
        self.process = _python("bench.observer", str(config), log=self.workdir / f"{self.name}-observer.log")
        wait_for_port("127.0.0.1", self.webhook_port)
        deadline = time.monotonic() + 20
        while not self.status_file.exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the observer did not start")
            time.sleep(0.1)

    def status(self) -> dict:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {"messages": {}, "webhooks": {}}

    def finish(self) -> dict:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)
        return json.loads(self.out_file.read_text())


def _python(module: str, *args: str, log: Path, env: dict | None = None) -> subprocess.Popen:
    out = open(log, "ab")  # noqa: SIM115 - the child holds it
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        **child_options(),
    )


def run_load(workdir: Path, name: str, url: str, keys: dict[str, str], phase: dict, seed: int) -> dict:
    config = workdir / f"{name}-{phase['name']}-load-config.json"
    out = workdir / f"{name}-{phase['name']}-load.json"
    config.write_text(json.dumps({"url": url, "keys": keys, "phase": phase, "seed": seed}))
    process = _python("bench.load", str(config), str(out), log=workdir / f"{name}-load.log")
    if process.wait() != 0:
        raise RuntimeError(f"the load generator failed; see {workdir / f'{name}-load.log'}")
    return json.loads(out.read_text())


class Profiler:
    """py-spy record on the services while a phase runs (speedscope files), and
    PostgreSQL's statements over the same time (pg_stat_statements: calls and execution
    time per statement, in `profile-<phase>-postgres.md`)."""

    def __init__(self, out_dir: Path, phase: str, pids: dict[str, int], database_url: str):
        self.out_dir = out_dir
        self.phase = phase
        self.pids = pids
        self.database_url = database_url
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self) -> None:
        asyncio.run(_reset_statements(self.database_url))
        py_spy = str(Path(sys.executable).parent / "py-spy")
        for name, pid in self.pids.items():
            out = self.out_dir / f"profile-{self.phase}-{name}.speedscope.json"
            self.processes[name] = subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--rate",
                    "50",
                    "--nonblocking",
                    "--format",
                    "speedscope",
                    "--output",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def stop(self) -> list[str]:
        for process in self.processes.values():
            process.send_signal(signal.SIGINT)
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        statements = self.out_dir / f"profile-{self.phase}-postgres.md"
        statements.write_text(asyncio.run(_statements_report(self.database_url)))
        profiles = [self.out_dir / f"profile-{self.phase}-{n}.speedscope.json" for n in self.processes]
        return [str(p) for p in [*profiles, statements]]


async def _reset_statements(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("SELECT pg_stat_statements_reset()")
    finally:
        await conn.close()


async def _statements_report(database_url: str, top: int = 40) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            """
            SELECT r.rolname, s.calls, s.rows, s.total_exec_time, s.mean_exec_time, s.query
            FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
            ORDER BY s.total_exec_time DESC LIMIT $1
            """,
            top,
        )
        total_ms, calls = await conn.fetchrow("SELECT sum(total_exec_time), sum(calls) FROM pg_stat_statements")
    finally:
        await conn.close()
    lines = [
        "# PostgreSQL during the surge (pg_stat_statements)",
        "",
        f"{int(calls or 0)} statements, {float(total_ms or 0) / 1000:.1f} s executing in all. Top {top} by total time:",
        "",
        "| total ms | calls | mean ms | rows | statement |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        query = " ".join(row["query"].split())[:220].replace("|", "\\|")
        figures_ = f"{row['total_exec_time']:.0f} | {row['calls']} | {row['mean_exec_time']:.3f} | {row['rows']}"
        lines.append(f"| {figures_} | `{query}` |")
    return "\n".join(lines) + "\n"


def wait_drained(expected, observer: Observer, stall: float, cap: float = 900.0) -> float:
    """Wait until `expected()` (messages, webhooks) have arrived; give up after `stall`
    seconds without progress (what has not arrived then counts as lost) or `cap` in
    all. Returns the seconds waited."""
    started = progressed = time.monotonic()
    last = None
    while time.monotonic() - progressed < stall and time.monotonic() - started < cap:
        want_messages, want_hooks = expected()
        status = observer.status()
        seen = (status["messages"].get(REQUESTED, 0), status["webhooks"].get(REQUESTED, 0))
        if seen[0] >= want_messages and seen[1] >= want_hooks:
            break
        if seen != last:
            last, progressed = seen, time.monotonic()
        time.sleep(0.5)
    time.sleep(1.0)  # a second more, to see any duplicate
    return time.monotonic() - started


async def _decisions(database_url: str, report_ids: list[str]) -> dict[str, dict]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT report_id::text AS id, outcome, dispatches::text AS dispatches "
            "FROM router.routing_decisions WHERE report_id = ANY($1::uuid[])",
            report_ids,
        )
    finally:
        await conn.close()
    return {r["id"]: {"outcome": r["outcome"], "dispatches": json.loads(r["dispatches"])} for r in rows}


def run_baseline(workdir: Path, stack: Stack, sizes: Sizes, sampler: Sampler, seed: int) -> dict:
    database_url = asyncio.run(create_database(stack.database_url, "bench_baseline"))
    port = free_port()
    process = _python(
        "bench.baseline",
        log=stack.log_dir / "baseline.log",
        env={"DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "PORT": str(port)},
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=60)
        observer = Observer(workdir, "baseline", stack.bootstrap, ["bench.baseline"])
        observer.start()
        sampler.watch("baseline", process.pid)
        phases = []
        accepted = 0
        for phase in sizes.phases():
            before = sampler.cpu_seconds()
            load = run_load(
                workdir,
                "baseline",
                f"http://127.0.0.1:{port}",
                dict.fromkeys(CHANNELS, "none"),
                phase,
                seed + len(phases),
            )
            accepted += len(load["posts"])
            progressed, last = time.monotonic(), None
            while (seen := sum(observer.status()["messages"].values())) < accepted:
                if seen != last:
                    last, progressed = seen, time.monotonic()
                if time.monotonic() - progressed > sizes.drain_stall:
                    break
                time.sleep(0.3)
            time.sleep(1.0)
            after = sampler.cpu_seconds()
            load["cpu_seconds"] = {n: round(after[n] - before.get(n, 0.0), 2) for n in after}
            phases.append(load)
        observed = observer.finish()
        sampler.forget("baseline")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
    return {"phases": phases, "observed": observed}


def run_ours(workdir: Path, stack: Stack, sizes: Sizes, sampler: Sampler, seed: int, profile_dir: Path | None) -> dict:
    stack.start_services(list(SERVICES))
    for name in SERVICES:
        sampler.watch(name, stack.services[name].process.pid)
    intake, notifier = stack.services["intake"].url, stack.services["notifier"].url
    admin = {"Authorization": f"Bearer {stack.api_key}"}
    keys = {}
    for channel in CHANNELS:  # one app per channel, each with its own key and rate limit
        response = httpx.post(
            f"{intake}/v1/admin/api-keys", headers=admin, json={"name": f"bench-{channel}", "rate_per_minute": 100_000}
        )
        response.raise_for_status()
        keys[channel] = response.json()["key"]
    observer = Observer(workdir, "ours", stack.bootstrap, [topics.dispatch_topic(a) for a in AGENCIES])
    observer.start()
    for agency in AGENCIES:
        response = httpx.put(
            f"{notifier}/v1/agencies/{agency}/webhook",
            headers=admin,
            json={"url": f"http://127.0.0.1:{observer.webhook_port}/hooks/{agency}", "updated_by": "bench"},
        )
        response.raise_for_status()

    posted: list[str] = []
    decisions: dict[str, dict] = {}

    def expected() -> tuple[int, int]:
        missing = [r for r in posted if r not in decisions]
        if missing:
            decisions.update(asyncio.run(_decisions(stack.database_url, missing)))
        n = sum(len(d["dispatches"]) for d in decisions.values() if d["outcome"] == "routed")
        if len(decisions) < len(posted):
            n += 1  # not all decided yet: keep waiting
        return n, n

    phases = []
    profile_files: list[str] = []
    for phase in sizes.phases():
        profiler = None
        if profile_dir is not None:  # every phase: the surge's costs are not the steady rate's
            pids = {n: stack.services[n].process.pid for n in SERVICES}
            profiler = Profiler(profile_dir, phase["name"], pids, stack.database_url)
            profiler.start()
            time.sleep(1.0)
        before = sampler.cpu_seconds()
        load = run_load(workdir, "ours", intake, keys, phase, seed + len(phases))  # each phase its own incidents
        posted += [p[0] for p in load["posts"]]
        load["drain_seconds"] = round(wait_drained(expected, observer, sizes.drain_stall), 1)
        if profiler is not None:
            profile_files += profiler.stop()
        after = sampler.cpu_seconds()
        load["cpu_seconds"] = {n: round(after[n] - before.get(n, 0.0), 2) for n in after}
        phases.append(load)
    idle = measure_idle(sampler, sizes.idle_seconds)
    observed = observer.finish()
    decisions.update(asyncio.run(_decisions(stack.database_url, [r for r in posted if r not in decisions])))
    return {"phases": phases, "observed": observed, "decisions": decisions, "profiles": profile_files, "idle": idle}


def measure_idle(sampler: Sampler, seconds: float) -> dict:
    """Every process's CPU, in percent of one core, over `seconds` with nothing sent
    (after the last phase has drained): what the system costs at rest."""
    before, started = sampler.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    after, elapsed = sampler.cpu_seconds(), time.monotonic() - started
    return {
        "seconds": round(elapsed, 1),
        "cpu_percent": {n: round(100 * (after[n] - before.get(n, 0.0)) / elapsed, 2) for n in after},
    }


def bench(
    *, quick: bool, profile: bool, out_dir: Path, seed: int = 112, sizes: Sizes | None = None, keep: bool = False
) -> dict:
    sizes = sizes or Sizes.of(quick)
    out_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="e112-bench-"))
    stack = Stack(
        data_dir=workdir / "stack",
        api_key="bench-" + secrets.token_urlsafe(32),
        ephemeral=True,
        broker_port=free_port(),
        ports={name: free_port() for name in SERVICES},
        extra_env={"WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32"},  # the bench's receiver is on loopback
        postgres_preload=("pg_stat_statements",) if profile else (),
    )
    sampler = Sampler()
    started = time.time()
    try:
        stack.start_infrastructure()
        sampler.watch("postgres", postmaster_pid(stack.data_dir / "postgres"))
        sampler.watch("broker", stack._broker.process.pid)
        sampler.start()
        print(f"bench: work directory {workdir}", flush=True)
        print("bench: baseline (bare FastAPI → PostgreSQL → aiokafka → reader)…", flush=True)
        baseline = run_baseline(workdir, stack, sizes, sampler, seed)
        baseline_rss = dict(sampler.peak_rss)
        # A fresh broker for our stack: Tansu's CPU grows with the data it holds.
        sampler.forget("broker")
        stack.stop_broker()
        stack.start_broker()
        with sampler._lock:
            sampler.peak_rss = dict.fromkeys(sampler.peak_rss, 0)
        sampler.watch("broker", stack._broker.process.pid)
        print("bench: our stack (intake → router → notifier, shifts, console)…", flush=True)
        ours = run_ours(workdir, stack, sizes, sampler, seed, out_dir if profile else None)
        ours_rss = dict(sampler.peak_rss)
    finally:
        sampler.stop() if sampler._thread.is_alive() else None
        stack.stop()
    result = figures.summarise(
        ours=ours,
        baseline=baseline,
        ours_rss=ours_rss,
        baseline_rss=baseline_rss,
        sizes=vars(sizes),
        quick=quick,
        started=started,
    )
    if keep:
        result["work_directory"] = str(workdir)  # the raw records, the logs
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return result
