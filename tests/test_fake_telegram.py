"""Tests of the fake Telegram Bot API server, driven by python-telegram-bot's real Bot and HTTP client."""

from __future__ import annotations

import asyncio
import datetime as dt
import warnings

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from telegram import Bot, BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Conflict, Forbidden, NetworkError, RetryAfter
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from tests.fake_telegram import BOT_USERNAME, FakeTelegram, ThreadedServer, parse_html, parse_markdown_v2

USER = 424242


@pytest.fixture
def fake(telegram: FakeTelegram) -> FakeTelegram:
    """The shared fake Bot API server (tests/conftest.py); `bot` is the real Bot talking to it."""
    return telegram


def keyboard(*rows: list[tuple[str, str]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(text, callback_data=data) for text, data in row]
                                 for row in rows])


async def test_get_me(bot: Bot, fake: FakeTelegram) -> None:
    me = await bot.get_me()
    assert me.username == BOT_USERNAME == bot.username
    assert me.id == fake.bot_id and me.is_bot and me.can_join_groups
    assert fake.calls[0]["method"] == "getMe" and fake.calls[0]["status"] == 200


async def test_send_message_with_keyboard_is_recorded(bot: Bot, fake: FakeTelegram) -> None:
    markup = keyboard([("是", "yes"), ("否", "no")], [("更多", "more:1")])
    msg = await bot.send_message(USER, "<b>你好</b>，请选择 &lt;一项&gt;", parse_mode=ParseMode.HTML,
                                 reply_markup=markup)
    assert msg.message_id == 1 and msg.chat.id == USER and msg.from_user.id == fake.bot_id
    assert msg.text == "你好，请选择 <一项>" and msg.entities[0].type == "bold"
    assert msg.reply_markup == markup

    [record] = fake.messages_to(USER)
    assert record["method"] == "sendMessage" and record["parse_mode"] == "HTML"
    assert record["text"].startswith("<b>你好</b>")
    assert record["reply_markup"] == {"inline_keyboard": [
        [{"text": "是", "callback_data": "yes"}, {"text": "否", "callback_data": "no"}],
        [{"text": "更多", "callback_data": "more:1"}]]}
    second = await bot.send_message(USER, "again")
    assert second.message_id == 2
    assert await fake.wait_sent(2, chat_id=USER)
    fake.assert_no_violations()


async def test_oversize_callback_data_and_text_are_rejected(bot: Bot, fake: FakeTelegram) -> None:
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        await bot.send_message(USER, "x", reply_markup=keyboard([("按钮", "d" * 65)]))
    # 64 bytes is fine, but 22 three-byte characters (66 bytes) are not.
    await bot.send_message(USER, "x", reply_markup=keyboard([("按钮", "d" * 64)]))
    with pytest.raises(BadRequest):
        await bot.send_message(USER, "x", reply_markup=keyboard([("按钮", "选" * 22)]))
    with pytest.raises(BadRequest, match=r"(?i)too long"):
        await bot.send_message(USER, "字" * 4097)
    await bot.send_message(USER, "字" * 4096)
    with pytest.raises(BadRequest, match=r"(?i)text is empty"):
        await bot.send_message(USER, "   ")
    with pytest.raises(BadRequest):
        await bot.send_message(USER, "x", reply_markup=keyboard([(str(i), str(i)) for i in range(9)]))

    kinds = [v["kind"] for v in fake.violations]
    assert kinds == ["callback_data_invalid", "callback_data_invalid", "text_too_long", "text_empty", "row_too_long"]
    assert len(fake.messages_to(USER)) == 2
    with pytest.raises(AssertionError, match=r"(?i)BUTTON_DATA_INVALID"):
        fake.assert_no_violations()


@pytest.mark.parametrize("text", ["<script>alert(1)</script>", "a < b", "Tom & Jerry", "<b>unclosed",
                                  "<b><i>x</b></i>", "<br/>"])
async def test_bad_html_is_rejected(bot: Bot, fake: FakeTelegram, text: str) -> None:
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(USER, text, parse_mode=ParseMode.HTML)
    assert [v["kind"] for v in fake.violations] == ["cant_parse_entities"]
    assert fake.sent == []


async def test_parse_modes(bot: Bot, fake: FakeTelegram) -> None:
    with pytest.raises(BadRequest, match=r"(?i)reserved"):
        await bot.send_message(USER, "利率 3.5%!", parse_mode=ParseMode.MARKDOWN_V2)
    await bot.send_message(USER, r"利率 *3\.5%*\!", parse_mode=ParseMode.MARKDOWN_V2)
    with pytest.raises(BadRequest, match=r"(?i)unsupported parse_mode"):
        await bot.send_message(USER, "x", parse_mode="Markdown3")
    assert parse_html('<a href="https://x.cn/?a=1&b=2">链接</a>')[0] == "链接"
    assert parse_markdown_v2("_斜_")[1] == [{"type": "italic", "offset": 0, "length": 1}]
    assert [v["kind"] for v in fake.violations] == ["cant_parse_entities", "bad_parse_mode"]


async def test_injected_failures(bot: Bot, fake: FakeTelegram) -> None:
    fake.fail("sendMessage", 429, retry_after=7)
    with warnings.catch_warnings():  # PTB warns that retry_after will become a timedelta
        warnings.simplefilter("ignore")
        with pytest.raises(RetryAfter, match="Retry in 7") as exc:
            await bot.send_message(USER, "hi")
        assert exc.value.retry_after in (7, dt.timedelta(seconds=7))
    assert fake.calls[-1]["description"] == "Too Many Requests: retry after 7"

    fake.fail("sendMessage", 403, chat_id=USER)
    await bot.send_message(USER + 1, "someone else")  # does not match chat_id
    with pytest.raises(Forbidden, match=r"(?i)blocked by the user"):
        await bot.send_message(USER, "hi")

    fake.fail("sendMessage", 500, times=2)
    for _ in range(2):
        with pytest.raises(NetworkError, match=r"(?i)Internal Server Error"):
            await bot.send_message(USER, "hi")
    await bot.send_message(USER, "finally")

    assert [i["status"] for i in fake.injected] == [429, 403, 500, 500]
    assert [c["status"] for c in fake.calls_to("sendMessage")] == [429, 200, 403, 500, 500, 200]
    assert [r["text"] for r in fake.sent] == ["someone else", "finally"]
    fake.assert_no_violations()


async def test_get_updates_and_offset(bot: Bot, fake: FakeTelegram) -> None:
    first = fake.user_message(USER, "/start")
    second = fake.user_message(USER, f"你好 @{BOT_USERNAME}")
    updates = await bot.get_updates(timeout=0)
    assert [u.update_id for u in updates] == [first["update_id"], second["update_id"]]
    assert updates[0].message.text == "/start" and updates[0].message.entities[0].type == "bot_command"
    assert updates[1].message.entities[0].type == "mention"
    assert updates[1].message.chat.type == "private" and updates[1].effective_user.id == USER

    # Not confirmed yet: the same updates come again; offset confirms and drops older ones.
    assert len(await bot.get_updates(timeout=0)) == 2
    assert [u.update_id for u in await bot.get_updates(offset=second["update_id"], timeout=0)] == [second["update_id"]]
    assert await bot.get_updates(offset=second["update_id"] + 1, timeout=0) == ()
    assert fake.pending_updates == []


async def test_long_poll_returns_when_an_update_arrives(bot: Bot, fake: FakeTelegram) -> None:
    async def later() -> None:
        await asyncio.sleep(0.3)
        fake.callback(USER, "yes", message_id=7)

    task = asyncio.create_task(later())
    started = asyncio.get_running_loop().time()
    updates = await bot.get_updates(timeout=5, allowed_updates=Update.ALL_TYPES)
    await task
    assert asyncio.get_running_loop().time() - started < 3
    [update] = updates
    assert update.callback_query.data == "yes" and update.callback_query.message.message_id == 7

    # limit, and allowed_updates dropping unwanted types
    fake.user_message(USER, "a")
    fake.user_message(USER, "b")
    fake.poll_answer(USER, [0], poll_id="999")
    got = await bot.get_updates(offset=update.update_id + 1, limit=1, timeout=0, allowed_updates=["message"])
    assert [u.message.text for u in got] == ["a"]
    assert len(await bot.get_updates(timeout=0)) == 2
    assert [u["reason"] for u in fake.undelivered] == ["poll_answer not in allowed_updates"]


async def test_callback_edit_flow(bot: Bot, fake: FakeTelegram) -> None:
    sent = await bot.send_message(USER, "选一个", reply_markup=keyboard([("是", "yes"), ("否", "no")]))
    fake.press(USER, "否")
    [update] = await bot.get_updates(timeout=0)
    query = update.callback_query
    assert query.data == "no" and query.message.message_id == sent.message_id
    await bot.answer_callback_query(query.id, text="好的")
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query(query.id)
    edited = await bot.edit_message_text("已选：否", chat_id=USER, message_id=sent.message_id)
    assert edited.text == "已选：否" and edited.reply_markup is None
    with pytest.raises(BadRequest, match=r"(?i)not modified"):
        await bot.edit_message_text("已选：否", chat_id=USER, message_id=sent.message_id)
    await bot.edit_message_reply_markup(chat_id=USER, message_id=sent.message_id,
                                        reply_markup=keyboard([("撤销", "undo")]))
    assert fake.message(USER, sent.message_id)["reply_markup"]["inline_keyboard"][0][0]["text"] == "撤销"
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=USER, message_id=99)

    assert [a["text"] for a in fake.callback_answers] == ["好的"]
    assert [r["method"] for r in fake.sent] == ["sendMessage", "editMessageText", "editMessageReplyMarkup"]
    assert [v["kind"] for v in fake.violations] == ["callback_answered_twice"]


async def test_commands_webhook_chat_and_files(bot: Bot, fake: FakeTelegram) -> None:
    await bot.set_my_commands([BotCommand("start", "开始"), BotCommand("check", "检查风险")])
    assert [c.command for c in await bot.get_my_commands()] == ["start", "check"]
    assert fake.commands == [{"command": "start", "description": "开始"},
                             {"command": "check", "description": "检查风险"}]
    with pytest.raises(BadRequest):
        await bot.set_my_commands([BotCommand("Bad-Command", "x")])

    await bot.set_webhook("http://127.0.0.1:1/hook", secret_token="s3cret")
    assert fake.webhook["secret_token"] == "s3cret"
    with pytest.raises(Conflict):
        await bot.get_updates(timeout=0)
    assert (await bot.get_webhook_info()).url == "http://127.0.0.1:1/hook"
    await bot.delete_webhook()
    assert fake.webhook is None

    fake.photo(USER, "photo-1", caption="这是什么？", content=b"JPEGDATA")
    [update] = await bot.get_updates(timeout=0)
    file = await update.message.photo[-1].get_file()
    assert bytes(await file.download_as_bytearray()) == b"JPEGDATA"
    chat = await bot.get_chat(USER)
    assert chat.type == "private" and chat.first_name == "Tester"
    await bot.send_chat_action(USER, "typing")
    assert fake.chat_actions[0]["action"] == "typing"
    assert [v["kind"] for v in fake.violations] == ["invalid_command"]


async def test_group_privacy_blocking_and_rate_limits(bot: Bot, fake: FakeTelegram) -> None:
    group = -1001234567890
    added = fake.my_chat_member(group, "supergroup", "left", "member", user_id=USER, title="反诈群")
    assert Update.de_json(added, bot).my_chat_member.new_chat_member.status == "member"
    fake.user_message(USER, "随便聊聊", chat_id=group, chat_type="supergroup")  # privacy mode: not delivered
    fake.user_message(USER, f"@{BOT_USERNAME} 这是骗局吗", chat_id=group, chat_type="supergroup")
    updates = await bot.get_updates(timeout=0)
    assert [_type(u) for u in updates] == ["my_chat_member", "message"]
    assert len(fake.undelivered) == 1

    for i in range(21):
        await bot.send_message(group, f"群消息 {i}")
    assert [r["scope"] for r in fake.rate_violations] == ["group"]

    fake.my_chat_member(USER, "private", "member", "kicked")
    with pytest.raises(Forbidden, match=r"(?i)blocked by the user"):
        await bot.send_message(USER, "还在吗")
    fake.user_message(USER, "/start")  # the user unblocked the bot: Telegram sends my_chat_member first
    assert [_type(u) for u in await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)] == [
        "my_chat_member", "my_chat_member", "message"]
    await bot.send_message(USER, "欢迎回来")
    fake.my_chat_member(group, "supergroup", "member", "left", user_id=USER)
    with pytest.raises(Forbidden, match=r"(?i)not a member"):
        await bot.send_message(group, "x")
    assert fake.violations == []


async def test_polls(bot: Bot, fake: FakeTelegram) -> None:
    msg = await bot.send_poll(USER, "非法集资的特征？", ["高收益", "低风险"], is_anonymous=False, type="quiz",
                              correct_option_ids=[0])
    answer = fake.poll_answer(USER, [0])
    assert answer["poll_answer"]["poll_id"] == msg.poll.id
    [update] = await bot.get_updates(timeout=0)
    assert update.poll_answer.option_ids == (0,)
    await bot.send_poll(USER, "匿名？", ["是", "否"])
    with pytest.raises(ValueError, match=r"(?i)anonymous"):
        fake.poll_answer(USER, [1])


async def test_webhook_delivery(bot: Bot, fake: FakeTelegram) -> None:
    received: list[tuple[dict, str | None]] = []

    async def hook(request: Request) -> Response:
        received.append((await request.json(), request.headers.get("x-telegram-bot-api-secret-token")))
        return Response(status_code=200)

    receiver = ThreadedServer(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))
    await asyncio.to_thread(receiver.start)
    try:
        await bot.set_webhook(f"{receiver.url}/hook", secret_token="tok")
        update = fake.user_message(USER, "走 webhook")
        await fake.wait_for(lambda: received)
        assert received == [(update, "tok")]
        await fake.wait_for(lambda f: not f.pending_updates)
    finally:
        await asyncio.to_thread(receiver.stop)


async def test_ptb_application_polls_the_fake(fake: FakeTelegram) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.message.reply_text("欢迎", reply_markup=keyboard([("开始", "go")]))

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.callback_query.answer()
        await update.callback_query.edit_message_text(f"你选了 {update.callback_query.data}")

    app = Application.builder().token(fake.token).base_url(fake.base_url).base_file_url(fake.base_file_url).build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(pressed))
    async with app:
        await app.start()
        await app.updater.start_polling(poll_interval=0, timeout=5)
        fake.user_message(USER, "/start")
        [welcome] = await fake.wait_sent(1, chat_id=USER)
        fake.press(USER, "开始")
        await fake.wait_for(lambda: len(fake.sent) == 2 and fake.callback_answers)
        await app.updater.stop()
        await app.stop()
    assert welcome["text"] == "欢迎"
    assert fake.message(USER, welcome["message_id"])["text"] == "你选了 go"
    assert fake.pending_updates == [] and fake.unanswered_callbacks == []
    fake.assert_no_violations()


def test_sync_usage() -> None:
    with FakeTelegram() as fake:
        fake.user_message(USER, "/help")
        r = httpx.post(f"{fake.api_url}/getUpdates", json={"timeout": 0})
        assert r.json()["ok"] and r.json()["result"][0]["message"]["text"] == "/help"
        r = httpx.post(f"{fake.api_url}/sendMessage", data={"chat_id": USER, "text": "帮助",
                                                            "reply_markup": '{"inline_keyboard": [[]]}'})
        assert r.status_code == 200 and r.json()["result"]["text"] == "帮助"
        assert fake.wait_sent(1, timeout=1)[0]["text"] == "帮助"
        r = httpx.post(f"{fake.api_url}/sendMessage", json={"chat_id": USER, "text": ""})
        assert r.status_code == 400 and r.json() == {"ok": False, "error_code": 400,
                                                     "description": "Bad Request: message text is empty"}
        r = httpx.post(f"{fake.base_url}wrong:token/getMe")
        assert r.status_code == 401
        r = httpx.post(f"{fake.api_url}/noSuchMethod")
        assert r.status_code == 404 and fake.violations[-1]["kind"] == "unsupported_method"
        with pytest.raises(TimeoutError):
            fake.wait_sent(5, timeout=0.1)


def _type(update: Update) -> str:
    return "my_chat_member" if update.my_chat_member else "message" if update.message else "other"
