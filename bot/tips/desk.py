"""Staff work on a tip, the same from the CLI, the console and the Telegram staff commands: check what is asked,
apply it with its history under a row lock, tell the reporter a new status in the same transaction, audit it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.staff import audit
from bot.staff.accounts import NAME_MAX
from bot.storage.models import Tip, TipChange
from bot.tips import ledger
from bot.tips.ledger import CLOSING_REASONS, STATUSES, LedgerError
from bot.vault import Vault

NOTE_MAX = 2000


def _text(value: str) -> str:
    """Lines of printable text (PostgreSQL refuses NUL; control characters have no place in a ledger)."""
    return "".join(ch for ch in value if ch.isprintable() or ch == "\n")


@dataclass
class Update:
    status: str | None = None
    reason: str | None = None
    note: str | None = None
    assignee: str | None = None
    category: str | None = None

    def cleaned(self, categories: list[str]) -> Update:
        """The same update with blanks collapsed, or LedgerError saying what is wrong."""
        note = (_text(self.note).strip() or None) if self.note is not None else None
        assignee = " ".join(_text(self.assignee).split()) or None if self.assignee is not None else None
        if self.status is not None and self.status not in STATUSES:
            raise LedgerError(f"unknown status {self.status!r}; one of: {', '.join(STATUSES)}")
        if self.reason is not None and self.reason not in CLOSING_REASONS:
            raise LedgerError(f"unknown reason {self.reason!r}; one of: {', '.join(CLOSING_REASONS)}")
        if self.reason is not None and self.status != "closed":
            raise LedgerError("a closing reason goes with closing the tip (status closed)")
        if assignee is not None and len(assignee) > NAME_MAX:
            raise LedgerError(f"an assignee of 1 to {NAME_MAX} characters")
        if note is not None and len(note) > NOTE_MAX:
            raise LedgerError(f"a note of at most {NOTE_MAX} characters")
        if self.category is not None and self.category not in categories:
            raise LedgerError(f"unknown category {self.category!r}; one of: {', '.join(categories)}")
        cleaned = Update(self.status, self.reason, note, assignee, self.category)
        if cleaned == Update():
            raise LedgerError("nothing to change: give a status, a note, an assignee or a category")
        return cleaned


@dataclass(frozen=True)
class Done:
    changes: list[TipChange]
    told: str | None  # what the reporter was told, when the status changed


async def apply(session: AsyncSession, settings: Settings, vault: Vault, tip: Tip, actor: str, update: Update,
                postgres: bool) -> Done:
    """Apply a cleaned update to the tip in the caller's transaction (LedgerError when the ledger refuses it; a
    vault that cannot open the reporter's address raises SealError: nothing is then changed)."""
    from handlers.report import tell_status  # (the reporter's notice is worded by the report conversation)

    await session.refresh(tip, with_for_update=True)  # PostgreSQL: one staff change at a time
    changes = await ledger.change(session, tip, actor, status=update.status, reason=update.reason,
                                  note=update.note, assignee=update.assignee, category=update.category)
    told = None
    moved = next((c for c in changes if c.field == "status"), None)
    if moved is not None:
        told = await tell_status(session, settings, vault, tip, postgres=postgres)
        audit.record(session, actor, "tip-status", tip.receipt, f"{moved.old} → {moved.new}")
    return Done(changes, told)
