"""The quiz page's JSON API end to end (real app, real database), and the ways players try to cheat."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from bot.engine import Engine
from bot.storage.models import QuizAnswer, QuizAttempt, QuizCampaign, QuizPlayer, utcnow
from bot.web.app import create_app
from quizzes import campaigns, ranks

VILLAGE, SCHOOL = "qingshan-shiqiao", "school-county-no1"
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Q:
    id: str
    audience: str
    category: str
    question: str
    options: tuple[str, ...]
    answer: str
    explanation: str
    entry: str = "some-entry"


BANK = [Q(f"elderly-{i:03d}", "elderly", f"cat-{i % 4}", f"第{i}题：有人说交钱返利，{{hotline}}能问吗？",
          ("能", "不能", "不知道"), "能", f"解释{i}：打{{hotline}}问。") for i in range(1, 21)]
BANK += [Q(f"student-{i:03d}", "student", "campus", f"学生题{i}", ("对", "错"), "错", "别信。") for i in range(1, 6)]


@pytest.fixture
async def quiz(engine: Engine) -> QuizCampaign:
    engine.services.quiz_questions = list(BANK)
    async with engine.services.db.transaction() as session:
        return await campaigns.create(session, slug="elderly-2026", name="2026 老年人防非知识答题", audience="elderly",
                                      questions=5, attempts_per_day=2, pass_mark=60, open_now=True)


@pytest.fixture
async def player(engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(engine)),
                                 base_url="http://fangfei.test") as c:
        yield c


def right_choice(engine: Engine, attempt: str, question: dict[str, Any]) -> int:
    """What the server holds as the right option (read from the database, as only a test can)."""
    return _drawn[attempt][question["index"] - 1]["answer"]


_drawn: dict[str, list[dict[str, Any]]] = {}


async def remember(engine: Engine, attempt: str) -> None:
    async with engine.services.db.session() as s:
        row = await s.scalar(select(QuizAttempt).where(QuizAttempt.token == attempt))
        assert row is not None
        _drawn[attempt] = row.drawn["questions"]


async def test_a_whole_attempt_through_the_api(engine: Engine, quiz: QuizCampaign,
                                               player: httpx.AsyncClient) -> None:
    info = (await player.get("/api/quiz/elderly-2026")).json()
    assert info["open"] is True and info["total"] == 5 and info["attempts_per_day"] == 2
    assert {"code": VILLAGE, "name": "青山镇 石桥村", "kind": "village", "township": "qingshan"} in info["regions"]
    assert not any(r["kind"] == "school" for r in info["regions"])  # an elderly campaign: villages only

    started = await player.post("/api/quiz/elderly-2026/attempts", json={"region": VILLAGE, "name": "王小明"})
    assert started.status_code == 201 and "ff_quiz" in started.cookies
    body = started.json()
    attempt, question = body["attempt"], body["question"]
    assert body["total"] == 5 and question["index"] == 1 and len(question["options"]) == 3
    assert "12345" in question["text"] and "{hotline}" not in question["text"]  # placeholders filled
    assert "answer" not in question  # the key stays on the server
    await remember(engine, attempt)
    seen, score = set(), 0
    for n in range(5):
        seen.add(question["id"])
        choice = right_choice(engine, attempt, question) if n < 3 else (right_choice(engine, attempt, question) + 1) % 3
        res = await player.post(f"/api/quiz/elderly-2026/attempts/{attempt}/answers",
                                json={"question": question["id"], "choice": choice})
        assert res.status_code == 200
        got = res.json()
        score += n < 3
        assert got["correct"] is (n < 3) and got["score"] == score and got["explanation"].startswith("解释")
        question = got["next"]
        if n < 4:
            assert question["index"] == n + 2
    assert question is None and len(seen) == 5  # no repeats within an attempt
    assert got["result"] == {"score": 3, "total": 5, "seconds": got["result"]["seconds"], "passed": True,
                             "rank": 1, "certificate": got["result"]["certificate"]}
    assert len(got["result"]["certificate"]) == 10
    board = (await player.get("/api/quiz/elderly-2026/leaderboard")).json()
    shiqiao = next(r for r in board["regions"] if r["code"] == VILLAGE)
    assert shiqiao == {"code": VILLAGE, "name": "青山镇 石桥村", "participants": 1, "rate": round(1 / 640, 4),
                       "mean_score": 3.0}
    assert board["players"] == [{"name": "王*明", "region": "青山镇 石桥村", "score": 3,
                                 "seconds": board["players"][0]["seconds"]}]
    async with engine.services.db.session() as s:  # the score is what the stored answers say
        assert await s.scalar(select(func.count()).select_from(QuizAnswer).where(QuizAnswer.correct)) == 3
        stored = await s.scalar(select(QuizPlayer))
        assert stored is not None and len(stored.key) == 64  # a fingerprint, not the cookie


async def test_cheating_and_bad_requests_change_no_score(engine: Engine, quiz: QuizCampaign,
                                                         player: httpx.AsyncClient) -> None:
    started = (await player.post("/api/quiz/elderly-2026/attempts", json={"region": VILLAGE})).json()
    attempt, question = started["attempt"], started["question"]
    await remember(engine, attempt)
    url = f"/api/quiz/elderly-2026/attempts/{attempt}/answers"
    good = {"question": question["id"], "choice": right_choice(engine, attempt, question)}
    # another player (no cookie, or a forged one) cannot answer it
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(engine)),
                                 base_url="http://fangfei.test") as other:
        assert (await other.post(url, json=good)).status_code == 404
        other.cookies.set("ff_quiz", "forged.0123456789abcdef0123456789abcdef")
        assert (await other.post(url, json=good)).status_code == 404
        mine = (await other.post("/api/quiz/elderly-2026/attempts", json={"region": VILLAGE})).json()["attempt"]
        assert (await other.post(url, json=good)).status_code == 404  # a real player, but not this attempt's
        assert mine != attempt
    assert (await player.post("/api/quiz/elderly-2026/attempts/nope/answers", json=good)).status_code == 404
    for bad in ({"question": question["id"], "choice": 7}, {"question": question["id"], "choice": True},
                {"question": question["id"]}, [1, 2], {"question": 5, "choice": 0}):
        assert (await player.post(url, json=bad)).status_code == 400
    assert (await player.post("/api/quiz/elderly-2026/attempts", json={"region": "mars"})).status_code == 400
    assert (await player.post("/api/quiz/nope/attempts", json={"region": VILLAGE})).status_code == 404
    # 100 answers to the same question at once: one is counted
    answers = await asyncio.gather(*(player.post(url, json=good) for _ in range(100)))
    assert sorted(a.status_code for a in answers) == [200] + [409] * 99
    replay = await player.post(url, json=good)
    assert replay.status_code == 409  # a replayed answer
    async with engine.services.db.session() as s:
        row = await s.scalar(select(QuizAttempt).where(QuizAttempt.token == attempt))
        assert row is not None and row.score == 1 and row.answered == 1
        assert await s.scalar(select(func.count()).select_from(QuizAnswer)
                              .where(QuizAnswer.attempt_id == row.id)) == 1


async def test_attempts_a_day_deadlines_and_closing(engine: Engine, quiz: QuizCampaign,
                                                    player: httpx.AsyncClient) -> None:
    async with engine.services.db.transaction() as s:
        await s.execute(update(QuizCampaign).values(seconds_per_question=10))
    first = (await player.post("/api/quiz/elderly-2026/attempts", json={"region": VILLAGE})).json()
    assert first["question"]["deadline"] is not None
    await remember(engine, first["attempt"])
    async with engine.services.db.transaction() as s:  # the player waited 20 s on the first question
        await s.execute(update(QuizAttempt).where(QuizAttempt.token == first["attempt"])
                        .values(asked_at=utcnow() - timedelta(seconds=20)))
    late = await player.post(f"/api/quiz/elderly-2026/attempts/{first['attempt']}/answers",
                             json={"question": first["question"]["id"],
                                   "choice": right_choice(engine, first["attempt"], first["question"])})
    assert late.status_code == 409 and late.json()["kind"] == "deadline" and late.json()["score"] == 0
    assert late.json()["next"]["index"] == 2  # recorded as not answered in time; the attempt goes on
    second = await player.post("/api/quiz/elderly-2026/attempts", json={"region": VILLAGE})
    assert second.status_code == 201
    third = await player.post("/api/quiz/elderly-2026/attempts", json={"region": VILLAGE})
    assert third.status_code == 429 and "attempts a day" in third.json()["error"]
    # closed in the middle of an attempt: the answer is refused, nothing counted
    attempt, question = second.json()["attempt"], second.json()["question"]
    async with engine.services.db.transaction() as s:
        await s.execute(update(QuizCampaign).values(state="closed"))
    closed = await player.post(f"/api/quiz/elderly-2026/attempts/{attempt}/answers",
                               json={"question": question["id"], "choice": 0})
    assert closed.status_code == 409 and closed.json()["kind"] == "closed"
    assert (await player.post("/api/quiz/elderly-2026/attempts", json={"region": VILLAGE})).status_code == 409
    assert (await player.get("/api/quiz/elderly-2026")).json()["open"] is False


async def test_draw_spreads_over_categories_without_repeats() -> None:
    import random

    chosen = campaigns.draw(BANK[:20], 8, random.Random(7))
    assert len({q.id for q in chosen}) == 8
    per_category = {c: sum(q.category == c for q in chosen) for c in {q.category for q in BANK[:20]}}
    assert set(per_category.values()) == {2}  # 4 categories, 2 each


def test_names_are_masked() -> None:
    assert [campaigns.mask(n) for n in ("王小明", "王明", "欧阳振华", None, "")] == ["王*明", "王*", "欧**华", "匿名",
                                                                                    "匿名"]


async def test_standings_count_each_players_best_attempt_and_ties_go_to_the_faster(engine: Engine,
                                                                                   quiz: QuizCampaign) -> None:
    import random

    services = engine.services
    finished: dict[str, list[int]] = {}

    async def play(ident: str, region: str, rights: int, seconds: float, name: str | None = None) -> None:
        async with services.db.transaction() as s:
            campaign = await campaigns.find(s, "elderly-2026")
            assert campaign is not None
            who = await campaigns.player(s, campaign, campaigns.player_key(services.vault, "test", ident),
                                         region=region, name=name, region_settings=services.settings.region)
            attempt = await campaigns.start(s, campaign, who, BANK, "web", services.fill, rng=random.Random(1))
            now = attempt.started_at
            for n, q in enumerate(attempt.drawn["questions"]):
                now = now + timedelta(seconds=seconds / 5)
                choice = q["answer"] if n < rights else (q["answer"] + 1) % len(q["options"])
                await campaigns.answer(s, campaign, attempt, q["id"], choice, now=now)
            finished.setdefault(ident, []).append(attempt.score)

    await play("a", VILLAGE, 2, 30, "张三丰")
    await play("a", VILLAGE, 4, 50, "张三丰")  # the best of a's two counts
    await play("b", VILLAGE, 4, 20, "李四")  # as many right, faster: first
    await play("c", "hekou-lijia", 1, 10)
    async with services.db.session() as s:
        campaign = await campaigns.find(s, "elderly-2026")
        assert campaign is not None
        board = await campaigns.leaderboard(s, services.settings.region, campaign)
    assert [(p["name"], p["score"]) for p in board["players"]] == [("李*", 4), ("张*丰", 4), ("匿名", 1)]
    by_code = {r["code"]: r for r in board["regions"]}
    assert by_code[VILLAGE]["participants"] == 2 and by_code[VILLAGE]["mean_score"] == 4.0
    assert by_code["hekou-lijia"]["participants"] == 1 and by_code["hekou-lijia"]["rate"] == round(1 / 860, 4)
    assert by_code["chengguan-nanguan"]["participants"] == 0 and by_code["chengguan-nanguan"]["mean_score"] is None
    async with services.db.session() as s:
        figures = await campaigns.stats(s, services.settings.region, campaign)
    assert (figures["players"], figures["attempts"], figures["unfinished"]) == (3, 4, 0)
    assert figures["pass_rate"] == round(2 / 3, 4) and figures["mean_score"] == 3.0  # counting: 4, 4, 1 of 5
    assert sum(q["answered"] for q in figures["questions"]) == 20  # every stored answer, of every attempt
    assert figures["categories"] == sorted(figures["categories"], key=lambda c: (c["correct_rate"], -c["answered"],
                                                                                 c["id"]))


async def test_a_nul_byte_or_a_lone_surrogate_anywhere_gets_a_clean_answer_never_a_500(
        engine: Engine, quiz: QuizCampaign, player: httpx.AsyncClient) -> None:
    """PostgreSQL refuses NUL in text (and no database stores a lone surrogate): such a token, slug, code,
    question id or region is told apart before any query, with the answer an unknown one gets."""
    started = (await player.post("/api/quiz/elderly-2026/attempts", json={"region": VILLAGE})).json()
    attempt, question = started["attempt"], started["question"]
    good = {"question": question["id"], "choice": 0}
    for bad in ("%00", "%ED%A0%80", "%01"):  # in a path: NUL, a surrogate's UTF-8, a control character
        for path in (f"/api/quiz/elderly-2026/attempts/{attempt}{bad}/answers",
                     f"/api/quiz/elderly-2026{bad}/attempts/{attempt}/answers"):
            res = await player.post(path, json=good)
            assert res.status_code == 404 and res.json()["kind"] == "not-found", (path, res.text)
        for path in (f"/api/quiz/elderly-2026{bad}", f"/api/quiz/elderly-2026{bad}/leaderboard"):
            assert (await player.get(path)).status_code == 404, path
        assert (await player.post(f"/api/quiz/elderly-2026{bad}/attempts",
                                  json={"region": VILLAGE})).status_code == 404
        for path in (f"/quiz/elderly-2026{bad}", f"/quiz/elderly-2026/certificate/ABC{bad}",
                     f"/quiz/elderly-2026/certificate/ABC{bad}.png", f"/quiz/elderly-2026{bad}/certificate/ABC"):
            assert (await player.get(path)).status_code == 404, path
    for bad in ("\u0000", "\ud800"):  # in a body (as JSON escapes: httpx would not encode a lone surrogate)
        res = await player.post(f"/api/quiz/elderly-2026/attempts/{attempt}/answers", headers=JSON,
                                content=json.dumps({"question": question["id"] + bad, "choice": 0}))
        assert res.status_code == 400 and "question" in res.json()["error"], res.text
        assert (await player.post("/api/quiz/elderly-2026/attempts", headers=JSON,
                                  content=json.dumps({"region": VILLAGE + bad}))).status_code == 400
    too_long = f"/api/quiz/elderly-2026/attempts/{attempt + 'x' * 40}/answers"
    assert (await player.post(too_long, json=good)).status_code == 404
    res = await player.post(f"/api/quiz/elderly-2026/attempts/{attempt}/answers", json=good)
    assert res.status_code == 200 and res.json()["next"]["index"] == 2  # the attempt is as it was


async def test_the_last_answer_keeps_each_players_counting_attempt_and_tells_the_rank(
        engine: Engine, quiz: QuizCampaign) -> None:
    """The last answer finishes the attempt (a certificate when passed), keeps the player's best attempt (or,
    when the campaign counts the last one, that) and tells where the player stands, as the ORM reckons it."""
    services = engine.services
    async with services.db.transaction() as s:
        await s.execute(update(QuizCampaign).values(attempts_per_day=5))
    app = create_app(engine)
    clients = {who: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fangfei.test")
               for who in "abc"}

    async def finish(who: str, rights: int) -> dict[str, Any]:
        client = clients[who]
        started = (await client.post("/api/quiz/elderly-2026/attempts", json={"region": VILLAGE})).json()
        attempt, question = started["attempt"], started["question"]
        await remember(engine, attempt)
        for n in range(5):
            right = right_choice(engine, attempt, question)
            res = await client.post(f"/api/quiz/elderly-2026/attempts/{attempt}/answers",
                                    json={"question": question["id"], "choice": right if n < rights else
                                          (right + 1) % 3})
            assert res.status_code == 200, res.text
            question = res.json()["next"]
        result = res.json()["result"]
        async with services.db.session() as s:
            row = await s.scalar(select(QuizAttempt).where(QuizAttempt.token == attempt))
            campaign = await campaigns.find(s, "elderly-2026")
            assert row is not None and campaign is not None and row.finished_at is not None
            assert result["rank"] == await campaigns.rank_of(s, campaign, row)
            assert (row.score, row.certificate) == (rights, result["certificate"])
        assert result["passed"] is (rights >= 3) and (result["certificate"] is None) is (rights < 3)
        return {**result, "id": row.id}

    async def best(who: str) -> tuple[int | None, int | None]:
        async with services.db.session() as s:
            rows = (await s.execute(select(QuizPlayer.best_score, QuizPlayer.best_attempt_id)
                                    .order_by(QuizPlayer.id))).all()
        return tuple(rows["abc".index(who)])  # type: ignore[return-value]

    try:
        first = await finish("a", 3)
        assert first["rank"] == 1 and await best("a") == (3, first["id"])
        assert (await finish("b", 5))["rank"] == 1
        worse = await finish("a", 1)  # a's best (3) still counts: second behind b
        assert worse["rank"] == 2 and await best("a") == (3, first["id"])
        assert (await finish("c", 4))["rank"] == 2
        assert (await finish("a", 5))["rank"] in (1, 2) and (await best("a"))[0] == 5
        async with services.db.transaction() as s:
            await s.execute(update(QuizCampaign).values(scoring="last"))
        last = await finish("a", 0)  # now the last attempt counts, however it went
        assert last["rank"] == 3 and await best("a") == (0, last["id"])
    finally:
        for client in clients.values():
            await client.aclose()


async def test_a_rank_book_counts_what_its_process_saw_at_once_and_other_processes_results_when_read_again(
        engine: Engine, quiz: QuizCampaign) -> None:
    """quizzes/ranks.py on PostgreSQL: a binary search in every player's counting result as last read, corrected by
    what this process changed since; what another process changed shows once the book is read again."""
    db = engine.services.db
    if db.is_sqlite:
        pytest.skip("SQLite counts (campaigns.rank_of)")
    async with db.transaction() as s:
        who = [(await campaigns.player(s, quiz, f"p{n}")) for n in range(4)]
        await s.flush()
        ids = [w.id for w in who]
    book = ranks.Ranks(seconds=3600)
    best: dict[int, tuple[int, float]] = {}

    async def finish(n: int, score: int, seconds: float, here: bool = True) -> None:
        async with db.transaction() as s:
            await s.execute(update(QuizPlayer).where(QuizPlayer.id == ids[n])
                            .values(best_score=score, best_seconds=seconds, best_attempt_id=n + 1))
        if here:
            book.moved(quiz.id, ids[n], ranks.key(*best[n]) if n in best else None, ranks.key(score, seconds))
        best[n] = (score, seconds)

    for n, (score, seconds) in enumerate([(5, 40.0), (3, 20.0), (3, 30.0)]):  # p0, p1, p2 count; p3 not yet
        await finish(n, score, seconds)
    async with db.driver() as driver:
        assert [await book.rank(driver, quiz.id, ranks.key(score, seconds))
                for score, seconds in [(5, 40.0), (3, 20.0), (3, 30.0), (4, 1.0), (0, 9.0)]] == [1, 2, 3, 2, 4]
        await finish(3, 4, 10.0)  # p3 finished in this process: 4 right
        await finish(2, 5, 10.0)  # and p2 did better
        assert await book.rank(driver, quiz.id, ranks.key(5, 10.0)) == 1
        assert await book.rank(driver, quiz.id, ranks.key(3, 20.0)) == 4  # p2, p0, p3 ahead of p1
        await finish(1, 5, 5.0, here=False)  # another process: p1 with 5 right, fastest of all
        assert await book.rank(driver, quiz.id, ranks.key(4, 10.0)) == 3  # not read again yet: p2, p0 ahead
        book.seconds = 0
        assert await book.rank(driver, quiz.id, ranks.key(4, 10.0)) == 4  # read again: p1, p2, p0
