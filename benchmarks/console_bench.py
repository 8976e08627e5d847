"""The staff console at county scale, on PostgreSQL through `fangfei serve`: a ledger of N tips (default 10,000,
over every township, category and status, two years of filing dates), then a signed-in staff member's page loads
one after another: the tips list unfiltered, filtered (township + status), a deep page, and the Today page; p50
and p99 beside `/healthz` (one database round trip through the same server) in the same run.

    .venv/bin/python benchmarks/console_bench.py [--tips 10000] [--rounds 100] [--db URL]

Targets (issue 16): the tips list with a filter p99 <= 200 ms per page; the Today page <= 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from benchmarks.quiz_bench import ensure_database  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.staff import accounts  # noqa: E402
from bot.storage.database import Database  # noqa: E402
from bot.storage.models import Tip, TipChange, utcnow  # noqa: E402
from bot.vault import Vault  # noqa: E402
from knowledge.schema import load_taxonomy  # noqa: E402
from tests.console_support import PASSWORD, sign_in  # noqa: E402
from tests.support import Server  # noqa: E402

SECRET = "console-bench-secret-key-0123456789abc"
STATUSES = ("new", "verifying", "referred", "closed")


def timings(samples: list[float]) -> tuple[float, float, str]:
    ordered = sorted(samples)
    p50, p99 = statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return p50, p99, f"p50 {p50 * 1000:7.2f} ms  p99 {p99 * 1000:7.2f} ms"


async def seed(url: str, count: int) -> None:
    db = Database(url)
    vault = Vault(SECRET)
    await db.upgrade(vault)
    async with db.engine.begin() as conn:
        await conn.execute(text("TRUNCATE tips, tip_changes, tip_evidence, staff_accounts, staff_sessions, audit_log "
                                "RESTART IDENTITY CASCADE"))
    settings = load_settings(ROOT / "config.yaml")
    towns = [t.name for t in settings.region.townships]
    categories = list(load_taxonomy())
    rng = random.Random(16)
    now = utcnow()
    sealed = vault.seal("bench-reporter")
    rows = [{"receipt": f"FF-2025-{n:06d}", "channel": rng.choice(("wechat", "telegram", "web")),
             "reporter": f"{n:064x}"[-64:], "reporter_sealed": sealed, "status": rng.choice(STATUSES),
             "category": rng.choice(categories), "township": rng.choice(towns), "village": None, "place": None,
             "what": f"第{n}条线索：有人推销保本高息理财，说每月返利百分之三，拉人还有奖励。", "anonymous": True,
             "fingerprint": f"{n:064x}", "created_at": now - timedelta(minutes=rng.randrange(0, 2 * 365 * 24 * 60)),
             "updated_at": now} for n in range(1, count + 1)]
    async with db.transaction() as session:
        for start in range(0, count, 2000):
            await session.execute(insert(Tip), rows[start:start + 2000])
        await session.execute(insert(TipChange), [{"tip_id": n, "actor": "web:reporter", "field": "status",
                                                   "old": None, "new": "new", "at": now}
                                                  for n in range(1, count + 1)])
        await accounts.add(session, settings.model_copy(update={"secret_key": SECRET}), "基准科长", "admin", [],
                           PASSWORD)
    async with db.engine.begin() as conn:
        await conn.execute(text("ANALYZE"))
    await db.close()


async def measure(base: str, rounds: int) -> dict[str, list[float]]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        assert (await sign_in(client, "基准科长")).status_code == 303
        pages = {"healthz (baseline)": "/healthz", "tips, no filter": "/console/tips",
                 "tips, township + status": "/console/tips?township=河口乡&status=new",
                 "tips, page 100": "/console/tips?page=100", "Today": "/console/"}
        for path in pages.values():  # warm up: templates compiled, pools filled
            assert (await client.get(path)).status_code == 200, path
        samples: dict[str, list[float]] = {name: [] for name in pages}
        for _ in range(rounds):
            for name, path in pages.items():
                started = time.perf_counter()
                answer = await client.get(path)
                samples[name].append(time.perf_counter() - started)
                assert answer.status_code == 200
        return samples


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tips", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--db", default="postgresql+asyncpg://postgres@127.0.0.1:5432/console_bench")
    args = parser.parse_args()
    await ensure_database(args.db)
    started = time.perf_counter()
    await seed(args.db, args.tips)
    print(f"seeded {args.tips:,} tips in {time.perf_counter() - started:.1f} s")
    server = Server({"FANGFEI_DATABASE__URL": args.db, "FANGFEI_SECRET_KEY": SECRET, "FANGFEI_LOG__LEVEL": "WARNING"})
    await asyncio.to_thread(server.start)
    try:
        samples = await measure(server.base, args.rounds)
    finally:
        await asyncio.to_thread(server.stop)
    _, base_p99, _ = timings(samples["healthz (baseline)"])
    targets = {"tips, township + status": 0.200, "tips, no filter": 0.200, "tips, page 100": 0.200, "Today": 0.300}
    for name, values in samples.items():
        _, p99, line = timings(values)
        target = targets.get(name)
        verdict = f"  target p99 <= {target * 1000:.0f} ms: {'met' if p99 <= target else 'NOT met'}" if target else ""
        ratio = f"  ({p99 / base_p99:5.1f}x baseline p99)" if name in targets else ""
        print(f"{name:<26} {line}{ratio}{verdict}")


if __name__ == "__main__":
    asyncio.run(main())
