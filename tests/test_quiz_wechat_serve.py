"""The quiz page inside WeChat through two real `fangfei serve` processes on one database and the fake WeChat: a
resident signed in by one process plays in the other, the two ask WeChat for one jsapi_ticket between them (on
PostgreSQL), and what the processes print carries no openid, no sign-in code and no secret."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.fake_wechat import FakeWeChat
from tests.quiz_wechat_support import WECHAT_UA
from tests.support import Server
from tests.test_cli import run

SLUG = "wechat-serve"
OPENID = "o-two-servers-Qm4"


@pytest.fixture
def fake() -> Iterator[FakeWeChat]:
    with FakeWeChat() as f:
        f.resident = OPENID
        yield f


@pytest.fixture
def servers(db_env: dict[str, str], fake: FakeWeChat) -> Iterator[list[Server]]:
    run("quiz", "campaign", "create", "--slug", SLUG, "--name", "两个进程的微信答题", "--audience", "elderly",
        "--questions", "3", "--attempts-per-day", "1", "--open", env=db_env)
    env = {**db_env, "FANGFEI_WECHAT__APP_ID": fake.appid, "FANGFEI_WECHAT__APP_SECRET": fake.secret,
           "FANGFEI_WECHAT__API_BASE_URL": fake.api_base_url, "FANGFEI_WECHAT__OAUTH_BASE_URL": fake.api_base_url,
           "FANGFEI_WECHAT__PAGE_SIGN_IN": "true", "FANGFEI_WECHAT__PAGE_SHARE": "true", "FANGFEI_LOG__LEVEL": "DEBUG"}
    started = [Server(env), Server(env)]
    public = started[0].base  # one public address, as behind a balancer
    for server in started:
        server.env["FANGFEI_HTTP__PUBLIC_URL"] = public
        server.start()
    yield started
    for server in started:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


def test_two_processes_one_resident_one_ticket_nothing_logged(servers: list[Server], fake: FakeWeChat,
                                                              db_env: dict[str, str]) -> None:
    a, b = servers
    with httpx.Client(headers={"User-Agent": WECHAT_UA}, timeout=30) as phone:
        to_wechat = phone.get(f"{a.base}/quiz/{SLUG}")
        assert to_wechat.status_code == 302
        back = phone.get(to_wechat.headers["location"].split("#")[0])
        signed = phone.get(back.headers["location"])  # process A's callback
        assert signed.status_code == 302 and signed.headers["location"] == f"/quiz/{SLUG}"
        page = phone.get(f"{b.base}/quiz/{SLUG}")  # process B knows the session
        assert page.status_code == 200 and "quiz-wechat.js" in page.text
        region = phone.get(f"{b.base}/api/quiz/{SLUG}").json()["regions"][0]["code"]
        assert phone.post(f"{b.base}/api/quiz/{SLUG}/attempts", json={"region": region}).status_code == 201
        assert phone.post(f"{a.base}/api/quiz/{SLUG}/attempts", json={"region": region}).status_code == 429

    fake.fail("ticket/getticket", delay=0.5)  # a slow WeChat: both processes find no ticket meanwhile
    answers: list[httpx.Response] = []

    def share(server: Server) -> None:
        answers.append(httpx.get(f"{server.base}/api/quiz/{SLUG}/wechat-share",
                                 params={"url": f"{a.base}/quiz/{SLUG}"}, timeout=30))

    threads = [threading.Thread(target=share, args=(s,)) for s in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in answers] == [200, 200]
    tickets = len(fake.calls_to("ticket/getticket"))
    assert tickets == 1 if "postgresql" in db_env["FANGFEI_DATABASE__URL"] else tickets <= 2

    code = fake.calls_to("sns/oauth2/access_token")[0]["query"]["code"]
    printed = a.stop() + b.stop()
    assert "sns/oauth2/access_token" in printed  # httpx's request lines are there, so the checks below can bite
    for secret in (OPENID, code, fake.secret, *fake.tokens_issued, *fake.tickets_issued):
        assert secret not in printed
    fake.assert_no_violations()
