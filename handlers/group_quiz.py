"""Quiz rounds in a group chat as the group sees them: `/quiz` from an admin, one quiz poll at a time, the answers,
the leaderboard at the end, and a daily round for groups that opted in.

The platform is a `GroupTalk` (bot/channels/telegram_groups.py for Telegram): it posts what it is given and says
who is an admin; every decision is made here, and what a round has posted is kept by quizzes/group_rounds.py.
A group's round is not an attempt of the campaign: it is ranked within the group only (Telegram tells us no region).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime
from typing import NamedTuple, Protocol

from bot.outbox import Outcome
from bot.services import Services
from bot.storage import inbox
from bot.storage.models import GroupQuizRound, utcnow
from bot.tips.ledger import CHINA, as_utc
from quizzes import campaigns, group_rounds
from quizzes.group_rounds import RoundRunning, Step

log = logging.getLogger(__name__)
WHO = {"老年人": "elderly", "学生": "student", "其他": "other"}
LABEL = {v: k for k, v in WHO.items()}
ON, OFF = ("on", "开", "开启"), ("off", "关", "关闭")
TOP = 10
ADMIN_SECONDS = 60.0  # how long a member's admin status, once asked, is taken as known
PRACTICE_TITLE = "防范非法集资知识练习"

NOT_ADMIN = "群答题要由群管理员发起。想自己答题，请私聊我，发“答题”。"
RUNNING = "这一轮答题还没结束，先答题吧。结束后管理员可以再发 /quiz。"
CANNOT_CHECK = "暂时查不到您是不是群管理员，请过一会儿再发 /quiz。"
NO_QUESTIONS = "题库还在准备中，请过几天再发 /quiz。"
USAGE = ("群答题的用法（管理员发）：\n/quiz 开始一轮\n/quiz on 活动期间每天自动出一轮，/quiz off 关掉\n"
         "/quiz 老年人、/quiz 学生 或 /quiz 其他：按这类题目出题")
SCHEDULED = "好的，答题活动期间每天 {at} 在本群自动出一轮题。关掉请发 /quiz off。"
UNSCHEDULED = "好的，不再自动出题。想答题时，管理员发 /quiz。"
INTRO = "「{title}」群答题开始！\n一共 {n} 题，每题 {s} 秒，一题一题出，点选项作答，最后公布排行榜。\n{note}"
PRACTICE_NOTE = "这是练习赛，不计入活动排名。"
CAMPAIGN_NOTE = "本群排名不计入活动成绩；正式参赛请私聊我，发“答题”。"
NOBODY = "「{title}」答题结束，这一轮没有人作答。\n想再来一轮，请群管理员发 /quiz。"
BOARD_HEAD = "「{title}」答题结束！一共 {n} 题，{players} 人参加。\n排行榜："
ENDED_HEAD = "「{title}」活动已经结束，这一轮答题也结束了。答了 {n} 题，{players} 人参加。\n排行榜："
BOARD_LINE = "{rank}. {name}  答对 {score} 题  用时 {seconds} 秒"
BOARD_TAIL = "想自己多练练，请私聊我，发“答题”。"


class Posted(NamedTuple):
    poll_id: str
    message_id: int | None


class SendFailed(Exception):
    """A platform request did not go through; `outcome` says whether it may have arrived (bot/outbox.py)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


class GroupTalk(Protocol):
    channel: str

    async def is_admin(self, chat: str, user: str) -> bool: ...

    async def post_poll(self, chat: str, question: str, options: list[str], correct: int, explanation: str,
                        open_seconds: int) -> Posted: ...

    async def post_text(self, chat: str, text: str) -> None: ...


class GroupHost:
    def __init__(self, services: Services, talk: GroupTalk) -> None:
        self.services, self.talk = services, talk
        self.settings = services.settings.group_quiz
        self._noticed: dict[tuple[str, str], float] = {}  # (group, refusal) → when this process last said it
        self._admins: dict[tuple[str, str], tuple[bool, float]] = {}  # (group, member) → (admin?, when asked)

    # -- what group members do -------------------------------------------------------------------------------
    async def command(self, chat: str, user: str, args: str, key: str, admin: bool | None = None) -> None:
        """`/quiz [on|off|老年人|学生|其他]` in a group (`key`: the platform's id of this message, handled once;
        `admin`: None to ask the platform)."""
        db = self.services.db
        async with db.transaction() as session:
            if not await inbox.record(session, key, postgres=not db.is_sqlite):
                return
        if not self.services.limits.message(self.talk.channel, user):
            return  # over the per-user message limit: not read (the engine's rule for every message)
        if admin is None:
            try:
                admin = await self._is_admin(chat, user)
            except SendFailed:
                await self._notice(chat, CANNOT_CHECK)
                return
        if not admin:
            await self._notice(chat, NOT_ADMIN)
            return
        word = args.strip().lower()
        channel = self.talk.channel
        if word in ON or word in OFF:
            async with db.transaction() as session:
                await group_rounds.configure(session, channel, chat, scheduled=word in ON)
            await self._say(chat, SCHEDULED.format(at=self.settings.daily_at) if word in ON else UNSCHEDULED)
        elif word in WHO:
            async with db.transaction() as session:
                await group_rounds.configure(session, channel, chat, audience=WHO[word])
            await self.start(chat)
        elif word:
            await self._say(chat, USAGE)
        else:
            await self.start(chat)

    async def _is_admin(self, chat: str, user: str) -> bool:
        """Asked of the platform at most once in ADMIN_SECONDS per member (requests about a group count towards
        its 20 a minute in the rate limiter: a member repeating /quiz must not hold up the polls)."""
        moment, key = time.monotonic(), (chat, user)
        known = self._admins.get(key)
        if known is not None and moment - known[1] < ADMIN_SECONDS:
            return known[0]
        if len(self._admins) > 10_000:
            self._admins.clear()
        answer = await self.talk.is_admin(chat, user)
        self._admins[key] = (answer, moment)
        return answer

    async def answer(self, poll_id: str, user: str, name: str, options: list[int],
                     now: datetime | None = None) -> bool:
        """A member's vote in a poll; True when it was counted (once, in time, to a poll of a running round)."""
        if len(options) != 1:  # a vote taken back, or several options: a quiz poll allows neither
            return False
        player = campaigns.player_key(self.services.vault, self.talk.channel, user)
        async with self.services.db.transaction() as session:
            return await group_rounds.record_answer(session, poll_id, player, campaigns.mask(name.strip()),
                                                    options[0], now or utcnow())

    # -- rounds --------------------------------------------------------------------------------------------------
    async def start(self, chat: str, origin: str = "admin", now: datetime | None = None) -> GroupQuizRound | None:
        """Start a round in the group and post its first poll: from the open campaign for the group's audience,
        else a practice round (a daily round needs a campaign). None when nothing was started."""
        services, settings, channel = self.services, self.settings, self.talk.channel
        try:
            async with services.db.transaction() as session:
                conf = await group_rounds.group(session, channel, chat)
                audience = conf.audience if conf is not None else "other"
                campaign = await campaigns.open_for(session, audience, now)
                if campaign is None and origin == "schedule":
                    return None
                if campaign is not None:
                    bank = campaigns.bank_for(campaign, services.quiz_questions)
                    count, title = min(campaign.questions, settings.max_questions), campaign.name
                else:
                    banks = campaigns.BANKS_FOR["all" if audience == "other" else audience]
                    bank = [q for q in services.quiz_questions if q.audience in banks]
                    count, title = settings.questions, PRACTICE_TITLE
                questions = group_rounds.prepare(bank, count, services.fill)
                if not questions:
                    raise LookupError
                found = await group_rounds.start(
                    session, channel=channel, chat=chat, questions=questions, title=title, audience=audience,
                    campaign_id=campaign.id if campaign else None, open_seconds=settings.open_seconds, origin=origin,
                    now=now)
        except RoundRunning:
            if origin == "admin":
                await self._notice(chat, RUNNING)
            return None
        except LookupError:  # no questions for this audience
            await self._say(chat, NO_QUESTIONS)
            return None
        log.info("group quiz: round %d started (%s, %d questions)", found.id, origin, len(questions))
        await self._say(chat, INTRO.format(title=title, n=len(questions), s=settings.open_seconds,
                                           note=CAMPAIGN_NOTE if campaign else PRACTICE_NOTE))
        await self.step_round(found.id)
        return found

    async def step_due(self, now: datetime | None = None) -> int:
        """Post every step that is due (the leading process's job); how many were posted."""
        async with self.services.db.session() as session:
            ids = await group_rounds.due(session, self.talk.channel, now or utcnow())
        # groups apart: one group's flood wait holds up no other
        return sum(await asyncio.gather(*(self.step_round(i) for i in ids)))

    async def step_round(self, round_id: int) -> bool:
        """Post the round's due step, if this process can claim it (see quizzes/group_rounds.py)."""
        db = self.services.db
        async with db.transaction() as session:
            step = await group_rounds.claim(session, round_id, utcnow(), self.settings.claim_seconds)
        if step is None:
            return False
        holding = asyncio.create_task(self._hold(step))
        try:
            posted = await self._post(step)
        except SendFailed as exc:
            log.warning("group quiz: round %d step %d not posted (%s: %s)", step.round_id, step.position,
                        exc.outcome.kind, exc.outcome.error[:100])
            async with db.transaction() as session:
                await group_rounds.unposted(session, step, utcnow(), exc.outcome.kind, exc.outcome.after)
            return False
        finally:
            holding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holding
        async with db.transaction() as session:
            await group_rounds.posted(session, step, utcnow(), pause=self.settings.pause_seconds,
                                      poll_id=posted.poll_id if posted else None,
                                      message_id=posted.message_id if posted else None)
        return True

    async def _hold(self, step: Step) -> None:
        """Renew the claim on a step while it is being posted (the post may wait out flood limits)."""
        seconds = self.settings.claim_seconds
        while True:
            await asyncio.sleep(seconds / 3)
            try:
                async with self.services.db.transaction() as session:
                    await group_rounds.renew(session, step, utcnow(), seconds)
            except Exception as exc:  # a database hiccup: the next beat tries again
                log.warning("group quiz: could not renew a claim (%s)", exc.__class__.__name__)

    async def _post(self, step: Step) -> Posted | None:
        if step.question is None:
            await self.talk.post_text(step.chat, await self._board(step))
            return None
        q = step.question
        return await self.talk.post_poll(step.chat, f"第 {step.position + 1}/{step.total} 题：{q['text']}",
                                         list(q["options"]), q["answer"], q["explanation"], step.open_seconds)

    async def _board(self, step: Step) -> str:
        async with self.services.db.session() as session:
            standings, players = await group_rounds.leaderboard(session, step.round_id, TOP)
        if not players:
            return NOBODY.format(title=step.title)
        head = BOARD_HEAD if step.asked == step.total else ENDED_HEAD
        lines = [head.format(title=step.title, n=step.asked, players=players)]
        lines += [BOARD_LINE.format(rank=n, name=s.name, score=s.score, seconds=round(s.seconds))
                  for n, s in enumerate(standings, 1)]
        return "\n".join([*lines, BOARD_TAIL])

    async def schedule_due(self, now: datetime | None = None) -> int:
        """Start today's round in each group that opted in, from the configured time on, while a campaign for
        its audience is open (the leading process's job); how many were started."""
        now = now or utcnow()
        china = as_utc(now).astimezone(CHINA)
        if china.strftime("%H:%M") < self.settings.daily_at:
            return 0
        day, started = china.strftime("%Y-%m-%d"), 0
        async with self.services.db.session() as session:
            groups = [(g.id, g.chat_id, g.audience) for g in
                      await group_rounds.scheduled_groups(session, self.talk.channel, day)]
            wanted = [(g, chat) for g, chat, audience in groups if await campaigns.open_for(session, audience, now)]
        for group_id, chat in wanted:
            async with self.services.db.transaction() as session:
                if not await group_rounds.take_day(session, group_id, day):
                    continue
            started += await self.start(chat, origin="schedule", now=now) is not None
        return started

    # -- saying things ---------------------------------------------------------------------------------------
    async def _notice(self, chat: str, text: str) -> None:
        """A refusal, each at most once in `notice_seconds` per group: members repeating /quiz get no stream of
        answers eating into the group's 20 messages a minute (counted per process)."""
        moment = time.monotonic()
        last = self._noticed.get((chat, text))
        if last is not None and moment - last < self.settings.notice_seconds:
            return
        if len(self._noticed) > 10_000:
            self._noticed.clear()
        self._noticed[(chat, text)] = moment
        await self._say(chat, text)

    async def _say(self, chat: str, text: str) -> None:
        try:
            await self.talk.post_text(chat, self.services.fill(text))
        except SendFailed as exc:
            log.warning("group quiz: a message to a group was not sent (%s)", exc.outcome.kind)
