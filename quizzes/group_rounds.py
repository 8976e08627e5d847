"""Quiz rounds in group chats: the questions drawn and frozen with a round, posting its steps one at a time (each
question as a poll, then the leaderboard), each answer once, the round's leaderboard and each group's settings.

Platform-free (handlers/group_quiz.py puts the steps on a platform). A step is posted *at least once*: a process
claims it (`claim`, renewed while the post waits: `renew`), posts it, and only then writes it down (`posted`),
with the platform's poll id. A process killed between the post and the write leaves its claim to run out, and the
step is posted again: one duplicate poll at most, whose answers count for nothing (its poll id was never stored).
A step whose post had an unknown outcome twice (two crashes, or two timeouts) is skipped, so no question is on
screen three times. An answer that arrives between a poll's post and its writing down (milliseconds) is not
counted. A campaign's round posts no more questions once the campaign has ended (on time or closed by hand): its
leaderboard is due at once.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import (
    GroupChat,
    GroupQuizAnswer,
    GroupQuizGroup,
    GroupQuizPoll,
    GroupQuizRound,
    QuizCampaign,
    utcnow,
)
from bot.tips.ledger import as_utc
from quizzes.campaigns import GRACE_SECONDS, QuestionLike, draw, frozen, is_open, taking

log = logging.getLogger(__name__)
QUESTION_MAX, OPTION_MAX, EXPLANATION_MAX, EXPLANATION_FEEDS = 300, 100, 200, 2  # Telegram's poll limits
PREFIX_MAX = 12  # "第 10/15 题：" before the question
MAX_UNKNOWNS = 1  # a step posted with an unknown outcome more often than this is skipped: never a second duplicate
MAX_FAILURES = 5  # posts refused in a row (flood waits used up, server errors) before the round is stopped
RETRY_SECONDS = 5.0
AUDIENCES = ("elderly", "student", "other")
Rounds = GroupQuizRound


class RoundRunning(Exception):
    """The group has a round running already."""


def fit(text: str, limit: int, feeds: int | None = None) -> str:
    """A text within a platform limit: line feeds beyond `feeds` become spaces; cut with … when too long."""
    lines = text.strip().split("\n")
    if feeds is not None and len(lines) > feeds + 1:
        lines = [*lines[:feeds], " ".join(lines[feeds:])]
    text = "\n".join(lines)
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def prepare(bank: Sequence[QuestionLike], count: int, fill: Callable[[str], str],
            rng: random.Random | None = None) -> list[dict[str, Any]]:
    """`count` questions drawn as a round keeps them, each within the poll limits."""
    rng = rng or random.SystemRandom()
    drawn = []
    for q in draw(bank, count, rng):
        item = frozen(q, rng, fill)
        item.update(text=fit(item["text"], QUESTION_MAX - PREFIX_MAX),
                    options=[fit(o, OPTION_MAX) for o in item["options"]],
                    explanation=fit(item["explanation"], EXPLANATION_MAX, EXPLANATION_FEEDS))
        drawn.append(item)
    return drawn


async def running(session: AsyncSession, channel: str, chat: str) -> GroupQuizRound | None:
    return await session.scalar(select(Rounds).where(Rounds.channel == channel, Rounds.chat_id == chat,
                                                     Rounds.state == "running"))


async def start(session: AsyncSession, *, channel: str, chat: str, questions: list[dict[str, Any]], title: str,
                audience: str, campaign_id: int | None, open_seconds: int, origin: str = "admin",
                now: datetime | None = None) -> GroupQuizRound:
    """A new round, its first poll due at once; RoundRunning when the group has one running (two starting at the
    same moment: the database's unique index lets one in)."""
    now = now or utcnow()
    if await running(session, channel, chat) is not None:
        raise RoundRunning
    found = GroupQuizRound(channel=channel, chat_id=chat, campaign_id=campaign_id, audience=audience,
                           title=title[:200], drawn={"questions": questions}, open_seconds=open_seconds,
                           origin=origin, state="running", step=0, due_at=now, unknowns=0, failures=0,
                           started_at=now)
    try:
        async with session.begin_nested():
            session.add(found)
    except IntegrityError as exc:
        raise RoundRunning from exc
    return found


# -- posting the steps -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """What to post next for a round: question `position` as a poll, or (question None) the leaderboard after
    `asked` questions (fewer than `total` when the round's campaign ended first)."""

    round_id: int
    chat: str
    position: int
    total: int
    question: dict[str, Any] | None
    title: str
    open_seconds: int
    asked: int


def _free(now: datetime) -> Any:
    return or_(Rounds.claimed_until.is_(None), Rounds.claimed_until < now)


async def due(session: AsyncSession, channel: str, now: datetime) -> list[int]:
    """The running rounds whose next step is due, or whose campaign has ended, and nobody is posting."""
    ended = Rounds.campaign_id.in_(select(QuizCampaign.id).where(~taking(now)))
    return list(await session.scalars(select(Rounds.id).where(Rounds.channel == channel, Rounds.state == "running",
                                                              or_(Rounds.due_at <= now, ended), _free(now))
                                      .order_by(Rounds.due_at)))


async def claim(session: AsyncSession, round_id: int, now: datetime, seconds: float) -> Step | None:
    """Take the round's due step to post it (None when it is not due, or another process has it). A claim that
    ran out unconfirmed means its process died mid-post: that post may have arrived, so it counts as unknown.
    A round whose campaign has ended (closed on time or by hand) posts no more questions: its leaderboard is
    due at once."""
    found = await session.get(Rounds, round_id, populate_existing=True)
    if found is None or found.state != "running" or (
            found.claimed_until is not None and as_utc(found.claimed_until) >= now):
        return None
    questions = found.drawn["questions"]
    ended = found.step < len(questions) and await _campaign_ended(session, found, now)
    if as_utc(found.due_at) > now and not ended:
        return None
    crashed = int(found.claimed_until is not None and not ended)  # an unconfirmed poll of a step left behind
    won = await session.execute(update(Rounds).where(Rounds.id == found.id, Rounds.step == found.step,
                                                     Rounds.state == "running", _free(now))
                                .values(claimed_until=now + timedelta(seconds=seconds),
                                        unknowns=0 if ended else Rounds.unknowns + crashed,
                                        **({"step": len(questions), "failures": 0} if ended else {}))
                                .execution_options(synchronize_session=False))
    if won.rowcount != 1:
        return None
    if ended:
        log.info("group quiz: round %d ends after %d questions: its campaign has ended", found.id, found.step)
        return Step(found.id, found.chat_id, len(questions), len(questions), None, found.title, found.open_seconds,
                    asked=found.step)
    if found.unknowns + crashed > MAX_UNKNOWNS:
        log.warning("group quiz: round %d step %d skipped (posted twice with an unknown outcome)", found.id,
                    found.step)
        await _move(session, found.id, found.step, len(questions), now)
        return None
    question = questions[found.step] if found.step < len(questions) else None
    return Step(found.id, found.chat_id, found.step, len(questions), question, found.title, found.open_seconds,
                asked=min(found.step, len(questions)))


async def _campaign_ended(session: AsyncSession, found: GroupQuizRound, now: datetime) -> bool:
    """Whether the round is a campaign's whose time is over (a practice round has none)."""
    if found.campaign_id is None:
        return False
    campaign = await session.get(QuizCampaign, found.campaign_id, populate_existing=True)
    return campaign is None or not is_open(campaign, now)


async def renew(session: AsyncSession, step: Step, now: datetime, seconds: float) -> None:
    """Keep holding a claimed step while its post is under way (a flood wait can outlast a claim)."""
    await session.execute(update(Rounds).where(Rounds.id == step.round_id, Rounds.step == step.position,
                                               Rounds.claimed_until.is_not(None))
                          .values(claimed_until=now + timedelta(seconds=seconds))
                          .execution_options(synchronize_session=False))


async def _move(session: AsyncSession, round_id: int, step: int, total: int, due_at: datetime) -> None:
    """Past `step`: the next one due at `due_at`, or, past the leaderboard, the round finished."""
    values: dict[str, Any] = {"claimed_until": None, "unknowns": 0, "failures": 0}
    if step >= total:
        values.update(state="finished", finished_at=due_at)
    else:
        values.update(step=step + 1, due_at=due_at)
    await session.execute(update(Rounds).where(Rounds.id == round_id, Rounds.step == step).values(**values)
                          .execution_options(synchronize_session=False))


async def posted(session: AsyncSession, step: Step, now: datetime, *, pause: float, poll_id: str | None = None,
                 message_id: int | None = None) -> None:
    """The step is on screen: a poll's id is kept (its answers are scored from it); the next step is due once the
    poll has closed and `pause` has passed (late answers still on their way count)."""
    if step.question is None:
        await _move(session, step.round_id, step.position, step.total, now)
        return
    assert poll_id is not None
    closes = now + timedelta(seconds=step.open_seconds)
    session.add(GroupQuizPoll(poll_id=poll_id, round_id=step.round_id, position=step.position,
                              correct=step.question["answer"], message_id=message_id, posted_at=now, closes_at=closes))
    await session.flush()
    await _move(session, step.round_id, step.position, step.total,
                closes + timedelta(seconds=max(pause, GRACE_SECONDS)))


async def unposted(session: AsyncSession, step: Step, now: datetime, kind: str, after: float | None = None) -> None:
    """The post failed: `failed` (the platform refuses: not allowed in the group) stops the round; `unknown` (it
    may have arrived) is tried again at once; `retry` (surely not posted: a flood wait, a server error) after a
    pause, and after MAX_FAILURES in a row the round is stopped."""
    where = (Rounds.id == step.round_id, Rounds.step == step.position)
    if kind == "unknown":
        values: dict[str, Any] = {"claimed_until": None, "unknowns": Rounds.unknowns + 1}
    else:
        found = await session.get(Rounds, step.round_id, populate_existing=True)
        stop = kind == "failed" or (found is not None and found.failures + 1 >= MAX_FAILURES)
        values = ({"state": "stopped", "finished_at": now, "claimed_until": None} if stop else
                  {"claimed_until": None, "failures": Rounds.failures + 1,
                   "due_at": now + timedelta(seconds=max(after or 0.0, RETRY_SECONDS))})
    await session.execute(update(Rounds).where(*where).values(**values).execution_options(synchronize_session=False))


# -- answers and the leaderboard ---------------------------------------------------------------------------------
async def record_answer(session: AsyncSession, poll_id: str, player: str, name: str, choice: int,
                        now: datetime) -> bool:
    """Keep a member's answer to a poll, once: False for a poll not stored (not ours, or a duplicate whose post
    was never confirmed), a round no longer running, an answer after the poll closed, or a second answer."""
    poll = await session.get(GroupQuizPoll, poll_id)
    if poll is None or now > as_utc(poll.closes_at) + timedelta(seconds=GRACE_SECONDS):
        return False
    found = await session.get(Rounds, poll.round_id)
    if found is None or found.state != "running":
        return False
    if not 0 <= choice < len(found.drawn["questions"][poll.position]["options"]):
        return False
    answer = GroupQuizAnswer(poll_id=poll_id, round_id=poll.round_id, player=player, name=name[:32], choice=choice,
                             correct=choice == poll.correct, answered_at=now,
                             seconds=max(0.0, (now - as_utc(poll.posted_at)).total_seconds()))
    try:
        async with session.begin_nested():
            session.add(answer)
    except IntegrityError:  # answered before (a repeated update)
        return False
    return True


@dataclass(frozen=True)
class Standing:
    name: str  # masked
    score: int
    answered: int
    seconds: float


async def leaderboard(session: AsyncSession, round_id: int, top: int = 10) -> tuple[list[Standing], int]:
    """The round's best players (right answers, then the shorter total time, then who answered first) and how
    many took part."""
    score = func.sum(case((GroupQuizAnswer.correct, 1), else_=0))
    seconds = func.sum(GroupQuizAnswer.seconds)
    rows = (await session.execute(
        select(func.max(GroupQuizAnswer.name), score, func.count(), seconds).where(GroupQuizAnswer.round_id == round_id)
        .group_by(GroupQuizAnswer.player).order_by(score.desc(), seconds, func.min(GroupQuizAnswer.answered_at)))).all()
    return [Standing(name, int(right or 0), n, float(time or 0)) for name, right, n, time in rows[:top]], len(rows)


# -- each group's settings ---------------------------------------------------------------------------------------
async def group(session: AsyncSession, channel: str, chat: str) -> GroupQuizGroup | None:
    return await session.scalar(select(GroupQuizGroup).where(GroupQuizGroup.channel == channel,
                                                             GroupQuizGroup.chat_id == chat))


async def configure(session: AsyncSession, channel: str, chat: str, *, audience: str | None = None,
                    scheduled: bool | None = None) -> GroupQuizGroup:
    """Change a group's settings (made on first use)."""
    found = await group(session, channel, chat)
    if found is None:
        found = GroupQuizGroup(channel=channel, chat_id=chat, audience="other", scheduled=False)
        try:
            async with session.begin_nested():
                session.add(found)
        except IntegrityError:  # made by another admin's command at the same moment
            found = await group(session, channel, chat)
            assert found is not None
    if audience is not None:
        found.audience = audience
    if scheduled is not None:
        found.scheduled = scheduled
    return found


async def scheduled_groups(session: AsyncSession, channel: str, day: str) -> list[GroupQuizGroup]:
    """Groups that opted in to daily rounds, have had none on `day` and still have the bot."""
    gone = exists().where(GroupChat.channel == GroupQuizGroup.channel, GroupChat.chat_id == GroupQuizGroup.chat_id,
                          GroupChat.active.is_(False))
    return list(await session.scalars(select(GroupQuizGroup).where(
        GroupQuizGroup.channel == channel, GroupQuizGroup.scheduled.is_(True),
        or_(GroupQuizGroup.last_day.is_(None), GroupQuizGroup.last_day != day), ~gone)))


async def take_day(session: AsyncSession, group_id: int, day: str) -> bool:
    """Mark the group's daily round of `day` as taken; False when another process took it."""
    done = await session.execute(update(GroupQuizGroup).where(
        GroupQuizGroup.id == group_id, or_(GroupQuizGroup.last_day.is_(None), GroupQuizGroup.last_day != day))
        .values(last_day=day).execution_options(synchronize_session=False))
    return done.rowcount == 1
