"""`python -m bench [--quick] [--profile]`: run the surge benchmark, print the figures
and write them to bench/results/latest.{json,md}."""

import argparse
import json
import shlex
import sys
from pathlib import Path

from bench.figures import markdown
from bench.run import Sizes, bench

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (the smoke test)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the services and pg_stat_statements during each phase",
    )
    parser.add_argument("--surge", type=int, help="reports in the surge phase")
    parser.add_argument("--concurrency", type=int, help="concurrent clients in the surge phase")
    parser.add_argument("--rate", type=float, help="reports per second in the steady phase")
    parser.add_argument("--seconds", type=float, help="length of the steady phase")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (raw records, service logs)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory (default bench/results)")
    args = parser.parse_args(argv)
    sizes = Sizes.of(args.quick)
    for name, value in (
        ("surge_reports", args.surge),
        ("surge_concurrency", args.concurrency),
        ("steady_rate", args.rate),
        ("steady_seconds", args.seconds),
    ):
        if value is not None:
            setattr(sizes, name, value)
    result = bench(quick=args.quick, profile=args.profile, out_dir=args.out, sizes=sizes, keep=args.keep)
    command = "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    result["command"] = command.strip()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(result, indent=2) + "\n")
    report = markdown(result, result["command"])
    (args.out / "latest.md").write_text(report)
    print(report)
    print(f"written: {args.out / 'latest.json'}, {args.out / 'latest.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
