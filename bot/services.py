"""The domain services every entry point shares: knowledge search, risk check, storage, region facts."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.storage.database import Database, TurnTransaction
from bot.storage.models import UnmatchedQuestion, utcnow
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
                   index=SearchIndex(kb), risk=RiskChecker(settings.region.placeholders()),
                   vault=Vault(lambda: secret_key(settings)))

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


_GAP = insert(UnmatchedQuestion.__table__).values(text=bindparam("text"), channel=bindparam("channel"),
                                                   created_at=bindparam("created_at"))
_PG_GAP = "INSERT INTO unmatched_questions (text, channel, created_at) VALUES ($1, $2, $3)"


async def record_gap(tx: TurnTransaction, text: str, channel: str) -> None:
    """Keep a question the knowledge base could not answer (no user id) for the editors' `kb gaps`."""
    await tx.execute_after(_PG_GAP, _GAP, {"text": normalize(text)[:500], "channel": channel, "created_at": utcnow()})


async def top_gaps(session: AsyncSession, limit: int = 20) -> list[tuple[str, int]]:
    count = func.count(UnmatchedQuestion.id)
    rows = await session.execute(select(UnmatchedQuestion.text, count).group_by(UnmatchedQuestion.text)
                                 .order_by(count.desc(), UnmatchedQuestion.text).limit(limit))
    return [(text, n) for text, n in rows.all()]
