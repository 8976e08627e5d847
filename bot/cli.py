"""The `fangfei` command."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bot.config import ConfigError, Settings, load_settings

app = typer.Typer(help="fangfei 防非 — an assistant against illegal fundraising.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
kb_app = typer.Typer(help="The knowledge base: validate it, see what residents asked that it could not answer.")
db_app = typer.Typer(help="The database schema.")
eval_app = typer.Typer(help="Quality figures on labelled JSONL sets.")
app.add_typer(kb_app, name="kb")
app.add_typer(db_app, name="db")
app.add_typer(eval_app, name="eval")
console = Console()


def say_error(line: str) -> None:
    """One plain line on stderr (never wrapped, so scripts can read it)."""
    sys.stderr.write(line + "\n")


class State:
    config: str | None = None


@app.callback()
def _options(config: Annotated[str | None, typer.Option("--config", help="Config file (default: ./config.yaml, "
                                                          "or FANGFEI_CONFIG).")] = None) -> None:
    State.config = config


def settings() -> Settings:
    try:
        s = load_settings(State.config)
    except ConfigError as exc:
        for line in exc.problems:
            say_error(line)
        raise typer.Exit(2) from exc
    logging.basicConfig(level=s.log.level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("jieba", "httpx", "aiosqlite", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return s


def services(s: Settings):
    from bot.services import Services

    return Services.create(s)


def run_fast(coro: Coroutine[Any, Any, None]) -> None:
    """Run the server on uvloop when it is installed (it is, with uvicorn[standard]); asyncio otherwise."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


def _lines(text: str | None, batch: Path | None) -> list[str]:
    if batch is not None:
        source = sys.stdin.read() if str(batch) == "-" else batch.read_text(encoding="utf-8")
        return [line for line in source.splitlines() if line.strip()]
    if text is None:
        say_error("Give a TEXT or --batch FILE.")
        raise typer.Exit(2)
    return [text]


def _print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


async def _prepare(s: Settings) -> object:
    """Open the database; an empty SQLite file is migrated, PostgreSQL must be migrated with `db upgrade`."""
    from sqlalchemy.exc import SQLAlchemyError

    from bot.engine import Engine

    try:
        svc = services(s)
        if svc.db.is_sqlite:
            await svc.db.upgrade()
        current = await svc.db.is_current()
    except (OSError, SQLAlchemyError) as exc:
        say_error(f"cannot open the database {_safe_url(s.database.url)}: {' '.join(str(exc).split())[:300]}")
        raise typer.Exit(2) from exc
    if not current:
        await svc.db.close()
        say_error("The database schema is not up to date: run `fangfei db upgrade` first.")
        raise typer.Exit(2)
    return Engine(svc)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command()
def chat() -> None:
    """Talk to the bot here; from a pipe, one message a line, replies printed, exit at end of input."""
    from bot.channels import local

    s = settings()

    async def main() -> None:
        engine = await _prepare(s)
        try:
            await local.run(engine)  # type: ignore[arg-type]
        finally:
            await engine.services.db.close()  # type: ignore[attr-defined]

    asyncio.run(main())


@app.command()
def serve() -> None:
    """Serve the web chat, its API and the messaging channels over HTTP."""
    import uvicorn

    from bot.web.app import create_app

    s = settings()

    log = logging.getLogger("fangfei")

    async def main() -> None:
        from starlette.routing import Route

        from bot.channels.telegram import TelegramChannel
        from bot.channels.wechat import WeChatChannel

        engine = await _prepare(s)
        routes: list[Route] = []
        wechat = WeChatChannel(engine, s.wechat) if s.wechat.enabled else None  # type: ignore[arg-type]
        if wechat is not None:
            routes += wechat.routes()
            log.info("wechat: on at %s (%s mode)", s.wechat.path, "safe" if s.wechat.safe_mode else "plain")
        else:
            log.info("wechat: off (set FANGFEI_WECHAT__TOKEN to turn it on)")
        telegram = None
        if s.telegram.token:
            telegram = TelegramChannel(engine, s.telegram)  # type: ignore[arg-type]
            if s.telegram.webhook_url:
                routes.append(Route(s.telegram.webhook_path, telegram.webhook, methods=["POST"]))
        else:
            log.info("telegram: off (no token; set FANGFEI_TELEGRAM__TOKEN to turn it on)")
        server = uvicorn.Server(uvicorn.Config(create_app(engine, routes), host=s.http.host,  # type: ignore[arg-type]
                                               port=s.http.port, log_level=s.log.level.lower(), access_log=False))
        # the knowledge index and dictionaries live as long as the process: keep the garbage collector from
        # walking their millions of objects again and again (benchmarks/wechat_bench.py: about 8 % of the CPU
        # per message)
        gc.collect()
        gc.freeze()
        try:
            if telegram is not None:
                try:
                    await telegram.start()
                except Exception as exc:  # the web chat keeps serving; the operator sees why Telegram is off
                    log.error("telegram: could not start (%s: %s); serving without it", exc.__class__.__name__,
                              " ".join(str(exc).split())[:200])
                    await telegram.stop()
                    telegram = None
            log.info("fangfei serving on http://%s:%s", s.http.host, s.http.port)
            await server.serve()
        finally:
            if telegram is not None:
                await telegram.stop()
            if wechat is not None:
                await wechat.close()
            await engine.services.db.close()  # type: ignore[attr-defined]

    run_fast(main())


@app.command()
def ask(text: Annotated[str | None, typer.Argument()] = None,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON object per query.")] = False,
        top: Annotated[int, typer.Option("--top", min=1, max=20)] = 3,
        batch: Annotated[Path | None, typer.Option("--batch", help="One query a line; - for stdin.")] = None) -> None:
    """Search the knowledge base."""
    s = settings()
    svc = services(s)
    for query in _lines(text, batch):
        result = svc.search(query, top=top)
        best = result.best
        answer = (svc.fill(f"{best.entry.title}：{best.entry.summary}") if result.matched and best
                  else svc.fill("这个问题我还答不上来。可以换个说法再问，或者打 {hotline} 咨询。"))
        if as_json:
            _print_json({"query": query, "matched": result.matched, "answer": answer, "results": [
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
    svc = services(s)
    for line in _lines(text, batch):
        report = svc.risk.check(line)
        entry = svc.explain(line, report.category)
        obj = {"text": line, "risky": report.risky, "level": report.level,
               "signals": [{"feature": sig.feature, "evidence": sig.evidence} for sig in report.signals],
               "advice": report.advice, "entry": entry.id if entry else None}
        if as_json:
            _print_json(obj)
            continue
        console.print(f"[bold]{report.level}[/bold]  risky={report.risky}  entry={obj['entry']}")
        for sig in report.signals:
            console.print(f"  {sig.feature}: {sig.evidence}", markup=False)
        console.print(report.advice, markup=False)


@kb_app.command("check")
def kb_check(directory: Annotated[Path | None, typer.Option("--dir", help="Entries folder (default: the bundled "
                                                             "knowledge base).")] = None) -> None:
    """Validate every entry; print `file: entry: field: problem` lines and exit 1 on any problem."""
    from knowledge import schema

    s = settings()
    kb, problems = schema.load(directory or schema.ENTRIES_DIR, region_keys=set(s.region.placeholders()))
    for p in problems:
        print(p)
    if problems:
        say_error(f"{len(problems)} problem(s) in {len(kb.entries)} loaded entries.")
        raise typer.Exit(1)
    print(f"ok: {len(kb.entries)} entries in {len(kb.categories)} categories")


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
                await db.upgrade()
            async with db.session() as session:
                return await top_gaps(session, limit)
        finally:
            await db.close()

    rows = asyncio.run(main())
    if as_json:
        _print_json([{"text": t, "count": n} for t, n in rows])
        return
    if not rows:
        print("no unanswered questions recorded")
    for t, n in rows:
        print(f"{n:5d}  {t}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the newest version."""
    from bot.storage.database import Database

    s = settings()

    async def main() -> None:
        db = Database(s.database.url)
        try:
            await db.upgrade()
        finally:
            await db.close()

    asyncio.run(main())
    print("database schema is up to date")


wechat_app = typer.Typer(help="The WeChat Official Account.")
app.add_typer(wechat_app, name="wechat")


@wechat_app.command("menu")
def wechat_menu() -> None:
    """Publish the custom menu defined in config.yaml (wechat.menu)."""
    from bot.channels.wechat_api import WeChatApi, WeChatApiError
    from bot.config import MenuButton
    from bot.storage.database import Database

    s = settings()
    if not (s.wechat.app_id and s.wechat.app_secret and s.wechat.menu):
        say_error("wechat menu: set wechat.app_id, FANGFEI_WECHAT__APP_SECRET and wechat.menu first")
        raise typer.Exit(2)

    def button(b: MenuButton) -> dict[str, object]:
        if b.sub:
            return {"name": b.name, "sub_button": [button(x) for x in b.sub]}
        return {"type": "view", "name": b.name, "url": b.url} if b.url else {"type": "click", "name": b.name,
                                                                               "key": b.key}

    async def main() -> tuple[bool, str]:
        db = Database(s.database.url)
        api = WeChatApi(s.wechat, db)
        try:
            if db.is_sqlite:
                await db.upgrade()
            result = await api.create_menu([button(b) for b in s.wechat.menu])
            return result.ok, f"errcode {result.errcode} {result.errmsg}"
        except WeChatApiError as exc:
            return False, str(exc)
        finally:
            await api.close()
            await db.close()

    ok, detail = asyncio.run(main())
    if not ok:
        say_error(f"wechat menu: not published: {detail}")
        raise typer.Exit(1)
    print("wechat menu published")


@eval_app.command("kb")
def eval_kb(file: Path, show_misses: Annotated[bool, typer.Option("--misses")] = False) -> None:
    """Top-1, top-3 and no-match accuracy, ours beside plain BM25."""
    from bot.evaluation import read_jsonl, score_kb
    from knowledge.search import PlainBM25

    s = settings()
    svc = services(s)
    cases = read_jsonl(file)
    ours = score_kb(cases, lambda q: svc.search(q))
    base = score_kb(cases, PlainBM25(svc.kb).search)
    _figures_table(f"knowledge search on {file.name}", ours.figures(), base.figures())
    if show_misses:
        for m in ours.misses:
            print("  miss:", m)


@eval_app.command("risk")
def eval_risk(file: Path, show_misses: Annotated[bool, typer.Option("--misses")] = False) -> None:
    """Recall and specificity of the risk check, beside a keyword baseline."""
    from bot.evaluation import KeywordBaseline, read_jsonl, risk_checker_is_risky, score_risk

    s = settings()
    svc = services(s)
    cases = read_jsonl(file)
    ours = score_risk(cases, risk_checker_is_risky(svc.risk))
    base = score_risk(cases, KeywordBaseline().is_risky)
    _figures_table(f"risk check on {file.name}", ours.figures(), base.figures())
    if show_misses:
        for m in ours.misses:
            print("  miss:", m)


def _figures_table(title: str, ours: dict[str, float], base: dict[str, float]) -> None:
    table = Table(title=title)
    for col in ("figure", "fangfei", "baseline"):
        table.add_column(col)
    for key in ours:
        table.add_row(key, f"{ours[key]}", f"{base[key]}")
    console.print(table)
    # one plain line per figure, for scripts
    print(" ".join(f"{k}={v}" for k, v in ours.items()), "| baseline", " ".join(f"{k}={v}" for k, v in base.items()))


def main() -> None:
    app()
