"""Finding tips in the ledger: the filters staff use (status, dates, township, category, assignee, overdue), a
township scope, pages, and the counts the console's Today page and charts show."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import Tip, utcnow
from bot.tips.ledger import CHINA, as_utc


@dataclass(frozen=True)
class TipFilter:
    status: str | None = None
    since: datetime | None = None  # filed at or after
    until: datetime | None = None  # filed before
    township: str | None = None  # a township's name, as tips carry it
    category: str | None = None
    assignee: str | None = None
    overdue: bool = False
    # the townships an account is limited to (names), or None for the whole county
    scope: tuple[str, ...] | None = None

    def described(self) -> str:
        """The filter in a line for the audit log (never personal data: these are the ledger's own fields)."""
        parts = [f"{f.name}={getattr(self, f.name)}" for f in fields(self)
                 if getattr(self, f.name) not in (None, False, "")]
        return ", ".join(parts) or "all"


def overdue_cutoff(overdue_days: float, now: datetime | None = None) -> datetime:
    return (now or utcnow()) - timedelta(days=overdue_days)


def in_scope(tip: Tip, scope: tuple[str, ...] | None) -> bool:
    return scope is None or tip.township in scope


def apply(query: Select[Any], where: TipFilter, overdue_days: float, now: datetime | None = None) -> Select[Any]:
    if where.scope is not None:
        query = query.where(Tip.township.in_(where.scope))
    if where.status:
        query = query.where(Tip.status == where.status)
    if where.since is not None:
        query = query.where(Tip.created_at >= where.since)
    if where.until is not None:
        query = query.where(Tip.created_at < where.until)
    if where.township:
        query = query.where(Tip.township == where.township)
    if where.category:
        query = query.where(Tip.category == where.category)
    if where.assignee:
        # ("%" and "_" match themselves, not any text: a filter, not a pattern)
        query = query.where(or_(Tip.assignee == where.assignee,
                                Tip.assignee.endswith(f":{where.assignee}", autoescape=True)))
    if where.overdue:
        query = query.where(Tip.status != "closed", Tip.created_at < overdue_cutoff(overdue_days, now))
    return query


async def page(session: AsyncSession, where: TipFilter, overdue_days: float, number: int, size: int) -> list[Tip]:
    """Newest first; page numbers from 1."""
    query = apply(select(Tip), where, overdue_days).order_by(Tip.created_at.desc(), Tip.id.desc())
    return list(await session.scalars(query.limit(size).offset((max(number, 1) - 1) * size)))


async def count(session: AsyncSession, where: TipFilter, overdue_days: float) -> int:
    return (await session.scalar(apply(select(func.count(Tip.id)), where, overdue_days))) or 0


async def matching(session: AsyncSession, where: TipFilter, overdue_days: float) -> list[Tip]:
    """Every tip of the filter, oldest first (the export's order)."""
    return list(await session.scalars(apply(select(Tip), where, overdue_days).order_by(Tip.id)))


def is_overdue(tip: Tip, overdue_days: float, now: datetime | None = None) -> bool:
    return tip.status != "closed" and as_utc(tip.created_at) < overdue_cutoff(overdue_days, now)


async def weekly(session: AsyncSession, scope: tuple[str, ...] | None, by: str, weeks: int = 8,
                 now: datetime | None = None) -> dict[str, Any]:
    """Tips filed per week (China time) for the last `weeks` weeks, split by category or township:
    {"weeks": ["11-02", …], "series": {name: [n, …]}}."""
    now = now or utcnow()
    today = now.astimezone(CHINA).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - timedelta(days=today.weekday() + 7 * (weeks - 1))
    column = Tip.category if by == "category" else Tip.township
    query = apply(select(Tip.created_at, column), TipFilter(scope=scope, since=first), 0)
    starts = [first + timedelta(weeks=n) for n in range(weeks)]
    series: dict[str, list[int]] = {}
    for created, key in (await session.execute(query)).all():
        week = min((as_utc(created).astimezone(CHINA) - first).days // 7, weeks - 1)
        series.setdefault(key or "未填", [0] * weeks)[week] += 1
    return {"weeks": [s.strftime("%m-%d") for s in starts], "series": dict(sorted(series.items()))}
