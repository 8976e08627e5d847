"""What a first-time user hit in the conversation (issue 15 §2), through the real channels: the web chat API, the
local chat (`fangfei chat`), Telegram (python-telegram-bot against the fake Bot API) and WeChat (signed XML)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bot.channels.telegram import TelegramChannel
from bot.engine import Engine
from handlers.report import receipt_in
from tests.fake_telegram import FakeTelegram
from tests.test_cli import ROOT, run
from tests.test_plain_words import acts
from tests.test_telegram import channel, fake, keyboard_labels, say  # noqa: F401 (fixtures)
from tests.test_telegram import text as tg_text
from tests.test_web_chat import WebUser
from tests.test_wechat import wechat  # noqa: F401 (fixture)
from tests.wechat_client import WeChatServer, voice_xml

MAIN = ["问问题", "风险自测", "知识答题", "我要举报", "查询举报", "订阅提醒"]
QUESTION = "养老院让交钱订床位，每年还给利息，靠谱吗"
# an instruction to click, which a terminal or WeChat cannot do ("请点下面的选项", "点“详细说说”")
CLICK = re.compile(r"点(?:下面|“)")
# the options as a text channel renders them: "  1. 详细说说" (the local chat), "回复 1：详细说说" (WeChat)
OPTION_LINE = re.compile(r"^(?:\s*\d{1,2}\. |回复 \d{1,2}：)")
CLOSING = "拿不准，先别交钱，打 12345 问问。"


def last_sentence(message: str) -> str:
    """The last sentence of a message's text, the options rendered below it left out."""
    text = "\n".join(line for line in message.splitlines() if not OPTION_LINE.match(line))
    return re.split(r"[。！？；\n]", text.strip().rstrip("。！？；"))[-1]


def ends_with_action(message: str) -> bool:
    """Every reply ends with what the reader can do now, not with where to click (issue 15 §3)."""
    last = last_sentence(message)
    return acts(last) and not CLICK.search(last) and "回复数字" not in last


# -- the web chat -------------------------------------------------------------------------------------------------
async def test_web_numbers_labels_and_who_are_you(web: httpx.AsyncClient) -> None:
    me = WebUser(web, "first-timer")
    await me.send("9")  # before any menu: which numbers there are, not "expired"
    assert "过期" not in me.text and "没有 9 这一项" in me.text and "数字 1 到 6" in me.text
    assert list(me.options()) == MAIN
    await me.send("/start")
    await me.send("9")
    assert me.text == "没有 9 这一项。请点下面的选项，也可以回复数字 1 到 6。"
    assert list(me.options()) == MAIN  # the menu again, usable

    await me.send("1")  # a digit typed on the web picks the numbered option (问问题), not a random entry
    assert "请把您想问的发给我" in me.text
    await me.send(QUESTION)
    assert me.text.startswith("【") and "想知道怎么识别、怎么办，请点“详细说说”。" in me.text
    assert me.text.endswith(CLOSING) and ends_with_action(me.text), me.text
    await me.send("详细说说")  # the label typed
    assert len(me.replies) == 3 and "常见套路" in me.replies[0]["text"]
    assert "想看法律怎么规定，请点“法律依据”。" in me.text and me.text.endswith(CLOSING), me.text
    await me.send("回主菜单")
    assert "请选择您要做的事" in me.text and list(me.options()) == MAIN

    # a label seen a moment ago, typed at a step that waits for words: not checked as an offer
    await me.send("风险自测")
    assert "请把对方是怎么说的告诉我" in me.text
    await me.send("回主菜单")
    assert "请选择您要做的事" in me.text and "风险" not in me.text

    # ... nor kept as the answer to a subscription's or a report's question
    await me.send("订阅提醒")
    await me.send("学生")
    assert "哪个乡镇" in me.text and "回主菜单" not in me.options()
    await me.send("回主菜单")
    assert list(me.options()) == MAIN and "答不上来" not in me.text
    await me.send("我要举报")
    await me.send("回主菜单")  # not "what happened": the unfinished report is not dropped unasked either
    assert "您的举报还没提交" in me.text and list(me.options()) == ["接着填", "放弃举报"]
    await me.send("放弃举报")
    assert list(me.options()) == MAIN

    # labels as people type them: with the quotes of the instruction, a full stop, traditional characters
    await me.tap("问问题")
    await me.send(QUESTION)
    await me.send("“详细说说”。")
    assert "常见套路" in me.text
    await me.tap("回主菜单")
    await me.tap("问问题")
    await me.send(QUESTION)
    await me.send("詳細說說")
    assert "常见套路" in me.text
    await me.send("详细说说")  # not offered any more: asked which question, not searched
    assert "您想详细了解哪件事" in me.text and "答不上来" not in me.text

    for words in ("你是谁", "你是谁？"):
        await me.send(words)
        assert "防范非法集资小助手" in me.text and "举报" in me.text and "答不上来" not in me.text
        assert "请点下面的选项" in me.text and list(me.options()) == MAIN


async def test_web_a_receipt_as_typed_is_recognised(web: httpx.AsyncClient) -> None:
    me = WebUser(web, "reporter")
    await me.send("我要举报")
    await me.send("有人在村里收钱，说投一万每月返八百，还让拉亲戚")
    for _ in range(4):  # who, where, money, when
        await me.tap("跳过")
    await me.tap("匿名")
    assert "没问题就点“确认提交”" in me.text
    await me.tap("确认提交")
    receipt = receipt_in(me.text)
    assert receipt is not None
    typed = receipt.replace("-", "").lower()  # ff2026000001
    for words in (f"查询举报 {typed}", f"查询举报{typed}", typed, f"查询举报 {receipt.replace('-', ' ')}"):
        await me.send(words)
        assert "已收到，等待核查" in me.text, words


@pytest.mark.parametrize(("typed", "receipt"), [
    ("FF-2026-000123", "FF-2026-000123"), ("ff2026000123", "FF-2026-000123"), ("Ff 2026 000123", "FF-2026-000123"),
    ("查询举报ＦＦ－２０２６－０００１２３", "FF-2026-000123"), ("编号ff2026-000123。", "FF-2026-000123"),
    ("ff20260001234", None), ("xff2026000123", None), ("FF-26-000123", None),
])
def test_receipt_numbers_as_residents_type_them(typed: str, receipt: str | None) -> None:
    assert receipt_in(typed) == receipt


# -- the local chat -----------------------------------------------------------------------------------------------
def test_local_chat_says_reply_with_a_number(tmp_path: Path) -> None:
    env = {"FANGFEI_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"}
    lines = ["你好", "9", "1", QUESTION, "详细说说", "回主菜单", "你是谁"]
    out = run("chat", stdin="\n".join(lines) + "\n", env=env).stdout
    assert "请回复下面的数字，或者直接把问题发给我。" in out
    assert "没有 9 这一项。请回复数字 1 到 6。" in out and "过期" not in out
    # the answer's own menu (1 is 详细说说) said before the closing action, then the numbered options
    assert f"想知道怎么识别、怎么办，请回复数字 1。\n{CLOSING}\n  1. 详细说说" in out
    assert re.search(rf"想看法律怎么规定，请回复数字 (\d)。\n{CLOSING}\n(?:  \d\. .*\n)*?  \1\. 法律依据\n", out)
    assert "常见套路" in out and "请选择您要做的事" in out
    assert "我能做这几件事" in out and "答不上来" not in out
    assert not CLICK.search(out), "nothing can be clicked in a terminal"


# -- Telegram -----------------------------------------------------------------------------------------------------
async def test_telegram_typed_labels_and_numbers(channel: TelegramChannel, fake: FakeTelegram) -> None:  # noqa: F811
    await say(fake, "/start")
    out_of_range = await say(fake, "9")
    assert "没有 9 这一项" in tg_text(out_of_range) and keyboard_labels(out_of_range[-1]) == MAIN
    assert "请把您想问的发给我" in tg_text(await say(fake, "1"))  # 问问题
    answer = await say(fake, QUESTION)
    assert "请点“详细说说”" in tg_text(answer) and "详细说说" in keyboard_labels(answer[-1])
    assert ends_with_action(answer[-1]["plain_text"]), answer[-1]["plain_text"]
    details = await say(fake, "详细说说")
    assert "常见套路" in tg_text(details) and "法律依据" in keyboard_labels(details[-1])
    assert ends_with_action(details[-1]["plain_text"]), details[-1]["plain_text"]
    menu = await say(fake, "回主菜单")
    assert keyboard_labels(menu[-1]) == MAIN
    assert "我能做这几件事" in tg_text(await say(fake, "你是谁"))


# -- WeChat -------------------------------------------------------------------------------------------------------
async def test_wechat_never_asks_to_click(wechat: WeChatServer, engine: Engine) -> None:  # noqa: F811
    user = "o-first"
    said = [await wechat.say(user, "你好")]
    assert "请回复下面的数字" in said[-1]
    said.append(await wechat.say(user, "1"))
    said.append(await wechat.say(user, QUESTION))
    assert "请回复数字 1。" in said[-1] and "回复 1：详细说说" in said[-1]
    assert ends_with_action(said[-1]), said[-1]
    said.append(await wechat.say(user, "详细说说"))
    assert "常见套路" in said[-1] and ends_with_action(said[-1]), said[-1]
    said.append(await wechat.say(user, "回主菜单"))
    assert "回复 1：问问题" in said[-1]
    said.append(await wechat.say(user, "查询举报 ff2026000001"))  # read as a receipt (none such here)
    assert "没有找到这个编号的举报" in said[-1]
    said.append(wechat.reply_text(await wechat.post(voice_xml(user, None))))
    assert "请打字告诉我，或者回复下面的数字" in said[-1]
    # a report on WeChat: the evidence step and the summary say which number to reply
    said.append(await wechat.say(user, "我要举报"))
    said.append(await wechat.say(user, "有人在村里收钱，说投一万每月返八百，还让拉亲戚"))
    for number in ("1", "4", "1", "1"):  # who: 跳过; where: 跳过 (after three townships); money, when: 跳过
        said.append(await wechat.say(user, number))
    assert "有照片、截图或文件吗" in said[-1]
    said.append(await wechat.say(user, "没有照片"))
    assert "没有的话，请回复数字 1。" in said[-1]
    said.append(await wechat.say(user, "1"))
    said.append(await wechat.say(user, "2"))  # 匿名
    assert "没问题就回复数字 1。" in said[-1] and "回复 1：确认提交" in said[-1]
    said.append(await wechat.say(user, "我是谁"))  # words at a step that waits for a button
    assert "请回复下面的数字。" in said[-1]
    assert not any(CLICK.search(text) for text in said), [t for t in said if CLICK.search(t)]


# -- the ask and check commands -----------------------------------------------------------------------------------
def _fangfei_importing(*args: str) -> subprocess.CompletedProcess[str]:
    """`fangfei ARGS`, with Python reporting every module imported (-X importtime, on stderr)."""
    code = f"import sys; from bot.cli import main; sys.argv = ['fangfei', *{list(args)!r}]; main()"
    return subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


@pytest.mark.parametrize("args", [("ask", ""), ("check", "   "), ("ask", "x", "--batch", "-"), ("check",),
                                  ("check", "--batch", "/dev/null")])
def test_ask_and_check_refuse_bad_arguments_before_loading_the_index(args: tuple[str, ...]) -> None:
    proc = _fangfei_importing(*args)
    said = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert proc.returncode == 2 and len(said) == 1 and proc.stdout == "", proc.stderr[-500:]
    assert " jieba" not in proc.stderr  # the index (and jieba's dictionary) was never loaded


def test_ask_and_check_load_the_index_quietly() -> None:
    proc = _fangfei_importing("check", "每月返利8%")
    assert proc.returncode == 0 and " jieba" in proc.stderr  # (the test above can fail)
    for args in (("ask", "消费全返是真的吗"), ("check", "--json", "每月返利8%")):
        done = run(*args, env={"FANGFEI_LOG__LEVEL": "DEBUG"})
        assert "prefix dict" not in done.stderr and "jieba" not in done.stderr, done.stderr[-500:]
        assert run(*args).stderr == ""
