"""`cadres`: the village cadres and grid workers who relay warnings into their villages' WeChat groups."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from bot.cli.broadcast import in_transaction
from bot.cli.common import console, print_json, settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

app = typer.Typer(help="Village cadres who forward warnings into village WeChat groups (the village relay).")
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object (or a list) on stdout.")]


@app.command("add")
def add(name: Annotated[str, typer.Option("--name", help="As staff know them, e.g. 王村长.")],
        village: Annotated[str, typer.Option("--village", help="A village code of config.yaml.")],
        channel: Annotated[str, typer.Option("--channel", help="telegram or wechat.")],
        user: Annotated[str, typer.Option("--id", help="Their Telegram user id or WeChat openid.")],
        as_json: JsonOption = False) -> None:
    """Register a cadre for a village (again: updates the name and makes them active)."""
    from bot.broadcasts import relay

    s = settings()

    async def work(session: AsyncSession) -> dict[str, Any]:
        made = await relay.add(session, s, name=name, village=village, channel=channel, user=user)
        return {"id": made.id, "name": made.name, "village": made.village, "channel": made.channel}

    made = in_transaction(work)
    print_json(made) if as_json else print(f"cadre {made['id']}: {made['name']} relays for {made['village']}")


@app.command("list")
def listing(as_json: JsonOption = False) -> None:
    """The active cadres, by village."""
    from sqlalchemy import select

    from bot.storage.models import Cadre

    async def work(session: AsyncSession) -> list[dict[str, Any]]:
        rows = await session.scalars(select(Cadre).where(Cadre.active.is_(True)).order_by(Cadre.village, Cadre.id))
        return [{"id": c.id, "name": c.name, "village": c.village, "channel": c.channel} for c in rows]

    rows = in_transaction(work)
    if as_json:
        print_json(rows)
        return
    table = Table("id", "name", "village", "channel")
    for r in rows:
        table.add_row(str(r["id"]), r["name"], r["village"], r["channel"])
    console.print(table)


@app.command("remove")
def remove(cadre_id: Annotated[int, typer.Argument(help="The cadre's id (see `cadres list`).")]) -> None:
    """Stop handing warnings to this cadre (what they relayed stays in the record)."""
    from bot.broadcasts.lifecycle import BroadcastError
    from bot.storage.models import Cadre

    async def work(session: AsyncSession) -> None:
        cadre = await session.get(Cadre, cadre_id)
        if cadre is None or not cadre.active:
            raise BroadcastError(f"no active cadre {cadre_id}")
        cadre.active = False

    in_transaction(work)
    print(f"cadre {cadre_id}: removed")
