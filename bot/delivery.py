"""The background delivery worker: one outbox dispatcher (bot/outbox.py) with every sender this deployment can use —
tips' staff alerts, reporters' notices, evidence downloads (bot/tips/) and warning broadcasts (bot/broadcasts/)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from telegram import Bot

from bot.broadcasts import mass
from bot.broadcasts import senders as warning_senders
from bot.broadcasts.segments import is_quiet
from bot.channels.wechat_api import WeChatApi
from bot.channels.wecom import WeComRobot, shared_rate
from bot.config import WeComSettings
from bot.outbox import Dispatcher, Sender
from bot.rate import SharedRate
from bot.services import Services
from bot.storage.models import utcnow
from bot.tips import evidence
from bot.tips.alerts import can_message, telegram_sender, wechat_sender, wecom_sender

log = logging.getLogger(__name__)
STOP_WAIT = 10.0  # seconds a stopping worker gives the message in hand


class OutboxWorker:
    """`Dispatcher.run` in the background, with every sender this deployment can use.

    Telegram needs the running bot (`TelegramChannel.app.bot`); the WeCom robot and the WeChat API are built from
    the settings unless given, and then closed by `stop()`.
    """

    def __init__(self, services: Services, *, telegram_bot: Bot | None = None, wechat_api: WeChatApi | None = None,
                 wecom_robot: WeComRobot | None = None, poll: float = 1.0, **options: Any) -> None:
        settings = services.settings
        self._db = services.db
        self._owned: list[WeComRobot | WeChatApi] = []
        senders: dict[str, Sender] = {}
        if telegram_bot is not None:
            senders["telegram"] = telegram_sender(telegram_bot, services.vault)
        if wecom_robot is None and settings.wecom.robot_webhook_url:
            wecom_robot = self._robot(settings.wecom.robot_webhook_url, settings.wecom)
        if wecom_robot is not None:
            senders["wecom"] = wecom_sender(wecom_robot)
        if wechat_api is None and can_message(settings, "wechat"):
            wechat_api = WeChatApi(settings.wechat, services.db)
            self._owned.append(wechat_api)
        if wechat_api is not None:
            senders["wechat"] = wechat_sender(wechat_api, services.db, services.vault)
        # warning broadcasts go through the same outbox (bot/broadcasts/)
        senders["warn-notice"] = warning_senders.notice(services.db, services.vault)
        if telegram_bot is not None:
            senders["warn-telegram"] = senders["relay-telegram"] = warning_senders.telegram(telegram_bot, services.db)
        if wechat_api is not None:
            senders["warn-wechat"] = senders["relay-wechat"] = warning_senders.wechat(wechat_api, services.db,
                                                                                       services.vault, settings)
            senders["warn-wechat-tpl"] = warning_senders.wechat_template(wechat_api, services.db, services.vault,
                                                                         settings)
            senders[mass.ROUTE] = mass.sender(wechat_api, services.db, settings)
            senders[mass.UNTAG] = mass.untagger(wechat_api)
        if settings.broadcasts.township_robots:  # township staff groups, each robot at its own 20 a minute
            robots = {code: self._robot(url, settings.wecom)
                      for code, url in settings.broadcasts.township_robots.items() if url}
            senders["warn-wecom"] = warning_senders.wecom(robots)
        # evidence files, fetched from the platform and kept sealed (bot/tips/evidence.py)
        max_bytes = int(settings.tips.max_file_mb * 1024 * 1024)
        if telegram_bot is not None:
            senders["fetch-telegram"] = evidence.telegram_fetcher(telegram_bot, services.db, services.vault, max_bytes)
        if wechat_api is not None:
            senders["fetch-wechat"] = evidence.wechat_fetcher(settings.wechat.api_base_url, wechat_api.token,
                                                              services.db, services.vault, max_bytes,
                                                              http=wechat_api.http)
        if telegram_bot is not None:  # Telegram counts messages per bot, whichever process sends them
            shared = SharedRate(services.db, "telegram", settings.telegram.max_messages_per_second)
            options.setdefault("rates", {"telegram": shared, "warn-telegram": shared, "relay-telegram": shared})
        # a warning goes to thousands of residents: several at once, within the shared rate
        options.setdefault("parallel", {"warn-telegram": 8, "warn-wechat": 8, "warn-wechat-tpl": 8, "warn-notice": 8,
                                        "warn-wecom": 8})
        options.setdefault("lease_seconds", settings.outbox.lease_seconds)
        options.setdefault("unknown_pause", settings.outbox.unknown_pause_minutes * 60)
        options.setdefault("quiet", lambda: is_quiet(settings.broadcasts, utcnow()))
        self.dispatcher = Dispatcher(services.db, senders, **options)
        self.poll = poll
        self.stopping = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def _robot(self, url: str, wecom: WeComSettings) -> WeComRobot:
        """A WeCom group robot this worker makes (and closes at `stop()`), its rate shared with every process (the
        schedule is named by a digest of the URL, which holds the robot's key)."""
        robot = WeComRobot(url, wecom.max_per_minute, timeout=wecom.read_timeout, connect_timeout=wecom.connect_timeout,
                           shared=shared_rate(self._db, url, wecom.max_per_minute))
        self._owned.append(robot)
        return robot

    def start(self) -> None:
        self.task = asyncio.create_task(self.dispatcher.run(self.stopping, self.poll), name="outbox")
        log.info("outbox: dispatching (%s)", ", ".join(sorted(self.dispatcher.senders)) or "no senders")

    async def stop(self) -> None:
        """Finish the message in hand (for up to STOP_WAIT seconds), then close the clients this worker made."""
        self.stopping.set()
        if self.task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self.task, STOP_WAIT)
        for client in self._owned:
            await client.close()


def start_dispatcher(services: Services, *, telegram_bot: Bot | None = None, wechat_api: WeChatApi | None = None,
                     **options: Any) -> OutboxWorker:
    """Build the worker and start it on the running event loop; `await worker.stop()` at shutdown."""
    worker = OutboxWorker(services, telegram_bot=telegram_bot, wechat_api=wechat_api, **options)
    worker.start()
    return worker
