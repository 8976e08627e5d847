"""`broadcast`: warning broadcasts (预警提示) for staff: draft, preview, approve, pause, resume, cancel, retry the
failed copies, and follow their progress. Times are ISO 8601; without an offset, Asia/Shanghai."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from bot.cli.common import console, print_json, say_error, settings, transact, when

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.storage.models import Broadcast

app = typer.Typer(help="Warning broadcasts (预警提示) to subscribers: drafted by one, approved by another.")
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object (or a list) on stdout.")]
AsOption = Annotated[str, typer.Option("--as", help="Your name (kept in the audit log).")]
Id = Annotated[int, typer.Argument(help="The broadcast's id.")]
DEFAULT_CHANNELS = "telegram,wechat,web,local"


def in_transaction(work: Any) -> Any:
    """Run a coroutine function of (session) in one transaction; a BroadcastError is one line, exit 2."""
    from bot.broadcasts.lifecycle import BroadcastError

    return transact(work, BroadcastError)


def _described(b: Broadcast) -> dict[str, Any]:
    from bot.tips.ledger import CHINA, as_utc

    segment = b.segment or {}
    return {"id": b.id, "state": b.state, "audience": b.audience, "townships": segment.get("townships") or [],
            "villages": segment.get("villages") or [], "channels": segment.get("channels") or [],
            "mass_tag": segment.get("mass_tag"),
            "urgent": b.urgent, "template": b.template, "text": b.text, "drafted_by": b.drafted_by,
            "approved_by": b.approved_by,
            "at": as_utc(b.send_at).astimezone(CHINA).isoformat() if b.send_at else None}


@app.command("create")
def create(text: Annotated[str | None, typer.Option("--text", help="The warning, in plain words.")] = None,
           template: Annotated[str | None, typer.Option("--template", help="A template id of knowledge/warnings/.")]
           = None,
           audience: Annotated[str, typer.Option("--audience", help="elderly, student, other or all.")] = "all",
           township: Annotated[list[str] | None, typer.Option("--township", help="A township code; repeat.")] = None,
           village: Annotated[list[str] | None, typer.Option("--village", help="A village code; repeat.")] = None,
           channels: Annotated[str | None, typer.Option("--channels", help="Comma-separated: telegram, wechat, web, "
                                                                       "local, relay (village cadres forward it to "
                                                                       "village groups), wecom. Default: telegram, "
                                                                       "wechat, web, local; wechat with --mass-tag.")]
           = None,
           mass_tag: Annotated[int | None, typer.Option("--mass-tag", help="A WeChat mass send (群发) to the "
                                                                          "followers with this tag id instead, within "
                                                                          "the account's quota.")] = None,
           company: Annotated[str | None, typer.Option("--company", help="For templates that name one.")] = None,
           at: Annotated[str | None, typer.Option("--at", help="Send at this time once approved (default: at "
                                                               "approval).")] = None,
           urgent: Annotated[bool, typer.Option("--urgent", help="Send in quiet hours too.")] = False,
           drafted_by: AsOption = "", as_json: JsonOption = False) -> None:
    """Draft a warning; prints its id. No --township or --village: the whole county."""
    from bot.broadcasts import lifecycle

    s = settings()
    towns = township or []
    try:
        body = lifecycle.compose(s, text=text, template=template, township=towns[0] if towns else None,
                                 company=company)
    except lifecycle.BroadcastError as exc:
        say_error(exc.message)
        raise typer.Exit(2) from exc
    send_at = when(at, "--at")

    async def work(session: AsyncSession) -> dict[str, Any]:
        chosen = channels if channels is not None else "wechat" if mass_tag is not None else DEFAULT_CHANNELS
        made = await lifecycle.create(session, s, text=body, template=template, audience=audience, townships=towns,
                                      villages=village or [], urgent=urgent, send_at=send_at, drafted_by=drafted_by,
                                      channels=[c.strip() for c in chosen.split(",") if c.strip()],
                                      mass_tag=mass_tag)
        return _described(made)

    made = in_transaction(work)
    print_json(made) if as_json else print(f"broadcast {made['id']}: drafted; approve it with "
                                           f"`fangfei broadcast approve {made['id']} --as NAME`")


@app.command("edit")
def edit(broadcast_id: Id,
         text: Annotated[str | None, typer.Option("--text", help="New text.")] = None,
         template: Annotated[str | None, typer.Option("--template", help="Start again from a template.")] = None,
         township: Annotated[str | None, typer.Option("--township", help="For a template's {township}.")] = None,
         company: Annotated[str | None, typer.Option("--company", help="For a template's {company}.")] = None,
         at: Annotated[str | None, typer.Option("--at", help="A new sending time.")] = None,
         urgent: Annotated[bool | None, typer.Option("--urgent/--not-urgent")] = None,
         actor: AsOption = "") -> None:
    """Change a draft before it is approved (kept in the audit log)."""
    from bot.broadcasts import lifecycle

    s = settings()
    body = None
    if text is not None or template is not None:
        try:
            body = lifecycle.compose(s, text=text, template=template, township=township, company=company)
        except lifecycle.BroadcastError as exc:
            say_error(exc.message)
            raise typer.Exit(2) from exc
    send_at = when(at, "--at")

    async def work(session: AsyncSession) -> None:
        await lifecycle.edit(session, await lifecycle.named(session, broadcast_id), actor or "staff", text=body,
                             template=template, urgent=urgent, send_at=send_at)

    in_transaction(work)
    print(f"broadcast {broadcast_id}: edited")


@app.command("preview")
def preview(broadcast_id: Id, as_json: JsonOption = False) -> None:
    """Whom it would reach now: by channel and route, and how many cannot be reached and why."""
    from bot.broadcasts import lifecycle, segments

    s = settings()

    async def work(session: AsyncSession) -> dict[str, Any]:
        broadcast = await lifecycle.named(session, broadcast_id)
        return {**_described(broadcast), **await segments.preview(session, s, broadcast)}

    shown = in_transaction(work)
    if as_json:
        print_json(shown)
        return
    print(shown["text"])
    if "mass" in shown:
        print(_quota_line(shown["mass"]))
        return
    print(f"\nrecipients: {shown['total']}, reachable now: {shown['reachable']}")
    for route, n in sorted(shown["routes"].items()):
        print(f"  {route}: {n}")
    for reason, n in sorted({**shown["skipped"], **shown.get("noticed", {})}.items()):
        print(f"  not reachable now ({segments.REASONS.get(reason, reason)}): {n}")
    if "wechat" in shown:
        w = shown["wechat"]
        print(f"  wechat: {w['customer_service']} by customer-service message (of them {w['unknown_window']} not "
              f"seen since we keep the time: tried first), {w['template']} by template message, "
              f"{w['unreachable']} not reachable now")


def _quota_line(m: dict[str, Any]) -> str:
    return (f"\nWeChat mass send to tag {m['tag']}: quota {m['used']} of {m['limit']} used in {m['period']} "
            f"({m['account_type']} account), {m['left']} left")


def _step(name: str, verb: str) -> None:
    def command(broadcast_id: Id, actor: AsOption = "staff") -> None:
        from bot.broadcasts import lifecycle

        async def work(session: AsyncSession) -> str:
            broadcast = await lifecycle.named(session, broadcast_id)
            await getattr(lifecycle, name)(session, broadcast, actor)
            return broadcast.state

        print(f"broadcast {broadcast_id}: {in_transaction(work)}")

    command.__doc__ = verb
    app.command(name)(command)


_step("pause", "Stop sending within a second (copies in hand finish); `resume` goes on where it stopped.")
_step("resume", "Go on sending a paused broadcast.")
_step("cancel", "Stop for good: copies not yet sent are cancelled.")


@app.command("approve")
def approve(broadcast_id: Id, approver: AsOption = "") -> None:
    """Approve a draft (not your own): it goes out now, or at its time."""
    from bot.broadcasts import lifecycle

    s = settings()

    async def work(session: AsyncSession) -> str:
        broadcast = await lifecycle.approve(session, s, await lifecycle.named(session, broadcast_id), approver)
        return broadcast.state

    state = in_transaction(work)
    print(f"broadcast {broadcast_id}: {state}" + (" (sent by `fangfei serve`)" if state == "sending" else ""))


@app.command("retry-failed")
def retry_failed(broadcast_id: Id, actor: AsOption = "staff") -> None:
    """Send again the copies the platform refused (not those whose outcome was unknown: they may have arrived)."""
    from bot.broadcasts import lifecycle

    async def work(session: AsyncSession) -> tuple[int, int]:
        return await lifecycle.retry_failed(session, await lifecycle.named(session, broadcast_id), actor)

    again, left = in_transaction(work)
    print(f"broadcast {broadcast_id}: {again} queued again" + (f", {left} left alone (they may have arrived)"
                                                                if left else ""))


def _progress(broadcast_id: int) -> dict[str, Any]:
    from bot.broadcasts import lifecycle

    s = settings()

    async def work(session: AsyncSession) -> dict[str, Any]:
        return await lifecycle.progress(session, s, await lifecycle.named(session, broadcast_id))

    return in_transaction(work)


@app.command("status")
def status(broadcast_id: Id, as_json: JsonOption = False,
           watch: Annotated[bool, typer.Option("--watch", help="A live progress bar until it is done.")] = False
           ) -> None:
    """State and counts: sent, failed, unreachable, pending, cancelled; by route."""
    from bot.broadcasts import mass

    shown = _progress(broadcast_id)
    if watch and not as_json:
        with Progress(TextColumn("broadcast {task.fields[id]}: {task.fields[state]}"), BarColumn(),
                      TextColumn("{task.completed}/{task.total}"), console=console) as bar:
            task = bar.add_task("", total=shown["total"], id=broadcast_id, state=shown["state"])
            while True:
                settled = shown["total"] - shown["pending"]
                bar.update(task, completed=settled, total=shown["total"], state=shown["state"])
                if shown["state"] in ("done", "cancelled", "draft") or (shown["state"] == "paused"):
                    break
                time.sleep(1)
                shown = _progress(broadcast_id)
    if as_json:
        print_json(shown)
        return
    print(f"broadcast {broadcast_id}: {shown['state']}; {shown['total']} recipients: {shown['sent']} sent, "
          f"{shown['failed']} failed, {shown['unreachable']} unreachable, {shown['pending']} pending, "
          f"{shown['cancelled']} cancelled, {sum(shown['skipped'].values())} skipped")
    table = Table("route", "sent", "failed", "unreachable", "pending", "cancelled")
    for route, counts in sorted(shown["routes"].items()):
        table.add_row(route, *(str(counts.get(k, 0)) for k in ("sent", "failed", "unreachable", "pending",
                                                                "cancelled")))
    console.print(table)
    if "mass" in shown:
        m = shown["mass"]
        state = mass.UNKNOWN if m["state"] == "unknown" else m["state"]
        print(f"mass send to tag {m['tag']}: {state}" + (f", msg_id {m['msg_id']}" if m["msg_id"] else "")
              + (f" ({m['error']})" if m["error"] else ""))
    if shown["relay"]:
        relays = Table("village", "cadres", "relayed", "first relayed (China time)")
        for r in shown["relay"]:
            relays.add_row(r["name"], str(r["cadres"]), str(r["relayed"]), _china(r["first_relayed_at"]) or "-")
        console.print(relays)


def _china(moment: str | None) -> str | None:
    from bot.tips.ledger import CHINA

    return datetime.fromisoformat(moment).astimezone(CHINA).strftime("%m-%d %H:%M") if moment else None


@app.command("report")
def report(broadcast_id: Id, xlsx: Annotated[Path, typer.Option("--xlsx", help="The spreadsheet to write.")]) -> None:
    """The warning as a spreadsheet: summary, routes, villages (reached and relayed), copies not delivered and why
    (recipients masked)."""
    from bot import spreadsheets
    from bot.broadcasts import lifecycle
    from bot.broadcasts import report as broadcast_report

    s = settings()

    async def work(session: AsyncSession) -> None:
        book = await broadcast_report.build(session, s, await lifecycle.named(session, broadcast_id))
        try:
            spreadsheets.save(book, xlsx)
        except OSError as exc:
            raise lifecycle.BroadcastError(f"cannot write {xlsx}: {exc.strerror or exc}") from exc

    in_transaction(work)
    print(f"broadcast {broadcast_id}: written to {xlsx}")


@app.command("list")
def listing(as_json: JsonOption = False) -> None:
    """Every broadcast, newest first."""
    from sqlalchemy import select

    from bot.storage.models import Broadcast

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        return [_described(b) for b in await session.scalars(select(Broadcast).order_by(Broadcast.id.desc()))]

    rows = in_transaction(work)
    if as_json:
        print_json(rows)
        return
    table = Table("id", "state", "audience", "where", "drafted by", "approved by", "text")
    for r in rows:
        where = " ".join(r["townships"] + r["villages"]) or "全县"
        table.add_row(str(r["id"]), r["state"], r["audience"], where, r["drafted_by"], r["approved_by"] or "-",
                      r["text"][:24])
    console.print(table)
