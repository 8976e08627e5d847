"""A warning's report as a spreadsheet in the 台账 style: the warning, its routes, its villages (residents reached
and the relay) and the copies that did not arrive with the platform's reason. No personal data: recipients appear
only as a masked id."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import String, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import spreadsheets
from bot.broadcasts import lifecycle
from bot.config import Settings
from bot.outbox import FAILED, TABLE, UNREACHABLE
from bot.storage.models import Broadcast, Subscriber
from bot.tips.ledger import CHINA, as_utc

if TYPE_CHECKING:
    from openpyxl import Workbook

STATUSES = ("sent", "failed", "unreachable", "pending", "cancelled")
NAMES = {"sent": "已送达", "failed": "失败", "unreachable": "暂时送不到", "pending": "待发送", "cancelled": "已取消"}


def masked(target: str) -> str:
    """Enough to tell rows apart, too little to find the person: the first two and last two characters."""
    return target[:2] + "*" * max(1, len(target) - 4) + target[-2:] if len(target) > 4 else "*" * len(target)


def _local(moment: Any) -> str:
    return as_utc(moment).astimezone(CHINA).strftime("%Y-%m-%d %H:%M") if moment else ""


async def build(session: AsyncSession, settings: Settings, broadcast: Broadcast) -> Workbook:
    shown = await lifecycle.progress(session, settings, broadcast)
    book = spreadsheets.new_workbook()
    segment = broadcast.segment or {}
    where = " ".join([*(segment.get("townships") or []), *(segment.get("villages") or [])]) or "全县"
    spreadsheets.add_sheet(book, "概况", ["项目", "内容"], [
        ["编号", broadcast.id], ["状态", broadcast.state], ["内容", broadcast.text], ["对象", broadcast.audience],
        ["范围", where], ["渠道", "、".join(segment.get("channels") or [])],
        ["紧急", "是" if broadcast.urgent else "否"], ["起草", broadcast.drafted_by],
        ["审核", broadcast.approved_by or ""], ["起草时间", _local(broadcast.created_at)],
        ["开始发送", _local(broadcast.started_at)], ["结束", _local(broadcast.finished_at)],
        ["对象总数", shown["total"]], *([NAMES[s], shown[s]] for s in STATUSES),
        *([f"未发送：{k}", v] for k, v in sorted(shown["skipped"].items()))], max_width={"内容": 60})
    spreadsheets.add_sheet(book, "渠道", ["渠道", *(NAMES[s] for s in STATUSES)],
                           [[route, *(counts.get(s, 0) for s in STATUSES)]
                            for route, counts in sorted(shown["routes"].items())])
    # residents reached per village: a copy's dedup key names its subscriber (warn:<broadcast>:<subscriber>)
    per_place = (await session.execute(
        select(Subscriber.township, Subscriber.village, TABLE.c.status, func.count())
        .join(TABLE, TABLE.c.dedup == f"warn:{broadcast.id}:" + cast(Subscriber.id, String))
        .where(TABLE.c.broadcast_id == broadcast.id)
        .group_by(Subscriber.township, Subscriber.village, TABLE.c.status))).all()
    places: dict[tuple[str, str], dict[str, int]] = {}
    for township, village, status, count in per_place:
        places.setdefault((township or "（未填乡镇）", village or "（未填村）"), {})[status] = count
    relays = {r["name"]: r for r in shown["relay"]}  # empty unless the warning went through the village relay
    rows = []
    for (township, village), counts in sorted(places.items()):
        r = relays.pop(f"{township}{village}", None)
        rows.append([township, village, *(counts.get(s, 0) for s in STATUSES[:3]),
                     r["cadres"] if r else "", r["relayed"] if r else "", _local(r["first_relayed_at"]) if r else ""])
    for name, r in sorted(relays.items()):  # villages with a relay and no subscriber reached
        rows.append([name, "", 0, 0, 0, r["cadres"], r["relayed"], _local(r["first_relayed_at"])])
    spreadsheets.add_sheet(book, "村", ["乡镇", "村（社区）", "已送达", "失败", "暂时送不到", "转发村干部", "已转发",
                                       "首次转发"], rows)
    failures = (await session.execute(select(TABLE.c.channel, TABLE.c.target, TABLE.c.status, TABLE.c.last_error)
                                      .where(TABLE.c.broadcast_id == broadcast.id,
                                             TABLE.c.status.in_((FAILED, UNREACHABLE)))
                                      .order_by(TABLE.c.id))).all()
    spreadsheets.add_sheet(book, "未送达", ["渠道", "对象（已遮盖）", "结果", "原因"],
                           [[route, masked(target), NAMES[status], error or ""]
                            for route, target, status, error in failures], max_width={"原因": 50})
    return book
