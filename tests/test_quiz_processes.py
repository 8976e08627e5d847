"""Answers through two real `fangfei serve` processes on one database: one counted however they race, and a
process killed mid-answer loses nothing and counts nothing twice."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import case, func, select

from bot.storage.database import Database
from bot.storage.models import QuizAnswer, QuizAttempt
from tests.support import Server
from tests.test_cli import run

SLUG = "two-servers"
QUESTIONS = 6


@pytest.fixture
def servers(db_env: dict[str, str]) -> Iterator[list[Server]]:
    run("quiz", "campaign", "create", "--slug", SLUG, "--name", "两个进程", "--audience", "elderly", "--questions",
        str(QUESTIONS), "--attempts-per-day", "50", "--open", env=db_env)
    started = [Server(db_env), Server(db_env)]
    for server in started:
        server.start()
    yield started
    for server in started:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


async def _stored(url: str) -> list[tuple[str, int, int, int, int]]:
    """Per attempt: token, answered counter, score, answers stored, right answers stored."""
    db = Database(url)
    try:
        async with db.session() as session:
            right = func.sum(case((QuizAnswer.correct, 1), else_=0)).label("right")
            answers = select(QuizAnswer.attempt_id, func.count().label("n"), right).group_by(QuizAnswer.attempt_id)
            stored = answers.subquery()
            rows = await session.execute(
                select(QuizAttempt.token, QuizAttempt.answered, QuizAttempt.score,
                       func.coalesce(stored.c.n, 0), func.coalesce(stored.c.right, 0))
                .outerjoin(stored, stored.c.attempt_id == QuizAttempt.id).order_by(QuizAttempt.id))
            return [tuple(r) for r in rows]  # type: ignore[misc]
    finally:
        await db.close()


async def _start(client: httpx.AsyncClient) -> dict[str, Any]:
    region = (await client.get(f"/api/quiz/{SLUG}")).json()["regions"][0]["code"]
    res = await client.post(f"/api/quiz/{SLUG}/attempts", json={"region": region})
    assert res.status_code == 201, res.text
    return res.json()


async def test_one_attempt_answered_through_two_processes_at_once_counts_each_question_once(
        servers: list[Server], db_env: dict[str, str]) -> None:
    a, b = servers
    async with httpx.AsyncClient(base_url=a.base, timeout=30) as first, \
            httpx.AsyncClient(base_url=b.base, timeout=30) as second:
        started = await _start(first)
        second.cookies = first.cookies  # the same player, whichever process the balancer picks
        attempt, question = started["attempt"], started["question"]
        url = f"/api/quiz/{SLUG}/attempts/{attempt}/answers"
        for index in range(started["total"]):  # the middle questions and the last one (which finishes)
            body = {"question": question["id"], "choice": 0}
            answers = await asyncio.gather(*(c.post(url, json=body) for _ in range(25) for c in (first, second)))
            assert sorted(r.status_code for r in answers) == [200] + [409] * 49, [r.text for r in answers
                                                                                  if r.status_code >= 500]
            won = next(r.json() for r in answers if r.status_code == 200)
            question = won["next"]
            assert (question is None) == (index == started["total"] - 1)
        assert won["result"]["total"] == QUESTIONS
    [(token, answered, score, stored, right)] = await _stored(db_env["FANGFEI_DATABASE__URL"])
    assert (token, answered, stored) == (attempt, QUESTIONS, QUESTIONS) and score == right == won["result"]["score"]


async def test_a_process_killed_mid_answer_loses_nothing_and_counts_nothing_twice(
        servers: list[Server], db_env: dict[str, str]) -> None:
    doomed, survivor = servers
    players = [httpx.AsyncClient(base_url=doomed.base, timeout=30) for _ in range(12)]
    try:
        attempts = [await _start(p) for p in players]
        counted, cut = 0, 0
        enough = asyncio.Event()

        async def keep_answering(n: int) -> None:
            nonlocal counted, cut
            question = attempts[n]["question"]
            while question is not None:
                try:
                    res = await players[n].post(f"/api/quiz/{SLUG}/attempts/{attempts[n]['attempt']}/answers",
                                                json={"question": question["id"], "choice": n % 2})
                except httpx.TransportError:
                    cut += 1  # the process died with the answer in flight: the player cannot tell if it counted
                    return
                assert res.status_code == 200, res.text
                question = res.json()["next"]
                counted += 1
                if counted >= len(players) * QUESTIONS // 3:
                    enough.set()

        answering = asyncio.gather(*(keep_answering(n) for n in range(len(players))))
        await asyncio.wait_for(enough.wait(), 30)
        assert doomed.proc is not None
        doomed.proc.send_signal(signal.SIGKILL)  # a third of the way through, with answers in flight
        await answering
        assert cut > 0
        doomed.proc.wait(10)
        before = await _stored(db_env["FANGFEI_DATABASE__URL"])
        # every attempt holds exactly the answers its counter says, all or nothing per answer
        assert all(answered == stored and score == right for _, answered, score, stored, right in before)
        # each player goes on through the other process: the question in flight is asked again if it did not
        # count, refused if it did; either way each attempt finishes with one answer per question
        for n, player in enumerate(players):
            player._base_url = httpx.URL(survivor.base)
            token = attempts[n]["attempt"]
            answered = next(a for t, a, *_ in before if t == token)
            for position in range(answered, QUESTIONS):
                ids = await _question_ids(db_env["FANGFEI_DATABASE__URL"], token)
                res = await player.post(f"/api/quiz/{SLUG}/attempts/{token}/answers",
                                        json={"question": ids[position], "choice": 0})
                assert res.status_code == 200, res.text
            replay = await player.post(f"/api/quiz/{SLUG}/attempts/{token}/answers",
                                       json={"question": (await _question_ids(db_env["FANGFEI_DATABASE__URL"],
                                                                              token))[-1], "choice": 0})
            assert replay.status_code == 409
        after = await _stored(db_env["FANGFEI_DATABASE__URL"])
        assert [(answered, stored) for _, answered, _, stored, _ in after] == [(QUESTIONS, QUESTIONS)] * len(players)
        assert all(score == right for _, _, score, _, right in after)
    finally:
        for p in players:
            await p.aclose()


async def _question_ids(url: str, token: str) -> list[str]:
    db = Database(url)
    try:
        async with db.session() as session:
            drawn = await session.scalar(select(QuizAttempt.drawn).where(QuizAttempt.token == token))
            return [q["id"] for q in drawn["questions"]]
    finally:
        await db.close()
