"""The tip ledger (台账): filing a tip with its receipt, finding it, changing it with history, revealing the
reporter's identity to a handler (audited).

All functions work inside the caller's session and transaction: filing a tip, its history and its alerts commit
together or not at all.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import AuditEntry, ReceiptCounter, Tip, TipChange, TipEvidence, utcnow
from bot.vault import Vault
from knowledge.text import normalize

STATUSES = ("new", "verifying", "referred", "closed")
CLOSING_REASONS = ("confirmed", "not-confirmed", "duplicate", "out-of-scope")
DUPLICATE_WINDOW = timedelta(days=1)
REPEAT_WINDOW = timedelta(minutes=1)  # the same note by the same person within it is a double submit
CHINA = timezone(timedelta(hours=8), "CST")  # the offices' time; no daylight saving, so a fixed offset is exact


class LedgerError(ValueError):
    """A change the ledger does not allow; the message says why, for the operator."""


@dataclass
class Evidence:
    kind: str  # "image" or "file"
    ref: str  # the platform's id for it (Telegram file_id, WeChat MediaId)
    url: str | None = None
    name: str | None = None
    size: int | None = None


@dataclass
class Report:
    """What a resident told us, as the guided conversation collected it."""

    what: str
    who: str | None = None
    township: str | None = None
    village: str | None = None
    place: str | None = None
    money: str | None = None
    happened: str | None = None
    anonymous: bool = True
    name: str | None = None
    contact: str | None = None
    evidence: list[Evidence] = field(default_factory=list)


@dataclass(frozen=True)
class Identity:
    name: str | None
    contact: str | None
    user: str  # the platform user id that filed the tip


def as_utc(moment: datetime) -> datetime:
    """Times come back naive from SQLite (stored in UTC) and aware from PostgreSQL."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


YEARS = range(1900, 9999)  # the times staff may give: any other (0001, 9999) cannot even be moved to UTC and back


def china_time(text: str) -> datetime:
    """An ISO 8601 date and time as staff give it: without an offset, China time. ValueError when it is not one,
    or not in YEARS."""
    moment = datetime.fromisoformat(text)
    if moment.year not in YEARS:
        raise ValueError(f"{moment.year}: a year from {YEARS.start} to {YEARS.stop - 1}")
    return moment if moment.tzinfo else moment.replace(tzinfo=CHINA)


def reporter_of(vault: Vault, channel: str, user: str) -> str:
    return vault.fingerprint("reporter", channel, user)


def content_fingerprint(reporter: str, what: str) -> str:
    """Same reporter, same words (spacing and punctuation aside): a repeated submission."""
    text = "".join(ch for ch in normalize(what) if ch.isalnum())
    return hashlib.sha256(f"{reporter}\0{text}".encode()).hexdigest()


async def next_receipt(session: AsyncSession, postgres: bool, now: datetime | None = None) -> str:
    """FF-YYYY-NNNNNN, numbered from 1 each year; the counter row serialises concurrent filings."""
    year = (now or utcnow()).astimezone(CHINA).year  # the year as the office counts it
    insert = pg_insert if postgres else sqlite_insert
    await session.execute(insert(ReceiptCounter).values(year=year, last=0).on_conflict_do_nothing())
    number = (await session.execute(update(ReceiptCounter).where(ReceiptCounter.year == year)
                                    .values(last=ReceiptCounter.last + 1).returning(ReceiptCounter.last))).scalar_one()
    return f"FF-{year}-{number:06d}"


async def filed_today(session: AsyncSession, reporter: str) -> int:
    since = utcnow() - timedelta(days=1)
    return (await session.scalar(select(func.count(Tip.id)).where(Tip.reporter == reporter,
                                                                  Tip.created_at >= since))) or 0


async def duplicate_of(session: AsyncSession, fingerprint: str) -> Tip | None:
    since = utcnow() - DUPLICATE_WINDOW
    return await session.scalar(select(Tip).where(Tip.fingerprint == fingerprint, Tip.created_at >= since)
                                .order_by(Tip.id).limit(1))


async def file(session: AsyncSession, vault: Vault, channel: str, user: str, report: Report,
               category: str | None, postgres: bool) -> Tip:
    """Put a new tip in the ledger (status new) with its evidence and the first line of its history."""
    reporter = reporter_of(vault, channel, user)
    named = not report.anonymous
    tip = Tip(receipt=await next_receipt(session, postgres), channel=channel, reporter=reporter,
              reporter_sealed=vault.seal(user), status="new", category=category, township=report.township,
              village=report.village, place=report.place, what=report.what, who=report.who, money=report.money,
              happened=report.happened, anonymous=not named,
              name_sealed=vault.seal(report.name) if named and report.name else None,
              contact_sealed=vault.seal(report.contact) if named and report.contact else None,
              fingerprint=content_fingerprint(reporter, report.what))
    session.add(tip)
    await session.flush()
    for e in report.evidence:
        session.add(TipEvidence(tip_id=tip.id, kind=e.kind, ref=e.ref, url=e.url, name=e.name, size=e.size))
    session.add(TipChange(tip_id=tip.id, actor=f"{channel}:reporter", field="status", old=None, new="new"))
    return tip


async def find(session: AsyncSession, receipt: str) -> Tip | None:
    return await session.scalar(select(Tip).where(Tip.receipt == receipt.strip().upper()))


async def for_reporter(session: AsyncSession, vault: Vault, channel: str, user: str, receipt: str) -> Tip | None:
    """The tip, only when this user filed it (anyone else learns nothing, not even that it exists)."""
    tip = await find(session, receipt)
    if tip is None or tip.reporter != reporter_of(vault, channel, user):
        return None
    return tip


async def evidence(session: AsyncSession, tip: Tip) -> list[TipEvidence]:
    return list(await session.scalars(select(TipEvidence).where(TipEvidence.tip_id == tip.id)
                                      .order_by(TipEvidence.id)))


async def history(session: AsyncSession, tip: Tip) -> list[TipChange]:
    return list(await session.scalars(select(TipChange).where(TipChange.tip_id == tip.id).order_by(TipChange.id)))


async def change(session: AsyncSession, tip: Tip, actor: str, *, status: str | None = None,
                 reason: str | None = None, note: str | None = None, assignee: str | None = None,
                 category: str | None = None) -> list[TipChange]:
    """Apply staff changes, each recorded in the history; statuses only move forward, closing needs a reason."""
    changes: list[TipChange] = []

    def record(name: str, old: Any, new: Any) -> None:
        changes.append(TipChange(tip_id=tip.id, actor=actor, field=name, old=old, new=new))

    if reason is not None and status != "closed":
        raise LedgerError("a closing reason goes with closing the tip (status closed)")
    if status is not None and status != tip.status:
        if status not in STATUSES:
            raise LedgerError(f"unknown status {status!r}; one of: {', '.join(STATUSES)}")
        if STATUSES.index(status) < STATUSES.index(tip.status):
            raise LedgerError(f"{tip.receipt} is {tip.status}; statuses only move forward ({' → '.join(STATUSES)})")
        if status == "closed" and reason not in CLOSING_REASONS:
            raise LedgerError(f"closing needs a reason: one of {', '.join(CLOSING_REASONS)}")
        record("status", tip.status, status)
        tip.status = status
        if status == "closed":
            record("closing_reason", tip.closing_reason, reason)
            tip.closing_reason = reason
    if assignee is not None and assignee != tip.assignee:
        record("assignee", tip.assignee, assignee)
        tip.assignee = assignee
    if category is not None and category != tip.category:
        record("category", tip.category, category)
        tip.category = category
    if note and not await _repeated(session, tip, actor, note):
        record("note", None, note)
    session.add_all(changes)
    if changes:
        tip.updated_at = utcnow()
    return changes


async def _repeated(session: AsyncSession, tip: Tip, actor: str, note: str) -> bool:
    """Whether the tip's last note is this one, by the same person, a moment ago: the same form sent twice (a
    double click, a request retried by a flaky network), not a second note."""
    last = await session.scalar(select(TipChange).where(TipChange.tip_id == tip.id, TipChange.field == "note")
                                .order_by(TipChange.id.desc()).limit(1))
    return (last is not None and last.actor == actor and last.new == note
            and utcnow() - as_utc(last.at) < REPEAT_WINDOW)


async def reveal(session: AsyncSession, vault: Vault, tip: Tip, actor: str, reason: str | None = None) -> Identity:
    """The reporter's identity, for a handler who asked for it; the access (and why) is written to the audit log."""
    session.add(AuditEntry(actor=actor, action="reveal-identity", subject=tip.receipt,
                           detail=reason[:500] if reason else None))
    return Identity(name=vault.open(tip.name_sealed) if tip.name_sealed else None,
                    contact=vault.open(tip.contact_sealed) if tip.contact_sealed else None,
                    user=vault.open(tip.reporter_sealed))


async def listing(session: AsyncSession, status: str | None = None) -> list[Tip]:
    query = select(Tip).order_by(Tip.id)
    if status is not None:
        query = query.where(Tip.status == status)
    return list(await session.scalars(query))


def summary(tip: Tip, limit: int = 60) -> str:
    """One line of what happened, for lists and alerts."""
    text = " ".join(tip.what.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def place_of(tip: Tip) -> str:
    return " ".join(p for p in (tip.township, tip.village, tip.place) if p) or ""
