"""Manage the apps' API keys from a shell, where the database is reachable:

    python -m services.intake.keys create --name sms-gateway [--rate 600] [--role app|console|admin]
                                          [--expires-days N]
    python -m services.intake.keys list
    python -m services.intake.keys rotate <id> [--overlap-hours 24] [--expires-days N]
    python -m services.intake.keys revoke <id>

Reads DATABASE_URL like the service. The same is available over HTTP under
/v1/admin/api-keys with an admin key.
"""

import argparse
import asyncio
import getpass
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

from services.common import db
from services.intake import clients
from services.intake.settings import IntakeSettings

SCHEMA = "intake"


async def main(args: argparse.Namespace) -> int:
    settings = IntakeSettings()
    pool = await db.create_pool(settings.database_url, schema=SCHEMA, min_size=1, max_size=2)
    try:
        await db.migrate(pool, SCHEMA, Path(__file__).parent / "migrations")
        async with pool.acquire() as conn:
            expires = None if getattr(args, "expires_days", None) is None else _in_days(args.expires_days)
            if args.command == "create":
                new = await clients.create_key(
                    conn,
                    name=args.name,
                    rate_per_minute=args.rate,
                    role="admin" if args.admin else args.role,
                    created_by=f"cli:{getpass.getuser()}",
                    expires_at=expires,
                )
                print(f"id   {new.id}\nname {new.name}\nkey  {new.key}\n(the key is shown only now)")
            elif args.command == "rotate":
                overlap = timedelta(hours=args.overlap_hours)
                new = await clients.rotate_key(
                    conn, UUID(args.id), overlap=overlap, created_by=f"cli:{getpass.getuser()}", expires_at=expires
                )
                if new is None:
                    print(f"no active key {args.id}", file=sys.stderr)
                    return 1
                print(f"id   {new.id}\nname {new.name}\nkey  {new.key}\n(the key is shown only now)")
                print(f"the old key {args.id} works for {args.overlap_hours:g} more hours")
            elif args.command == "list":
                for row in await clients.list_keys(conn):
                    state = f"revoked {row['revoked_at']:%Y-%m-%d}" if row["revoked_at"] else "active"
                    if row["expires_at"] and not row["revoked_at"]:
                        state = f"expires {row['expires_at']:%Y-%m-%d %H:%M}"
                    role = row["role"]
                    print(
                        f"{row['id']}  {row['key_prefix']}…  {row['name']:<20} {row['rate_per_minute']:>6}/min  "
                        f"{role:<7} {state}"
                    )
            elif not await clients.revoke_key(conn, UUID(args.id)):
                print(f"no active key {args.id}", file=sys.stderr)
                return 1
            else:
                print(f"revoked {args.id}")
    finally:
        await pool.close()
    return 0


def _in_days(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m services.intake.keys", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True, help="which app uses it")
    create.add_argument("--rate", type=int, default=600, help="requests per minute (default 600)")
    create.add_argument(
        "--role",
        choices=["app", "console", "admin"],
        default="app",
        help="app: files reports; console: acts for its signed-in operator; admin: manages keys",
    )
    create.add_argument("--admin", action="store_true", help="same as --role admin")
    create.add_argument("--expires-days", type=float, help="the key stops working after this many days")
    sub.add_parser("list", help="list keys (never the keys themselves)")
    rotate = sub.add_parser("rotate", help="a new key for the same app; the old one works for the overlap")
    rotate.add_argument("id")
    rotate.add_argument("--overlap-hours", type=float, default=24.0, help="how long the old key still works")
    rotate.add_argument("--expires-days", type=float, help="the new key stops working after this many days")
    revoke = sub.add_parser("revoke", help="revoke a key")
    revoke.add_argument("id")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
