"""WeChat mass sends (群发) of a warning to a tag, against the fake WeChat API over HTTP: sent once with its msg_id
kept, the account's quota counted and shown, refused in plain words when used up, and never sent again when its
outcome is unknown — an answer that never came, or a `serve` process killed after the call."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot import subscribers
from bot.broadcasts import lifecycle, mass, segments
from bot.channels.wechat_api import WeChatApi
from bot.engine import Engine
from bot.outbox import Dispatcher
from bot.services import Services
from bot.storage.models import Broadcast, OutboxMessage, utcnow
from bot.types import Inbound
from bot.web.app import create_app
from tests.console_support import add_staff, sign_in
from tests.fake_wechat import FakeWeChat
from tests.support import Server
from tests.test_broadcasts import UNSUBSCRIBE, approved, drafted, drain, progress
from tests.test_broadcasts_wechat import TEXT, on_wechat
from tests.test_cli import run

TAG = 101


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeChat]:
    async with FakeWeChat() as server:
        for openid in ("o-1", "o-2", "o-3"):
            server.tag(openid, TAG)
        yield server


async def mass_draft(services: Services, **fields: Any) -> int:
    return await drafted(services, channels=["wechat"], mass_tag=TAG, **fields)


async def send(services: Services, *, wait: float = 5.0) -> None:
    """Deliver what is due, run the leader's round, and deliver again past the unknown-outcome pause."""
    api = WeChatApi(services.settings.wechat, services.db, timeout=wait)
    try:
        d = Dispatcher(
            services.db,
            {mass.ROUTE: mass.sender(api, services.db, services.settings)},
            base_backoff=0.01,
            unknown_pause=0.05,
        )
        for _ in range(6):  # the backoff and the unknown pause are short here: a row sent back is claimed again
            await drain(d)
            async with services.db.transaction() as session:
                await lifecycle.advance(session, services.settings, utcnow())
            await asyncio.sleep(0.1)
    finally:
        await api.close()


async def quota_now(services: Services) -> dict[str, Any]:
    async with services.db.session() as session:
        return await mass.quota(session, services.settings)


async def test_a_mass_send_goes_once_to_its_tag_and_counts_against_the_quota(
    services: Services, fake: FakeWeChat
) -> None:
    services = on_wechat(services, fake)
    broadcast_id = await mass_draft(services)
    async with services.db.session() as session:
        shown = await segments.preview(session, services.settings, await session.get(Broadcast, broadcast_id))
    assert shown["routes"] == {mass.ROUTE: 1}
    assert {k: shown["mass"][k] for k in ("tag", "account_type", "limit", "used", "left")} == {
        "tag": TAG,
        "account_type": "service",
        "limit": 4,
        "used": 0,
        "left": 4,
    }
    await approved(services, broadcast_id)
    await send(services)
    [job] = fake.mass_sent
    assert job["tag_id"] == TAG and job["recipients"] == ["o-1", "o-2", "o-3"]
    assert job["content"] == f"{TEXT}\n\n{UNSUBSCRIBE}"  # how to stop them, as every warning ends
    done = await progress(services, broadcast_id)
    assert done["mass"] == {
        "tag": TAG,
        "state": "sent",
        "msg_id": str(job["msg_id"]),
        "error": None,
        "period": (await quota_now(services))["period"],
    }
    assert (done["state"], done["sent"], done["failed"]) == ("done", 1, 0)
    assert (await quota_now(services))["used"] == 1
    await send(services)  # another round, the leader's too: nothing more
    assert len(fake.mass_sent) == 1
    fake.assert_no_violations()


async def test_a_used_up_quota_is_refused_in_one_line_when_drafting_approving_and_sending(
    services: Services, fake: FakeWeChat
) -> None:
    services = on_wechat(services, fake)
    for _ in range(3):
        await approved(services, await mass_draft(services))
    late = [await mass_draft(services), await mass_draft(services)]  # drafted while one is left
    await send(services)
    assert len(fake.mass_sent) == 3
    await approved(services, late[0])
    await send(services)
    assert (await quota_now(services))["left"] == 0
    with pytest.raises(
        lifecycle.BroadcastError,
        match=r"quota used up: 4 of 4 in \d{4}-\d\d .*at most 4 mass sends "
        r"a month.*next month",
    ):
        await mass_draft(services)
    with pytest.raises(lifecycle.BroadcastError, match="quota used up"):
        await approved(services, late[1])
    assert len(fake.mass_sent) == 4
    # a subscription account: once a day
    daily = on_wechat(services, fake, account_type="subscription")
    assert (await quota_now(daily))["limit"] == 1 and (await quota_now(daily))["used"] == 0
    await approved(daily, await mass_draft(daily))
    await send(daily)
    with pytest.raises(lifecycle.BroadcastError, match=r"a subscription account mass-sends once a day.*next day"):
        await mass_draft(daily)


async def test_the_last_slot_goes_to_one_send_and_wechat_saying_none_is_left_is_believed(
    services: Services, fake: FakeWeChat
) -> None:
    services = on_wechat(services, fake, account_type="subscription")
    both = [await mass_draft(services), await mass_draft(services)]
    for broadcast_id in both:
        await approved(services, broadcast_id)  # each passes its check: the quota is taken at sending
    await send(services)
    assert len(fake.mass_sent) == 1
    outcomes = [(await progress(services, b))["mass"] for b in both]
    assert sorted(m["state"] for m in outcomes) == ["failed", "sent"]
    assert "quota used up" in next(m["error"] for m in outcomes if m["state"] == "failed")
    # WeChat's count wins over ours (a send made from the admin pages): 45028 fails it and uses the quota up
    month = on_wechat(services, fake)
    fake.fail("message/mass/sendall", errcode=45028)
    broadcast_id = await mass_draft(month)
    await approved(month, broadcast_id)
    await send(month)
    shown = await progress(month, broadcast_id)
    assert shown["mass"]["state"] == "failed" and "45028" in shown["mass"]["error"]
    assert (await quota_now(month))["left"] == 0


async def test_busy_and_server_errors_are_retried_and_an_expired_token_refreshed(
    services: Services, fake: FakeWeChat
) -> None:
    services = on_wechat(services, fake)
    broadcast_id = await mass_draft(services)
    await approved(services, broadcast_id)
    fake.fail("message/mass/sendall", errcode=-1)
    fake.fail("message/mass/sendall", status=503)
    fake.fail("message/mass/sendall", errcode=42001)
    await send(services)
    assert len(fake.mass_sent) == 1 and len(fake.calls_to("message/mass/sendall")) == 4
    shown = await progress(services, broadcast_id)
    assert (shown["mass"]["state"], shown["sent"]) == ("sent", 1)
    assert (await quota_now(services))["used"] == 1  # the refused tries gave their slot back


async def test_no_answer_is_an_unknown_outcome_never_sent_again_nor_by_retry_failed(
    services: Services, fake: FakeWeChat
) -> None:
    services = on_wechat(services, fake)
    broadcast_id = await mass_draft(services)
    await approved(services, broadcast_id)
    fake.hold_answer("message/mass/sendall", 3)
    await send(services, wait=0.5)  # WeChat took it, the answer never came back in time
    fake.hold_answer("message/mass/sendall", None)
    assert len(fake.mass_sent) == 1
    shown = await progress(services, broadcast_id)
    assert shown["mass"]["state"] == "unknown" and (shown["failed"], shown["pending"]) == (1, 0)
    async with services.db.transaction() as session:
        again, left = await lifecycle.retry_failed(session, await lifecycle.named(session, broadcast_id), "李四")
    assert (again, left) == (0, 1)
    await send(services)
    assert len(fake.mass_sent) == 1 and len(fake.calls_to("message/mass/sendall")) == 1
    assert (await quota_now(services))["used"] == 1  # it may have gone out: it counts


async def test_replying_tuiding_to_a_mass_warning_takes_the_follower_out_of_its_tags(
    services: Services, fake: FakeWeChat
) -> None:
    """o-1 never subscribed here, o-2 did: both reply 退订 to the mass warning through signed XML; both leave the
    tag (by the outbox, once each, also when they say it twice), o-2's subscription stops, and the next mass
    warning reaches only o-3. Telegram's 退订 touches no tag."""
    from bot.channels.wechat import WeChatChannel
    from tests.test_wechat import wechat_settings as channel_settings
    from tests.wechat_client import WeChatServer

    services = on_wechat(services, fake)
    async with services.db.transaction() as session:
        await subscribers.subscribe(session, "wechat", "o-2", "elderly", None, None)
    first = await mass_draft(services)
    await approved(services, first)
    await send(services)
    assert fake.mass_sent[0]["recipients"] == ["o-1", "o-2", "o-3"]

    engine = Engine(services)
    channel = WeChatChannel(engine, channel_settings(True))
    app = create_app(engine, channel.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://oa.test") as client:
        oa = WeChatServer(client, safe=True)
        assert "已经退订了" in await oa.say("o-1", "退订")
        assert "已经退订了" in await oa.say("o-1", "退订")  # said twice: still one removal
        assert "已经退订了" in await oa.say("o-2", "退订")
    await channel.close()
    [said] = await engine.handle(Inbound(channel="telegram", user="7001", chat="7001", text="退订"))
    assert "还没有订阅" in said.text  # nothing to leave there
    api = WeChatApi(services.settings.wechat, services.db)
    try:
        await drain(Dispatcher(services.db, {mass.UNTAG: mass.untagger(api)}, base_backoff=0.01))
    finally:
        await api.close()
    assert fake.tagged(TAG) == {"o-3"}
    assert len([c for c in fake.calls if c["path"].endswith("batchuntagging")]) == 2
    async with services.db.session() as session:
        assert (await subscribers.find(session, "wechat", "o-2")).active is False  # type: ignore[union-attr]

    second = await mass_draft(services)
    await approved(services, second)
    await send(services)
    assert fake.mass_sent[1]["recipients"] == ["o-3"]
    fake.assert_no_violations()


def _env(db_env: dict[str, str], fake: FakeWeChat) -> dict[str, str]:
    return {
        **db_env,
        "FANGFEI_WECHAT__TOKEN": "t",
        "FANGFEI_WECHAT__APP_SECRET": fake.secret,
        "FANGFEI_WECHAT__APP_ID": fake.appid,
        "FANGFEI_WECHAT__API_BASE_URL": fake.api_base_url,
        "FANGFEI_BROADCASTS__APPROVERS": '["李四"]',
        "FANGFEI_BROADCASTS__EVERY_SECONDS": "0.5",
        "FANGFEI_OUTBOX__LEASE_SECONDS": "3",
        "FANGFEI_OUTBOX__UNKNOWN_PAUSE_MINUTES": "0.02",
        "FANGFEI_SCHEDULER__LEASE_SECONDS": "3",
    }


async def test_a_serve_killed_after_the_call_leaves_it_outcome_unknown_not_sent_again(
    db_env: dict[str, str], services: Services, fake: FakeWeChat
) -> None:
    env = _env(db_env, fake)
    made = json.loads(
        run("broadcast", "create", "--text", TEXT, "--mass-tag", str(TAG), "--as", "张三", "--json", env=env).stdout
    )
    assert made["mass_tag"] == TAG and made["channels"] == ["wechat"]
    shown = run("broadcast", "preview", str(made["id"]), env=env).stdout
    assert f"mass send to tag {TAG}: quota 0 of 4 used" in shown
    fake.hold_answer("message/mass/sendall", 60)  # WeChat takes it; the answer is slow
    first = Server(env)
    first.start()
    try:
        run("broadcast", "approve", str(made["id"]), "--as", "李四", env=env)
        await fake.wait_for(lambda: len(fake.mass_sent) == 1, timeout=30)
        first.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        first.proc.wait()  # type: ignore[union-attr]
    finally:
        if first.proc and first.proc.poll() is None:
            first.stop()
    fake.hold_answer("message/mass/sendall", None)
    second = Server(env)
    second.start()
    try:
        for _ in range(200):
            status = json.loads(run("broadcast", "status", str(made["id"]), "--json", env=env).stdout)
            if status["state"] == "done":
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(2)  # past the unknown pause and a few leader rounds: nothing is sent again
    finally:
        log = second.stop()
    assert status["mass"]["state"] == "unknown" and (status["failed"], status["pending"]) == (1, 0)
    assert len(fake.mass_sent) == 1 and len(fake.calls_to("message/mass/sendall")) == 1
    plain = run("broadcast", "status", str(made["id"]), env=env).stdout
    assert "outcome unknown" in plain and "not sent again" in plain
    async with services.db.session() as session:
        row = (
            await session.execute(
                select(OutboxMessage.status, OutboxMessage.unknowns).where(OutboxMessage.broadcast_id == made["id"])
            )
        ).one()
    assert row.status == "failed" and row.unknowns >= 1
    assert "Traceback" not in log
    refused = run("broadcast", "retry-failed", str(made["id"]), env=env).stdout
    assert "0 queued again, 1 left alone" in refused


def test_the_cli_refuses_a_mass_send_it_cannot_make(tmp_path: Any) -> None:
    env = {"FANGFEI_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'f.db'}"}
    off = run("broadcast", "create", "--text", TEXT, "--mass-tag", "7", "--as", "张三", env=env, check=False)
    assert off.returncode == 2 and "WeChat is not set up for sending" in off.stderr
    env |= {"FANGFEI_WECHAT__TOKEN": "t", "FANGFEI_WECHAT__APP_SECRET": "s", "FANGFEI_WECHAT__APP_ID": "wx1"}
    mixed = run(
        "broadcast",
        "create",
        "--text",
        TEXT,
        "--mass-tag",
        "7",
        "--channels",
        "wechat,telegram",
        "--as",
        "张三",
        env=env,
        check=False,
    )
    assert mixed.returncode == 2 and "give --channels wechat" in mixed.stderr
    placed = run(
        "broadcast",
        "create",
        "--text",
        TEXT,
        "--mass-tag",
        "7",
        "--township",
        "chengguan",
        "--as",
        "张三",
        env=env,
        check=False,
    )
    assert placed.returncode == 2 and "--township and --village do not apply" in placed.stderr
    assert "Traceback" not in off.stderr + mixed.stderr + placed.stderr


async def test_the_console_warnings_page_shows_the_quota(services: Services, fake: FakeWeChat) -> None:
    services = on_wechat(services, fake)
    await approved(services, await mass_draft(services))
    await send(services)
    await add_staff(services, ("王科长", "admin", []))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(Engine(services))), base_url="http://fangfei.test"
    ) as console:
        await sign_in(console, "王科长")
        page = (await console.get("/console/warnings")).text
    quota = re.search(r'<p class="hint" id="mass-quota">(.*?)</p>', page, re.S)
    assert quota is not None
    assert "服务号，每人每月最多 4 次" in quota[1] and "已用 <b>1</b> 次，还剩 <b>3</b> 次" in quota[1]
