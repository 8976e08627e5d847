"""The knowledge base: `ask` it, `check` an offer against the red flags, `kb check` its entries, `kb gaps`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bot.cli.common import console, existing, given_lines, print_json, say_error, services, settings, vault

app = typer.Typer()
kb_app = typer.Typer(help="The knowledge base: validate it, see what residents asked that it could not answer.")
app.add_typer(kb_app, name="kb")


@app.command()
def ask(text: Annotated[str | None, typer.Argument()] = None,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON object per query.")] = False,
        top: Annotated[int, typer.Option("--top", min=1, max=20)] = 3,
        batch: Annotated[Path | None, typer.Option("--batch", help="One query a line; - for stdin.")] = None) -> None:
    """Search the knowledge base."""
    s = settings()
    queries = given_lines(text, batch)
    svc = services(s)
    for query in queries:
        result = svc.search(query, top=top)
        best = result.best
        answer = (svc.fill(f"{best.entry.title}：{best.entry.summary}") if result.matched and best
                  else svc.fill("这个问题我还答不上来。可以换个说法再问，或者打 {hotline} 咨询。"))
        if as_json:
            print_json({"query": query, "matched": result.matched, "answer": answer, "results": [
                {"id": h.entry.id, "category": h.entry.category, "title": h.entry.title, "score": h.score}
                for h in result.hits]})
            continue
        table = Table(title=f"{query}  ({'matched' if result.matched else 'no match'})")
        for col in ("score", "id", "category", "title"):
            table.add_column(col)
        for h in result.hits:
            table.add_row(f"{h.score:.3f}", h.entry.id, h.entry.category, h.entry.title)
        console.print(table)
        console.print(answer, markup=False)


@app.command()
def check(text: Annotated[str | None, typer.Argument()] = None,
          as_json: Annotated[bool, typer.Option("--json", help="One JSON object per text.")] = False,
          batch: Annotated[Path | None, typer.Option("--batch", help="One text a line; - for stdin.")] = None) -> None:
    """Check a described offer for the red flags of illegal fundraising."""
    s = settings()
    texts = given_lines(text, batch)
    svc = services(s)
    for line in texts:
        report = svc.risk.check(line)
        entry = svc.explain(line, report.category)
        obj = {"text": line, "risky": report.risky, "level": report.level,
               "signals": [{"feature": sig.feature, "evidence": sig.evidence} for sig in report.signals],
               "advice": report.advice, "entry": entry.id if entry else None}
        if as_json:
            print_json(obj)
            continue
        console.print(f"[bold]{report.level}[/bold]  risky={report.risky}  entry={obj['entry']}")
        for sig in report.signals:
            console.print(f"  {sig.feature}: {sig.evidence}", markup=False)
        console.print(report.advice, markup=False)


@kb_app.command("check")
def kb_check(directory: Annotated[Path | None, typer.Option("--dir", help="Entries folder (default: the bundled "
                                                             "knowledge base).")] = None,
             warnings_dir: Annotated[Path | None, typer.Option("--warnings-dir", help="Warning templates folder "
                                                               "(default: the bundled knowledge/warnings).")] = None
             ) -> None:
    """Validate every entry and warning template; print `file: id: field: problem` lines and exit 1 on any."""
    from knowledge import schema, warnings

    s = settings()
    if directory is not None:
        existing(directory, "--dir: ", folder=True)
    if warnings_dir is not None:
        existing(warnings_dir, "--warnings-dir: ", folder=True)
    keys = set(s.region.placeholders())
    kb, problems = schema.load(directory or schema.ENTRIES_DIR, region_keys=keys)
    templates, template_problems = warnings.load(warnings_dir or warnings.WARNINGS_DIR, region_keys=keys)
    problems += template_problems
    for p in problems:
        print(p)
    if problems:
        say_error(f"{len(problems)} problem(s) in {len(kb.entries)} loaded entries and {len(templates)} templates.")
        raise typer.Exit(1)
    print(f"ok: {len(kb.entries)} entries in {len(kb.categories)} categories, {len(templates)} warning templates")


@kb_app.command("gaps")
def kb_gaps(limit: Annotated[int, typer.Option("--limit", min=1)] = 20,
            as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The most frequent questions the knowledge base could not answer."""
    from bot.services import top_gaps
    from bot.storage.database import Database

    s = settings()

    async def main() -> list[tuple[str, int]]:
        db = Database(s.database.url)
        try:
            if db.is_sqlite:
                await db.upgrade(vault(s))
            async with db.session() as session:
                return await top_gaps(session, limit)
        finally:
            await db.close()

    rows = asyncio.run(main())
    if as_json:
        print_json([{"text": t, "count": n} for t, n in rows])
        return
    if not rows:
        print("no unanswered questions recorded")
    for t, n in rows:
        print(f"{n:5d}  {t}")
