"""The domain services every entry point shares: knowledge search, risk check, storage, region facts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.limits import Limits
from bot.storage.database import Database, TurnTransaction
from bot.storage.models import QuestionGap, utcnow
from bot.vault import Vault, secret_key
from knowledge import schema
from knowledge.risk import RiskChecker
from knowledge.schema import Entry, KnowledgeBase
from knowledge.search import SearchIndex, SearchResult
from knowledge.text import normalize


def load_knowledge(settings: Settings) -> KnowledgeBase:
    kb, _ = schema.load(region_keys=set(settings.region.placeholders()))
    return kb


@dataclass
class Services:
    settings: Settings
    db: Database
    kb: KnowledgeBase
    index: SearchIndex
    risk: RiskChecker
    vault: Vault

    @classmethod
    def create(cls, settings: Settings, db: Database | None = None) -> Services:
        kb = load_knowledge(settings)
        return cls(settings=settings, db=db or Database(settings.database.url, settings.database.echo,
                                                             settings.database.pool_size), kb=kb,
                   index=SearchIndex.cached(kb), risk=RiskChecker(settings.region.placeholders()),
                   vault=Vault(lambda: secret_key(settings)))

    @cached_property
    def quiz_questions(self) -> list[Any]:
        """The question banks (quizzes/banks/), texts with their {placeholders}; problems are `fangfei quiz check`'s."""
        from quizzes import bank

        questions, _ = bank.load(region_keys=self.settings.region.placeholders())
        return list(questions)

    @cached_property
    def limits(self) -> Limits:
        """This process's abuse limits (bot/limits.py)."""
        return Limits(self.settings.limits)

    @cached_property
    def _region(self) -> dict[str, str]:
        return {"{" + k + "}": v for k, v in self.settings.region.placeholders().items()}

    @cached_property
    def entries(self) -> dict[str, Entry]:
        return self.kb.by_id()

    def fill(self, text: str) -> str:
        """Put the region's facts into a text's {placeholders}; any other braces are left as they are."""
        if "{" in text:
            for key, value in self._region.items():
                text = text.replace(key, value)
        return text

    def search(self, text: str, group: bool = False, top: int = 5) -> SearchResult:
        cfg = self.settings.search
        return self.index.search(text, top=top, threshold=cfg.group_threshold if group else cfg.threshold)

    def explain(self, text: str, category: str) -> Entry | None:
        """The entry that best explains a text within a category (for the risk check)."""
        best = self.index.search(text, top=1, category=category).best
        if best is not None:
            return best.entry
        candidates = self.kb.in_category(category)
        return candidates[0] if candidates else None


GAP_CHARS = 200
_TABLE = QuestionGap.__table__
_INSERT_GAP = sqlite_insert(_TABLE).values(text=bindparam("text"), count=1, first_seen=bindparam("seen"),
                                           last_seen=bindparam("seen"))
_GAP = _INSERT_GAP.on_conflict_do_update(index_elements=["text"], set_={"count": _TABLE.c.count + 1,
                                                                        "last_seen": _INSERT_GAP.excluded.last_seen})
_PG_GAP = ("INSERT INTO question_gaps (text, count, first_seen, last_seen) VALUES ($1, 1, $2, $2)"
           " ON CONFLICT (text) DO UPDATE SET count = question_gaps.count + 1, last_seen = excluded.last_seen")
_DIGITS = re.compile(r"\d{7,}")  # phone, account and ID numbers a resident may have typed


def gap_text(text: str) -> str:
    """How an unanswered question is kept: normalised, long digit runs masked, capped."""
    return _DIGITS.sub("#", normalize(text))[:GAP_CHARS]


async def record_gap(tx: TurnTransaction, text: str) -> None:
    """Count a question the knowledge base could not answer (no user id, no channel) for the editors' `kb gaps`."""
    await tx.execute_after(_PG_GAP, _GAP, {"text": gap_text(text), "seen": utcnow()})


async def top_gaps(session: AsyncSession, limit: int = 20, since: datetime | None = None) -> list[tuple[str, int]]:
    """The most often asked unanswered questions (asked again since `since`, when given)."""
    query = select(QuestionGap.text, QuestionGap.count)
    if since is not None:
        query = query.where(QuestionGap.last_seen >= since)
    rows = await session.execute(query.order_by(QuestionGap.count.desc(), QuestionGap.text).limit(limit))
    return [(text, n) for text, n in rows.all()]


GAP_MARKS = ("write-entry", "off-topic", "done")  # editors' marks; none: not looked at yet


async def gaps(session: AsyncSession, mark: str | None, limit: int = 100) -> list[QuestionGap]:
    """Unanswered questions with one editors' mark (None: those not looked at yet), most often asked first."""
    where = QuestionGap.mark.is_(None) if mark is None else QuestionGap.mark == mark
    return list(await session.scalars(select(QuestionGap).where(where)
                                      .order_by(QuestionGap.count.desc(), QuestionGap.id).limit(limit)))


async def gap_marks(session: AsyncSession) -> dict[str | None, tuple[int, int]]:
    """(questions, times asked) by editors' mark."""
    rows = await session.execute(select(QuestionGap.mark, func.count(), func.sum(QuestionGap.count))
                                 .group_by(QuestionGap.mark))
    return {mark: (n, int(total or 0)) for mark, n, total in rows.all()}


async def mark_gap(session: AsyncSession, gap_id: int, mark: str | None) -> tuple[QuestionGap | None, bool]:
    """Set (or clear, with None) an editors' mark: the question (None when there is no such question) and whether
    its mark changed (two editors, or one double click, mark it one after the other)."""
    if mark is not None and mark not in GAP_MARKS:
        raise ValueError(f"mark: one of {', '.join(GAP_MARKS)}")
    gap = await session.get(QuestionGap, gap_id, with_for_update=True, populate_existing=True)
    if gap is None or gap.mark == mark:
        return gap, False
    gap.mark = mark
    return gap, True


async def gap_count(session: AsyncSession) -> int:
    """How many questions have gone unanswered (each repetition counted)."""
    return int(await session.scalar(select(func.coalesce(func.sum(QuestionGap.count), 0))) or 0)


async def forget_gaps(session: AsyncSession, days: float, now: datetime | None = None) -> int:
    """Drop questions nobody has asked for `days`."""
    result = await session.execute(delete(QuestionGap).where(
        QuestionGap.last_seen < (now or utcnow()) - timedelta(days=days)))
    return result.rowcount or 0
