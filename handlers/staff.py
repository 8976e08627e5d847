"""Staff commands: figures at a glance. Residents and other chats are refused with the reason."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.conversation import Turn
from bot.services import top_gaps
from bot.storage.models import GroupChat, Subscriber, UnmatchedQuestion
from bot.subscribers import AUDIENCES


def _allowed(turn: Turn) -> bool:
    if turn.inbound.role is None:
        turn.say("这个命令只对工作人员开放。需要帮助请发“菜单”。")
        return False
    if turn.inbound.is_group and not turn.inbound.staff_chat:
        turn.say("工作命令请在工作群里或私聊我使用，别在居民群里发。")
        return False
    return True


async def stats(turn: Turn) -> None:
    if not _allowed(turn):
        return
    s = turn.session
    rows = await s.execute(select(Subscriber.audience, func.count()).where(Subscriber.active, Subscriber.reachable)
                           .group_by(Subscriber.audience))
    by_audience = {a: n for a, n in rows.all()}
    groups = await s.scalar(select(func.count()).select_from(GroupChat).where(GroupChat.active))
    gaps = await s.scalar(select(func.count()).select_from(UnmatchedQuestion))
    lines = ["订阅人数（可送达）："]
    lines += [f"· {label}：{by_audience.get(key, 0)}" for key, label in AUDIENCES.items()]
    lines += [f"所在群：{groups}", f"没答上的问题：{gaps} 条（发 /gaps 看最多的）"]
    turn.say("\n".join(lines))


async def gaps(turn: Turn) -> None:
    if not _allowed(turn):
        return
    rows = await top_gaps(turn.session, 10)
    if not rows:
        turn.say("还没有答不上的问题。")
        return
    turn.say("居民问得最多、我还答不上的问题：\n" + "\n".join(f"{n} 次：{text}" for text, n in rows))
