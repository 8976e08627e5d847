"""`tips`: the tip ledger (台账) for staff: list, show, update and export tips, export their evidence."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.table import Table

from bot.cli.common import console, open_ledger, print_json, say_error, settings, vault
from bot.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.storage.models import Tip, TipChange, TipEvidence

app = typer.Typer(help="The tip ledger (台账): list, show, update and export tips. Times are Asia/Shanghai.")
StatusOption = Annotated[str | None, typer.Option("--status", help="Only tips in this status: new, verifying, "
                                                                      "referred or closed.")]
AsOption = Annotated[str | None, typer.Option("--as", help="Your staff name, for the history and the audit log "
                                                              "(default: the OS user name).")]
RevealOption = Annotated[bool, typer.Option("--reveal", help="Add the reporter's name and contact (only for a name "
                                                               "in tips.handlers; every reveal is audited).")]


def _staff_name(given: str | None) -> str:
    """The name given with --as, or the OS user name; blanks collapsed."""
    import getpass

    from bot.staff.accounts import NAME_MAX

    if given is None:
        try:
            given = getpass.getuser()
        except (OSError, KeyError):  # no login name and no passwd entry (some containers)
            given = ""
    name = " ".join(given.split())
    if not name:
        say_error("Give your staff name with --as NAME.")
        raise typer.Exit(2)
    if len(name) > NAME_MAX:
        say_error(f"--as: at most {NAME_MAX} characters")
        raise typer.Exit(2)
    return name


def _actor(name: str) -> str:
    """Who did it, in a tip's history and the audit log: staff at the command line are `cli:NAME`."""
    return f"cli:{name}"


def _check_status(status: str | None) -> None:
    from bot.tips.ledger import STATUSES

    if status is not None and status not in STATUSES:
        say_error(f"unknown status {status!r}; one of: {', '.join(STATUSES)}")
        raise typer.Exit(2)


def _require_handler(s: Settings, name: str) -> None:
    """Before anything is read: only handlers (an account with role handler, or a name in tips.handlers when no
    account has it) may see who reported a tip."""
    from bot.staff import accounts

    async def main() -> bool:
        db = await open_ledger(s)
        try:
            async with db.session() as session:
                return await accounts.may(session, s, name, "reveal")
        finally:
            await db.close()

    if not asyncio.run(main()):
        say_error(f"refused: {name!r} is not a handler (an account with role handler, or tips.handlers), so no "
                  "reporter's identity is revealed")
        raise typer.Exit(1)


async def _find_tip(session: AsyncSession, receipt: str) -> Tip:
    from bot.tips import ledger

    tip = await ledger.find(session, receipt)
    if tip is None:
        _no_tip(receipt)
    return tip


async def _tip_with_evidence(session: AsyncSession, receipt: str) -> tuple[Tip, list[TipEvidence], dict[int, str]]:
    """The named tip, its evidence files and where each file's fetch stands."""
    from bot.tips import evidence, ledger

    tip = await _find_tip(session, receipt)
    files = await ledger.evidence(session, tip)
    return tip, files, await evidence.fetch_states(session, files)


@contextmanager
def _sealed(failure: str) -> Iterator[None]:
    """Around opening sealed data: a key that cannot open it is said in one line (exit 1), not a traceback."""
    from bot.vault import SealError

    try:
        yield
    except SealError as exc:
        say_error(f"{failure}: {exc} (is FANGFEI_SECRET_KEY the bot's key?)")
        raise typer.Exit(1) from exc


def _no_tip(receipt: str) -> NoReturn:
    say_error(f"no tip with receipt {receipt.strip().upper()!r}")
    raise typer.Exit(1)


def _tip_lines(tip: Tip, evidence: list[TipEvidence], history: list[TipChange],
               kept: dict[int, str] | None = None) -> list[str]:
    """Every ledger field of a tip (never the reporter's identity), its evidence and its whole history."""
    from bot.tips.export import local_time, reason_name, status_name

    fields: list[tuple[str, str | None]] = [
        ("receipt", tip.receipt), ("status", f"{tip.status} ({status_name(tip.status)})"),
        ("closing reason", f"{tip.closing_reason} ({reason_name(tip.closing_reason)})" if tip.closing_reason
         else None),
        ("category", tip.category), ("channel", tip.channel), ("township", tip.township), ("village", tip.village),
        ("place", tip.place), ("what", tip.what), ("who", tip.who), ("money", tip.money), ("happened", tip.happened),
        ("reporter", "anonymous (匿名)" if tip.anonymous else "named (实名); the identity is sealed: see --reveal"),
        ("assignee", tip.assignee), ("filed", local_time(tip.created_at)), ("updated", local_time(tip.updated_at))]
    width = max(len(key) for key, _ in fields)
    lines: list[str] = []
    for key, value in fields:
        first, *rest = (value or "-").splitlines() or ["-"]
        lines.append(f"{key:<{width}}  {first}")
        lines += [f"{'':<{width}}  {more}" for more in rest]
    lines.append(f"evidence ({len(evidence)}):")
    for n, e in enumerate(evidence, start=1):
        parts = [e.kind, e.name, f"{e.size} bytes" if e.size is not None else None, f"ref {e.ref}", e.url,
                 (kept or {}).get(e.id)]
        lines.append(f"  {n}. " + "  ".join(p for p in parts if p))
    lines.append(f"history ({len(history)}):")
    for h in history:
        change = (f"note: {' '.join((h.new or '').split())}" if h.field == "note"
                  else f"{h.field}: {h.old or '-'} → {h.new or '-'}")
        lines.append(f"  {local_time(h.at)}  {h.actor}  {change}")
    return lines


@app.command("list")
def tips_list(status: StatusOption = None,
              as_json: Annotated[bool, typer.Option("--json", help="One JSON array of tips.")] = False) -> None:
    """The tips in the ledger, oldest first (no reporter's identity)."""
    from bot.tips import ledger
    from bot.tips.export import local_time

    s = settings()
    _check_status(status)

    async def main() -> list[Tip]:
        db = await open_ledger(s)
        try:
            async with db.session() as session:
                return await ledger.listing(session, status)
        finally:
            await db.close()

    tips = asyncio.run(main())
    if as_json:
        print_json([{"receipt": t.receipt, "status": t.status, "category": t.category, "place": ledger.place_of(t),
                      "created_at": ledger.as_utc(t.created_at).isoformat(), "summary": ledger.summary(t)}
                     for t in tips])
        return
    if not tips:
        print("no tips" + (f" in status {status}" if status else ""))
        return
    table = Table(title=f"tips ({len(tips)})")
    for col in ("receipt", "status", "filed"):
        table.add_column(col, no_wrap=True)
    for col in ("category", "place", "summary"):
        table.add_column(col, overflow="fold")
    for t in tips:
        table.add_row(t.receipt, t.status, local_time(t.created_at), t.category or "-", ledger.place_of(t) or "-",
                      ledger.summary(t))
    console.print(table)


@app.command("show")
def tips_show(receipt: str, reveal: RevealOption = False, as_name: AsOption = None) -> None:
    """Every ledger field of a tip, its evidence and its full history; --reveal adds who reported it."""
    from bot.tips import ledger

    s = settings()
    name = _staff_name(as_name) if reveal else None
    if name is not None:
        _require_handler(s, name)

    async def main() -> list[str]:
        db = await open_ledger(s)
        try:
            async with db.transaction() as session:
                tip, files, states = await _tip_with_evidence(session, receipt)
                lines = _tip_lines(tip, files, await ledger.history(session, tip), states)
                if name is None:
                    return lines
                if tip.anonymous:
                    return [*lines, "identity: anonymous tip: the reporter gave no name or contact; nothing revealed"]
                with _sealed("cannot open the reporter's identity"):
                    identity = await ledger.reveal(session, vault(s), tip, _actor(name))
                # committed (with its audit row) before anything is shown
            return [*lines, f"identity (revealed to {name}; recorded in the audit log):",
                    f"  name     {identity.name or '-'}", f"  contact  {identity.contact or '-'}"]
        finally:
            await db.close()

    for line in asyncio.run(main()):
        print(line)


@app.command("evidence")
def tips_evidence(receipt: str,
                  out: Annotated[Path, typer.Option("--out", help="Folder to write the files into.")],
                  as_name: AsOption = None) -> None:
    """Write a tip's photos and files (kept sealed in the database) into a folder; each export is audited."""
    from bot.storage.models import AuditEntry
    from bot.tips import evidence

    s = settings()
    name = _staff_name(as_name)
    if out.exists() and not out.is_dir():
        _bad_destination(f"--out: {out} is a file, not a folder")

    async def main() -> list[str]:
        db = await open_ledger(s)
        written: list[Path] = []
        try:
            async with db.transaction() as session:
                tip, files, states = await _tip_with_evidence(session, receipt)
                # every file opened before any is written: a failure leaves nothing on disk
                with _sealed("cannot open the files"):
                    opened = [await evidence.content(session, vault(s), item) for item in files]
                paths = [out / evidence.file_name(tip.receipt, n, item) for n, item in enumerate(files, start=1)]
                if taken := [p for p, data in zip(paths, opened, strict=True) if data is not None and p.exists()]:
                    _bad_destination(f"--out: {taken[0]} exists: nothing exported, nothing overwritten "
                                     "(choose another folder)")
                lines: list[str] = []
                for n, (path, data) in enumerate(zip(paths, opened, strict=True), start=1):
                    if data is None:
                        lines.append(f"{n}. not kept yet ({states[files[n - 1].id]})")
                        continue
                    _write_private(path, data)
                    written.append(path)
                    lines.append(f"{n}. {path} ({len(data)} bytes)")
                if written:
                    session.add(AuditEntry(actor=_actor(name), action="export-evidence", subject=tip.receipt))
                # the audit row commits here: the files exist only with it
            return lines or ["this tip has no evidence"]
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        finally:
            await db.close()

    for line in asyncio.run(main()):
        print(line)


def _bad_destination(line: str) -> NoReturn:
    say_error(line)
    raise typer.Exit(2)


def _write_private(path: Path, data: bytes) -> None:
    """A new file readable by its owner only; never over an existing one. Any failure: one line, exit 2."""
    created = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        created = True
        with open(fd, "wb") as file:
            file.write(data)
    except OSError as exc:
        if created:
            path.unlink(missing_ok=True)
        _bad_destination(f"--out: cannot write {path}: {exc.strerror or exc}: nothing exported")


@app.command("update")
def tips_update(receipt: str, status: StatusOption = None,
                reason: Annotated[str | None, typer.Option("--reason", help="With --status closed: confirmed, "
                                                           "not-confirmed, duplicate or out-of-scope.")] = None,
                note: Annotated[str | None, typer.Option("--note", help="A note for the history.")] = None,
                assign: Annotated[str | None, typer.Option("--assign", help="The staff member in charge.")] = None,
                category: Annotated[str | None, typer.Option("--category", help="A category slug of "
                                                             "knowledge/taxonomy.yaml.")] = None,
                as_name: AsOption = None) -> None:
    """Move a tip on, assign it, recategorise it or add a note.

    Every change goes into the tip's history; a new status is also told to the reporter."""
    from bot.tips import desk, ledger
    from knowledge.schema import load_taxonomy

    s = settings()
    name = _staff_name(as_name)
    try:
        update = desk.Update(status, reason, note, assign, category).cleaned(list(load_taxonomy()))
    except ledger.LedgerError as exc:
        say_error(str(exc))
        raise typer.Exit(2) from exc

    async def main() -> tuple[str, list[str], str | None]:
        db = await open_ledger(s)
        try:
            async with db.transaction() as session:
                tip = await _find_tip(session, receipt)
                try:
                    # in this transaction: the new status and the reporter's notice commit together
                    with _sealed(f"{tip.receipt}: not updated: cannot reach the reporter"):
                        done = await desk.apply(session, s, vault(s), tip, _actor(name), update,
                                                postgres=not db.is_sqlite)
                except ledger.LedgerError as exc:
                    say_error(str(exc))
                    raise typer.Exit(1) from exc
            lines = [(f"note: {c.new}" if c.field == "note" else f"{c.field}: {c.old or '-'} → {c.new or '-'}")
                     for c in done.changes]
            return tip.receipt, lines, done.told
        finally:
            await db.close()

    shown, lines, told = asyncio.run(main())
    if not lines:
        print(f"{shown}: nothing changed")
        return
    print(f"{shown} updated by {_actor(name)}:")
    for line in lines:
        print(f"  {line}")
    if told is not None:
        print(f"reporter told: {told}")


@app.command("export")
def tips_export(xlsx: Annotated[Path, typer.Option("--xlsx", help="The spreadsheet to write (.xlsx).")],
                status: StatusOption = None, reveal: RevealOption = False, as_name: AsOption = None) -> None:
    """Write the ledger as a 台账 spreadsheet, one row per tip; --reveal adds reporters' names and contacts."""
    from bot import spreadsheets
    from bot.tips import export, ledger

    s = settings()
    _check_status(status)
    if xlsx.suffix.lower() != ".xlsx":
        say_error(f"--xlsx: {xlsx} must end in .xlsx")
        raise typer.Exit(2)
    name = _staff_name(as_name) if reveal else None
    if name is not None:
        _require_handler(s, name)

    async def main() -> tuple[int, int]:
        db = await open_ledger(s)
        saved = False
        try:
            async with db.transaction() as session:
                tips = await ledger.listing(session, status)
                with _sealed("cannot open a reporter's identity"):
                    book = await export.build(session, tips, vault=vault(s) if name else None,
                                              actor=_actor(name) if name else None)
                try:
                    spreadsheets.save(book, xlsx, confidential=name is not None)
                except OSError as exc:
                    say_error(f"cannot write {xlsx}: {exc.strerror or exc}")
                    raise typer.Exit(1) from exc
                saved = True
                # the audit rows commit here: a file with identities exists only with them
        except BaseException:
            if saved and name is not None:
                xlsx.unlink(missing_ok=True)
            raise
        finally:
            await db.close()
        return len(tips), sum(1 for t in tips if not t.anonymous)

    rows, named = asyncio.run(main())
    print(f"wrote {rows} rows to {xlsx}")
    if name is not None:
        print(f"identities revealed to {name}: {named} (each recorded in the audit log)")
