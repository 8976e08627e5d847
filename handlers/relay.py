"""A village cadre says they forwarded a warning into the village's groups: "已转发 12", or the button that sends
"/relayed 12"."""

from __future__ import annotations

from bot.broadcasts import relay
from bot.conversation import COMMANDS, RECOGNISERS, Turn
from bot.storage.models import utcnow


async def relayed(turn: Turn, words: str) -> bool:
    found = relay.REPLY.match(words)
    if found is None:
        return False
    broadcast_id = int(found.group(1))
    outcome = await relay.relayed(turn.session, turn.inbound.channel, turn.inbound.user, broadcast_id, utcnow())
    if outcome == "done":
        turn.say(f"记下了：第 {broadcast_id} 号预警已转发到村群。谢谢您！")
    elif outcome == "again":
        turn.say(f"第 {broadcast_id} 号预警已经记过了，不用再报。谢谢！")
    else:
        turn.say(f"没有找到发给您的第 {broadcast_id} 号预警。请核对编号，或联系乡镇工作人员。")
    return True


async def relayed_command(turn: Turn) -> None:
    if not await relayed(turn, turn.text.strip()):
        turn.say("请带上预警编号，比如：已转发 12。")


RECOGNISERS.append(relayed)
COMMANDS["/relayed"] = relayed_command
