"""bot/logs.py: every configured secret, and the shapes secrets take in URLs, are redacted from a record, whatever
logger wrote it and however (arguments, a traceback)."""

from __future__ import annotations

import io
import logging

from sqlalchemy.exc import IntegrityError

from bot import logs
from bot.config import Settings
from bot.services import Services
from bot.storage.models import StaffAccount

TOKEN = "987654321:AAHsecretTelegramTokenValue-_0123456"
ROBOT_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"


def test_secrets_are_redacted_from_messages_arguments_and_tracebacks(base_settings: Settings) -> None:
    settings = base_settings.model_copy(update={
        "secret_key": "sealing-key-not-for-logs-0123456789",
        "telegram": base_settings.telegram.model_copy(update={"token": TOKEN, "webhook_secret": "hook-Secret-1"}),
        "wechat": base_settings.wechat.model_copy(update={"token": "wxtoken9", "app_secret": "appsecret-77"}),
        "wecom": base_settings.wecom.model_copy(update={
            "robot_webhook_url": f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={ROBOT_KEY}"})})
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.Redactor(logs.secret_values(settings)))
    log = logging.getLogger("test.logs")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        log.debug("token %s secret %s key %s", TOKEN, "hook-Secret-1", settings.secret_key)
        log.info("POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=%s", ROBOT_KEY)
        log.info("GET https://api.weixin.qq.com/cgi-bin/media/get?access_token=ACCESS123&media_id=m-1")
        log.info("POST http://127.0.0.1:9/bot123456:Other-Token_value/sendMessage")  # not configured: the shape
        log.info("wechat %s %s", "wxtoken9", "appsecret-77")
        try:
            raise RuntimeError(f"cannot reach https://api.telegram.org/bot{TOKEN}/getMe")
        except RuntimeError:
            log.exception("telegram failed")
    finally:
        log.removeHandler(handler)
    out = stream.getvalue()
    for secret in (TOKEN, "hook-Secret-1", settings.secret_key, ROBOT_KEY, "ACCESS123", "Other-Token_value",
                   "wxtoken9", "appsecret-77"):
        assert secret not in out, secret
    assert "send?key=[redacted]" in out and "access_token=[redacted]&media_id=m-1" in out
    assert "/bot[redacted]/sendMessage" in out and "/bot[redacted]/getMe" in out and "Traceback" in out
    assert out.count("[redacted]") == 9  # 3 + 1 + 1 + 1 + 2 + 1 (the traceback's message)


async def test_a_failed_statement_logged_with_its_traceback_names_none_of_its_values(services: Services,
                                                                                     base_settings: Settings) -> None:
    """A database error logged with its traceback (the console's and the engine's last resort) holds neither
    SQLAlchemy's "[parameters: …]" nor the driver's quotation of them (PostgreSQL: "Key (name)=(…) already
    exists"); the statement and the exceptions' types are kept for whoever debugs it."""
    words = "张秀兰 13912345678"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.Redactor(logs.secret_values(base_settings)))
    log = logging.getLogger("test.logs.database")
    log.addHandler(handler)
    try:
        for _ in range(2):  # the second is refused: the name is taken
            try:
                async with services.db.transaction() as session:
                    session.add(StaffAccount(name=words, role="staff", townships=[]))
            except IntegrityError:
                log.exception("console: the request failed")
    finally:
        log.removeHandler(handler)
    out = stream.getvalue()
    assert "IntegrityError" in out and "INSERT INTO staff_accounts" in out and "Traceback" in out
    assert "13912345678" not in out and "张秀兰" not in out, out
    try:  # anything else keeps its message
        raise ValueError("an ordinary error says what went wrong")
    except ValueError as exc:
        assert "what went wrong" in logs.format_exception((ValueError, exc, exc.__traceback__))
