"""Quiz rounds in Telegram groups, end to end: python-telegram-bot's real HTTP code against the fake Bot API, the
round stepped by the leader-only job of `serve`'s scheduler, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from bot.channels.telegram import TelegramChannel
from bot.config import GroupQuizSettings, Settings, TelegramSettings
from bot.engine import Engine
from bot.scheduler import Jobs, start_scheduler
from bot.services import Services
from bot.storage.database import Database
from bot.storage.models import GroupQuizAnswer, GroupQuizPoll, GroupQuizRound, QuizCampaign, utcnow
from quizzes import campaigns, group_rounds
from quizzes.schedule import open_and_close_due
from tests.fake_telegram import FakeTelegram
from tests.support import Server

GROUP = -1001777000001
ADMIN, MEMBER, WANG, LI, ZHAO = 3001, 3002, 3003, 3004, 3005
OPEN = 5  # Telegram's shortest open_period
QUIZ = GroupQuizSettings(open_seconds=OPEN, pause_seconds=2, questions=2, step_every_seconds=0.2,
                         schedule_every_seconds=3600, claim_seconds=1, notice_seconds=30, daily_at="00:00")


@pytest.fixture
def settings(base_settings: Settings, db_url: str) -> Settings:
    """The shared settings with short polls (this module's own `settings`, used by conftest's services)."""
    return base_settings.model_copy(update={
        "database": base_settings.database.model_copy(update={"url": db_url}), "group_quiz": QUIZ})


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as f:
        f.set_member_status(GROUP, ADMIN, "administrator", first_name="管理员")
        yield f
        f.assert_no_violations()
        assert not f.rate_violations  # 20 messages a minute to a group, 30 a second in all


@dataclass
class Bot:
    """One serving process as far as Telegram goes: the channel and the scheduler's jobs."""

    channel: TelegramChannel
    jobs: Jobs | None

    async def stop(self) -> None:
        if self.jobs is not None:
            await self.jobs.stop()
        await self.channel.stop()


async def serving(services: Services, fake: FakeTelegram, jobs: bool = True, **telegram: Any) -> Bot:
    channel = TelegramChannel(Engine(services), TelegramSettings(token=fake.token, base_url=fake.base_url,
                                                                 **telegram))
    await channel.start()
    return Bot(channel, start_scheduler(services, groups=[channel.groups]) if jobs else None)


@pytest.fixture
async def served(services: Services, fake: FakeTelegram) -> AsyncIterator[Bot]:
    running = await serving(services, fake)
    yield running
    await running.stop()


def polls(fake: FakeTelegram) -> list[dict[str, Any]]:
    return [m for m in fake.messages_to(GROUP) if m["method"] == "sendPoll"]


def texts(fake: FakeTelegram) -> list[str]:
    return [m["plain_text"] for m in fake.messages_to(GROUP) if m["method"] == "sendMessage"]


async def until(check: Callable[[], Any], seconds: float = 20) -> None:
    for _ in range(int(seconds / 0.1)):
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def the_round(services: Services) -> GroupQuizRound:
    async with services.db.session() as session:
        return (await session.scalars(select(GroupQuizRound).order_by(GroupQuizRound.id.desc()))).first()


async def answers(services: Services) -> int:
    async with services.db.session() as session:
        return await session.scalar(select(func.count(GroupQuizAnswer.id))) or 0


def stored_polls(services: Services, n: int) -> Callable[[], Any]:
    async def check() -> bool:
        async with services.db.session() as session:
            return await session.scalar(select(func.count(GroupQuizPoll.poll_id))) == n
    return check


async def posted(fake: FakeTelegram, services: Services, n: int) -> None:
    """Until the bot has posted `n` polls and written each down (answers are scored from the stored map)."""
    await until(lambda: len(polls(fake)) == n)
    await until(stored_polls(services, n), 5)


def counted(services: Services, n: int) -> Callable[[], Any]:
    async def check() -> bool:
        return await answers(services) >= n
    return check


def quiz(fake: FakeTelegram, user: int = ADMIN, text: str = "/quiz", **kw: Any) -> None:
    fake.user_message(user, text, chat_id=GROUP, chat_type="supergroup", title="南关村防非群", **kw)


async def test_an_admins_round_posts_quiz_polls_one_at_a_time_scores_answers_once_and_ends_with_a_leaderboard(
        served: Bot, fake: FakeTelegram, services: Services) -> None:
    quiz(fake, text="/quiz@fangfei_test_bot")
    await posted(fake, services, 1)
    assert "群答题开始" in texts(fake)[0] and "一共 2 题，每题 5 秒" in texts(fake)[0]
    drawn = (await the_round(services)).drawn["questions"]
    first = polls(fake)[0]
    params = first["params"]
    assert params["type"] == "quiz" and params["is_anonymous"] in (False, "false", "False")
    assert params["correct_option_ids"] in ([drawn[0]["answer"]], f"[{drawn[0]['answer']}]")
    assert "correct_option_id" not in params  # deprecated by Bot API 9.6
    assert int(params["open_period"]) == OPEN and params["explanation"] == drawn[0]["explanation"]
    assert first["poll"]["question"] == f"第 1/2 题：{drawn[0]['text']}"
    assert [o["text"] for o in first["poll"]["options"]] == drawn[0]["options"]

    pid, right = first["poll"]["id"], drawn[0]["answer"]
    wrong = (right + 1) % len(drawn[0]["options"])
    fake.poll_answer(WANG, [right], pid, first_name="王小明")
    fake.poll_answer(LI, [wrong], pid, first_name="李四")
    await until(counted(services, 2), 5)
    fake.poll_answer(WANG, [wrong], pid, first_name="王小明")  # the same vote again (a repeated update) counts once
    await posted(fake, services, 2)
    assert await answers(services) == 2
    assert polls(fake)[1]["time"] - first["time"] >= OPEN  # the next poll once the first has closed

    fake.poll_answer(ZHAO, [right], pid, first_name="赵大", late=True)  # to the closed first poll, held up on its way
    second = polls(fake)[1]
    pid2, right2 = second["poll"]["id"], drawn[1]["answer"]
    fake.poll_answer(LI, [right2], pid2, first_name="李四")
    fake.poll_answer(WANG, [right2], pid2, first_name="王小明")
    await until(lambda: any("排行榜：" in t for t in texts(fake)))
    board = texts(fake)[-1]
    assert board.splitlines()[0] == f"「{(await the_round(services)).title}」答题结束！一共 2 题，2 人参加。"
    assert "赵" not in board
    lines = board.splitlines()
    assert lines[2].startswith("1. 王*明  答对 2 题") and lines[3].startswith("2. 李*  答对 1 题"), board
    assert "王小明" not in board and "李四" not in board
    fake.poll_answer(LI, [right2], pid2, first_name="李四", late=True)  # delivered after the poll closed
    await asyncio.sleep(0.5)
    assert await answers(services) == 4 and len(polls(fake)) == 2
    async with services.db.session() as session:
        stored = (await session.scalars(select(GroupQuizAnswer))).all()
        done = await session.get(GroupQuizRound, stored[0].round_id)
    assert {a.player for a in stored} == {campaigns.player_key(services.vault, "telegram", str(u)) for u in (WANG, LI)}
    assert {a.name for a in stored} == {"王*明", "李*"}  # names only masked; ids only as fingerprints
    assert done is not None and done.state == "finished"


async def test_members_who_are_not_admins_are_refused_once_and_a_second_quiz_waits_for_the_round(
        served: Bot, fake: FakeTelegram, services: Services) -> None:
    for _ in range(5):
        quiz(fake, MEMBER)
    await until(lambda: texts(fake))
    await asyncio.sleep(1)
    assert texts(fake) == ["群答题要由群管理员发起。想自己答题，请私聊我，发“答题”。"]  # one polite refusal
    assert polls(fake) == [] and await the_round(services) is None
    assert len(fake.calls_to("getChatMember")) == 1  # asked once: repeats eat nothing of the group's rate

    quiz(fake)
    await until(lambda: len(polls(fake)) == 1)
    quiz(fake)
    quiz(fake)  # an admin repeating himself
    await until(lambda: len(texts(fake)) == 3)
    await asyncio.sleep(1)
    assert texts(fake)[-1].startswith("这一轮答题还没结束")
    assert len(texts(fake)) == 3 and len(polls(fake)) == 1  # refusal, intro, one refusal; one poll
    assert len(fake.calls_to("getChatMember")) == 2
    async with services.db.session() as session:
        assert await session.scalar(select(func.count(GroupQuizRound.id))) == 1


async def test_a_429_on_send_poll_is_waited_out_and_the_poll_is_posted_exactly_once(
        services: Services, fake: FakeTelegram) -> None:
    running = await serving(services, fake, send_retries=1)
    try:
        # PTB's rate limiter waits and tries again, the claim on the step held meanwhile (the wait outlasts it)
        fake.fail("sendPoll", 429, times=1, retry_after=2)
        quiz(fake)
        await until(lambda: len(polls(fake)) == 1)
        await asyncio.sleep(1)
        tries = fake.calls_to("sendPoll")
        assert [c["status"] for c in tries] == [429, 200] and tries[1]["time"] - tries[0]["time"] >= 2
        fake.fail("sendPoll", 429, times=2, retry_after=1)  # beyond the limiter's retries: the job tries later
        await until(lambda: len(polls(fake)) == 2)
        await until(lambda: any("答题结束" in t for t in texts(fake)))
        assert [c["status"] for c in fake.calls_to("sendPoll")] == [429, 200, 429, 429, 200]
        assert len(fake.polls) == 2
    finally:
        await running.stop()
    async with services.db.session() as session:
        assert [p.position for p in await session.scalars(select(GroupQuizPoll).order_by(GroupQuizPoll.posted_at))
                ] == [0, 1]


async def test_a_restarted_process_scores_answers_from_the_stored_poll_map_and_finishes_the_round(
        services: Services, fake: FakeTelegram, settings: Settings, shared: Services) -> None:
    first = await serving(services, fake)
    quiz(fake)
    await posted(fake, services, 1)
    await first.stop()
    # a new process: new database pool, services, engine, channel and jobs on the same database
    db = Database(settings.database.url)
    again = Services(settings=settings, db=db, kb=shared.kb, index=shared.index, risk=shared.risk,
                     vault=shared.vault)
    second = await serving(again, fake)
    try:
        drawn = (await the_round(again)).drawn["questions"]
        fake.poll_answer(WANG, [drawn[0]["answer"]], polls(fake)[0]["poll"]["id"], first_name="王小明")
        await until(counted(again, 1), 5)
        await posted(fake, again, 2)
        fake.poll_answer(WANG, [drawn[1]["answer"]], polls(fake)[1]["poll"]["id"], first_name="王小明")
        await until(lambda: any("排行榜：" in t for t in texts(fake)))
        assert "1. 王*明  答对 2 题" in texts(fake)[-1]
    finally:
        await second.stop()
        await db.close()


async def test_a_process_killed_mid_post_leaves_at_most_one_duplicate_poll_whose_answers_count_for_nothing(
        services: Services, fake: FakeTelegram) -> None:
    """Posted at least once: the step is written down after sendPoll returns; a process killed in between (here:
    a claim that posted and never confirmed) makes the next one post it again; a second loss skips the step."""
    host_only = await serving(services, fake, jobs=False)
    bank = [q for q in services.quiz_questions if q.audience == "general"]
    async with services.db.transaction() as session:
        made = await group_rounds.start(session, channel="telegram", chat=str(GROUP), title="测试",
                                        questions=group_rounds.prepare(bank, 2, services.fill),
                                        audience="other", campaign_id=None, open_seconds=OPEN)

    async def dies_after_posting() -> str:
        async with services.db.transaction() as session:
            step = await group_rounds.claim(session, made.id, utcnow(), 1)
        assert step is not None and step.question is not None
        posted = await host_only.channel.groups.talk.post_poll(str(GROUP), step.question["text"],
                                                               step.question["options"], step.question["answer"],
                                                               "", OPEN)
        await asyncio.sleep(1.1)  # its claim runs out
        return posted.poll_id

    orphan = await dies_after_posting()
    await host_only.stop()
    running = await serving(services, fake)
    try:
        await until(lambda: len(polls(fake)) == 2)
        await until(stored_polls(services, 1), 5)
        async with services.db.session() as session:
            stored = (await session.scalars(select(GroupQuizPoll))).all()
        assert [p.position for p in stored] == [0] and stored[0].poll_id != orphan
        fake.poll_answer(WANG, [0], orphan, first_name="王小明")  # a vote in the unconfirmed duplicate
        fake.poll_answer(LI, [0], stored[0].poll_id, first_name="李四")
        await until(counted(services, 1), 5)
        await asyncio.sleep(0.5)
        assert await answers(services) == 1
    finally:
        await running.stop()
    # the second step is lost twice: both claims ran out unconfirmed; the step is then skipped, never shown thrice
    async with services.db.transaction() as session:
        await session.execute(update(GroupQuizRound).values(due_at=utcnow(), unknowns=1,
                                                            claimed_until=utcnow() - timedelta(seconds=1)))
    before = len(polls(fake))
    running = await serving(services, fake)
    try:
        await until(lambda: any("答题结束" in t for t in texts(fake)))
        assert len(polls(fake)) == before
    finally:
        await running.stop()


async def test_groups_that_opted_in_get_a_daily_round_while_a_campaign_is_open(
        served: Bot, fake: FakeTelegram, services: Services) -> None:
    quiz(fake, MEMBER, "/quiz on")
    quiz(fake, text="/quiz on")
    await until(lambda: len(texts(fake)) == 2)
    assert texts(fake) == ["群答题要由群管理员发起。想自己答题，请私聊我，发“答题”。",
                           "好的，答题活动期间每天 00:00 在本群自动出一轮题。关掉请发 /quiz off。"]
    host = served.channel.groups
    assert await host.schedule_due() == 0  # no campaign open: no daily round (practice is for /quiz only)
    async with services.db.transaction() as session:
        await campaigns.create(session, slug="group-autumn", name="秋季防非答题", audience="all", questions=3,
                               open_now=True)
    assert await host.schedule_due() == 1
    assert await host.schedule_due() == 0  # once a day
    await until(lambda: len(polls(fake)) == 1)
    assert texts(fake)[-1].startswith("「秋季防非答题」群答题开始！\n一共 3 题") and "不计入活动成绩" in texts(fake)[-1]
    started = await the_round(services)
    assert started.origin == "schedule" and started.campaign_id is not None
    quiz(fake, text="/quiz off")
    await until(lambda: texts(fake)[-1].startswith("好的，不再自动出题"))
    assert await host.schedule_due(utcnow() + timedelta(days=1)) == 0


async def test_a_round_whose_campaign_closes_ends_at_once_with_its_leaderboard(
        served: Bot, fake: FakeTelegram, services: Services) -> None:
    async with services.db.transaction() as session:
        await campaigns.create(session, slug="group-winter", name="冬季防非答题", audience="all", questions=3,
                               open_now=True)
    quiz(fake)
    await posted(fake, services, 1)
    started = await the_round(services)
    assert started.campaign_id is not None and len(started.drawn["questions"]) == 3
    first = polls(fake)[0]
    fake.poll_answer(WANG, [started.drawn["questions"][0]["answer"]], first["poll"]["id"], first_name="王小明")
    await until(counted(services, 1), 5)
    async with services.db.transaction() as session:  # the campaign's end has come, and the scheduler closes it
        await session.execute(update(QuizCampaign).values(ends_at=utcnow()))
    assert await open_and_close_due(services) == [("group-winter", "closed")]
    await until(lambda: any("排行榜：" in t for t in texts(fake)), OPEN)
    board = [m for m in fake.messages_to(GROUP) if m["method"] == "sendMessage"][-1]
    assert board["time"] - first["time"] < OPEN  # at once: not after the open poll, nor with a next one
    lines = board["plain_text"].splitlines()
    assert lines[0] == "「冬季防非答题」活动已经结束，这一轮答题也结束了。答了 1 题，1 人参加。"
    assert lines[2].startswith("1. 王*明  答对 1 题") and lines[-1] == "想自己多练练，请私聊我，发“答题”。"
    await asyncio.sleep(1)
    assert len(polls(fake)) == 1 and (await the_round(services)).state == "finished"
    fake.poll_answer(LI, [0], first["poll"]["id"], first_name="李四")  # to the poll still open: the round is over
    await asyncio.sleep(0.5)
    assert await answers(services) == 1


def test_texts_are_fitted_to_telegrams_poll_limits() -> None:
    assert group_rounds.fit("问" * 400, 288) == "问" * 287 + "…"
    assert group_rounds.fit("一\n二\n三\n四", 200, 2) == "一\n二\n三 四"
    assert group_rounds.fit("短", 100) == "短"


async def test_an_admin_picks_the_groups_questions_and_a_word_it_does_not_know_gets_the_usage(
        served: Bot, fake: FakeTelegram, services: Services) -> None:
    quiz(fake, text="/quiz 帮助")
    await until(lambda: len(texts(fake)) == 1)
    assert texts(fake)[0].startswith("群答题的用法") and "/quiz on" in texts(fake)[0]
    quiz(fake, text="/quiz 学生")
    await posted(fake, services, 1)
    started = await the_round(services)
    assert started.audience == "student" and started.campaign_id is None
    assert {q["id"].split("-")[0] for q in started.drawn["questions"]} <= {"student", "general"}
    assert "这是练习赛" in texts(fake)[-1]


async def test_a_poll_refused_for_good_stops_the_round(served: Bot, fake: FakeTelegram, services: Services) -> None:
    fake.fail("sendPoll", 403, times=None, description="Forbidden: bot can't send polls to this chat")
    quiz(fake)
    await until(lambda: len(fake.calls_to("sendPoll")) == 1)
    await until(lambda: the_round(services))
    await asyncio.sleep(1)
    stopped = await the_round(services)
    assert stopped.state == "stopped" and len(fake.calls_to("sendPoll")) == 1 and polls(fake) == []
    fake.clear_failures()
    quiz(fake)  # the group can start a new round
    await posted(fake, services, 1)


async def test_fangfei_serve_steps_a_groups_round_to_its_leaderboard(fake: FakeTelegram,
                                                                     db_env: dict[str, str]) -> None:
    """The real `serve` process: the poll after the first and the leaderboard come from its leader-only job."""
    srv = Server({**db_env, "FANGFEI_TELEGRAM__TOKEN": fake.token, "FANGFEI_TELEGRAM__BASE_URL": fake.base_url,
                  "FANGFEI_GROUP_QUIZ__OPEN_SECONDS": str(OPEN), "FANGFEI_GROUP_QUIZ__PAUSE_SECONDS": "2",
                  "FANGFEI_GROUP_QUIZ__QUESTIONS": "2", "FANGFEI_GROUP_QUIZ__STEP_EVERY_SECONDS": "0.5"})
    await asyncio.to_thread(srv.start)
    try:
        await fake.wait_for(lambda: fake.calls_to("getUpdates"), timeout=20)
        quiz(fake)
        await until(lambda: len(polls(fake)) == 1)
        fake.poll_answer(WANG, list(range(len(polls(fake)[0]["poll"]["options"])))[:1], first_name="王小明")
        await until(lambda: len(polls(fake)) == 2)
        await until(lambda: any("答题结束" in t for t in texts(fake)))
    finally:
        log = await asyncio.to_thread(srv.stop)
    assert "group quiz: round 1 started (admin, 2 questions)" in log and "王" not in log and str(WANG) not in log
    assert any(t.startswith("「防范非法集资知识练习」答题结束") for t in texts(fake))


async def test_an_anonymous_admin_writing_as_the_group_may_start_a_round(
        served: Bot, fake: FakeTelegram, services: Services) -> None:
    update = fake.user_message(1087968824, "/quiz", chat_id=GROUP, chat_type="supergroup", first_name="Group",
                               queue=False)  # Telegram's GroupAnonymousBot, the message sent as the group
    update["message"]["from"]["is_bot"] = True
    update["message"]["sender_chat"] = dict(update["message"]["chat"])
    fake.queue(update)
    await posted(fake, services, 1)
    assert fake.calls_to("getChatMember") == []
