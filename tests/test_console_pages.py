"""The console's warnings, quizzes and content pages in process (SQLite and PostgreSQL): composing with live counts,
the two-person rule, township limits, pause/resume/cancel, the report; campaigns created, opened, closed, paper
results entered, statistics; unanswered questions marked by editors."""

from __future__ import annotations

import io
import json
import re

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from bot import subscribers
from bot.services import Services
from bot.storage.models import AuditEntry, Broadcast, OutboxMessage, QuestionGap, QuizPlayer
from tests.console_support import add_staff, page_csrf, sign_in


@pytest.fixture
def console(web: httpx.AsyncClient) -> httpx.AsyncClient:
    return web


@pytest.fixture
async def staffed(services: Services) -> None:
    await add_staff(services, ("王科长", "admin", []), ("钱审批", "approver", []), ("孙审批", "approver", []),
                    ("赵干事", "staff", ["hekou"]))
    async with services.db.transaction() as session:
        for user, town, village in (("w1", "河口乡", "河口村"), ("w2", "河口乡", "李家村"), ("w3", "城关镇", "南关村")):
            await subscribers.subscribe(session, "web", user, "elderly", town, village)


def other(console: httpx.AsyncClient) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=console._transport, base_url="http://fangfei.test")


async def test_a_warning_drafted_by_one_is_approved_by_another_and_delivered(console: httpx.AsyncClient,
                                                                              staffed: None,
                                                                              services: Services) -> None:
    await sign_in(console, "钱审批")
    token = await page_csrf(console, "/console/warnings")
    form = {"csrf": token, "text": "近期有人借“养老项目”收钱，请提醒家中老人。", "audience": "elderly",
            "channel": ["web"], "township": ["hekou"]}
    counts = await console.post("/console/warnings/preview", data=form, headers={"HX-Request": "true"})
    assert 'id="reachable">2<' in counts.text and "<html" not in counts.text
    county = await console.post("/console/warnings/preview", data={**form, "township": []})
    assert 'id="reachable">3<' in county.text
    empty = await console.post("/console/warnings/preview", data={**form, "text": ""})
    assert "请写预警内容" in empty.text
    made = await console.post("/console/warnings", data=form)
    assert made.status_code == 303
    page = made.headers["location"]
    drafted = await console.get(page)
    assert "需要另一位审批人批准" in drafted.text and "批准发送" not in drafted.text
    own = await console.post(page, data={"action": "approve", "csrf": token})
    assert own.status_code == 400 and "起草人不能批准" in own.text
    second = other(console)
    await sign_in(second, "孙审批")
    token2 = await page_csrf(second, page)
    approved = await second.post(page, data={"action": "approve", "csrf": token2})
    assert approved.status_code == 303
    sending = await second.get(page)
    assert "发送中" in sending.text and 'hx-trigger="every 2s"' in sending.text
    async with services.db.session() as session:
        rows = list(await session.scalars(select(OutboxMessage).where(OutboxMessage.broadcast_id.is_not(None))))
        broadcast = await session.scalar(select(Broadcast))
    assert len(rows) == 2 and broadcast.drafted_by == "钱审批" and broadcast.approved_by == "孙审批"
    for action, state in (("pause", "已暂停"), ("resume", "发送中"), ("cancel", "已取消")):
        assert (await second.post(page, data={"action": action, "csrf": token2})).status_code == 303
        assert state in (await second.get(page)).text
    progress = await second.get(page + "/progress", headers={"HX-Request": "true"})
    assert 'id="total">' in progress.text and "<html" not in progress.text
    report = load_workbook(io.BytesIO((await second.get(page + "/report.xlsx")).content))
    assert report.sheetnames[0] == "概况"
    async with services.db.session() as session:
        actions = [a.action for a in await session.scalars(select(AuditEntry).where(
            AuditEntry.action.startswith("broadcast")).order_by(AuditEntry.id))]
    assert actions == ["broadcast-draft", "broadcast-approve", "broadcast-pause", "broadcast-resume",
                       "broadcast-cancel"]


async def test_township_staff_warn_only_their_townships(console: httpx.AsyncClient, staffed: None,
                                                        services: Services) -> None:
    await sign_in(console, "赵干事")
    token = await page_csrf(console, "/console/warnings")
    base_form = {"csrf": token, "text": "河口乡近期有人收钱入股合作社，请不要交钱。", "audience": "elderly",
                 "channel": ["web"]}
    county = await console.post("/console/warnings", data=base_form)
    assert county.status_code == 400 and "全县范围的预警由县里发" in county.text
    elsewhere = await console.post("/console/warnings", data={**base_form, "township": ["chengguan"]})
    assert elsewhere.status_code == 400 and "只能给您负责的乡镇" in elsewhere.text
    mine = await console.post("/console/warnings", data={**base_form, "township": ["hekou"]})
    assert mine.status_code == 303
    # a county-wide draft by county staff is visible to them but not theirs to act on; another township's is hidden
    admin = other(console)
    await sign_in(admin, "王科长")
    token_a = await page_csrf(admin, "/console/warnings")
    await admin.post("/console/warnings", data={**base_form, "csrf": token_a})
    await admin.post("/console/warnings", data={**base_form, "csrf": token_a, "township": ["chengguan"]})
    listing = await console.get("/console/warnings")
    assert listing.text.count('href="/console/warnings/') == 2
    async with services.db.session() as session:
        ids = {b.segment["townships"][0] if b.segment["townships"] else "county": b.id
               for b in await session.scalars(select(Broadcast))}
    assert (await console.get(f"/console/warnings/{ids['chengguan']}")).status_code == 404
    county_page = await console.get(f"/console/warnings/{ids['county']}")
    assert county_page.status_code == 200 and "由县里处理" in county_page.text
    refused = await console.post(f"/console/warnings/{ids['county']}", data={"action": "cancel", "csrf": token})
    assert refused.status_code == 403


async def test_campaigns_from_the_console(console: httpx.AsyncClient, staffed: None, services: Services) -> None:
    await sign_in(console, "王科长")
    token = await page_csrf(console, "/console/quizzes")
    bad = await console.post("/console/quizzes", data={"csrf": token, "name": "x", "slug": "Bad Slug!",
                                                       "audience": "elderly"})
    assert bad.status_code == 400 and "代号" in bad.text
    made = await console.post("/console/quizzes", data={"csrf": token, "name": "老年人防非答题", "slug": "elderly-2026",
                                                        "audience": "elderly", "questions": "5", "attempts": "3",
                                                        "pass_mark": "60"})
    assert made.status_code == 303 and made.headers["location"] == "/console/quizzes/elderly-2026"
    again = await console.post("/console/quizzes", data={"csrf": token, "name": "重复", "slug": "elderly-2026",
                                                         "audience": "elderly"})
    assert again.status_code == 400 and "已经有这个代号" in again.text
    page = "/console/quizzes/elderly-2026"
    assert "未开始" in (await console.get(page)).text
    assert (await console.post(page, data={"csrf": token, "action": "open"})).status_code == 303
    assert "进行中" in (await console.get(page)).text
    too_high = await console.post(page, data={"csrf": token, "action": "paper", "region": "hekou-hekou",
                                              "score": "9", "total": "5"})
    assert too_high.status_code == 400 and "得分不能超过题数" in too_high.text
    paper = await console.post(page, data={"csrf": token, "action": "paper", "region": "hekou-hekou",
                                           "score": "4", "total": "5", "name": "李大爷"})
    assert paper.status_code == 303
    shown = await console.get(paper.headers["location"])
    assert "纸质答卷已录入" in shown.text and "李*爷" in shown.text
    assert "其中纸质答卷 1 份" in shown.text and 'id="players">0<' in shown.text  # counted apart
    chart = re.search(r'id="chart-townships">(.*?)</script>', shown.text)
    assert chart is not None
    figures = json.loads(chart.group(1))
    rates = dict(zip(figures["labels"], figures["values"], strict=True))
    assert rates["河口乡"] == round(100 * 1 / (1100 + 860 + 720), 2) and rates["城关镇"] == 0
    book = load_workbook(io.BytesIO((await console.get(page + "/export.xlsx")).content))
    assert len(book.sheetnames) >= 3
    assert (await console.post(page, data={"csrf": token, "action": "close"})).status_code == 303
    assert "已结束" in (await console.get(page)).text
    async with services.db.session() as session:
        [player] = list(await session.scalars(select(QuizPlayer)))
        actions = [a.action for a in await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
                   if a.action.startswith(("quiz", "export"))]
    assert player.on_paper and player.region == "hekou-hekou"
    assert actions == ["quiz-create", "quiz-open", "quiz-paper", "export-quiz", "quiz-close"]


async def test_a_township_cadre_enters_paper_results_only_for_their_villages(console: httpx.AsyncClient,
                                                                             staffed: None) -> None:
    admin = other(console)
    await sign_in(admin, "王科长")
    token_a = await page_csrf(admin, "/console/quizzes")
    await admin.post("/console/quizzes", data={"csrf": token_a, "name": "全县答题", "slug": "county",
                                               "audience": "elderly", "open": "1"})
    await sign_in(console, "赵干事")
    token = await page_csrf(console, "/console/quizzes/county")
    page = await console.get("/console/quizzes/county")
    assert "hekou-hekou" in page.text and "chengguan-nanguan" not in page.text and "结束活动" not in page.text
    elsewhere = await console.post("/console/quizzes/county", data={"csrf": token, "action": "paper",
                                                                    "region": "chengguan-nanguan", "score": "3"})
    assert elsewhere.status_code == 400
    close = await console.post("/console/quizzes/county", data={"csrf": token, "action": "close"})
    assert close.status_code == 403
    assert (await console.post("/console/quizzes/county", data={"csrf": token, "action": "paper",
                                                                "region": "hekou-lijia", "score": "3"})
            ).status_code == 303


async def test_editors_mark_unanswered_questions(console: httpx.AsyncClient, staffed: None,
                                                 services: Services) -> None:
    async with services.db.transaction() as session:
        session.add_all([QuestionGap(text="帮我查一下社保", count=7),
                         QuestionGap(text="养老院预交十万押金合法吗", count=3)])
    await sign_in(console, "王科长")
    page = await console.get("/console/content")
    assert page.text.index("帮我查一下社保") < page.text.index("养老院预交十万押金合法吗")
    token = await page_csrf(console, "/console/content")
    async with services.db.session() as session:
        ids = {g.text: g.id for g in await session.scalars(select(QuestionGap))}
    marked = await console.post("/console/content", data={"csrf": token, "id": str(ids["帮我查一下社保"]),
                                                          "mark": "off-topic", "shown": "new"})
    assert marked.status_code == 303
    fresh = await console.get("/console/content")
    assert "帮我查一下社保" not in fresh.text.split("<tbody>")[1] and "与防非无关（1 个问题，7 次）" in fresh.text
    assert "帮我查一下社保" in (await console.get("/console/content?mark=off-topic")).text
    for data in ({"id": "x", "mark": "done"}, {"id": "999999", "mark": "done"}, {"id": "1", "mark": "nonsense"}):
        answer = await console.post("/console/content", data={"csrf": token, **data})
        assert answer.status_code in (400, 404), data
