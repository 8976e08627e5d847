"""Staff alerts go out once, even when the platform is slow, silent or drops the connection.

The real clients — python-telegram-bot's Bot as `TelegramChannel` builds it (with `RetryingLimiter` and the
configured timeouts) and `WeComRobot` as the outbox worker builds it from the settings — talk to the fake Bot API and
the fake WeCom robot through a relay on 127.0.0.1. The relay passes every request on at once, so the fake platform
has the message (as the real one would), and holds back the answer: late, never, or by dropping the connection.
Arrivals are counted per alert at the fakes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal
from urllib.parse import urlsplit

import httpx
import pytest

from bot import delivery
from bot.channels.telegram import TelegramChannel
from bot.channels.wecom import WeComRobot
from bot.config import OutboxSettings, Settings, TelegramSettings, WeComSettings
from bot.engine import Engine
from bot.outbox import Dispatcher
from bot.services import Services
from bot.storage.models import OutboxMessage
from bot.tips import alerts
from tests.fake_telegram import FakeTelegram
from tests.fake_wechat import FakeWeComRobot
from tests.support import ROOT
from tests.test_outbox import STAFF_CHAT, file_tip, outbox_rows

Mode = Literal["pass", "slow", "silent", "drop"]
TELEGRAM_SEND, WECOM_SEND = "/sendMessage", "/cgi-bin/webhook/send"

SENDING_WORKER = """
import asyncio, sys
from bot.channels.wecom import WeComRobot
from bot.outbox import Dispatcher
from bot.storage.database import Database
from bot.tips.alerts import wecom_sender

async def main():
    robot = WeComRobot(sys.argv[2], timeout=60)
    await Dispatcher(Database(sys.argv[1]), {"wecom": wecom_sender(robot)}, lease_seconds=2).run_once()

asyncio.run(main())
"""


class Relay:
    """HTTP/1.1 on 127.0.0.1 in front of a fake platform. Every request is read, recorded in `read` and passed on at
    once; the answer to a request whose path contains `hold` comes `delay` s late ("slow"), never ("silent": the
    connection stays open until the client gives up), or not at all because the connection is closed ("drop")."""

    def __init__(self, upstream: str, hold: str, mode: Mode = "pass", delay: float = 7.0) -> None:
        self.upstream, self.hold, self.mode, self.delay = upstream, hold, mode, delay
        self.read: list[str] = []
        self.port = 0
        self._http = httpx.AsyncClient(base_url=upstream)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def held(self) -> int:
        return sum(self.hold in path for path in self.read)

    async def start(self) -> None:
        """Listen (again, on the same port after `stop`)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Refuse connections from now on, and close the open ones."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._open):
                writer.transport.abort()
            await self._server.wait_closed()
            self._server = None

    async def close(self) -> None:
        await self.stop()
        await self._http.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        try:
            while True:
                try:
                    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                method, path, _ = head.split("\r\n", 1)[0].split(" ")
                fields = dict(line.split(":", 1) for line in head.split("\r\n")[1:] if line)
                headers = {name.strip().lower(): value.strip() for name, value in fields.items()}
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                self.read.append(path)
                answer = await self._http.request(method, path, content=body,
                                                  headers={"content-type": headers.get("content-type", "")})
                if self.hold in path and self.mode == "drop":
                    return
                if self.hold in path and self.mode == "silent":
                    await reader.read()  # until the client closes the connection
                    return
                if self.hold in path and self.mode == "slow":
                    await asyncio.sleep(self.delay)
                writer.write(f"HTTP/1.1 {answer.status_code} {answer.reason_phrase}\r\n"
                             f"content-type: {answer.headers.get('content-type', 'application/json')}\r\n"
                             f"content-length: {len(answer.content)}\r\n\r\n".encode() + answer.content)
                await writer.drain()
        except ConnectionError:  # the client gave up first
            return
        finally:
            self._open.discard(writer)
            writer.close()


@pytest.fixture
async def robot() -> AsyncIterator[FakeWeComRobot]:
    async with FakeWeComRobot() as fake:
        yield fake


Relays = Callable[[Mode], Awaitable[tuple[Relay, Relay]]]


@pytest.fixture
async def relays(telegram: FakeTelegram, robot: FakeWeComRobot) -> AsyncIterator[Relays]:
    """`await relays(mode)`: a relay in front of the fake Bot API (holding sendMessage) and one in front of the fake
    WeCom robot (holding its webhook), both started."""
    made: list[Relay] = []

    async def make(mode: Mode) -> tuple[Relay, Relay]:
        pair = (Relay(telegram.base_url.removesuffix("/bot"), TELEGRAM_SEND, mode),
                Relay(robot.url.split("/cgi-bin")[0], WECOM_SEND, mode))
        for relay in pair:
            made.append(relay)
            await relay.start()
        return pair

    yield make
    for relay in made:
        await relay.close()


def through(settings: Settings, telegram: FakeTelegram, robot: FakeWeComRobot, to_telegram: Relay, to_wecom: Relay,
            *, timeout: float = 20.0, pause_seconds: float = 1800.0) -> Settings:
    """Alerts to the staff chat and the WeCom robot, through the relays, with these client timeouts."""
    return settings.model_copy(update={
        "telegram": TelegramSettings(token=telegram.token, staff_chat_id=STAFF_CHAT, read_timeout=timeout,
                                     write_timeout=timeout,
                                     base_url=to_telegram.origin + urlsplit(telegram.base_url).path),
        "wecom": WeComSettings(robot_webhook_url=to_wecom.origin + robot.url.split(to_wecom.upstream)[1],
                               read_timeout=timeout),
        "outbox": OutboxSettings(unknown_pause_minutes=pause_seconds / 60)})


async def deliver(engine: Engine, services: Services, settings: Settings, until: Callable[[list[OutboxMessage]], bool],
                  within: float) -> list[OutboxMessage]:
    """Run the outbox worker (with the Telegram bot as the running channel has it) until the rows satisfy `until`."""
    channel = TelegramChannel(engine, settings.telegram)
    await channel.app.initialize()
    worker = delivery.start_dispatcher(dataclasses.replace(services, settings=settings), telegram_bot=channel.app.bot,
                                     poll=0.05)
    try:
        return await rows_when(services, until, within)
    finally:
        await worker.stop()
        await channel.app.shutdown()


async def rows_when(services: Services, until: Callable[[list[OutboxMessage]], bool],
                    within: float) -> list[OutboxMessage]:
    """The outbox rows as soon as they satisfy `until` (checked every 50 ms, for at most `within` seconds)."""
    for _ in range(int(within * 20)):
        if until(rows := await outbox_rows(services.db)):
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"outbox rows still {[(r.channel, r.status, r.attempts) for r in rows]}")


def arrivals(telegram: FakeTelegram, robot: FakeWeComRobot, receipt: str) -> dict[str, int]:
    """How many copies of the tip's alert reached each platform."""
    return {"telegram": sum(receipt in m["plain_text"] for m in telegram.messages_to(STAFF_CHAT)),
            "wecom": sum(receipt in m["content"] for m in robot.received)}


def settled(rows: list[OutboxMessage]) -> bool:
    return len(rows) == 2 and all(r.status != "pending" for r in rows)


async def test_a_platform_that_answers_after_7_seconds_gets_each_alert_exactly_once(
        engine: Engine, services: Services, telegram: FakeTelegram, robot: FakeWeComRobot, relays: Relays) -> None:
    to_telegram, to_wecom = await relays("slow")  # 7 s, longer than the clients' old 5 s timeout
    settings = through(services.settings, telegram, robot, to_telegram, to_wecom)  # the default 20 s timeouts
    assert settings.telegram.read_timeout == TelegramSettings().read_timeout > 7
    assert settings.wecom.read_timeout == WeComSettings().read_timeout > 7
    tip = await file_tip(services, settings)

    rows = await deliver(engine, services, settings, settled, within=30)
    assert arrivals(telegram, robot, tip.receipt) == {"telegram": 1, "wecom": 1}
    assert to_telegram.held() == 1 and to_wecom.held() == 1
    assert {(r.channel, r.status, r.attempts, r.unknowns) for r in rows} == {("telegram", "sent", 1, 0),
                                                                             ("wecom", "sent", 1, 0)}
    telegram.assert_no_violations()
    robot.assert_no_violations()


@pytest.mark.parametrize("mode", ["silent", "drop"])
async def test_an_answer_that_never_comes_is_tried_once_more_after_the_pause_then_given_up_with_a_log_line(
        engine: Engine, services: Services, telegram: FakeTelegram, robot: FakeWeComRobot, relays: Relays,
        mode: Mode, caplog: pytest.LogCaptureFixture) -> None:
    to_telegram, to_wecom = await relays(mode)
    pause = 0.5
    settings = through(services.settings, telegram, robot, to_telegram, to_wecom, timeout=1.0, pause_seconds=pause)
    tip = await file_tip(services, settings)
    caplog.set_level(logging.DEBUG)

    rows = await deliver(engine, services, settings, settled, within=30)
    # every request reached the platform: the first send and the one more try after the pause, nothing else
    assert arrivals(telegram, robot, tip.receipt) == {"telegram": 2, "wecom": 2}
    assert to_telegram.held() == 2 and to_wecom.held() == 2
    for row in rows:
        assert (row.status, row.attempts, row.unknowns) == ("failed", 2, 2)
        assert row.last_error.startswith("outcome unknown twice") and row.sent_at is None
        said = [r for r in caplog.records if r.name == "bot.outbox" and f"message {row.id} " in r.getMessage()]
        warnings = [r for r in said if r.levelno == logging.WARNING]
        errors = [r for r in said if r.levelno == logging.ERROR]
        assert len(warnings) == 1 and "outcome unknown" in warnings[0].getMessage()
        assert row.dedup in warnings[0].getMessage() and row.channel in warnings[0].getMessage()
        assert len(errors) == 1 and "given up: outcome unknown" in errors[0].getMessage()
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot."))  # ours, at any level
    assert "养老公寓" not in logged and str(STAFF_CHAT) not in logged and robot.key not in logged


async def test_the_one_more_try_waits_for_the_pause(
        engine: Engine, services: Services, telegram: FakeTelegram, robot: FakeWeComRobot, relays: Relays) -> None:
    to_telegram, to_wecom = await relays("silent")
    settings = through(services.settings, telegram, robot, to_telegram, to_wecom, timeout=1.0, pause_seconds=3600)
    tip = await file_tip(services, settings)

    def first_unknown(rows: list[OutboxMessage]) -> bool:
        return all(r.unknowns == 1 for r in rows)

    rows = await deliver(engine, services, settings, first_unknown, within=20)
    await asyncio.sleep(0.5)  # the worker is stopped; nothing else may have gone out meanwhile either
    assert arrivals(telegram, robot, tip.receipt) == {"telegram": 1, "wecom": 1}
    for row in rows:
        assert row.status == "pending" and row.attempts == 1 and row.last_error.startswith("outcome unknown")
        assert 3590 <= (row.next_attempt_at - row.created_at).total_seconds() <= 3700


async def test_the_dispatchers_own_deadline_is_an_unknown_outcome_too(
        services: Services, robot: FakeWeComRobot, relays: Relays) -> None:
    _, to_wecom = await relays("silent")
    webhook = to_wecom.origin + robot.url.split(to_wecom.upstream)[1]
    tip = await file_tip(services, services.settings.model_copy(update={
        "telegram": TelegramSettings(), "wecom": WeComSettings(robot_webhook_url=webhook)}))
    client = WeComRobot(webhook, timeout=60)  # longer than the lease: the dispatcher stops waiting first
    dispatcher = Dispatcher(services.db, {"wecom": alerts.wecom_sender(client)}, lease_seconds=1.0, unknown_pause=0.0)
    try:
        assert await dispatcher.run_once() == 1
        assert await dispatcher.run_once() == 1
        assert await dispatcher.run_once() == 0
    finally:
        await client.close()
    [row] = await outbox_rows(services.db)
    assert sum(tip.receipt in m["content"] for m in robot.received) == 2 and to_wecom.held() == 2
    assert (row.status, row.attempts, row.unknowns) == ("failed", 2, 2)
    assert row.last_error == "outcome unknown twice (no answer: still waiting as the lease ran short)"


async def test_a_refused_connection_is_retried_and_the_alert_delivered_once(
        engine: Engine, services: Services, telegram: FakeTelegram, robot: FakeWeComRobot, relays: Relays) -> None:
    to_telegram, to_wecom = await relays("pass")
    settings = through(services.settings, telegram, robot, to_telegram, to_wecom)
    tip = await file_tip(services, settings)
    channel = TelegramChannel(engine, settings.telegram)
    await channel.app.initialize()  # getMe went through; from now on the relays refuse connections for a while
    await to_wecom.stop()
    await to_telegram.stop()
    worker = delivery.start_dispatcher(dataclasses.replace(services, settings=settings), telegram_bot=channel.app.bot,
                                     poll=0.05)
    try:
        await asyncio.sleep(0.3)
        refused_rows = await outbox_rows(services.db)
        await to_telegram.start()
        await to_wecom.start()
        rows = await rows_when(services, lambda rows: all(r.status == "sent" for r in rows), within=20)
    finally:
        await worker.stop()
        await channel.app.shutdown()
    assert [r.status for r in refused_rows] == ["pending", "pending"]  # nothing went out while refused
    assert arrivals(telegram, robot, tip.receipt) == {"telegram": 1, "wecom": 1}
    # the clients retried the refused connections themselves, within the outbox's first attempt
    assert {(r.attempts, r.unknowns, r.last_error) for r in rows} == {(1, 0, None)}


async def test_a_worker_killed_in_the_middle_of_a_send_causes_at_most_one_duplicate(
        services: Services, robot: FakeWeComRobot, relays: Relays, caplog: pytest.LogCaptureFixture) -> None:
    _, to_wecom = await relays("silent")
    webhook = to_wecom.origin + robot.url.split(to_wecom.upstream)[1]
    tip = await file_tip(services, services.settings.model_copy(update={
        "telegram": TelegramSettings(), "wecom": WeComSettings(robot_webhook_url=webhook)}))
    worker = await asyncio.create_subprocess_exec(sys.executable, "-c", SENDING_WORKER, services.settings.database.url,
                                                  webhook, cwd=ROOT)
    try:  # until the message is at WeCom and the worker waits for the answer
        await rows_when(services, lambda rows: bool(to_wecom.held()), within=20)
    finally:
        worker.send_signal(signal.SIGKILL)
        assert await worker.wait() == -signal.SIGKILL
    [row] = await outbox_rows(services.db)
    assert (row.status, row.attempts, row.unknowns) == ("pending", 1, 0)

    caplog.set_level(logging.WARNING, logger="bot.outbox")
    client = WeComRobot(webhook, timeout=1.0)
    dispatcher = Dispatcher(services.db, {"wecom": alerts.wecom_sender(client)}, unknown_pause=0.0)
    try:
        async with asyncio.timeout(20):
            while (await outbox_rows(services.db))[0].status == "pending":  # the dead worker's lease lapses first
                await dispatcher.run_once()
                await asyncio.sleep(0.1)
    finally:
        await client.close()
    [row] = await outbox_rows(services.db)
    # the send cut short by the kill, the one more try (also unanswered), and no third copy
    assert sum(tip.receipt in m["content"] for m in robot.received) == 2 and to_wecom.held() == 2
    assert (row.status, row.attempts, row.unknowns) == ("failed", 2, 2)
    said = [r for r in caplog.records if r.name == "bot.outbox"]
    [lapsed] = [r.getMessage() for r in said if r.levelno == logging.WARNING]
    assert "outcome unknown (claim lapsed" in lapsed and row.dedup in lapsed
    [given_up] = [r.getMessage() for r in said if r.levelno == logging.ERROR]
    assert "given up: outcome unknown" in given_up
