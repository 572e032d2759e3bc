"""How long from a call to the operator's "phone the agency" task, on a running system.

Against `make run` (no agency channel configured, its default: every dispatch fails at
once), as the operator would: signs in to the console with the demo PIN, checks in, takes
a fire call, and times until the console's queue shows a phone_agency task for each
agency the report went to. Prints the figures; asserts nothing (machines are noisy).

    .venv/bin/python -m bench.phone_task --console http://127.0.0.1:8005 --pin <PIN> [--calls 5]
"""

import argparse
import asyncio
import statistics
import time

import httpx

from devstack.console import DEMO_OPERATOR

CALL = {
    "category": "kebakaran",
    "subtype": "rumah",
    "kecamatan": "Wlingi",
    "phone": "081234567890",
    "description": "Rumah terbakar dekat pasar",
}


async def sign_in(console: httpx.AsyncClient, pin: str) -> None:
    operators = (await console.get("/api/operators")).json()
    demo = next(o for o in operators if o["name"] == DEMO_OPERATOR)
    session = await console.post("/api/session", json={"handle": demo["handle"], "pin": pin})
    session.raise_for_status()
    console.headers["X-CSRF-Token"] = session.json()["csrf_token"]
    await console.post("/api/shift/check-in")  # 409 when checked in already: fine


async def one_call(console: httpx.AsyncClient, timeout: float) -> float:
    started = time.monotonic()
    report = (await console.post("/api/calls", json=CALL)).json()["id"]
    while time.monotonic() - started < timeout:
        items = (await console.get("/api/queue")).json()["items"]
        if any(i["reason"] == "phone_agency" and i["report_id"] == report for i in items):
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no phone task for {report} after {timeout} s")


async def main(url: str, pin: str, calls: int, timeout: float) -> None:
    async with httpx.AsyncClient(base_url=url, headers={"Origin": url}, timeout=10) as console:
        await sign_in(console, pin)
        seconds = [await one_call(console, timeout) for _ in range(calls)]
    print(
        f"call -> phone_agency task in the console's queue, {calls} calls: "
        f"median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s "
        f"({', '.join(f'{s:.2f}' for s in seconds)})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--console", default="http://127.0.0.1:8005")
    parser.add_argument("--pin", required=True)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    asyncio.run(main(args.console, args.pin, args.calls, args.timeout))
