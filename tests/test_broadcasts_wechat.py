"""Warnings to WeChat subscribers within the platform's rules, against the fake WeChat API over HTTP: a
customer-service message inside the 48 hours after they last wrote, a template message beyond them when a
template is configured, else a notice for their next message; 43004 unreachable and not retried, 45009 and server
errors retried with backoff, an expired token refreshed once; the preview says how many go which way."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from bot import subscribers
from bot.broadcasts import segments
from bot.broadcasts import senders as warning_senders
from bot.channels.wechat_api import WeChatApi
from bot.config import WeChatSettings
from bot.engine import Engine
from bot.outbox import Dispatcher
from bot.services import Services
from bot.storage.models import Broadcast, OutboxMessage, Subscriber, utcnow
from bot.types import Inbound
from tests.fake_wechat import FakeWeChat
from tests.test_broadcasts import UNSUBSCRIBE, approved, drafted, drain, progress, with_broadcasts
from tests.test_cli import run

TEMPLATE = "tpl-warning-1"
TEXT = "【防非提醒】有人办讲座让老人交钱。请不要交钱。"


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeChat]:
    async with FakeWeChat() as server:
        server.add_template(TEMPLATE)
        yield server


def on_wechat(services: Services, fake: FakeWeChat, **changes: Any) -> Services:
    """Services whose settings send to the fake WeChat API (and name approvers)."""
    services = with_broadcasts(services)
    wechat = WeChatSettings(
        token="t", app_id=fake.appid, app_secret=fake.secret, api_base_url=fake.api_base_url, **changes
    )
    return dataclasses.replace(services, settings=services.settings.model_copy(update={"wechat": wechat}))


def wechat_dispatcher(services: Services, api: WeChatApi) -> Dispatcher:
    s = services.settings
    return Dispatcher(
        services.db,
        {
            "warn-wechat": warning_senders.wechat(api, services.db, services.vault, s),
            "warn-wechat-tpl": warning_senders.wechat_template(api, services.db, services.vault, s),
            "warn-notice": warning_senders.notice(services.db, services.vault),
        },
        base_backoff=0.01,
    )


async def subscribe(
    services: Services,
    fake: FakeWeChat,
    *,
    here: tuple[str, ...] = (),
    away: tuple[str, ...] = (),
    unknown: tuple[str, ...] = (),
) -> None:
    """Elderly WeChat subscribers: `here` wrote just now (through the engine, as WeChat delivers it), `away` three
    days ago, `unknown` before we kept the time."""
    async with services.db.transaction() as session:
        for openid in (*here, *away, *unknown):
            await subscribers.subscribe(session, "wechat", openid, "elderly", "城关镇", "南关村")
    engine = Engine(services)
    for openid in (*here, *away):
        await engine.handle(Inbound(channel="wechat", user=openid, chat=openid, text="你好", numbered=True))
        fake.user_wrote(openid)
    async with services.db.transaction() as session:
        seen = (
            await session.execute(
                select(Subscriber.user_id, Subscriber.last_seen).where(Subscriber.user_id.in_([*here, *away]))
            )
        ).all()
        assert all(at is not None for _, at in seen) and len(seen) == len(here) + len(away)  # the engine kept it
        await session.execute(
            update(Subscriber).where(Subscriber.user_id.in_(away)).values(last_seen=utcnow() - timedelta(days=3))
        )
    for openid in away:
        fake.user_wrote(openid, at=fake.now() - 3 * 86400)


async def preview_of(services: Services, broadcast_id: int) -> dict[str, Any]:
    async with services.db.session() as session:
        return await segments.preview(session, services.settings, await session.get(Broadcast, broadcast_id))


async def settle(services: Services, d: Dispatcher) -> None:
    """Deliver until nothing is pending (the backoff between tries is a few hundredths of a second here)."""
    for _ in range(50):
        await drain(d)
        async with services.db.session() as session:
            pending = await session.scalar(select(OutboxMessage.id).where(OutboxMessage.status == "pending"))
        if pending is None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("copies still pending")


async def send_all(services: Services) -> None:
    api = WeChatApi(services.settings.wechat, services.db)
    try:
        await settle(services, wechat_dispatcher(services, api))
    finally:
        await api.close()


async def errors(services: Services, broadcast_id: int) -> list[tuple[str, str, str | None]]:
    async with services.db.session() as session:
        rows = await session.execute(
            select(OutboxMessage.channel, OutboxMessage.status, OutboxMessage.last_error)
            .where(OutboxMessage.broadcast_id == broadcast_id)
            .order_by(OutboxMessage.id)
        )
        return [tuple(r) for r in rows.all()]


async def test_inside_the_window_by_customer_service_beyond_it_by_template(
    services: Services, fake: FakeWeChat
) -> None:
    services = on_wechat(services, fake, template_id=TEMPLATE, template_url="https://example.org/warn")
    await subscribe(services, fake, here=("o-here",), away=("o-away",), unknown=("o-old",))
    broadcast_id = await drafted(services, channels=["wechat"], audience="elderly")
    shown = await preview_of(services, broadcast_id)
    assert shown["wechat"] == {"customer_service": 2, "template": 1, "unreachable": 0, "unknown_window": 1}
    assert shown["routes"] == {"warn-wechat": 2, "warn-wechat-tpl": 1} and shown["reachable"] == 3
    await approved(services, broadcast_id)
    await send_all(services)
    body = f"{TEXT}\n\n{UNSUBSCRIBE}"
    assert fake.texts_to("o-here") == [body] and fake.templates_to("o-here") == []
    # beyond the 48 hours: a template message with the warning's parts, nothing else added
    [data] = fake.templates_to("o-away")
    assert data == {
        "first": "防范非法集资预警提示",
        "keyword1": services.settings.region.region,
        "keyword2": data["keyword2"],
        "keyword3": body,
        "remark": data["remark"],
    } and data["keyword2"].endswith("日")
    assert services.settings.region.hotline in data["remark"]
    assert fake.templates_sent[0]["url"] == "https://example.org/warn" and fake.texts_to("o-away") == []
    # never seen since we keep the time: customer service first, WeChat refuses (45015), then the template
    assert fake.texts_to("o-old") == [] and len(fake.templates_to("o-old")) == 1
    done = await progress(services, broadcast_id)
    assert (done["sent"], done["unreachable"], done["failed"], done["pending"]) == (3, 0, 0, 0)
    assert done["routes"] == {"warn-wechat": {"sent": 2}, "warn-wechat-tpl": {"sent": 1}}
    fake.assert_no_violations()


async def test_without_a_template_beyond_the_window_is_a_notice_counted_not_reachable(
    services: Services, fake: FakeWeChat
) -> None:
    services = on_wechat(services, fake)
    await subscribe(services, fake, here=("o-here",), away=("o-away",), unknown=("o-old",))
    broadcast_id = await drafted(services, channels=["wechat"], audience="elderly")
    shown = await preview_of(services, broadcast_id)
    assert shown["wechat"] == {"customer_service": 2, "template": 0, "unreachable": 1, "unknown_window": 1}
    assert shown["noticed"] == {"wechat-window": 1} and shown["reachable"] == 2 and shown["total"] == 3
    await approved(services, broadcast_id)
    await send_all(services)
    assert fake.texts_to("o-here") == [f"{TEXT}\n\n{UNSUBSCRIBE}"]
    assert fake.texts_to("o-away") == [] and fake.templates_sent == []
    assert not [c for c in fake.calls_to("message/custom/send") if c["body"]["touser"] == "o-away"]  # not tried
    done = await progress(services, broadcast_id)
    assert (done["sent"], done["unreachable"], done["total"]) == (1, 2, 3)
    assert done["routes"] == {"warn-wechat": {"sent": 1, "unreachable": 1}, "warn-notice": {"unreachable": 1}}
    # both outside the window read it at their next message, once
    engine = Engine(services)
    for openid in ("o-away", "o-old"):
        replies = await engine.handle(Inbound(channel="wechat", user=openid, chat=openid, text="你好", numbered=True))
        assert " ".join(r.text for r in replies).count("有人办讲座让老人交钱") == 1
        replies = await engine.handle(Inbound(channel="wechat", user=openid, chat=openid, text="你好", numbered=True))
        assert "有人办讲座让老人交钱" not in " ".join(r.text for r in replies)
    # and writing opened their window again: the next warning goes by customer-service message
    again = await drafted(services, channels=["wechat"], audience="elderly")
    assert (await preview_of(services, again))["wechat"]["customer_service"] == 3


async def test_an_unfollowed_resident_is_unreachable_not_retried_and_back_when_they_write(
    services: Services, fake: FakeWeChat
) -> None:
    services = on_wechat(services, fake, template_id=TEMPLATE)
    await subscribe(services, fake, here=("o-cs",), away=("o-tpl",))
    fake.unfollow("o-cs")
    fake.unfollow("o-tpl")
    broadcast_id = await drafted(services, channels=["wechat"], audience="elderly")
    await approved(services, broadcast_id)
    await send_all(services)
    assert fake.sent == [] and fake.templates_sent == []
    assert len(fake.calls_to("message/template/send")) == 1 and len(fake.calls_to("message/custom/send")) == 1
    assert sorted(await errors(services, broadcast_id)) == [
        ("warn-wechat", "unreachable", "no longer follows the account (errcode 43004)"),
        ("warn-wechat-tpl", "unreachable", "no longer follows the account (errcode 43004)"),
    ]
    later = await drafted(services, channels=["wechat"], audience="elderly")
    shown = await preview_of(services, later)
    assert shown["skipped"] == {"blocked": 2} and shown["wechat"]["unreachable"] == 2
    # following again and writing makes them reachable
    fake.follow("o-tpl")
    engine = Engine(services)
    await engine.handle(Inbound(channel="wechat", user="o-tpl", chat="o-tpl", text="你好", numbered=True))
    assert (await preview_of(services, later))["wechat"]["customer_service"] == 1


async def test_rate_limits_and_server_errors_are_retried_an_expired_token_refreshed_once(
    services: Services, fake: FakeWeChat
) -> None:
    services = on_wechat(services, fake, template_id=TEMPLATE)
    await subscribe(services, fake, away=("o-1", "o-2"))
    broadcast_id = await drafted(services, channels=["wechat"], audience="elderly")
    await approved(services, broadcast_id)
    api = WeChatApi(services.settings.wechat, services.db)
    try:
        d = wechat_dispatcher(services, api)
        await api.token()
        issued = len(fake.tokens_issued)
        fake.expire_token()  # the stored token answers 42001 now
        fake.fail("message/template/send", errcode=45009)
        fake.fail("message/template/send", status=502)
        await d.run_once()
        async with services.db.session() as session:
            waiting = (
                (await session.execute(select(OutboxMessage.last_error).where(OutboxMessage.status == "pending")))
                .scalars()
                .all()
            )
        assert sorted(waiting) == ["/cgi-bin/message/template/send: HTTPStatusError", "errcode 45009"]
        await settle(services, d)
    finally:
        await api.close()
    assert [len(fake.templates_to(o)) for o in ("o-1", "o-2")] == [1, 1]  # each once, after the retries
    assert len(fake.tokens_issued) == issued + 1  # refreshed once, for both
    done = await progress(services, broadcast_id)
    assert (done["sent"], done["failed"], done["pending"]) == (2, 0, 0)
    fake.assert_no_violations()


def test_a_template_needs_a_service_account(tmp_path: Any) -> None:
    refused = run(
        "broadcast",
        "list",
        env={
            "FANGFEI_WECHAT__TEMPLATE_ID": "x",
            "FANGFEI_WECHAT__ACCOUNT_TYPE": "subscription",
            "FANGFEI_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'f.db'}",
        },
        check=False,
    )
    assert refused.returncode == 2 and "template messages exist only for service accounts" in refused.stderr


async def test_staff_preview_the_wechat_routes_from_the_cli(
    db_env: dict[str, str], services: Services, fake: FakeWeChat
) -> None:
    services = on_wechat(services, fake, template_id=TEMPLATE)
    await subscribe(services, fake, here=("o-here",), away=("o-away",))
    env = {
        **db_env,
        "FANGFEI_WECHAT__TOKEN": "t",
        "FANGFEI_WECHAT__APP_SECRET": fake.secret,
        "FANGFEI_WECHAT__APP_ID": fake.appid,
        "FANGFEI_WECHAT__API_BASE_URL": fake.api_base_url,
        "FANGFEI_WECHAT__TEMPLATE_ID": TEMPLATE,
        "FANGFEI_BROADCASTS__APPROVERS": '["李四"]',
    }
    made = json.loads(
        run(
            "broadcast",
            "create",
            "--text",
            TEXT,
            "--channels",
            "wechat",
            "--audience",
            "elderly",
            "--as",
            "张三",
            "--json",
            env=env,
        ).stdout
    )
    shown = json.loads(run("broadcast", "preview", str(made["id"]), "--json", env=env).stdout)
    assert shown["wechat"] == {"customer_service": 1, "template": 1, "unreachable": 0, "unknown_window": 0}
    plain = run("broadcast", "preview", str(made["id"]), env=env).stdout
    assert "1 by customer-service message" in plain and "1 by template message" in plain
