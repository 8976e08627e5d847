"""`staff`: the accounts staff sign in to the console with, and that the CLI's --as names."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from bot.cli.common import console, print_json, say_error, settings, transact

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.storage.models import StaffAccount

app = typer.Typer(help="Staff accounts for the console (/console/) and the CLI's --as: add, passwd, disable, list.")
PasswordOption = Annotated[bool, typer.Option("--password-stdin", help="Read the password from the first line of "
                                                                       "stdin (for scripts) instead of asking.")]
ACTOR = "cli:staff"


def _password(from_stdin: bool) -> str:
    """The password from stdin's first line, or asked twice at the terminal (never an argument: it would stay in
    the shell's history and the process list)."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    else:
        say_error("Give the password on stdin with --password-stdin (stdin is not a terminal to ask on).")
        raise typer.Exit(2)
    if not password:
        say_error("The password is empty.")
        raise typer.Exit(2)
    return password


def _row(a: StaffAccount) -> dict[str, Any]:
    return {"name": a.name, "role": a.role, "townships": a.townships, "disabled": a.disabled,
            "can_sign_in": a.password_hash is not None and not a.disabled,
            "last_login": a.last_login.isoformat() if a.last_login else None}


@app.command("add")
def add(name: str,
        role: Annotated[str, typer.Option("--role", help="admin, handler (may reveal reporters), approver (approves "
                                                         "warnings) or staff.")],
        township: Annotated[list[str] | None, typer.Option("--township", help="Limit the account to a township "
                                                           "(a code of config.yaml; repeat for more). None: the "
                                                           "whole county.")] = None,
        password_stdin: PasswordOption = False) -> None:
    """Add a staff account."""
    from bot.staff import accounts, audit

    s = settings()
    password = _password(password_stdin)

    async def work(session: AsyncSession) -> dict[str, Any]:
        made = await accounts.add(session, s, name, role, township or [], password)
        audit.record(session, ACTOR, "staff-add", made.name, f"role {made.role}")
        return _row(made)

    made = transact(work, accounts.StaffError)
    scope = ", ".join(made["townships"]) or "the whole county"
    print(f"account {made['name']}: {made['role']}, {scope}")


@app.command("passwd")
def passwd(name: str, password_stdin: PasswordOption = False) -> None:
    """Set a new password (the account's console sessions end; a lock-out is lifted)."""
    from bot.staff import accounts, audit

    rules = settings().console
    password = _password(password_stdin)

    async def work(session: AsyncSession) -> str:
        account = await accounts.set_password(session, rules, name, password)
        audit.record(session, ACTOR, "staff-passwd", account.name)
        return account.name

    print(f"password of {transact(work, accounts.StaffError)} changed")


def _switch(name: str, disabled: bool) -> str:
    from bot.staff import accounts, audit

    async def work(session: AsyncSession) -> str:
        account, _ = await accounts.set_disabled(session, name, disabled)
        audit.record(session, ACTOR, "staff-disable" if disabled else "staff-enable", account.name)
        return account.name

    return str(transact(work, accounts.StaffError))


@app.command("disable")
def disable(name: str) -> None:
    """Disable an account: it cannot sign in or be named by --as, and its sessions end at once."""
    print(f"account {_switch(name, True)} disabled")


@app.command("enable")
def enable(name: str) -> None:
    """Enable a disabled account again."""
    print(f"account {_switch(name, False)} enabled")


@app.command("list")
def listing(as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False) -> None:
    """The staff accounts (never a password or its hash)."""
    from bot.staff import accounts

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        return [_row(a) for a in await accounts.listing(session)]

    rows = transact(work)
    if as_json:
        print_json(rows)
        return
    if not rows:
        print("no staff accounts: add one with `fangfei staff add NAME --role admin`")
        return
    table = Table("name", "role", "townships", "state", "last sign-in")
    for r in rows:
        state = "disabled" if r["disabled"] else ("active" if r["can_sign_in"] else "no password")
        table.add_row(r["name"], r["role"], ", ".join(r["townships"]) or "county", state, r["last_login"] or "-")
    console.print(table)
