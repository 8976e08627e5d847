"""Quiz standings at county scale: a campaign with N finished attempts (default 100,000, from N/2 players over
every village), then the leaderboard and a player's rank computed R times each (the rank counted, as the chat
does, and from the rank book a last answer on the page uses); p50 and p99 beside a bare `SELECT 1` on the same
connection pool in the same run.

    .venv/bin/python benchmarks/quiz_bench.py [--attempts 100000] [--rounds 50] [--db URL]

Needs PostgreSQL (default: the local server's database `quiz_bench`, made if missing). Answer throughput
through the JSON API: benchmarks/quiz_answers.py.
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

from sqlalchemy import insert, text  # noqa: E402

from bot.config import load_settings  # noqa: E402
from bot.storage.database import Database  # noqa: E402
from bot.storage.models import QuizAttempt, QuizCampaign, QuizPlayer, utcnow  # noqa: E402
from quizzes import campaigns, ranks  # noqa: E402


async def ensure_database(url: str) -> None:
    import asyncpg

    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql").rsplit("/", 1)[0] + "/postgres")
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


def timings(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:7.2f} ms  p99 {p99 * 1000:7.2f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--attempts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--db", default="postgresql+asyncpg://postgres@127.0.0.1:5432/quiz_bench")
    args = parser.parse_args()
    await ensure_database(args.db)
    settings = load_settings(ROOT / "config.yaml")
    db = Database(args.db)
    await db.upgrade()
    region = settings.region
    villages = [v.code for t in region.townships for v in t.villages]
    rng = random.Random(1)
    started = time.perf_counter()
    async with db.transaction() as session:
        await session.execute(text("TRUNCATE quiz_answers, quiz_attempts, quiz_players, quiz_campaigns CASCADE"))
        campaign = await campaigns.create(session, slug="bench", name="bench", audience="elderly", questions=10,
                                          attempts_per_day=3, open_now=True)
        players = max(1, args.attempts // 2)
        await session.execute(insert(QuizPlayer), [
            {"campaign_id": campaign.id, "key": f"{n:064d}", "name": f"王{n % 97}明", "region": rng.choice(villages),
             "on_paper": False, "created_at": utcnow()} for n in range(players)])
        ids = list((await session.execute(text("SELECT id FROM quiz_players WHERE campaign_id = :c"),
                                          {"c": campaign.id})).scalars())
        now = utcnow()
        rows = [{"token": f"t{n}", "campaign_id": campaign.id, "player_id": ids[n % len(ids)], "channel": "web",
                 "day": "2026-12-02", "drawn": {"questions": []}, "answered": 10, "score": rng.randint(0, 10),
                 "seconds": rng.uniform(30, 300), "started_at": now, "asked_at": now,
                 "finished_at": now - timedelta(seconds=n)} for n in range(args.attempts)]
        for i in range(0, len(rows), 10_000):
            await session.execute(insert(QuizAttempt), rows[i:i + 10_000])
        # each player's counting attempt, as finishing an attempt keeps it (quizzes/campaigns.py)
        await session.execute(text("""
            UPDATE quiz_players p SET best_attempt_id = b.id, best_score = b.score, best_seconds = b.seconds
            FROM (SELECT DISTINCT ON (player_id) player_id, id, score, seconds FROM quiz_attempts
                  ORDER BY player_id, score DESC, seconds, id) b
            WHERE b.player_id = p.id"""))
    async with db.engine.begin() as conn:
        await conn.execute(text("ANALYZE quiz_attempts"))
        await conn.execute(text("ANALYZE quiz_players"))
    print(f"seeded {args.attempts} attempts of {players} players in {time.perf_counter() - started:.1f} s")
    bare, board, rank = [], [], []
    async with db.session() as session:
        campaign = await session.get(QuizCampaign, campaign.id)
        assert campaign is not None
        some = await session.scalar(text("SELECT id FROM quiz_attempts ORDER BY id DESC LIMIT 1"))
        attempt = await session.get(QuizAttempt, some)
        assert attempt is not None
        for _ in range(args.rounds):
            t = time.perf_counter()
            await session.execute(text("SELECT 1"))
            bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            await campaigns.leaderboard(session, region, campaign)
            board.append(time.perf_counter() - t)
            t = time.perf_counter()
            await campaigns.rank_of(session, campaign, attempt)
            rank.append(time.perf_counter() - t)
    book, booked = ranks.Ranks(), []
    async with db.driver() as driver:
        t = time.perf_counter()
        await book.rank(driver, campaign.id, ranks.key(attempt.score, attempt.seconds))
        first = time.perf_counter() - t
        for _ in range(args.rounds * 20):
            t = time.perf_counter()
            await book.rank(driver, campaign.id, ranks.key(attempt.score, attempt.seconds))
            booked.append(time.perf_counter() - t)
    from bot.services import Services
    from bot.web.quiz_api import QuizApi

    api = QuizApi(Services.create(settings, db=db))
    served = []
    for _ in range(args.rounds * 20):  # as the page asks: most answers come from the cache of the last 5 s
        t = time.perf_counter()
        await api.standings("bench")
        served.append(time.perf_counter() - t)
    await db.close()
    print(f"bare SELECT 1        {timings(bare)}")
    print(f"leaderboard          {timings(board)}  ({statistics.median(board) / statistics.median(bare):.0f}x bare)")
    print(f"rank of one player   {timings(rank)}  ({statistics.median(rank) / statistics.median(bare):.0f}x bare)")
    print(f"rank from the book   {timings(booked)}  (a last answer's on PostgreSQL, quizzes/ranks.py; reading the "
          f"book, at most every {ranks.SNAPSHOT_SECONDS:.0f} s: {first * 1000:.1f} ms)")
    print(f"leaderboard served   {timings(served)}  (GET /api/quiz/<slug>/leaderboard: computed at most every "
          f"5 s; {args.rounds * 20} requests)")
    print("target: leaderboard p99 <= 20 ms")


if __name__ == "__main__":
    asyncio.run(main())
