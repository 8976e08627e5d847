"""The audit log: every reveal, export, status change, approval and sign-in, with who and when. Rows are only
ever added; admins read them with filters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import AuditEntry

DETAIL_MAX = 500


def record(session: AsyncSession, actor: str, action: str, subject: str, detail: str | None = None) -> AuditEntry:
    entry = AuditEntry(actor=actor[:64], action=action[:32], subject=subject[:64],
                       detail=detail[:DETAIL_MAX] if detail else None)
    session.add(entry)
    return entry


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    subject: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, query: Select) -> Select:  # type: ignore[type-arg]
        if self.actor:
            query = query.where(AuditEntry.actor.contains(self.actor, autoescape=True))  # ("%" and "_" as typed)
        if self.action:
            query = query.where(AuditEntry.action == self.action)
        if self.subject:
            query = query.where(AuditEntry.subject == self.subject)
        if self.since is not None:
            query = query.where(AuditEntry.at >= self.since)
        if self.until is not None:
            query = query.where(AuditEntry.at < self.until)
        return query


async def entries(session: AsyncSession, where: AuditFilter, limit: int = 100, offset: int = 0) -> list[AuditEntry]:
    query = where.apply(select(AuditEntry)).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)
    return list(await session.scalars(query))


async def total(session: AsyncSession, where: AuditFilter) -> int:
    return (await session.scalar(where.apply(select(func.count(AuditEntry.id))))) or 0


async def actions(session: AsyncSession) -> list[str]:
    return list(await session.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action)))
