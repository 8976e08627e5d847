"""Talking to the bot: `chat` here in a terminal, `serve` over HTTP (web chat, WeChat, Telegram)."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from collections.abc import Coroutine
from typing import Any

import typer

from bot.cli.common import open_engine, say_error, settings

app = typer.Typer()


@app.command()
def chat() -> None:
    """Talk to the bot here; from a pipe, one message a line, replies printed, exit at end of input."""
    from bot.channels import local

    s = settings()

    async def main() -> None:
        engine = await open_engine(s)
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
        from starlette.routing import Route

        from bot.channels.telegram import TelegramChannel
        from bot.channels.wechat import WeChatChannel
        from bot.delivery import OutboxWorker, start_dispatcher
        from bot.scheduler import Jobs, start_scheduler

        engine = await open_engine(s)
        outbox: OutboxWorker | None = None
        jobs: Jobs | None = None
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
        server = Server(uvicorn.Config(create_app(engine, routes,  # type: ignore[arg-type]
                                                  wechat.api if wechat is not None else None), host=s.http.host,
                                       port=s.http.port, log_level=s.log.level.lower(), access_log=False,
                                       root_path=s.http.root_path,
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
            jobs = start_scheduler(engine.services,  # type: ignore[attr-defined]
                                   groups=[telegram.groups] if telegram is not None else [])
            await server.serve(sockets=[sock])
        finally:
            if jobs is not None:
                await jobs.stop()
            if outbox is not None:
                await outbox.stop()
            if telegram is not None:
                await telegram.stop()
            if wechat is not None:
                await wechat.close()
            await engine.services.db.close()  # type: ignore[attr-defined]

    with sock:
        _run_fast(main())


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


def _run_fast(coro: Coroutine[Any, Any, None]) -> None:
    """Run the server on uvloop when it is installed (it is, with uvicorn[standard]); asyncio otherwise."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)
