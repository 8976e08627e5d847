"""Welcome, main menu, help, thanks, and the polite answer to an expired menu."""

from __future__ import annotations

from bot.conversation import Choice, Turn, action, keywords

MAIN_MENU = (
    Choice("问问题", "ask.start"),
    Choice("风险自测", "check.start"),
    Choice("知识答题", "quiz.start"),
    Choice("我要举报", "report.start"),
    Choice("查询举报", "report.status"),
    Choice("订阅提醒", "subscribe.start"),
)
BACK = Choice("回主菜单", "menu.main")


# The command menu platforms show (Telegram's setMyCommands): command, description.
COMMANDS = (
    ("start", "开始，看主菜单"),
    ("ask", "问问题，例如 /ask 消费全返是真的吗"),
    ("check", "风险自测，例如 /check 每月返利8%"),
    ("menu", "主菜单"),
    ("report", "举报非法集资线索"),
    ("status", "查询举报进度，例如 /status FF-2026-000123"),
    ("cancel", "取消正在填写的内容"),
    ("subscribe", "订阅防骗提醒"),
    ("unsubscribe", "退订提醒"),
    ("help", "怎么用"),
)
GROUP_INTRO = ("大家好！我是{region}防范非法集资小助手。\n"
               "在群里我不插话。想问我，请@我，或者发 /ask 加问题；想查一个投资靠不靠谱，发 /check 加对方的说法。")


@action("menu.welcome")
async def welcome(turn: Turn, _: str = "") -> None:
    turn.finish()
    turn.say("您好！我是{region}防范非法集资小助手。")
    turn.say("我能回答问题，帮您看看一个投资靠不靠谱，还能接受举报。\n"
             f"请{turn.tap()}，或者直接把问题发给我。", MAIN_MENU)


@action("menu.main")
async def main_menu(turn: Turn, _: str = "") -> None:
    turn.finish()
    turn.say("请选择您要做的事，也可以直接把问题发给我。", MAIN_MENU)


@action("menu.help")
async def help_text(turn: Turn, _: str = "") -> None:
    turn.say("怎么用我：\n"
             "1. 直接发问题，比如“消费全返是真的吗”。\n"
             "2. 把别人推荐给您的投资说给我，我帮您看看有没有风险。\n"
             "3. 随时发“菜单”，回到主菜单。")
    turn.say("拿不准的事，也可以打 {hotline} 问问。请选择：", MAIN_MENU)


@action("menu.cancel")
async def cancel(turn: Turn, _: str = "") -> None:
    was_busy = turn.flow is not None
    turn.finish()
    turn.say(("已取消，刚才填写的内容没有保存。" if was_busy else "现在没有要取消的事。") + "\n请选择：", MAIN_MENU)


@action("menu.thanks")
async def thanks(turn: Turn, _: str = "") -> None:
    turn.say("不客气！还有问题随时问我。", MAIN_MENU)


@action("menu.about")
async def about(turn: Turn, _: str = "") -> None:
    """Who we are and what we can do, for "你是谁"."""
    turn.say("我是{region}防范非法集资小助手，是个自动回复的程序，不是真人。")
    turn.say("我能做这几件事：\n"
             "· 回答非法集资的问题；\n"
             "· 帮您看看一个投资靠不靠谱；\n"
             "· 接受举报，身份保密；\n"
             "· 出题考考您，发防骗提醒。")
    turn.say(f"想做哪件，请{turn.tap()}，或者直接把问题发给我。急事请打 {{hotline}}。", MAIN_MENU)


async def expired(turn: Turn) -> None:
    turn.finish()
    turn.say("这个菜单已经过期了。请在下面重新选择。", MAIN_MENU)


async def no_such_option(turn: Turn, number: int) -> None:
    """A number the current menu does not have: say which numbers it has, and show it again."""
    choices = turn.menu_choices() or list(MAIN_MENU)
    count = len(choices)
    numbers = "数字 1" if count == 1 else f"数字 1 到 {count}"
    if turn.inbound.numbered:
        turn.say(f"没有 {number} 这一项。请回复{numbers}。", choices)
    else:
        turn.say(f"没有 {number} 这一项。请点下面的选项，也可以回复{numbers}。", choices)


SORRY = "抱歉，系统出了点问题，请稍后再发一次。急事请打 {hotline}。"
SLOW_DOWN = "您发得太快了，这条我没来得及看。\n请过一分钟再发。之前填的内容都还在。"
MEDIA_REPLIES = {  # {pick}: how options are picked on the channel (Turn.tap)
    "voice": "这段语音我没听清。请打字告诉我，或者{pick}。",
    "image": "收到了。我还看不懂图片和视频，请用文字说说是怎么回事。（举报时，图片可以作为证据一起交。）",
    "file": "收到了。我还看不懂文件和视频，请用文字说说是怎么回事。（举报时，文件可以作为证据一起交。）",
    "link": "收到链接了。请把链接里说的投资用几句话讲给我，我帮您看看风险。",
    "location": "收到您的位置了。请用文字说说您遇到了什么事。",
}


async def media(turn: Turn, kind: str) -> None:
    """Something other than text: say what we can do with it and what the user can do instead."""
    text = MEDIA_REPLIES.get(kind, "这种消息我还看不懂。请用文字告诉我，或者{pick}。")
    turn.say(text.replace("{pick}", turn.tap()), MAIN_MENU)


async def unreadable(turn: Turn) -> None:
    turn.say(f"我没看懂这条消息。请用文字把问题发给我，或者{turn.tap()}。", MAIN_MENU)


keywords("menu.welcome", "/start", "/menu", "菜单", "主菜单", "开始", "你好", "您好", "hi", "hello", "0")
keywords("menu.main", "回主菜单", "返回主菜单", "回到主菜单", "返回菜单", "回菜单", "返回")
keywords("menu.about", "你是谁", "您是谁", "你是什么", "你叫什么", "你叫什么名字", "你是干什么的", "你能干什么",
         "你能做什么", "你会什么", "你有什么用", "你是机器人吗", "你是真人吗", "介绍一下你自己", "自我介绍")
keywords("menu.help", "/help", "帮助", "help", "?", "怎么用", "使用说明")
keywords("menu.cancel", "取消", "/cancel", "取消举报", "不举报了")
keywords("menu.thanks", "谢谢", "谢谢你", "谢谢您", "多谢", "感谢", "好的谢谢", "thanks", "thank you")
