"""Warning broadcasts at the platform's pace (issue 14), on PostgreSQL:

1. Enqueueing: one warning approved for R residents (default 100,000) writes one outbox row each; beside it, the
   database's own speed for the same number of rows (one INSERT … SELECT generate_series) in the same run.
2. Delivery: N Telegram recipients (default 10,000) sent by two `fangfei serve` processes to a fake Bot API that
   enforces a rate (default 100 messages/s overall, answering 429 above it), with 429s injected at 20 % and one
   process killed with SIGKILL at 40 %: the sustained rate against the enforced one, duplicates and losses.

    .venv/bin/python benchmarks/broadcast_bench.py [--recipients 10000] [--rate 100] [--enqueue 100000] [--db URL]

Targets: >= 95 % of the rate with the 429s and the kill, 0 lost, 0 duplicates beyond the copy the killed process
had in hand; 100,000 enqueued in <= 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tests.fake_telegram as fake_module  # noqa: E402
from benchmarks.quiz_bench import ensure_database  # noqa: E402
from bot.broadcasts import lifecycle  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.services import Services  # noqa: E402
from bot.storage.database import Database  # noqa: E402
from bot.storage.models import Subscriber  # noqa: E402
from bot.vault import Vault  # noqa: E402
from tests.fake_telegram import FakeTelegram  # noqa: E402
from tests.support import Server  # noqa: E402

SECRET = "broadcast-bench-secret-key-0123456789"
TABLES = "subscribers, outbox, broadcasts, rate_buckets, audit_log, conversations"


def services_for(url: str, **telegram: object) -> Services:
    base = load_settings(ROOT / "config.yaml")
    settings = base.model_copy(update={
        "secret_key": SECRET, "database": base.database.model_copy(update={"url": url}),
        "telegram": base.telegram.model_copy(update=telegram),
        "broadcasts": base.broadcasts.model_copy(update={"approvers": ["bench-approver"]})})
    db = Database(url)
    return dataclasses.replace(Services.create(settings, db=db), db=db)


async def reset(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")


async def add_subscribers(db: Database, channel: str, count: int, first: int) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(Subscriber.__table__.insert(), [
            {"channel": channel, "user_id": str(first + n), "audience": "elderly", "active": True, "reachable": True}
            for n in range(count)])


async def send(services: Services, text: str, channels: list[str]) -> tuple[int, float]:
    async with services.db.transaction() as session:
        made = await lifecycle.create(session, services.settings, text=text, template=None, audience="all",
                                      townships=[], villages=[], channels=channels, send_at=None, urgent=True,
                                      drafted_by="bench-drafter")
    t = time.perf_counter()
    async with services.db.transaction() as session:
        await lifecycle.approve(session, services.settings, await lifecycle.named(session, made.id), "bench-approver")
    return made.id, time.perf_counter() - t


async def enqueueing(url: str, count: int) -> None:
    services = services_for(url)
    db = services.db
    await reset(db)
    await add_subscribers(db, "web", count, 1)
    async with db.engine.begin() as conn:
        t = time.perf_counter()
        await conn.exec_driver_sql(
            "INSERT INTO outbox (dedup, channel, target, payload, status, attempts, unknowns, next_attempt_at, "
            "created_at, priority, quiet) SELECT 'base:' || n, 'warn-notice', n::text, "
            "'{\"text\": \"x\", \"channel\": \"web\"}', 'cancelled', 0, 0, now(), now(), -1, false "
            f"FROM generate_series(1, {count}) AS n")
        baseline = time.perf_counter() - t
    _, took = await send(services, "【防非提醒】压测。", ["web"])
    print(f"enqueue {count:,} recipients    {took:6.2f} s  ({count / took:8.0f} rows/s; target <= 10 s)   "
          f"database alone {baseline:5.2f} s  ratio {took / baseline:5.1f}x")
    await reset(db)
    await db.close()


async def delivery(url: str, recipients: int, rate: float) -> None:
    fake_module.GLOBAL_RATE = (int(rate), 1.0)
    with FakeTelegram(enforce_rate_limits=True) as fake:
        services = services_for(url, token=fake.token, base_url=fake.base_url)
        db = services.db
        await reset(db)
        await add_subscribers(db, "telegram", recipients, 10_000_000)
        env = {"FANGFEI_DATABASE__URL": url, "FANGFEI_SECRET_KEY": SECRET, "FANGFEI_LOG__LEVEL": "WARNING",
               "FANGFEI_TELEGRAM__TOKEN": fake.token, "FANGFEI_TELEGRAM__BASE_URL": fake.base_url,
               "FANGFEI_TELEGRAM__WEBHOOK_SECRET": "bench",
               "FANGFEI_TELEGRAM__MAX_MESSAGES_PER_SECOND": str(rate * 0.97),  # a little below the enforced rate
               "FANGFEI_OUTBOX__LEASE_SECONDS": "5", "FANGFEI_OUTBOX__UNKNOWN_PAUSE_MINUTES": "0.05"}
        servers = [Server(env) for _ in range(2)]
        for server in servers:
            server.env["FANGFEI_TELEGRAM__WEBHOOK_URL"] = f"{server.base}/telegram/webhook"
            server.start()
        injected = killed = False
        killed_at = injected_at = float("inf")
        try:
            broadcast_id, _ = await send(services, "【防非提醒】有人上门推销“养老项目”，请不要交钱。", ["telegram"])
            while True:
                async with db.session() as session:
                    shown = await lifecycle.progress(session, services.settings,
                                                     await lifecycle.named(session, broadcast_id))
                done = recipients - shown["pending"]
                if not injected and done >= recipients * 0.2:
                    fake.fail("sendMessage", 429, times=3, retry_after=1)
                    injected, injected_at = True, time.time()
                if not killed and done >= recipients * 0.4:
                    servers[0].proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
                    killed, killed_at = True, time.time()
                if shown["pending"] == 0:
                    break
                await asyncio.sleep(0.5)
        finally:
            for server in servers:
                if server.proc and server.proc.poll() is None:
                    server.stop()
        sends = [r for r in fake.sent if r["method"].lower() == "sendmessage"]
        chats = [r["chat_id"] for r in sends]
        unique = len(set(chats))
        elapsed = sends[-1]["time"] - sends[0]["time"] if len(sends) > 1 else float("nan")
        limited = len([c for c in fake.calls if c["method"].lower() == "sendmessage"]) - len(sends)
        print(f"delivery {recipients:,} recipients, 2 processes, rate {rate:.0f}/s enforced, 3 injected 429s, "
              f"1 SIGKILL at 40 %")
        sustained = len(sends) / elapsed
        before = [r for r in sends if r["time"] < killed_at]
        after = [r for r in sends if r["time"] >= killed_at]
        two = len(before) / (killed_at - sends[0]["time"])
        one = len(after) / (sends[-1]["time"] - killed_at) if len(after) > 1 else float("nan")
        print(f"  sustained {sustained:7.1f} msg/s over {elapsed:5.1f} s  = {sustained / rate:.1%} of the rate "
              "(target >= 95 %)")
        print(f"  two processes {two:6.1f} msg/s before the kill, one {one:6.1f} msg/s after")
        print(f"  delivered {unique:,}/{recipients:,}  lost {recipients - unique}  duplicates {len(chats) - unique}  "
              f"refused by the fake (429) {limited}  states {shown['sent']} sent, {shown['failed']} failed")
        start = sends[0]["time"]
        marks = [f"{v['time'] - start:.1f}s" for v in fake.rate_violations if v["scope"] == "global"]
        print(f"  the fake's own 429s (over its window) at {', '.join(marks) or 'none'}; injected at "
              f"{injected_at - start:.1f}s, kill at {killed_at - start:.1f}s")
        await reset(db)
        await db.close()


async def bare(count: int = 2000, concurrency: int = 8) -> float:
    """The baseline: python-telegram-bot's Bot alone sending to the same fake (no limit, no database)."""
    from telegram import Bot

    with FakeTelegram() as fake:
        async with Bot(fake.token, base_url=fake.base_url) as bot:
            queue = list(range(count))

            async def worker() -> None:
                while queue:
                    await bot.send_message(20_000_000 + queue.pop(), "x")

            t = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return count / (time.perf_counter() - t)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--enqueue", type=int, default=100_000)
    parser.add_argument("--db", default="postgresql+asyncpg://postgres@127.0.0.1:5432/broadcast_bench")
    args = parser.parse_args()
    await ensure_database(args.db)
    await Database(args.db).upgrade(Vault(SECRET))
    print(f"{os.cpu_count()} cores; PostgreSQL at {args.db.rsplit('@', 1)[-1]}")
    await enqueueing(args.db, args.enqueue)
    print(f"baseline: the Bot alone sends {await bare():7.1f} msg/s to the same fake (8 at once, no limit)")
    await delivery(args.db, args.recipients, args.rate)


if __name__ == "__main__":
    asyncio.run(main())
