"""The `fangfei` command."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import socket
import sys
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from bot import logs
from bot.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.storage.database import Database
    from bot.storage.models import Tip, TipChange, TipEvidence
    from bot.vault import Vault

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
    logs.install(s)  # on the handler: every logger's records, ours, python-telegram-bot's, httpx's, uvicorn's
    # httpx logs every request's URL at INFO (redacted, but one line per message sent): only at DEBUG
    for noisy in ("jieba", "aiosqlite", "alembic.runtime.migration", "alembic.runtime.plugins",
                  *(("httpx",) if s.log.level != "DEBUG" else ())):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # python-telegram-bot's DEBUG lines hold whole updates and sendMessage parameters: residents' words and ids
    logging.getLogger("telegram").setLevel(max(logging.INFO, logging.getLevelName(s.log.level)))
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


def _existing(path: Path, label: str, folder: bool = False) -> Path:
    """A file (or folder) argument that must be there: otherwise one line, exit 2 (not a traceback, nor an empty
    result)."""
    kind = "folder" if folder else "file"
    if not path.exists():
        say_error(f"{label}{path}: no such {kind}")
        raise typer.Exit(2)
    if path.is_dir() != folder:
        say_error(f"{label}{path}: not a {kind}")
        raise typer.Exit(2)
    return path


def _read_text(path: Path, label: str) -> str:
    try:
        return _existing(path, label).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        say_error(f"{label}{path}: cannot read it: {reason or exc}")
        raise typer.Exit(2) from exc


def _lines(text: str | None, batch: Path | None) -> list[str]:
    if batch is not None:
        source = sys.stdin.read() if str(batch) == "-" else _read_text(batch, "--batch: ")
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

    svc = None
    try:
        svc = services(s)
        if svc.db.is_sqlite:
            await svc.db.upgrade(svc.vault)
        current = await svc.db.is_current()
    except (OSError, SQLAlchemyError) as exc:
        if svc is not None:  # before the loop ends: aiosqlite's thread would answer into a closed loop
            await svc.db.close()
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
    sock = _bind(s.http.host, s.http.port)  # before anything starts: a port in use is said at once, in one line

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)  # listens on the bound socket; exits the process if the app cannot start
            log.info("fangfei serving on http://%s:%s", s.http.host, s.http.port)

    async def main() -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler
        from starlette.routing import Route

        from bot.channels.telegram import TelegramChannel
        from bot.channels.wechat import WeChatChannel
        from bot.scheduler import start_scheduler
        from bot.tips.alerts import OutboxWorker, start_dispatcher

        engine = await _prepare(s)
        outbox: OutboxWorker | None = None
        scheduler: AsyncIOScheduler | None = None
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
        server = Server(uvicorn.Config(create_app(engine, routes), host=s.http.host,  # type: ignore[arg-type]
                                       port=s.http.port, log_level=s.log.level.lower(), access_log=False,
                                       # uvicorn's records go to our handler (and its redaction), not its own
                                       log_config=None,
                                       # nothing reads client addresses; no per-response extras
                                       proxy_headers=False, server_header=False, date_header=False))
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
            # staff alerts and reporters' notices: delivered from the durable outbox, beside the web server
            outbox = start_dispatcher(engine.services,  # type: ignore[attr-defined]
                                      telegram_bot=telegram.app.bot if telegram is not None else None,
                                      wechat_api=wechat.api if wechat is not None else None)
            scheduler = start_scheduler(engine.services)  # type: ignore[attr-defined]
            await server.serve(sockets=[sock])
        finally:
            if scheduler is not None:
                scheduler.shutdown(wait=False)
            if outbox is not None:
                await outbox.stop()
            if telegram is not None:
                await telegram.stop()
            if wechat is not None:
                await wechat.close()
            await engine.services.db.close()  # type: ignore[attr-defined]

    with sock:
        run_fast(main())


def _bind(host: str, port: int) -> socket.socket:
    """The server's socket, bound but not listening yet (uvicorn listens once the app has started): connections
    are refused until then. A port in use, or an address not of this machine: one line, exit 2."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart at once after a stop
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        say_error(f"cannot serve on {host}:{port}: {exc.strerror or exc}")
        raise typer.Exit(2) from exc
    return sock


@app.command()
def ask(text: Annotated[str | None, typer.Argument()] = None,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON object per query.")] = False,
        top: Annotated[int, typer.Option("--top", min=1, max=20)] = 3,
        batch: Annotated[Path | None, typer.Option("--batch", help="One query a line; - for stdin.")] = None) -> None:
    """Search the knowledge base."""
    s = settings()
    queries = _lines(text, batch)
    svc = services(s)
    for query in queries:
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
    texts = _lines(text, batch)
    svc = services(s)
    for line in texts:
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
    if directory is not None:
        _existing(directory, "--dir: ", folder=True)
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
                await db.upgrade(_vault(s))
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
            await db.upgrade(_vault(s))
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
                await db.upgrade(_vault(s))
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
    from bot.evaluation import score_kb
    from knowledge.search import PlainBM25

    s = settings()
    cases = _cases(file)
    svc = services(s)
    ours = score_kb(cases, lambda q: svc.search(q))
    base = score_kb(cases, PlainBM25(svc.kb).search)
    _figures_table(f"knowledge search on {file.name}", ours.figures(), base.figures())
    if show_misses:
        for m in ours.misses:
            print("  miss:", m)


@eval_app.command("risk")
def eval_risk(file: Path, show_misses: Annotated[bool, typer.Option("--misses")] = False) -> None:
    """Recall and specificity of the risk check, beside a keyword baseline."""
    from bot.evaluation import KeywordBaseline, risk_checker_is_risky, score_risk

    s = settings()
    cases = _cases(file)
    svc = services(s)
    ours = score_risk(cases, risk_checker_is_risky(svc.risk))
    base = score_risk(cases, KeywordBaseline().is_risky)
    _figures_table(f"risk check on {file.name}", ours.figures(), base.figures())
    if show_misses:
        for m in ours.misses:
            print("  miss:", m)


def _cases(file: Path) -> list[dict]:
    """A labelled JSONL set. Missing, unreadable or not JSON lines: one line, exit 2."""
    from bot.evaluation import read_jsonl

    try:
        return read_jsonl(_existing(file, ""))
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        say_error(f"{file}: not a readable JSONL set: {' '.join(str(exc).split())[:200]}")
        raise typer.Exit(2) from exc


def _figures_table(title: str, ours: dict[str, float], base: dict[str, float]) -> None:
    table = Table(title=title)
    for col in ("figure", "fangfei", "baseline"):
        table.add_column(col)
    for key in ours:
        table.add_row(key, f"{ours[key]}", f"{base[key]}")
    console.print(table)
    # one plain line per figure, for scripts
    print(" ".join(f"{k}={v}" for k, v in ours.items()), "| baseline", " ".join(f"{k}={v}" for k, v in base.items()))


tips_app = typer.Typer(help="The tip ledger (台账): list, show, update and export tips. Times are Asia/Shanghai.")
app.add_typer(tips_app, name="tips")
StatusOption = Annotated[str | None, typer.Option("--status", help="Only tips in this status: new, verifying, "
                                                                      "referred or closed.")]
AsOption = Annotated[str | None, typer.Option("--as", help="Your staff name, for the history and the audit log "
                                                              "(default: the OS user name).")]
RevealOption = Annotated[bool, typer.Option("--reveal", help="Add the reporter's name and contact (only for a name "
                                                               "in tips.handlers; every reveal is audited).")]
STAFF_NAME_MAX = 48
def _staff_name(given: str | None) -> str:
    """The name given with --as, or the OS user name; blanks collapsed."""
    import getpass

    if given is None:
        try:
            given = getpass.getuser()
        except (OSError, KeyError):  # no login name and no passwd entry (some containers)
            given = ""
    name = " ".join(given.split())
    if not name:
        say_error("Give your staff name with --as NAME.")
        raise typer.Exit(2)
    if len(name) > STAFF_NAME_MAX:
        say_error(f"--as: at most {STAFF_NAME_MAX} characters")
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
    """Before anything is read: only the staff listed in tips.handlers may see who reported a tip."""
    if name not in s.tips.handlers:
        say_error(f"refused: {name!r} is not in tips.handlers, so no reporter's identity is revealed")
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


def _vault(s: Settings) -> Vault:
    from bot.vault import Vault, secret_key

    return Vault(lambda: secret_key(s))


async def _open_ledger(s: Settings) -> Database:
    """Open the database for the tip commands: an empty SQLite file is migrated, PostgreSQL must be current."""
    from sqlalchemy.exc import SQLAlchemyError

    from bot.storage.database import Database

    db = Database(s.database.url, s.database.echo, s.database.pool_size)
    try:
        if db.is_sqlite:
            await db.upgrade(_vault(s))
        current = await db.is_current()
    except (OSError, SQLAlchemyError) as exc:
        await db.close()
        say_error(f"cannot open the database {_safe_url(s.database.url)}: {' '.join(str(exc).split())[:300]}")
        raise typer.Exit(2) from exc
    if not current:
        await db.close()
        say_error("The database schema is not up to date: run `fangfei db upgrade` first.")
        raise typer.Exit(2)
    return db


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


@tips_app.command("list")
def tips_list(status: StatusOption = None,
              as_json: Annotated[bool, typer.Option("--json", help="One JSON array of tips.")] = False) -> None:
    """The tips in the ledger, oldest first (no reporter's identity)."""
    from bot.tips import ledger
    from bot.tips.export import local_time

    s = settings()
    _check_status(status)

    async def main() -> list[Tip]:
        db = await _open_ledger(s)
        try:
            async with db.session() as session:
                return await ledger.listing(session, status)
        finally:
            await db.close()

    tips = asyncio.run(main())
    if as_json:
        _print_json([{"receipt": t.receipt, "status": t.status, "category": t.category, "place": ledger.place_of(t),
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


@tips_app.command("show")
def tips_show(receipt: str, reveal: RevealOption = False, as_name: AsOption = None) -> None:
    """Every ledger field of a tip, its evidence and its full history; --reveal adds who reported it."""
    from bot.tips import ledger

    s = settings()
    name = _staff_name(as_name) if reveal else None
    if name is not None:
        _require_handler(s, name)

    async def main() -> list[str]:
        db = await _open_ledger(s)
        try:
            async with db.transaction() as session:
                tip, files, states = await _tip_with_evidence(session, receipt)
                lines = _tip_lines(tip, files, await ledger.history(session, tip), states)
                if name is None:
                    return lines
                if tip.anonymous:
                    return [*lines, "identity: anonymous tip: the reporter gave no name or contact; nothing revealed"]
                with _sealed("cannot open the reporter's identity"):
                    identity = await ledger.reveal(session, _vault(s), tip, _actor(name))
                # committed (with its audit row) before anything is shown
            return [*lines, f"identity (revealed to {name}; recorded in the audit log):",
                    f"  name     {identity.name or '-'}", f"  contact  {identity.contact or '-'}"]
        finally:
            await db.close()

    for line in asyncio.run(main()):
        print(line)


@tips_app.command("evidence")
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
        db = await _open_ledger(s)
        written: list[Path] = []
        try:
            async with db.transaction() as session:
                tip, files, states = await _tip_with_evidence(session, receipt)
                # every file opened before any is written: a failure leaves nothing on disk
                with _sealed("cannot open the files"):
                    opened = [await evidence.content(session, _vault(s), item) for item in files]
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


@tips_app.command("update")
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
    from bot.tips import ledger
    from handlers.report import tell_status
    from knowledge.schema import load_taxonomy

    s = settings()
    name = _staff_name(as_name)
    _check_status(status)
    if reason is not None and reason not in ledger.CLOSING_REASONS:
        say_error(f"unknown reason {reason!r}; one of: {', '.join(ledger.CLOSING_REASONS)}")
        raise typer.Exit(2)
    if reason is not None and status != "closed":
        say_error("--reason goes with --status closed")
        raise typer.Exit(2)
    note = (note.strip() or None) if note is not None else None
    assign = " ".join(assign.split()) if assign is not None else None
    if assign is not None and not 0 < len(assign) <= STAFF_NAME_MAX:
        say_error(f"--assign: a staff name of 1 to {STAFF_NAME_MAX} characters")
        raise typer.Exit(2)
    if category is not None and category not in (slugs := load_taxonomy()):
        say_error(f"unknown category {category!r}; one of: {', '.join(slugs)}")
        raise typer.Exit(2)
    if status is None and note is None and assign is None and category is None:
        say_error("nothing to change: give --status, --note, --assign or --category")
        raise typer.Exit(2)

    async def main() -> tuple[str, list[str], str | None]:
        db = await _open_ledger(s)
        try:
            async with db.transaction() as session:
                tip = await _find_tip(session, receipt)
                await session.refresh(tip, with_for_update=True)  # PostgreSQL: one staff change at a time
                try:
                    changes = await ledger.change(session, tip, _actor(name), status=status, reason=reason,
                                                  note=note, assignee=assign, category=category)
                except ledger.LedgerError as exc:
                    say_error(str(exc))
                    raise typer.Exit(1) from exc
                told: str | None = None
                if any(c.field == "status" for c in changes):
                    # in this transaction: the new status and the reporter's notice commit together
                    with _sealed(f"{tip.receipt}: not updated: cannot reach the reporter"):
                        told = await tell_status(session, s, _vault(s), tip, postgres=not db.is_sqlite)
            lines = [(f"note: {c.new}" if c.field == "note" else f"{c.field}: {c.old or '-'} → {c.new or '-'}")
                     for c in changes]
            return tip.receipt, lines, told
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


@tips_app.command("export")
def tips_export(xlsx: Annotated[Path, typer.Option("--xlsx", help="The spreadsheet to write (.xlsx).")],
                status: StatusOption = None, reveal: RevealOption = False, as_name: AsOption = None) -> None:
    """Write the ledger as a 台账 spreadsheet, one row per tip; --reveal adds reporters' names and contacts."""
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
        db = await _open_ledger(s)
        saved = False
        try:
            async with db.transaction() as session:
                tips = await ledger.listing(session, status)
                with _sealed("cannot open a reporter's identity"):
                    book = await export.build(session, tips, vault=_vault(s) if name else None,
                                              actor=_actor(name) if name else None)
                try:
                    export.save(book, xlsx, confidential=name is not None)
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


def main() -> None:
    app()
