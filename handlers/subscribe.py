"""Subscribe to warnings: who you are (elderly / student / other), then township and village; or unsubscribe."""

from __future__ import annotations

from bot import subscribers
from bot.broadcasts import mass
from bot.conversation import Choice, Turn, action, keywords
from handlers.menu import BACK, MAIN_MENU

SKIP = "跳过"


@action("subscribe.start")
async def start(turn: Turn, _: str = "") -> None:
    sub = await subscribers.find(turn.session, turn.inbound.channel, turn.inbound.user)
    if sub is not None and sub.active:
        turn.say(f"您已经订阅了提醒（{subscribers.describe(sub)}）。",
                 [Choice("修改资料", "subscribe.edit"), Choice("退订", "subscribe.stop"), BACK])
        return
    await edit(turn)


@action("subscribe.edit")
async def edit(turn: Turn, _: str = "") -> None:
    turn.go("subscribe", "audience")
    turn.say("订阅后，出现新骗局时我们会提醒您。\n先说说您是：",
             [*(Choice(label, "subscribe.audience", key) for key, label in subscribers.AUDIENCES.items()), BACK])


@action("subscribe.audience")
async def audience(turn: Turn, key: str) -> None:
    turn.go("subscribe", "township", audience=key)
    townships = turn.services.settings.region.townships
    if not townships:
        await _save(turn)
        return
    turn.say("您住在哪个乡镇？",
             [*(Choice(t.name, "subscribe.township", str(i)) for i, t in enumerate(townships)),
              Choice(SKIP, "subscribe.township", "")])


@action("subscribe.township")
async def township(turn: Turn, index: str) -> None:
    townships = turn.services.settings.region.townships
    if not index or int(index) >= len(townships):
        turn.go("subscribe", "village", township=None, village=None)
        await _save(turn)
        return
    place = townships[int(index)]
    turn.go("subscribe", "village", township=place.name)
    if not place.villages:
        await _save(turn)
        return
    turn.say(f"您在{place.name}的哪个村（社区）？",
             [*(Choice(v, "subscribe.village", v) for v in place.village_names), Choice(SKIP, "subscribe.village", "")])


@action("subscribe.village")
async def village(turn: Turn, name: str) -> None:
    turn.go("subscribe", "village", village=name or None)
    await _save(turn)


async def _save(turn: Turn) -> None:
    data = turn.data
    if data.get("audience") not in subscribers.AUDIENCES:
        await edit(turn)
        return
    sub = await subscribers.subscribe(turn.session, turn.inbound.channel, turn.inbound.user, data["audience"],
                                      data.get("township"), data.get("village"))
    turn.finish()
    turn.say(f"订阅好了（{subscribers.describe(sub)}）。有新的骗局提醒，我会发给您。")
    turn.say("想退订，随时发“退订”。还想做什么？", MAIN_MENU)


@action("subscribe.stop")
async def stop(turn: Turn, _: str = "") -> None:
    turn.finish()
    stopped = await subscribers.unsubscribe(turn.session, turn.inbound.channel, turn.inbound.user)
    # mass warnings go to WeChat tags, subscribed or not: leaving them stops those too
    untagged = await mass.opt_out(turn.session, turn.inbound.channel, turn.inbound.user,
                                  postgres=not turn.services.db.is_sqlite)
    if stopped or untagged:
        turn.say(f"已经退订了，以后不再给您发提醒。想再订阅，请{turn.tap('订阅提醒', MAIN_MENU)}。", MAIN_MENU)
    else:
        turn.say(f"您还没有订阅提醒。想订阅，请{turn.tap('订阅提醒', MAIN_MENU)}。", MAIN_MENU)


keywords("subscribe.start", "订阅", "订阅提醒", "/subscribe")
keywords("subscribe.stop", "退订", "取消订阅", "/unsubscribe")
