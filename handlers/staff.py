"""Staff commands: figures at a glance. Residents and other chats are refused with the reason."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from bot.conversation import COMMANDS, Turn
from bot.services import gap_count, top_gaps
from bot.staff import accounts
from bot.storage.models import GroupChat, Subscriber, Tip
from bot.subscribers import AUDIENCES
from bot.tips import desk, ledger, queries
from handlers.report import receipt_in


@dataclass(frozen=True)
class Staff:
    """Who gives a staff command: the name the ledger records and the one shown, the townships they are limited to
    (names, as tips carry them; None: the whole county), and whether they may see reporters."""
    actor: str
    name: str
    scope: tuple[str, ...] | None
    may_reveal: bool


async def _staff(turn: Turn) -> Staff | None:
    """The sender as staff, or None (and told why). A sender whose staff entry names a console account acts as that
    account: its role, townships and disabled flag decide, as in the console and the CLI."""
    inbound = turn.inbound
    if inbound.role is None:
        turn.say("这个命令只对工作人员开放。需要帮助请发“菜单”。")
        return None
    if inbound.is_group and not inbound.staff_chat:
        turn.say("工作命令请在工作群里或私聊我使用，别在居民群里发。")
        return None
    if not inbound.account:
        return Staff(f"{inbound.channel}:{inbound.user}", inbound.user, None, inbound.role == "handler")
    account = await accounts.find(turn.session, inbound.account)
    if account is None or account.disabled:
        turn.say("您的工作账号已停用。请联系管理员。")
        return None
    scope = accounts.township_names(turn.services.settings, account)
    limited = tuple(scope) if scope is not None else None
    return Staff(account.name, account.name, limited, accounts.holds(account, "reveal"))


async def stats(turn: Turn) -> None:
    if await _staff(turn) is None:
        return
    s = turn.session
    rows = await s.execute(select(Subscriber.audience, func.count()).where(Subscriber.active, Subscriber.reachable)
                           .group_by(Subscriber.audience))
    by_audience = {a: n for a, n in rows.all()}
    groups = await s.scalar(select(func.count()).select_from(GroupChat).where(GroupChat.active))
    gaps = await gap_count(s)
    lines = ["订阅人数（可送达）："]
    lines += [f"· {label}：{by_audience.get(key, 0)}" for key, label in AUDIENCES.items()]
    lines += [f"所在群：{groups}", f"没答上的问题：{gaps} 条（发 /gaps 看最多的）"]
    turn.say("\n".join(lines))


async def gaps(turn: Turn) -> None:
    if await _staff(turn) is None:
        return
    rows = await top_gaps(turn.session, 10)
    if not rows:
        turn.say("还没有答不上的问题。")
        return
    turn.say("居民问得最多、我还答不上的问题：\n" + "\n".join(f"{n} 次：{text}" for text, n in rows))


async def _named_tip(turn: Turn, staff: Staff) -> Tip | None:
    """The tip whose receipt the command names, or None (and the staff member told why). Another township's tip is
    "not found" to staff limited to theirs, as an unknown one."""
    found = receipt_in(turn.text)
    if found is None:
        turn.say("请带上受理编号，比如 /take FF-2026-000123。")
        return None
    tip_ = await ledger.find(turn.session, found)
    if tip_ is None or not queries.in_scope(tip_, staff.scope):
        turn.say(f"没有找到 {found}。请核对编号。")
        return None
    return tip_


async def _change(turn: Turn, status: str | None = None) -> None:
    """A staff command's change to the tip it names: take it (no status: they become its assignee) or a status."""
    if (staff := await _staff(turn)) is None or (tip := await _named_tip(turn, staff)) is None:
        return
    receipt = tip.receipt
    services = turn.services
    change = desk.Update(status=status) if status else desk.Update(assignee=staff.actor)
    try:
        applied = await desk.apply(turn.session, services.settings, services.vault, tip, staff.actor, change,
                                   postgres=not services.db.is_sqlite)
    except ledger.LedgerError:
        turn.say(f"{receipt} 现在是“{tip.status}”，不能这样改。请用 fangfei tips update 处理。")
        return
    done = f"已标记为{STATUS_DONE[status]}" if status else f"已由 {staff.name} 认领"
    turn.say(f"{receipt} {done}。" if applied.changes else f"{receipt} 没有变化（已经是这样了）。")


STATUS_DONE = {"verifying": "核查中"}


async def take(turn: Turn) -> None:
    """Staff take a tip: they become its assignee."""
    await _change(turn)


async def verify(turn: Turn) -> None:
    """Staff mark a tip as being verified (the reporter is told)."""
    await _change(turn, "verifying")


async def tip(turn: Turn) -> None:
    """A tip's ledger line for staff (never the reporter's identity)."""
    if (staff := await _staff(turn)) is None or (found := await _named_tip(turn, staff)) is None:
        return
    turn.say(f"{found.receipt}｜{found.status}｜{found.category or '未分类'}｜{ledger.place_of(found) or '地点未填'}\n"
             f"{ledger.summary(found, 200)}\n承办：{found.assignee or '无'}。\n"
             "详情和实名信息请用 fangfei tips show 查看。")


async def reveal(turn: Turn) -> None:
    """A handler asks who filed a tip: only in a private chat with the bot, and written to the audit log."""
    if turn.inbound.is_group and turn.inbound.role is not None:
        turn.say("举报人身份只能在和我的私聊里查看，不能在群里发。")
        return
    if (staff := await _staff(turn)) is None:
        return
    if not staff.may_reveal:
        turn.say("只有经办人（handler）才能查看举报人身份。需要帮助请发“菜单”。")
        return
    if (found := await _named_tip(turn, staff)) is None:
        return
    receipt = found.receipt
    if found.anonymous:
        turn.say(f"{receipt} 是匿名举报，没有举报人身份。")
        return
    who = await ledger.reveal(turn.session, turn.services.vault, found, staff.actor)
    turn.say(f"{receipt} 举报人：{who.name or '未留'}，电话：{who.contact or '未留'}。\n"
             "此次查看已记入审计日志。请依法保密，不要转发。")


COMMANDS.update({"/stats": stats, "/gaps": gaps, "/take": take, "/verify": verify, "/tip": tip, "/reveal": reveal})
