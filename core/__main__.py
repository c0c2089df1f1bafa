"""CLI: python -m core users add|remove|reset|role|list — who may sign in to the app."""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from core.cli import run_plainly
from core.database import describe, open_database
from core.privacy import data_paths, keep_private
from core.settings import load_settings
from core.users import UserError, UserStore


def read_password(args: argparse.Namespace) -> str:
    """From stdin with --password-stdin (scripts), else asked twice on the terminal."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(f"Password for {args.user}: ")
    if first != getpass.getpass("Again: "):
        raise UserError("the two passwords differ")
    return first


async def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    keep_private(data_paths(settings))  # the whole data folder, not only the database this command opens
    async with open_database(settings.database) as engine:
        users = UserStore(engine)
        if args.action == "list":
            records = await users.list_users()
            if args.json:
                print(json.dumps([r.__dict__ for r in records]))
            elif not records:
                print(f"No users in {describe(settings.database)}: the app runs in single-user mode.")
            for r in records if not args.json else []:
                note = "" if r.has_password else "  (no password: OAuth / SSO header only)"
                print(f"{r.identifier:<32} {r.role:<7} since {r.created_at}{note}")
            return 0
        if args.action == "add":
            password = None if args.no_password else read_password(args)
            record = await users.add(args.user, password, args.role)
            print(f"Added {record.identifier} ({record.role}).")
            if not settings.auth_secret:
                print("Sign-in is now on: set CHAINLIT_AUTH_SECRET (`chainlit create-secret`) and restart the app.")
        elif args.action == "remove":
            await users.remove(args.user)
            print(f"Removed {args.user}. Their private documents stay until deleted: python -m ingest.manage list")
        elif args.action == "reset":
            await users.reset(args.user, read_password(args))
            print(f"New password set for {args.user}.")
        elif args.action == "role":
            await users.set_role(args.user, args.role)
            print(f"{args.user} is now {args.role}.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core", description="Manage the app's users.")
    sub = parser.add_subparsers(dest="area", required=True)
    users = sub.add_parser("users", help="who may sign in").add_subparsers(dest="action", required=True)
    p_add = users.add_parser("add", help="add a user (asks for the password)")
    p_add.add_argument("user")
    p_add.add_argument("--role", choices=["admin", "member"], default="member")
    p_add.add_argument("--no-password", action="store_true", help="OAuth / SSO header sign-in only")
    p_remove = users.add_parser("remove", help="remove a user")
    p_remove.add_argument("user")
    p_reset = users.add_parser("reset", help="set a new password")
    p_reset.add_argument("user")
    p_role = users.add_parser("role", help="make a user admin or member")
    p_role.add_argument("user")
    p_role.add_argument("role", choices=["admin", "member"])
    p_list = users.add_parser("list", help="list users")
    p_list.add_argument("--json", action="store_true")
    for p in (p_add, p_reset):
        p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    args = parser.parse_args(argv)
    return run_plainly(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
