"""The load generator, a process of its own (`python -m bench.load CONFIG OUT`): files
reports on intake (or the baseline) over keep-alive connections and records, for each,
when it was posted, the answer and the report id.

CONFIG (JSON): url, keys {channel: api key}, phase {name, count, concurrency} for a
surge (as fast as the service answers) or {name, rate, duration} for a steady rate,
seed, related_share."""

import asyncio
import json
import sys
import time
import uuid
from urllib.parse import urlsplit

from bench.http import Connection, dumps
from bench.workload import Workload


async def run(config: dict) -> dict:
    url = urlsplit(config["url"])
    phase = config["phase"]
    workload = Workload(seed=config.get("seed", 112), related_share=config.get("related_share", 0.25))
    records: list[list] = []
    errors: dict[str, int] = {}
    concurrency = phase.get("concurrency", 64)
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(concurrency):
        pool.put_nowait(Connection(url.hostname, url.port))

    async def post_one() -> None:
        body, related = workload.next(time.monotonic())
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {config['keys'][body['channel']]}",
            "Idempotency-Key": str(uuid.uuid4()),
        }
        payload = dumps(body)
        started = time.monotonic()  # before waiting for a free connection: no coordinated omission
        conn = await pool.get()
        try:
            status, answer = await conn.request("POST", "/v1/reports", headers, payload)
        except (OSError, asyncio.IncompleteReadError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            return
        finally:
            pool.put_nowait(conn)
        answered = time.monotonic()
        if status == 202:
            data = json.loads(answer)
            records.append([str(data["id"]), started, answered, data.get("status"), related, body["category"]])
        else:
            errors[str(status)] = errors.get(str(status), 0) + 1

    began = time.monotonic()
    if "count" in phase:  # surge: `concurrency` clients, each posting as soon as answered
        remaining = phase["count"]

        async def client() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await post_one()

        await asyncio.gather(*(client() for _ in range(concurrency)))
    else:  # steady: one report every 1/rate seconds, whatever the answers take
        interval = 1.0 / phase["rate"]
        total = int(phase["rate"] * phase["duration"])
        tasks = []
        for i in range(total):
            delay = began + i * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post_one()))
        await asyncio.gather(*tasks)
    ended = time.monotonic()
    return {"phase": phase["name"], "began": began, "ended": ended, "posts": records, "errors": errors}


def main() -> None:
    config = json.loads(open(sys.argv[1]).read())
    result = asyncio.run(run(config))
    with open(sys.argv[2], "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
