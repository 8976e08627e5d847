"""`quiz`: knowledge-quiz campaigns for staff: create, list, open, close and show them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from bot.cli.common import console, existing, print_json, say_error, settings, transact, when

if TYPE_CHECKING:
    from bot.storage.models import QuizCampaign

app = typer.Typer(help="Knowledge-quiz campaigns (知识答题). Times are ISO 8601; without an offset, Asia/Shanghai.")
campaign_app = typer.Typer(help="Create, list, open, close and show campaigns.")
app.add_typer(campaign_app, name="campaign")
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object (or a list) on stdout.")]


@app.command("check")
def check(directory: Annotated[Path | None, typer.Option("--dir", help="Banks folder (default: the bundled "
                                                                      "quizzes/banks).")] = None) -> None:
    """Validate the question banks; prints `file: id: field: problem`, exits 1 on any problem."""
    from quizzes import bank

    if directory is not None:
        existing(directory, "--dir ", folder=True)
    s = settings()
    questions, problems = bank.load(directory or bank.BANKS_DIR, region_keys=s.region.placeholders())
    for problem in problems:
        print(problem)
    if problems:
        raise typer.Exit(1)
    by_audience = {a: sum(q.audience == a for q in questions) for a in bank.AUDIENCES}
    print(f"ok: {len(questions)} questions ({', '.join(f'{n} {a}' for a, n in by_audience.items())})")


def _described(campaign: QuizCampaign) -> dict[str, Any]:
    from bot.tips.ledger import CHINA, as_utc
    from quizzes import campaigns

    def local(moment: datetime | None) -> str | None:
        return as_utc(moment).astimezone(CHINA).isoformat() if moment else None

    return {"slug": campaign.slug, "name": campaign.name, "audience": campaign.audience, "state": campaign.state,
            "open": campaigns.is_open(campaign), "questions": campaign.questions,
            "seconds_per_question": campaign.seconds_per_question, "attempts_per_day": campaign.attempts_per_day,
            "scoring": campaign.scoring, "pass_mark": campaign.pass_mark,
            "start": local(campaign.starts_at), "end": local(campaign.ends_at),
            "townships": (campaign.townships or {}).get("codes") or []}


def _run(work: Any) -> Any:
    """Run a coroutine function of (session) in one transaction; a QuizError is one line, exit 2."""
    from quizzes.campaigns import QuizError

    return transact(work, QuizError)


@campaign_app.command("create")
def create(slug: Annotated[str, typer.Option("--slug", help="Stable short name, used in the quiz page's link.")],
           name: Annotated[str, typer.Option("--name", help="What players see.")],
           audience: Annotated[str, typer.Option("--audience", help="elderly, student or all.")],
           questions: Annotated[int, typer.Option("--questions", help="Questions per attempt.")] = 10,
           attempts_per_day: Annotated[int, typer.Option("--attempts-per-day")] = 3,
           seconds_per_question: Annotated[int | None, typer.Option("--seconds-per-question")] = None,
           pass_mark: Annotated[int, typer.Option("--pass-mark", help="Percent right to pass.")] = 60,
           start: Annotated[str | None, typer.Option("--start", help="It opens by itself at this time.")] = None,
           end: Annotated[str | None, typer.Option("--end", help="It closes by itself at this time.")] = None,
           township: Annotated[list[str] | None, typer.Option("--township", help="A township code; repeat. "
                                                                                 "None: the whole county.")] = None,
           scoring: Annotated[str, typer.Option("--scoring", help="best or last attempt counts.")] = "best",
           open_now: Annotated[bool, typer.Option("--open", help="Open it at once (with --start: at its start; "
                                                                     "else: open it later by hand).")] = False,
           as_json: JsonOption = False) -> None:
    """Create a campaign."""
    from quizzes import campaigns

    if not campaigns.SLUG.fullmatch(slug):
        say_error("--slug: lower-case letters, digits and hyphens, 2 to 64 characters")
        raise typer.Exit(2)
    known = {t.code for t in settings().region.townships}
    unknown = [code for code in township or [] if code not in known]
    if unknown:
        say_error(f"--township: not a township code of config.yaml: {', '.join(unknown)}")
        raise typer.Exit(2)
    starts, ends = when(start, "--start"), when(end, "--end")

    async def work(session: Any) -> dict[str, Any]:
        made = await campaigns.create(session, slug=slug, name=name, audience=audience, questions=questions,
                                      seconds_per_question=seconds_per_question, attempts_per_day=attempts_per_day,
                                      scoring=scoring, pass_mark=pass_mark, starts_at=starts, ends_at=ends,
                                      townships=township or [], open_now=open_now)
        return _described(made)

    made = _run(work)
    print_json(made) if as_json else print(f"{made['slug']}: created ({made['state']})")


@campaign_app.command("open")
def open_(slug: str) -> None:
    """Open a campaign now (a start still to come moves to now; it closes at its end, if it has one)."""
    from quizzes import campaigns

    async def work(session: Any) -> None:
        campaigns.open_by_hand(await campaigns.named(session, slug))

    _run(work)
    print(f"{slug}: open")


@campaign_app.command("close")
def close(slug: str) -> None:
    """Close a campaign: no new attempts or answers; its results stay."""
    from quizzes import campaigns

    async def work(session: Any) -> None:
        campaigns.close_by_hand(await campaigns.named(session, slug))

    _run(work)
    print(f"{slug}: closed")


@campaign_app.command("list")
def listing(as_json: JsonOption = False) -> None:
    """Every campaign, newest first."""
    from sqlalchemy import select

    from bot.storage.models import QuizCampaign

    async def work(session: Any) -> list[dict[str, Any]]:
        rows = await session.scalars(select(QuizCampaign).order_by(QuizCampaign.id.desc()))
        return [_described(c) for c in rows]

    rows = _run(work)
    if as_json:
        print_json(rows)
        return
    table = Table("slug", "name", "audience", "state", "open now", "questions")
    for r in rows:
        table.add_row(r["slug"], r["name"], r["audience"], r["state"], "yes" if r["open"] else "no",
                      str(r["questions"]))
    console.print(table)


@campaign_app.command("show")
def show(slug: str, as_json: JsonOption = False) -> None:
    """One campaign's settings and its standings by region."""
    from quizzes import campaigns

    region = settings().region

    async def work(session: Any) -> dict[str, Any]:
        campaign = await campaigns.named(session, slug)
        return {**_described(campaign), **await campaigns.leaderboard(session, region, campaign)}

    shown = _run(work)
    if as_json:
        print_json(shown)
        return
    for key in ("slug", "name", "audience", "state", "open", "questions", "attempts_per_day", "pass_mark", "start",
                "end"):
        print(f"{key}: {shown[key]}")
    table = Table("region", "participants", "rate", "mean score")
    for r in shown["regions"]:
        table.add_row(r["name"], str(r["participants"]), "-" if r["rate"] is None else f"{r['rate']:.2%}",
                      "-" if r["mean_score"] is None else str(r["mean_score"]))
    console.print(table)


@app.command("stats")
def stats(slug: str, as_json: JsonOption = False) -> None:
    """Participants, attempts, pass rate and mean score; by region, by question and by category (weakest first)."""
    from quizzes import campaigns

    region = settings().region

    async def work(session: Any) -> dict[str, Any]:
        campaign = await campaigns.named(session, slug)
        return await campaigns.stats(session, region, campaign)

    figures = _run(work)
    if as_json:
        print_json(figures)
        return
    rate = "-" if figures["pass_rate"] is None else f"{figures['pass_rate']:.0%}"
    print(f"{slug}: {figures['players']} players, {figures['attempts']} finished attempts "
          f"({figures['unfinished']} unfinished, {figures['on_paper']} on paper), pass rate {rate}, "
          f"mean score {figures['mean_score'] if figures['mean_score'] is not None else '-'}")
    for title, key in (("weakest categories", "categories"), ("weakest questions", "questions")):
        table = Table(title, "answered", "right")
        for row in figures[key][:10]:
            table.add_row(row["id"], str(row["answered"]), f"{row['correct_rate']:.0%}")
        console.print(table)


@app.command("record")
def record(slug: str,
           region: Annotated[str, typer.Option("--region", help="The village (or school) code the player is from.")],
           score: Annotated[int, typer.Option("--score", help="Questions answered right.")],
           recorder: Annotated[str, typer.Option("--as", help="Your name (the cadre or grid worker); audited.")],
           name: Annotated[str | None, typer.Option("--name", help="The player's name, if they want it shown.")] = None,
           total: Annotated[int | None, typer.Option("--total", help="Questions on the paper (default: the "
                                                                        "campaign's).")] = None) -> None:
    """Record the result of a resident who answered on paper (proxy entry)."""
    from quizzes import campaigns

    region_settings = settings().region

    async def work(session: Any) -> int:
        campaign = await campaigns.named(session, slug)
        attempt = await campaigns.record_paper(session, region_settings, campaign, place=region, score=score,
                                               recorded_by=recorder, name=name, total=total)
        return attempt.answered

    out_of = _run(work)
    print(f"{slug}: recorded {score}/{out_of} on paper for {region}")


@app.command("export")
def export(slug: str, xlsx: Annotated[Path, typer.Option("--xlsx", help="The spreadsheet to write (.xlsx).")]) -> None:
    """A campaign's results as a spreadsheet: regions, players (names masked), questions and categories."""
    from bot import spreadsheets
    from quizzes import campaigns
    from quizzes import export as quiz_export
    from quizzes.campaigns import QuizError

    region = settings().region

    async def work(session: Any) -> None:
        campaign = await campaigns.named(session, slug)
        book = await quiz_export.build(session, region, campaign)
        try:
            spreadsheets.save(book, xlsx)
        except OSError as exc:
            raise QuizError("invalid", f"cannot write {xlsx}: {exc.strerror or exc}") from exc

    _run(work)
    print(f"{slug}: written to {xlsx}")
