"""Quiz campaigns: who plays where, drawing an attempt's questions, taking each answer once, scores and standings.

Platform-free: the quiz page's JSON API, the chat flows and the CLI call these functions inside their own session
and transaction. A player is a keyed fingerprint of who they are on a channel (`player_key`); what an attempt asked
is kept with it, so a later edit of a bank changes no past score.
"""

from __future__ import annotations

import random
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from bot.config import RegionSettings
from bot.staff import accounts
from bot.storage.models import AuditEntry, QuizAnswer, QuizAttempt, QuizCampaign, QuizPlayer, utcnow
from bot.tips.ledger import CHINA, as_utc
from bot.vault import Vault

AUDIENCES = ("elderly", "student", "all")
TAKING = ("open", "scheduled")  # states in which a campaign takes answers between its start and end
BANKS_FOR = {"elderly": ("elderly", "general"), "student": ("student", "general"),
             "all": ("elderly", "student", "general")}
GRACE_SECONDS = 2.0  # a per-question deadline forgives this much network delay
CERTIFICATE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,63}")  # a campaign's short name (its quiz page's link): 2 to 64 characters
SLUG_MAX, TOKEN_MAX, CODE_MAX = 64, 32, 16  # as stored (bot/storage/models.py)


class QuestionLike(Protocol):
    id: str
    audience: str
    category: str
    question: str
    options: tuple[str, ...]
    answer: str
    explanation: str
    entry: str


class QuizError(Exception):
    """Why a quiz request cannot be done: `kind` is one of not-found, closed, limit, region, answered, foreign,
    invalid; the message is for the operator or the page. (A late answer is no error: `Answered.late`.)"""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    kind: str  # "village" or "school"
    township: str  # the township's code
    population: int  # adults (villages) or students (schools); 0 when unknown


@dataclass(frozen=True)
class Asked:
    """A drawn question as a player sees it: its position in the attempt and the options in drawn order."""

    position: int
    id: str
    text: str
    options: list[str]
    deadline: datetime | None
    total: int


@dataclass(frozen=True)
class Answered:
    correct: bool
    answer: int
    explanation: str
    entry: str
    score: int
    next: Asked | None
    attempt: QuizAttempt
    late: bool = False  # past the question's deadline: recorded as not answered in time, the score unchanged


def player_key(vault: Vault, kind: str, ident: str) -> str:
    """The stored stand-in for a player: a keyed fingerprint of (kind, id), e.g. ("telegram", "123")."""
    return vault.fingerprint("quiz-player", kind, ident)


def china_day(moment: datetime) -> str:
    return as_utc(moment).astimezone(CHINA).strftime("%Y-%m-%d")


# -- campaigns -------------------------------------------------------------------------------------------------------
async def create(session: AsyncSession, *, slug: str, name: str, audience: str, questions: int = 10,
                 seconds_per_question: int | None = None, attempts_per_day: int = 3, scoring: str = "best",
                 pass_mark: int = 60, starts_at: datetime | None = None, ends_at: datetime | None = None,
                 townships: Sequence[str] = (), open_now: bool = False) -> QuizCampaign:
    if audience not in AUDIENCES:
        raise QuizError("invalid", f"audience must be one of {', '.join(AUDIENCES)}")
    if scoring not in ("best", "last"):
        raise QuizError("invalid", "scoring must be best or last")
    if not 1 <= questions <= 50 or not 1 <= attempts_per_day <= 100 or not 0 <= pass_mark <= 100:
        raise QuizError("invalid", "questions 1-50, attempts per day 1-100, pass mark 0-100")
    if seconds_per_question is not None and not 5 <= seconds_per_question <= 600:
        raise QuizError("invalid", "seconds per question 5-600")
    if starts_at and ends_at and ends_at <= starts_at:
        raise QuizError("invalid", "the end must come after the start")
    if await find(session, slug) is not None:
        raise QuizError("invalid", f"a campaign {slug!r} exists already")
    campaign = QuizCampaign(slug=slug, name=name, audience=audience, questions=questions,
                            seconds_per_question=seconds_per_question, attempts_per_day=attempts_per_day,
                            scoring=scoring, pass_mark=pass_mark, starts_at=starts_at, ends_at=ends_at,
                            state=_first_state(open_now, starts_at), townships={"codes": list(townships)})
    session.add(campaign)
    await session.flush()
    return campaign


def _first_state(open_now: bool, starts_at: datetime | None) -> str:
    """open (now), scheduled (opens at its start, quizzes/schedule.py writes it down) or draft (opened by hand)."""
    if starts_at is not None and (as_utc(starts_at) > utcnow() or not open_now):
        return "scheduled"
    return "open" if open_now else "draft"


def township_codes(campaign: QuizCampaign) -> list[str]:
    """The codes of the townships a campaign is for; none for a county-wide one."""
    return (campaign.townships or {}).get("codes") or []


def visible_to(campaign: QuizCampaign, scope: list[str] | None) -> bool:
    """Whether staff limited to the townships `scope` see the campaign (bot/staff/accounts.py `sees`)."""
    return accounts.sees(scope, township_codes(campaign))


def within(campaign: QuizCampaign, scope: list[str] | None) -> bool:
    """Whether staff limited to `scope` may open or close the campaign (bot/staff/accounts.py `owns`)."""
    return accounts.owns(scope, township_codes(campaign))


async def hold(session: AsyncSession, campaign: QuizCampaign) -> None:
    """Lock the campaign's row for a change by hand, read again as it now stands (PostgreSQL; SQLite has one
    writer at a time): two staff (or one double click) change it one after the other."""
    await session.refresh(campaign, with_for_update=True)


def open_by_hand(campaign: QuizCampaign, now: datetime | None = None) -> bool:
    """Open by hand, at once: a start still to come moves to now; a campaign whose end has passed stays shut.
    False when it was open already (nothing changed)."""
    now = now or utcnow()
    if campaign.ends_at is not None and as_utc(campaign.ends_at) <= now:
        raise QuizError("invalid", f"{campaign.slug}: its end has passed; it cannot open again")
    if campaign.state == "open" and (campaign.starts_at is None or as_utc(campaign.starts_at) <= now):
        return False
    if campaign.starts_at is not None and as_utc(campaign.starts_at) > now:
        campaign.starts_at = now
    campaign.state = "open"
    return True


def close_by_hand(campaign: QuizCampaign) -> bool:
    """Close at once: no new attempts or answers; its results stay. False when it was closed already."""
    if campaign.state == "closed":
        return False
    campaign.state = "closed"
    return True


def storable(name: str, limit: int) -> bool:
    """Whether a name a request gives (a slug, an attempt's token, a certificate's code) could be a stored one:
    at most `limit` characters of printable text. Any other names nothing, and is never sent to the database
    (PostgreSQL refuses a NUL in text; no database takes a lone surrogate)."""
    return len(name) <= limit and name.isprintable()


async def find(session: AsyncSession, slug: str) -> QuizCampaign | None:
    if not storable(slug, SLUG_MAX):
        return None
    return await session.scalar(select(QuizCampaign).where(QuizCampaign.slug == slug))


async def named(session: AsyncSession, slug: str) -> QuizCampaign:
    """The campaign with this slug; QuizError("not-found") when there is none."""
    campaign = await find(session, slug)
    if campaign is None:
        raise QuizError("not-found", f"no campaign {slug!r}")
    return campaign


def is_open(campaign: QuizCampaign, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return (campaign.state in TAKING and (campaign.starts_at is None or as_utc(campaign.starts_at) <= now)
            and (campaign.ends_at is None or now < as_utc(campaign.ends_at)))


def taking(now: datetime) -> ColumnElement[bool]:
    """`is_open` as a condition on QuizCampaign rows, for queries."""
    return (QuizCampaign.state.in_(TAKING) & (QuizCampaign.starts_at.is_(None) | (QuizCampaign.starts_at <= now))
            & (QuizCampaign.ends_at.is_(None) | (QuizCampaign.ends_at > now)))


async def open_for(session: AsyncSession, audience: str, now: datetime | None = None) -> QuizCampaign | None:
    """The open campaign for a player of this audience (elderly, student, other), newest first."""
    wanted = ("all",) if audience == "other" else (audience, "all")
    rows = await session.scalars(select(QuizCampaign).where(QuizCampaign.state.in_(TAKING),
                                                            QuizCampaign.audience.in_(wanted))
                                 .order_by(QuizCampaign.id.desc()))
    return next((c for c in rows if is_open(c, now)), None)


def regions(region: RegionSettings, campaign: QuizCampaign) -> list[Region]:
    """Where a player of this campaign may play for: villages (elderly, all) and schools (student, all) of the
    campaign's townships (all of the county when it names none)."""
    scope = set((campaign.townships or {}).get("codes") or [t.code for t in region.townships])
    found: list[Region] = []
    if campaign.audience in ("elderly", "all"):
        found += [Region(v.code, f"{t.name} {v.name}", "village", t.code, v.adults)
                  for t in region.townships if t.code in scope for v in t.villages]
    if campaign.audience in ("student", "all"):
        found += [Region(s.code, s.name, "school", s.township, s.students)
                  for s in region.schools if not s.township or s.township in scope]
    return found


# -- players and attempts ----------------------------------------------------------------------------------------------
async def player(session: AsyncSession, campaign: QuizCampaign, key: str, *, region: str | None = None,
                 name: str | None = None, region_settings: RegionSettings | None = None) -> QuizPlayer:
    """The campaign's player with this key (made on first play); a region or name given is kept."""
    if region is not None and region_settings is not None and region not in {
            r.code for r in regions(region_settings, campaign)}:
        raise QuizError("region", "unknown region for this campaign")
    found = await session.scalar(select(QuizPlayer).where(QuizPlayer.campaign_id == campaign.id,
                                                          QuizPlayer.key == key))
    if found is None:
        found = QuizPlayer(campaign_id=campaign.id, key=key)
        try:
            async with session.begin_nested():
                session.add(found)
        except IntegrityError:  # made by a request of the same player at the same moment
            found = (await session.scalars(select(QuizPlayer).where(QuizPlayer.campaign_id == campaign.id,
                                                                    QuizPlayer.key == key))).one()
    if region is not None:
        found.region = region
    if name is not None:
        found.name = name.strip()[:32] or None
    return found


def draw(bank: Sequence[QuestionLike], count: int, rng: random.Random) -> list[QuestionLike]:
    """`count` questions at random, spread over categories (one from each in turn), no repeats."""
    by_category: dict[str, list[QuestionLike]] = {}
    for question in bank:
        by_category.setdefault(question.category, []).append(question)
    pools = list(by_category.values())
    for pool in pools:
        rng.shuffle(pool)
    rng.shuffle(pools)
    chosen: list[QuestionLike] = []
    while len(chosen) < count and any(pools):
        for pool in pools:
            if pool and len(chosen) < count:
                chosen.append(pool.pop())
    rng.shuffle(chosen)
    return chosen


def frozen(q: QuestionLike, rng: random.Random, fill: Callable[[str], str]) -> dict[str, Any]:
    """A drawn question as kept with an attempt or a round: texts filled in, options in a random order."""
    order = list(range(len(q.options)))
    rng.shuffle(order)
    return {"id": q.id, "text": fill(q.question), "options": [fill(q.options[i]) for i in order],
            "answer": order.index(q.options.index(q.answer)), "explanation": fill(q.explanation),
            "category": q.category, "entry": q.entry}


def bank_for(campaign: QuizCampaign, questions: Sequence[QuestionLike]) -> list[QuestionLike]:
    return [q for q in questions if q.audience in BANKS_FOR[campaign.audience]]


async def start(session: AsyncSession, campaign: QuizCampaign, who: QuizPlayer, bank: Sequence[QuestionLike],
                channel: str, fill: Callable[[str], str], *, rng: random.Random | None = None,
                now: datetime | None = None) -> QuizAttempt:
    """A new attempt with its questions drawn (QuizError when the campaign is not open or today's attempts are
    used up)."""
    now = now or utcnow()
    if not is_open(campaign, now):
        raise QuizError("closed", "this campaign is not open")
    day = china_day(now)
    today = await session.scalar(select(func.count(QuizAttempt.id)).where(QuizAttempt.player_id == who.id,
                                                                          QuizAttempt.day == day)) or 0
    if today >= campaign.attempts_per_day:
        raise QuizError("limit", f"{campaign.attempts_per_day} attempts a day: come back tomorrow")
    rng = rng or random.SystemRandom()
    drawn = [frozen(q, rng, fill) for q in draw(bank_for(campaign, bank), campaign.questions, rng)]
    if not drawn:
        raise QuizError("closed", "this campaign has no questions")
    attempt = QuizAttempt(token=secrets.token_urlsafe(12), campaign_id=campaign.id, player_id=who.id,
                          channel=channel, day=day, drawn={"questions": drawn}, started_at=now, asked_at=now)
    session.add(attempt)
    await session.flush()
    return attempt


def current(campaign: QuizCampaign, attempt: QuizAttempt) -> Asked | None:
    """The question the attempt is waiting for (None when it is finished)."""
    questions = attempt.drawn["questions"]
    if attempt.finished_at is not None or attempt.answered >= len(questions):
        return None
    q = questions[attempt.answered]
    deadline = (as_utc(attempt.asked_at) + timedelta(seconds=campaign.seconds_per_question)
                if campaign.seconds_per_question else None)
    return Asked(attempt.answered, q["id"], q["text"], list(q["options"]), deadline, len(questions))


async def attempt_of(session: AsyncSession, token: str, who: QuizPlayer | None = None) -> QuizAttempt:
    """The attempt a token names; QuizError("foreign") when it is another player's (told apart from unknown only
    in the message, never in the status: both look like "not found")."""
    found = await session.scalar(select(QuizAttempt).where(QuizAttempt.token == token))
    if found is None or (who is not None and found.player_id != who.id):
        raise QuizError("not-found", "no such attempt")
    return found


async def answering(session: AsyncSession, slug: str, token: str, key: str) -> tuple[QuizCampaign, QuizAttempt]:
    """The campaign and the attempt a player (by key) answers, in one query; QuizError("not-found") for an unknown
    campaign or attempt, another player's attempt, or an attempt of another campaign (all look the same)."""
    if not storable(token, TOKEN_MAX) or not storable(slug, SLUG_MAX):
        raise QuizError("not-found", "no such attempt")
    found = (await session.execute(
        select(QuizCampaign, QuizAttempt).join(QuizAttempt, QuizAttempt.campaign_id == QuizCampaign.id)
        .join(QuizPlayer, QuizPlayer.id == QuizAttempt.player_id)
        .where(QuizAttempt.token == token, QuizCampaign.slug == slug, QuizPlayer.key == key))).first()
    if found is None:
        raise QuizError("not-found", "no such attempt")
    return found[0], found[1]


@dataclass(frozen=True)
class Judged:
    """An answer weighed against the attempt as read: what to store if the attempt is still where it was."""

    position: int
    question: dict[str, Any]
    choice: int  # as stored: -1 when too late
    correct: bool
    late: bool
    seconds: float
    last: bool


def judge(campaign: QuizCampaign, attempt: QuizAttempt, question_id: str, choice: int, now: datetime) -> Judged:
    """Weigh an answer to the attempt's current question; QuizError when it cannot count (the attempt finished,
    another question, the campaign closed, no such option). After the question's deadline it is `late`: recorded
    as not answered in time, and the attempt moves on."""
    asked = current(campaign, attempt)
    if asked is None:
        raise QuizError("answered", "this attempt is finished")
    if question_id != asked.id:
        raise QuizError("answered", "that question is not the one being asked (answered already?)")
    if not is_open(campaign, now):
        raise QuizError("closed", "this campaign is not open any more")
    q = attempt.drawn["questions"][asked.position]
    if not isinstance(choice, int) or isinstance(choice, bool) or not 0 <= choice < len(q["options"]):
        raise QuizError("invalid", f"choice must be an option's index, 0 to {len(q['options']) - 1}")
    late = asked.deadline is not None and now > asked.deadline + timedelta(seconds=GRACE_SECONDS)
    return Judged(asked.position, q, -1 if late else choice, not late and choice == q["answer"], late,
                  max(0.0, (now - as_utc(attempt.asked_at)).total_seconds()), asked.position + 1 == asked.total)


def moved_on(campaign: QuizCampaign, attempt: QuizAttempt, judged: Judged, now: datetime) -> Answered:
    """The answer as the player hears it, once the attempt (in memory) has moved past the question."""
    for column, value in (("answered", judged.position + 1), ("score", attempt.score + int(judged.correct)),
                          ("seconds", attempt.seconds + judged.seconds), ("asked_at", now),
                          ("finished_at", now if judged.last else None)):
        set_committed_value(attempt, column, value)  # as stored: nothing for a session to write again
    q = judged.question
    return Answered(judged.correct, q["answer"], q["explanation"], q["entry"], attempt.score,
                    current(campaign, attempt), attempt, judged.late)


async def answer(session: AsyncSession, campaign: QuizCampaign, attempt: QuizAttempt, question_id: str,
                 choice: int, *, now: datetime | None = None) -> Answered:
    """Take the answer to the attempt's current question, once (`judge` says what cannot count); a second answer
    to it is refused with the score unchanged."""
    now = now or utcnow()
    judged = judge(campaign, attempt, question_id, choice, now)
    # the counter moves only from this position: of many concurrent answers one moves it (PostgreSQL re-checks
    # the condition after the first commits), the others change nothing and are refused
    moved = await session.execute(
        update(QuizAttempt).where(QuizAttempt.id == attempt.id, QuizAttempt.answered == judged.position)
        .values(answered=QuizAttempt.answered + 1, score=QuizAttempt.score + int(judged.correct),
                seconds=QuizAttempt.seconds + judged.seconds, asked_at=now,
                finished_at=now if judged.last else None)
        .execution_options(synchronize_session=False))
    if moved.rowcount != 1:
        raise QuizError("answered", "this question was answered already")
    q = judged.question
    session.add(QuizAnswer(attempt_id=attempt.id, position=judged.position, question_id=q["id"],
                           category=q["category"], choice=judged.choice, correct=judged.correct,
                           seconds=judged.seconds, answered_at=now))
    result = moved_on(campaign, attempt, judged, now)
    if judged.last:
        await session.flush()
        await _keep_counting(session, campaign, attempt)
        if passed(campaign, attempt) and attempt.certificate is None:
            attempt.certificate = certificate_code()
    return result


async def _keep_counting(session: AsyncSession, campaign: QuizCampaign, attempt: QuizAttempt) -> None:
    """A finished attempt becomes its player's counting one when it is better (best scoring) or newer (last)."""
    better = (QuizPlayer.best_score.is_(None) | (QuizPlayer.best_score < attempt.score)
              | ((QuizPlayer.best_score == attempt.score) & (QuizPlayer.best_seconds > attempt.seconds)))
    where = [QuizPlayer.id == attempt.player_id] + ([better] if campaign.scoring == "best" else [])
    await session.execute(update(QuizPlayer).where(*where).values(
        best_attempt_id=attempt.id, best_score=attempt.score, best_seconds=attempt.seconds)
        .execution_options(synchronize_session=False))


def certificate_code() -> str:
    """A new certificate's code: unguessable, and easy to read out and type."""
    return "".join(secrets.choice(CERTIFICATE_ALPHABET) for _ in range(10))


def passed(campaign: QuizCampaign, attempt: QuizAttempt) -> bool:
    total = len(attempt.drawn["questions"])
    return attempt.finished_at is not None and total > 0 and attempt.score * 100 >= campaign.pass_mark * total


async def record_paper(session: AsyncSession, region: RegionSettings, campaign: QuizCampaign, *, place: str,
                       score: int, recorded_by: str, name: str | None = None, total: int | None = None,
                       now: datetime | None = None) -> QuizAttempt:
    """A result an elderly resident without a smartphone answered on paper, entered by a village cadre (proxy
    entry): a player and a finished attempt of its own, counted in the standings and apart in the statistics."""
    now = now or utcnow()
    total = total or campaign.questions
    if not 0 <= score <= total:
        raise QuizError("invalid", f"the score must be between 0 and {total}")
    if place not in {r.code for r in regions(region, campaign)}:
        raise QuizError("region", f"{place!r} is not a region of this campaign")
    who = QuizPlayer(campaign_id=campaign.id, key=secrets.token_hex(32), name=(name or "").strip()[:32] or None,
                     region=place, on_paper=True)
    session.add(who)
    await session.flush()
    attempt = QuizAttempt(token=secrets.token_urlsafe(12), campaign_id=campaign.id, player_id=who.id,
                          channel="paper", day=china_day(now), drawn={"questions": [], "paper": {"total": total}},
                          answered=total, score=score, seconds=0.0, started_at=now, asked_at=now, finished_at=now)
    session.add(attempt)
    session.add(AuditEntry(actor=recorded_by[:64], action="quiz-paper", subject=campaign.slug[:64]))
    await session.flush()
    await _keep_counting(session, campaign, attempt)
    return attempt


# -- statistics ------------------------------------------------------------------------------------------------
async def stats(session: AsyncSession, region: RegionSettings, campaign: QuizCampaign) -> dict[str, Any]:
    """Participation and results: overall, by region, by question and by category (the weak topics)."""
    finished = (QuizAttempt.campaign_id == campaign.id, QuizAttempt.finished_at.is_not(None))
    attempts = await session.scalar(select(func.count(QuizAttempt.id)).where(*finished)) or 0
    started = await session.scalar(select(func.count(QuizAttempt.id))
                                   .where(QuizAttempt.campaign_id == campaign.id)) or 0
    counting = counting_attempts(campaign)
    totals = (await session.execute(select(QuizAttempt.id, QuizAttempt.score, func.count(QuizAnswer.id))
                                    .join(QuizAnswer, QuizAnswer.attempt_id == QuizAttempt.id)
                                    .join(counting, counting.c.id == QuizAttempt.id)
                                    .group_by(QuizAttempt.id, QuizAttempt.score))).all()
    players = len(totals)
    passed_players = sum(1 for _, score, total in totals if total and score * 100 >= campaign.pass_mark * total)
    paper = await session.scalar(select(func.count(QuizPlayer.id)).where(QuizPlayer.campaign_id == campaign.id,
                                                                         QuizPlayer.on_paper)) or 0
    board = await leaderboard(session, region, campaign, top=0)
    answers = (QuizAnswer.attempt_id == QuizAttempt.id, QuizAttempt.campaign_id == campaign.id)

    async def rates(column: Any) -> list[dict[str, Any]]:
        rows = await session.execute(select(column, func.count(QuizAnswer.id),
                                            func.sum(case((QuizAnswer.correct, 1), else_=0)))
                                     .where(*answers).group_by(column))
        found = [{"id": key, "answered": n, "correct_rate": round((right or 0) / n, 4)} for key, n, right in rows]
        return sorted(found, key=lambda r: (r["correct_rate"], -r["answered"], r["id"]))

    return {"slug": campaign.slug, "players": players, "attempts": attempts, "unfinished": started - attempts,
            "on_paper": paper, "pass_rate": round(passed_players / players, 4) if players else None,
            "mean_score": round(sum(score for _, score, _ in totals) / players, 2) if players else None,
            "regions": board["regions"], "questions": await rates(QuizAnswer.question_id),
            "categories": await rates(QuizAnswer.category)}


# -- standings -------------------------------------------------------------------------------------------------------
def mask(name: str | None) -> str:
    """王小明 → 王*明, 王明 → 王*; no name: 匿名."""
    if not name:
        return "匿名"
    return name[0] + "*" if len(name) <= 2 else name[0] + "*" * (len(name) - 2) + name[-1]


def counting_attempts(campaign: QuizCampaign) -> Any:
    """Each player's counting attempt, as a subquery (player_id, id, score, seconds): the best (ties to the
    shorter time) or the last finished one, picked by the database."""
    order = ((QuizAttempt.finished_at.desc(), QuizAttempt.id.desc()) if campaign.scoring == "last"
             else (QuizAttempt.score.desc(), QuizAttempt.seconds, QuizAttempt.id))
    ranked = (select(QuizAttempt.player_id, QuizAttempt.id, QuizAttempt.score, QuizAttempt.seconds,
                     func.row_number().over(partition_by=QuizAttempt.player_id, order_by=order).label("n"))
              .where(QuizAttempt.campaign_id == campaign.id, QuizAttempt.finished_at.is_not(None)).subquery())
    return select(ranked.c.player_id, ranked.c.id, ranked.c.score, ranked.c.seconds).where(ranked.c.n == 1).subquery()


async def leaderboard(session: AsyncSession, region: RegionSettings, campaign: QuizCampaign,
                      top: int = 20) -> dict[str, Any]:
    """Standings by region (participants, participation rate, mean score) and the best players (names masked),
    from each player's counting attempt."""
    counted = (QuizPlayer.campaign_id == campaign.id, QuizPlayer.best_score.is_not(None))
    rows = await session.execute(select(QuizPlayer.region, func.count(), func.avg(QuizPlayer.best_score))
                                 .where(*counted).group_by(QuizPlayer.region))
    by_region = {code or "": (n, mean) for code, n, mean in rows.all()}
    places = regions(region, campaign)
    standings = []
    for place in places:
        n, mean = by_region.get(place.code, (0, None))
        standings.append({"code": place.code, "name": place.name, "participants": n,
                          "rate": round(n / place.population, 4) if place.population else None,
                          "mean_score": round(float(mean), 2) if mean is not None else None})
    standings.sort(key=lambda r: (-(r["rate"] or 0), -r["participants"], r["code"]))
    names = {p.code: p.name for p in places}
    best = await session.execute(
        select(QuizPlayer.name, QuizPlayer.region, QuizPlayer.best_score, QuizPlayer.best_seconds).where(*counted)
        .order_by(QuizPlayer.best_score.desc(), QuizPlayer.best_seconds, QuizPlayer.best_attempt_id).limit(top))
    return {"regions": standings,
            "players": [{"name": mask(name), "region": names.get(code or "", ""), "score": score,
                         "seconds": round(seconds, 1)} for name, code, score, seconds in best.all()]}


async def rank_of(session: AsyncSession, campaign: QuizCampaign, attempt: QuizAttempt) -> int:
    """Where this attempt's player stands among all players (1 = first)."""
    me = await session.get(QuizPlayer, attempt.player_id, populate_existing=True)
    counted = (QuizPlayer.campaign_id == campaign.id, QuizPlayer.best_score.is_not(None))
    if me is None or me.best_score is None:
        return 1 + (await session.scalar(select(func.count(QuizPlayer.id)).where(*counted)) or 0)
    ahead = await session.scalar(select(func.count(QuizPlayer.id)).where(*counted, (
        (QuizPlayer.best_score > me.best_score)
        | ((QuizPlayer.best_score == me.best_score) & (QuizPlayer.best_seconds < me.best_seconds))
        | ((QuizPlayer.best_score == me.best_score) & (QuizPlayer.best_seconds == me.best_seconds)
           & (QuizPlayer.best_attempt_id < me.best_attempt_id)))))
    return 1 + (ahead or 0)


# -- certificates ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Certificate:
    """What a certificate shows: anyone holding its code can check it."""

    code: str
    name: str  # as the player gave it, or 参赛者
    campaign: str
    score: int
    total: int
    day: str  # the China date the attempt was finished


async def certificate(session: AsyncSession, slug: str, code: str) -> Certificate | None:
    """The certificate with this code in this campaign, or None."""
    if not storable(code, CODE_MAX) or not storable(slug, SLUG_MAX):
        return None
    row = (await session.execute(
        select(QuizAttempt, QuizPlayer, QuizCampaign).join(QuizPlayer, QuizAttempt.player_id == QuizPlayer.id)
        .join(QuizCampaign, QuizAttempt.campaign_id == QuizCampaign.id)
        .where(QuizCampaign.slug == slug, QuizAttempt.certificate == code))).first()
    if row is None:
        return None
    attempt, who, campaign = row
    return Certificate(code, who.name or "参赛者", campaign.name, attempt.score, len(attempt.drawn["questions"]),
                       china_day(attempt.finished_at or attempt.started_at))
