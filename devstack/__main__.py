"""`python -m devstack run`: the whole system on this machine (what `make run` does).
`python -m devstack tail TOPIC...`: print events as an agency system would read them."""

import argparse
import asyncio
import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path

from devstack.console import DEMO_OPERATOR, new_demo_pin, seed_operator
from devstack.processes import DEFAULT_PORTS, REPO, Stack

FIRE_REPORT = {
    "category": "kebakaran",
    "subtype": "rumah",
    "description": "Rumah terbakar dekat pasar, asap tebal",
    "location": {"kecamatan": "Wlingi", "desa": "Beru", "address": "Jl. Raya Beru 12", "lat": -8.078, "lon": 112.318},
    "caller": {"name": "Budi", "phone": "081234567890"},
    "channel": "call",
}


def run(args: argparse.Namespace) -> int:
    api_key = os.environ.get("E112_API_KEY") or secrets.token_urlsafe(24)
    stack = Stack(
        data_dir=Path(args.data_dir).resolve(),
        api_key=api_key,
        ports={name: port + args.port_offset for name, port in DEFAULT_PORTS.items()},
        broker_port=9092 + args.port_offset,
        database_url=os.environ.get("DATABASE_URL") or None,
        bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
    )
    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        print("Starting PostgreSQL and the broker ...", flush=True)
        stack.start_infrastructure()
        print("Starting intake, router, notifier, shifts, console ...", flush=True)
        stack.start_services()
        demo_pin = new_demo_pin()
        seed_operator(stack.services["shifts"].url, stack.services["console"].url, api_key, DEMO_OPERATOR, demo_pin)
        print_welcome(stack, api_key, generated=not os.environ.get("E112_API_KEY"), demo_pin=demo_pin)
        while True:
            for service in stack.services.values():
                if service.process and service.process.poll() is not None:
                    print(
                        f"{service.name} stopped (exit {service.process.returncode}); see {service.log_file}",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nStopping ...", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        print("Stopped: no process left running.", flush=True)


def print_welcome(stack: Stack, api_key: str, generated: bool, demo_pin: str) -> None:
    body = json.dumps(FIRE_REPORT)
    intake = stack.services["intake"].url
    lines = [
        "",
        "Layanan 112 Kabupaten Blitar is running.",
        "",
        *(
            f"  {name:<9} {svc.url}   (docs {svc.url}/docs, metrics {svc.url}/metrics)"
            for name, svc in stack.services.items()
        ),
        f"  postgres  {stack.database_url}",
        f"  kafka     {stack.bootstrap}",
        f"  logs      {stack.log_dir}",
        "",
        f"API key (E112_API_KEY){' - generated for this run' if generated else ''}:",
        f"  {api_key}",
        "",
        "File a fire report:",
        f"  curl -i -X POST {intake}/v1/reports \\",
        f"    -H 'Authorization: Bearer {api_key}' -H 'Content-Type: application/json' \\",
        f"    -d '{body}'",
        "",
        "The call takers' console (open it in a browser):",
        f"  {stack.services['console'].url}",
        f"  sign in as {DEMO_OPERATOR!r} with PIN {demo_pin} (set for this run; a supervisor sets PINs with",
        f"  curl -X PUT {stack.services['console'].url}/api/admin/operators/<id>/pin -H 'Authorization: Bearer <key>'"
        + """ -H 'Content-Type: application/json' -d '{"pin": "<6-12 digits>", "set_by": "<you>"}')""",
        "",
        "Watch the fire brigade's topic (another terminal):",
        f"  {os.path.relpath(sys.executable, REPO)} -m devstack tail e112.dispatch.damkar"
        + (f" --bootstrap {stack.bootstrap}" if stack.bootstrap != "127.0.0.1:9092" else ""),
        "",
        "Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)


async def tail(topics: list[str], bootstrap: str) -> None:
    from services.common.kafka import new_reader

    # Made like the services' readers: a topic not created yet is waited for, not created
    # with the broker's default partitions.
    consumer = new_reader(bootstrap, "e112-tail", auto_offset_reset="earliest", fetch_max_wait_ms=100)
    consumer.subscribe(topics)
    await consumer.start()
    try:
        async for message in consumer:
            headers = {name: value.decode(errors="replace") for name, value in message.headers}
            print(
                json.dumps(
                    {
                        "topic": message.topic,
                        "key": (message.key or b"").decode(),
                        "headers": headers,
                        "data": json.loads(message.value or b"null"),
                    },
                    ensure_ascii=False,
                ),
                flush=True,
            )
    finally:
        await consumer.stop()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="start everything; Ctrl-C stops it")
    run_parser.add_argument("--data-dir", default=str(REPO / ".data"))
    run_parser.add_argument(
        "--port-offset",
        type=int,
        default=0,
        help="add this to every port (8001-8005, 9092), to run a second stack beside the first",
    )
    tail_parser = sub.add_parser("tail", help="print the events of topics")
    tail_parser.add_argument("topics", nargs="+")
    tail_parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    args = parser.parse_args()
    if args.command == "run":
        return run(args)
    try:
        asyncio.run(tail(args.topics, args.bootstrap))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
