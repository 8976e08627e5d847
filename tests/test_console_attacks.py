"""The staff console attacked as a hostile user, a careless operator and a flaky network would (SQLite and
PostgreSQL): every route without a session or with a forged, expired, signed-out or disabled one; a township
account guessing another township's ids and codes; CSRF tokens missing, foreign or misplaced; malformed input on
every form and query; the same change posted twice at once; roles; headers, cookies, a path prefix and `next=`;
and no personal data, message text or secret in the logs throughout."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select, update
from starlette.routing import Mount, Route

from bot import subscribers
from bot.broadcasts import lifecycle
from bot.engine import Engine
from bot.services import Services
from bot.storage.models import (
    AuditEntry,
    Broadcast,
    OutboxMessage,
    QuestionGap,
    QuizAttempt,
    QuizCampaign,
    QuizPlayer,
    StaffAccount,
    StaffSession,
    Tip,
    TipChange,
    TipEvidence,
    utcnow,
)
from bot.web.app import create_app
from bot.web.console import auth
from bot.web.console.app import console_routes
from quizzes import campaigns
from tests.console_support import NAME, PASSWORD, PHONE, add_staff, csrf_of, file_two_townships

TOWN_TEXT = "有人在城关镇开讲座，说投养老公寓年息百分之二十"  # the 城关镇 tip's words (tests/console_support.py)
WARNING_TEXT = "近期有人借“养老项目”收钱，请提醒家中老人。"
addresses = itertools.count(1)


@dataclass
class World:
    town: str  # a named tip in 城关镇 (with a fetched evidence file)
    river: str  # an anonymous tip in 河口乡
    broadcast: int  # a draft warning for 城关镇, by 王科长
    county_broadcast: int  # a county-wide draft, by 王科长
    quiz: str  # a campaign for 城关镇
    county_quiz: str  # a county-wide campaign, open
    gap: int  # an unanswered question


@pytest.fixture
def console(web: httpx.AsyncClient) -> httpx.AsyncClient:
    return web


@pytest.fixture
async def world(services: Services) -> World:
    await add_staff(services, ("王科长", "admin", []), ("李办理", "handler", []), ("赵干事", "staff", ["hekou"]),
                    ("钱审批", "approver", []), ("孙审批", "approver", []), ("吴办理", "handler", ["hekou"]),
                    ("郑审批", "approver", ["hekou"]))
    town, river = await file_two_townships(services)
    async with services.db.transaction() as session:
        tip = await session.scalar(select(Tip).where(Tip.receipt == town))
        session.add(TipEvidence(tip_id=tip.id, kind="image", ref="m-1", name="收据.png", content_type="image/png",
                                content_sealed=services.vault.seal_bytes(b"\x89PNG evidence"), fetched_at=utcnow()))
        for user, township, village in (("w1", "河口乡", "河口村"), ("w2", "城关镇", "南关村"),
                                        ("w3", "城关镇", "东街社区")):
            await subscribers.subscribe(session, "web", user, "elderly", township, village)
        drafts = [await lifecycle.create(session, services.settings, text=WARNING_TEXT, template=None,
                                         audience="elderly", townships=towns, villages=[], channels=["web"],
                                         send_at=None, urgent=False, drafted_by="王科长")
                  for towns in (["chengguan"], [])]
        await campaigns.create(session, slug="chengguan-2026", name="城关镇答题", audience="elderly",
                               townships=["chengguan"], open_now=True)
        await campaigns.create(session, slug="county-2026", name="全县答题", audience="elderly", open_now=True)
        gap = QuestionGap(text="帮我查一下社保", count=3)
        session.add(gap)
        await session.flush()
    return World(town, river, drafts[0].id, drafts[1].id, "chengguan-2026", "county-2026", gap.id)


def client_of(console: httpx.AsyncClient, base_url: str = "http://fangfei.test") -> httpx.AsyncClient:
    """Another browser on the same app, from an address of its own (sign-ins are limited per address)."""
    return httpx.AsyncClient(transport=console._transport, base_url=base_url,
                             headers={"x-forwarded-for": f"10.9.{next(addresses) % 250}.{next(addresses) % 250}"})


async def signed_in(console: httpx.AsyncClient, name: str) -> tuple[httpx.AsyncClient, str]:
    """A new browser signed in as `name`, and its session's CSRF token."""
    browser = client_of(console)
    form = await browser.get("/console/login")
    done = await browser.post("/console/login", data={"csrf": csrf_of(form.text), "username": name,
                                                     "password": PASSWORD})
    assert done.status_code == 303, done.text
    return browser, csrf_of((await browser.get("/console/")).text)


async def snapshot(services: Services) -> dict[str, Any]:
    """What the console could have changed: counts of the rows it writes and the states it moves."""
    async with services.db.session() as session:
        tables = (AuditEntry, TipChange, Broadcast, OutboxMessage, QuizCampaign, QuizPlayer, QuizAttempt, StaffAccount)
        row = (await session.execute(select(*(select(func.count()).select_from(t).scalar_subquery()
                                              for t in tables)))).one()
        counts = {table.__name__: n for table, n in zip(tables, row, strict=True)}
        return {**counts,
                "tips": sorted((t.receipt, t.status, t.assignee, t.category)
                               for t in await session.scalars(select(Tip))),
                "broadcasts": sorted((b.id, b.state, b.approved_by) for b in await session.scalars(select(Broadcast))),
                "quizzes": sorted((c.slug, c.state) for c in await session.scalars(select(QuizCampaign))),
                "gaps": sorted((g.id, g.mark) for g in await session.scalars(select(QuestionGap))),
                "accounts": sorted((a.name, a.disabled, a.password_hash) for a in
                                   await session.scalars(select(StaffAccount)))}


def without_audit(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k != "AuditEntry"}


async def audit_actions(services: Services) -> list[tuple[str, str, str]]:
    async with services.db.session() as session:
        rows = await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(a.actor, a.action, a.subject) for a in rows]


def answered(response: httpx.Response) -> httpx.Response:
    """A clear answer: never a server error or a traceback; an HTML page carries the console's headers."""
    path = response.request.url.path
    assert response.status_code < 500, (path, response.status_code, response.text[:300])
    assert "Traceback" not in response.text and "sqlalchemy" not in response.text.lower(), path
    assert response.headers["x-content-type-options"] == "nosniff", path
    if response.headers.get("content-type", "").startswith("text/html"):
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy, path
        assert response.headers["referrer-policy"] == "no-referrer", path
    return response


# -- every console route -----------------------------------------------------------------------------------------
def gets(w: World) -> list[str]:
    return ["/console/", "/console/tips", "/console/tips/export.xlsx", f"/console/tips/{w.town}",
            f"/console/tips/{w.town}/evidence/1", "/console/warnings", f"/console/warnings/{w.broadcast}",
            f"/console/warnings/{w.broadcast}/progress", f"/console/warnings/{w.broadcast}/report.xlsx",
            "/console/quizzes", f"/console/quizzes/{w.quiz}", f"/console/quizzes/{w.quiz}/export.xlsx",
            "/console/content", "/console/audit", "/console/accounts", "/console/login"]


def posts(w: World) -> dict[str, dict[str, Any]]:
    """Each POST route with a form that would change something (or show an identity) if it were let through."""
    draft = {"text": WARNING_TEXT, "audience": "elderly", "channel": ["web"], "township": ["chengguan"]}
    return {"/console/logout": {},
            f"/console/tips/{w.town}": {"action": "status", "status": "verifying", "note": "看一看"},
            f"/console/tips/{w.town}/reveal": {"reason": "核实线索需要联系"},
            "/console/warnings": draft, "/console/warnings/preview": draft,
            f"/console/warnings/{w.broadcast}": {"action": "approve"},
            "/console/quizzes": {"slug": "new-one", "name": "新活动", "audience": "elderly"},
            f"/console/quizzes/{w.quiz}": {"action": "close"},
            "/console/content": {"id": str(w.gap), "mark": "done"},
            "/console/accounts": {"action": "add", "name": "新账号", "role": "admin", "password": "新账号的密码2026"},
            "/console/login": {"username": "王科长", "password": PASSWORD}}


def test_the_attack_lists_cover_every_console_route(base_settings: Any) -> None:
    """A console route added later must be added to the lists above, so every attack here reaches it."""
    w = World("FF-2026-000001", "FF-2026-000002", 1, 2, "chengguan-2026", "county-2026", 1)
    listed = {("GET", re.sub(r"FF-\d{4}-\d{6}", "{receipt}", p)) for p in gets(w)}
    listed |= {("POST", re.sub(r"FF-\d{4}-\d{6}", "{receipt}", p)) for p in posts(w)}
    listed = {(m, p.replace("/warnings/1", "/warnings/{id:int}").replace("/evidence/1", "/evidence/{number:int}")
               .replace("/quizzes/chengguan-2026", "/quizzes/{slug}")) for m, p in listed}
    services = Services(settings=base_settings, db=None, kb=None, index=None, risk=None, vault=None)  # type: ignore
    routes: set[tuple[str, str]] = set()
    for mount in console_routes(services):
        for route in mount.routes if isinstance(mount, Mount) else []:
            assert isinstance(route, Route)
            routes |= {(m, mount.path + route.path) for m in route.methods or () if m != "HEAD"}
    assert routes == listed


async def test_without_a_session_every_route_sends_to_the_sign_in_and_changes_nothing(
        console: httpx.AsyncClient, world: World, services: Services) -> None:
    before = await snapshot(services)
    forged = secrets.token_urlsafe(32)
    cookies = [None, "garbage", f"{forged}.{'0' * 32}", f"{forged}.{auth._signature(services, forged)}", "."]
    for cookie in cookies:
        browser = client_of(console)
        if cookie is not None:
            browser.cookies.set(auth.COOKIE, cookie, domain="fangfei.test", path="/console")
        for path in gets(world):
            if path == "/console/login":
                continue
            away = answered(await browser.get(path))
            assert away.status_code == 303 and away.headers["location"].startswith("/console/login?next="), path
            assert away.headers["cache-control"] == "no-store"
            htmx = answered(await browser.get(path, headers={"HX-Request": "true"}))
            assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/console/login"), path
        for path, form in posts(world).items():
            if path == "/console/login":
                continue
            refused = answered(await browser.post(path, data={**form, "csrf": "x" * 43},
                                                  headers={"X-CSRF-Token": "x" * 43}))
            assert refused.status_code == 303 and "/console/login" in refused.headers["location"], path
            assert PHONE not in refused.text
    assert await snapshot(services) == before


async def test_sessions_that_ended_let_nothing_through(console: httpx.AsyncClient, world: World,
                                                       services: Services) -> None:
    """An expired session, a signed-out one replayed, and one whose account was disabled after signing in
    (by the console or straight in the database, as `fangfei staff disable` from another process would)."""
    ended: list[tuple[httpx.AsyncClient, str]] = []
    idle, token = await signed_in(console, "李办理")
    async with services.db.transaction() as session:
        await session.execute(update(StaffSession).values(
            last_seen=utcnow() - timedelta(minutes=services.settings.console.idle_minutes, seconds=5)))
    ended.append((idle, token))
    out, token = await signed_in(console, "李办理")
    kept = dict(out.cookies.items())
    assert (await out.post("/console/logout", data={"csrf": token})).status_code == 303
    for name, value in kept.items():
        out.cookies.set(name, value, domain="fangfei.test", path="/console")
    ended.append((out, token))
    flagged, token = await signed_in(console, "李办理")
    async with services.db.transaction() as session:
        await session.execute(update(StaffAccount).where(StaffAccount.name == "李办理").values(disabled=True))
    ended.append((flagged, token))
    before = await snapshot(services)
    for browser, token in ended:
        for path in gets(world):
            if path != "/console/login":
                assert answered(await browser.get(path)).status_code == 303, path
        for path, form in posts(world).items():
            if path != "/console/login":
                refused = answered(await browser.post(path, data={**form, "csrf": token}))
                assert refused.status_code == 303 and PHONE not in refused.text, path
    assert without_audit(await snapshot(services)) == without_audit(before)
    assert (await audit_actions(services))[before["AuditEntry"]:] == []


# -- CSRF --------------------------------------------------------------------------------------------------------
async def test_every_post_needs_this_sessions_token_in_the_form_or_the_header(
        console: httpx.AsyncClient, world: World, services: Services) -> None:
    admin, token = await signed_in(console, "王科长")
    _, foreign = await signed_in(console, "王科长")  # the same account's other session
    _, handlers = await signed_in(console, "李办理")
    before = await snapshot(services)
    for path, form in posts(world).items():
        if path == "/console/login":
            continue
        for attempt in ({"data": form}, {"data": {**form, "csrf": ""}}, {"data": {**form, "csrf": foreign}},
                        {"data": {**form, "csrf": handlers}}, {"data": form, "headers": {"X-CSRF-Token": foreign}},
                        {"data": {**form, "csrf": token[:-1]}}, {"data": {**form, "csrf": token + "x"}},
                        {"data": form, "params": {"csrf": token}},  # in the query string: not where it goes
                        {"data": form, "headers": {"X-CSRFToken": token, "csrf": token}},  # not our header
                        {"content": json.dumps({**form, "csrf": token}),
                         "headers": {"content-type": "application/json"}},
                        {"data": {**form, "csrf": token.upper()}}):
            refused = answered(await admin.post(path, **attempt))
            assert refused.status_code == 403 and "安全令牌" in refused.text, (path, attempt)
            assert PHONE not in refused.text
    assert await snapshot(services) == before
    # the login form's own token: missing, another browser's, or not matching its cookie
    other = client_of(console)
    theirs = csrf_of((await other.get("/console/login")).text)
    fresh = client_of(console)
    mine = csrf_of((await fresh.get("/console/login")).text)
    for data in ({}, {"csrf": theirs}, {"csrf": ""}, {"csrf": mine + "x"}):
        refused = answered(await fresh.post("/console/login", data={"username": "王科长", "password": PASSWORD,
                                                                    **data}))
        assert refused.status_code == 403 and "ff_staff=" not in refused.headers.get("set-cookie", "")
    assert await snapshot(services) == before


async def test_get_requests_never_change_anything(console: httpx.AsyncClient, world: World,
                                                  services: Services) -> None:
    """A link someone is tricked into following (an image tag, a prefetch) may carry a form's fields and even the
    session's token in its query string: a GET only reads."""
    admin, token = await signed_in(console, "王科长")
    handler, handler_token = await signed_in(console, "李办理")
    before = await snapshot(services)
    for browser, csrf in ((admin, token), (handler, handler_token)):
        for path, form in posts(world).items():
            if path in ("/console/login",):
                continue
            answer = answered(await browser.get(path, params={**form, "csrf": csrf}))
            assert answer.status_code in (200, 303, 403, 404, 405), path
            assert PHONE not in answer.text and NAME not in answer.text, path
    after = await snapshot(services)
    exports = {"export-tips", "export-evidence", "export-quiz"}
    assert without_audit(after) == without_audit(before)
    assert not [a for a in (await audit_actions(services))[before["AuditEntry"]:] if a[1] not in exports]
    assert (await admin.get("/console/")).status_code == 200  # GET /console/logout did not sign anyone out


# -- township scope ----------------------------------------------------------------------------------------------
async def test_a_township_account_cannot_reach_another_townships_things_by_guessing(
        console: httpx.AsyncClient, world: World, services: Services) -> None:
    """赵干事 (staff), 吴办理 (handler) and 郑审批 (approver) work for 河口乡: 城关镇's tip, warning, campaign and
    villages are not theirs, however they are named in URLs, query strings or form fields."""
    async with services.db.transaction() as session:
        county = await campaigns.find(session, world.county_quiz)
        for place, name in (("chengguan-nanguan", "城关人"), ("hekou-hekou", "河口人")):
            await campaigns.record_paper(session, services.settings.region, county, place=place, score=3,
                                         recorded_by="console:王科长", name=name)
    before = await snapshot(services)
    staff, token = await signed_in(console, "赵干事")
    handler, handler_token = await signed_in(console, "吴办理")
    approver, approver_token = await signed_in(console, "郑审批")
    town, lower = world.town, world.town.lower()
    for browser, csrf in ((staff, token), (handler, handler_token), (approver, approver_token)):
        for path in (f"/console/tips/{town}", f"/console/tips/{lower}", f"/console/tips/{town}/evidence/1",
                     f"/console/warnings/{world.broadcast}", f"/console/warnings/{world.broadcast}/progress",
                     f"/console/warnings/{world.broadcast}/report.xlsx", f"/console/quizzes/{world.quiz}",
                     f"/console/quizzes/{world.quiz}/export.xlsx", f"/console/quizzes/{world.quiz.upper()}"):
            hidden = answered(await browser.get(path))
            assert hidden.status_code == 404, path
            assert TOWN_TEXT not in hidden.text and "城关镇答题" not in hidden.text and "养老项目" not in hidden.text
            partial = answered(await browser.get(path, headers={"HX-Request": "true"}))
            assert partial.status_code == 404, path
        for action in ({"action": "take"}, {"action": "status", "status": "verifying"}, {"action": "note", "note": "x"},
                       {"action": "assign", "assignee": "赵干事"}, {"action": "category", "category": "fake-exchange"}):
            assert answered(await browser.post(f"/console/tips/{lower}", data={**action, "csrf": csrf})
                            ).status_code == 404
        for action in ("approve", "pause", "resume", "cancel", "retry"):
            assert answered(await browser.post(f"/console/warnings/{world.broadcast}",
                                               data={"action": action, "csrf": csrf})).status_code == 404
            assert answered(await browser.post(f"/console/warnings/{world.county_broadcast}",
                                               data={"action": action, "csrf": csrf})).status_code == 403
        for action in ({"action": "open"}, {"action": "close"},
                       {"action": "paper", "region": "chengguan-nanguan", "score": "3"}):
            assert answered(await browser.post(f"/console/quizzes/{world.quiz}", data={**action, "csrf": csrf})
                            ).status_code == 404
        for region in ("chengguan-nanguan", "school-county-no1", "", "qingshan-qingshan", "chengguan-nanguan\x00"):
            refused = answered(await browser.post(f"/console/quizzes/{world.county_quiz}", data={
                "action": "paper", "region": region, "score": "3", "csrf": csrf}))
            assert refused.status_code == 400, region
        for action in ("open", "close"):
            assert answered(await browser.post(f"/console/quizzes/{world.county_quiz}", data={
                "action": action, "csrf": csrf})).status_code == 403
        draft = {"text": WARNING_TEXT, "audience": "elderly", "channel": ["web"], "csrf": csrf}
        for where in ({}, {"township": ["chengguan"]}, {"township": ["hekou", "chengguan"]},
                      {"village": ["chengguan-nanguan"]}, {"township": ["hekou"], "village": ["chengguan-nanguan"]},
                      {"village": ["nowhere"]}, {"township": [""]}):
            refused = answered(await browser.post("/console/warnings", data={**draft, **where}))
            assert refused.status_code == 400, where
            counts = answered(await browser.post("/console/warnings/preview", data={**draft, **where},
                                                 headers={"HX-Request": "true"}))
            assert 'id="reachable"' not in counts.text, where
        for towns in (["chengguan"], ["hekou", "chengguan"], [], ["nowhere"]):
            refused = answered(await browser.post("/console/quizzes", data={
                "slug": "mine-2026", "name": "x", "audience": "elderly", "township": towns, "csrf": csrf}))
            assert refused.status_code == 400, towns
        ledger = answered(await browser.get("/console/tips?township=城关镇"))
        assert town not in ledger.text and world.river not in ledger.text
        for query in ("", "?township=城关镇", f"?assignee={town}"):
            book = load_workbook(io.BytesIO(answered(await browser.get(f"/console/tips/export.xlsx{query}")).content))
            assert town not in str(list(book.active.values)) and TOWN_TEXT not in str(list(book.active.values))
        listings = [answered(await browser.get(p)).text for p in ("/console/warnings", "/console/quizzes",
                                                                   "/console/", "/console/tips")]
        assert not [t for t in listings if "城关镇答题" in t or f"/warnings/{world.broadcast}\"" in t or town in t]
        book = load_workbook(io.BytesIO(answered(await browser.get(
            f"/console/quizzes/{world.county_quiz}/export.xlsx")).content))
        everything = str([list(sheet.values) for sheet in book.worksheets])
        assert "城*人" not in everything and "南关村" not in everything and "河*人" in everything
        [player] = [row for row in book["参赛者"].iter_rows(min_row=2, values_only=True)]
        assert player[:2] == (2, "河*人")  # its rank in the whole campaign
    assert without_audit(await snapshot(services)) == without_audit(before)


async def test_the_today_page_shows_a_township_account_only_its_townships_warnings_reach(
        console: httpx.AsyncClient, world: World, services: Services) -> None:
    approver, token = await signed_in(console, "钱审批")
    assert (await approver.post(f"/console/warnings/{world.broadcast}", data={"action": "approve", "csrf": token})
            ).status_code == 303  # 城关镇's warning goes out: two web notices
    county = answered(await approver.get("/console/"))
    reach = json.loads(re.search(r'id="chart-reach">(.*?)</script>', county.text).group(1))
    assert sum(sum(v.values()) for v in reach.values()) == 2
    staff, _ = await signed_in(console, "赵干事")
    today = answered(await staff.get("/console/"))
    assert json.loads(re.search(r'id="chart-reach">(.*?)</script>', today.text).group(1)) == {}


# -- malformed input ---------------------------------------------------------------------------------------------
HOSTILE_VALUES = ["", "-1", "0", "abc", str(10**20), "1" * 5000, "²", "١٢", "1.5", "1e3", " 2", "\x00", "\x01\x1b[31m",
                  "\u202e", "%FF", "%%", "<script>alert(1)</script>", "2026-13-45", "0001-01-01", "9999-12-31",
                  "2026-02-30", "9999-12-31T23:59", "0001-01-01T00:00", "长" * 3000]


async def test_malformed_query_strings_and_paths_get_a_clear_answer(console: httpx.AsyncClient, world: World,
                                                                    services: Services) -> None:
    admin, _ = await signed_in(console, "王科长")
    before = await snapshot(services)
    keys = {"/console/tips": ("page", "status", "since", "until", "township", "category", "assignee", "overdue"),
            "/console/tips/export.xlsx": ("status", "since", "until", "township", "category", "assignee"),
            "/console/audit": ("page", "since", "until", "actor", "action", "subject"),
            "/console/content": ("mark",), f"/console/tips/{world.town}": ("notice",),
            f"/console/quizzes/{world.quiz}": ("notice",), "/console/accounts": ("notice",),
            "/console/login": ("next",), "/console/": ("x",), "/console/warnings": ("page",)}
    for path, names in keys.items():
        for name in names:
            for value in HOSTILE_VALUES:
                answer = answered(await admin.get(path, params={name: value}))
                assert answer.status_code in (200, 303), (path, name, value)
                assert "<script>alert" not in answer.text
            # the same key twice, and raw bytes that are not UTF-8 or not percent-encoding
            answered(await admin.get(f"{path}?{name}=1&{name}=2"))
            answered(await admin.get(f"{path}?{name}=%FF%FE%00&{name}"))
    for path in ("/console/tips/%00", "/console/tips/%FF%FE", "/console/tips/FF-2026-000001%0A",
                 "/console/tips/" + "F" * 5000, f"/console/tips/{world.town}/evidence/0",
                 f"/console/tips/{world.town}/evidence/{10**30}", f"/console/warnings/{2**31}",
                 f"/console/warnings/{10**30}", f"/console/warnings/{2**63}/progress",
                 f"/console/warnings/{10**20}/report.xlsx", "/console/warnings/-1", "/console/quizzes/%00",
                 "/console/quizzes/" + "a" * 5000, "/console/quizzes/..%2F..%2Fetc", "/console/quizzes/%FF/export.xlsx",
                 "/console/nowhere", "/console/tips/x/y/z", "/console/%00"):
        for headers in ({}, {"HX-Request": "true"}):
            answer = answered(await admin.get(path, headers=headers))
            assert answer.status_code == 404, path
            assert answer.headers.get("content-type", "").startswith("text/html"), path  # the console's page
    for path in (f"/console/warnings/{2**31}", f"/console/warnings/{10**30}", f"/console/tips/{'F' * 5000}",
                 "/console/quizzes/" + "a" * 5000):
        token = csrf_of((await admin.get("/console/")).text)
        assert answered(await admin.post(path, data={"action": "approve", "csrf": token})).status_code == 404
    assert without_audit(await snapshot(services)) == without_audit(before)


FORM_VALUES = ["", "-1", "abc", str(10**20), "1" * 5000, "²", "\x00", "\x01\x1b[31m", "<script>alert(1)</script>",
               "0001-01-01T00:00", "9999-12-31T23:59", "2026-13-45", "长" * 3000]


def form_attacks(form: dict[str, Any], token: str) -> list[dict[str, Any]]:
    """Ways to send a form wrongly, each with this session's token in the header (so only the form is at fault)."""
    header = {"X-CSRF-Token": token}
    urlencoded = {"content-type": "application/x-www-form-urlencoded", **header}
    attacks: list[dict[str, Any]] = [
        {"data": {}}, {"data": {k: "" for k in form}},
        {"content": b"\xff\xfe\xfd=\xc3\x28&action=%FF%FE&text=%E4%B8", "headers": urlencoded},
        {"content": b"%%%&&&===%zz", "headers": urlencoded},
        {"content": json.dumps(form), "headers": {"content-type": "application/json", **header}},
        {"content": b"\x00" * 100, "headers": {"content-type": "multipart/form-data; boundary=x", **header}},
        {"files": {"upload": ("a.txt", b"x" * 100)}, "data": form},
        {"content": "&".join(f"f{n}=1" for n in range(500)), "headers": urlencoded},  # too many fields
    ]
    for key in form:
        for value in FORM_VALUES:
            attacks.append({"data": {**form, key: value}})
        attacks.append({"data": {**form, key: [form[key], "other"] if not isinstance(form[key], list)
                                 else [*form[key], "other"]}})  # the field twice
    return [{**a, "headers": {**header, **a.get("headers", {})}} for a in attacks]


async def test_malformed_forms_get_a_clear_answer_and_write_nothing(console: httpx.AsyncClient, world: World,
                                                                    services: Services) -> None:
    """Every POST form with each field empty, hostile, duplicated; bodies not a form, not UTF-8, a file, too many
    fields: a 4xx page (or, for what is only cleaned, the same as a well-formed request), never an error; and a
    refused request leaves nothing behind."""
    admin, token = await signed_in(console, "王科长")
    forms = posts(world)
    forms[f"/console/quizzes/{world.county_quiz}"] = {"action": "paper", "region": "hekou-hekou", "score": "3",
                                                       "total": "5", "name": "李大爷"}
    forms["/console/quizzes"] = {"slug": "x-2026", "name": "x", "audience": "elderly", "questions": "5",
                                 "seconds": "30", "attempts": "3", "pass_mark": "60", "start": "2026-05-01T08:00",
                                 "end": "2026-05-30T08:00", "township": ["hekou"]}
    forms["/console/warnings"] = {**forms["/console/warnings"], "at": "2030-05-01T08:00", "template": "",
                                  "company": "", "village": ["hekou-hekou"], "urgent": "1"}
    forms["/console/accounts"] = {"action": "passwd", "name": "李办理", "password": "新密码很长很长2026"}
    for path in ("/console/logout", "/console/login", f"/console/tips/{world.town}/reveal"):
        forms.pop(path)
    forms[f"/console/tips/{world.river}"] = {"action": "assign", "assignee": "赵干事"}
    forms[f"/console/tips/{world.river}?c"] = {"action": "category", "category": "fake-exchange"}
    forms[f"/console/warnings/{world.county_broadcast}"] = {"action": "cancel"}
    before = await snapshot(services)
    for path, form in forms.items():
        path = path.removesuffix("?c")
        for attack in form_attacks(form, token):
            answer = answered(await admin.post(path, **attack))
            after = await snapshot(services)
            if answer.status_code >= 400:
                assert answer.headers["content-type"].startswith("text/html"), (path, attack)
                assert without_audit(after) == without_audit(before), (path, attack)
            else:
                assert answer.status_code in (200, 303), (path, attack)
            before = after
    big = "长" * (1 << 20)
    for path, form in forms.items():
        path = path.removesuffix("?c")
        before = await snapshot(services)
        for attack in ({"data": {**form, "csrf": token, "text": big}}, {"content": b"a=" + b"x" * (1 << 20),
                       "headers": {"content-type": "application/x-www-form-urlencoded", "X-CSRF-Token": token}}):
            too_big = answered(await admin.post(path, **attack))
            assert too_big.status_code == 413 and "太多" in too_big.text, path
        assert await snapshot(services) == before


# -- double submits and races ------------------------------------------------------------------------------------
async def twice(send: Callable[[], Awaitable[httpx.Response]]) -> list[httpx.Response]:
    """The same request twice at once (a double click, a retry by a flaky network)."""
    return [answered(r) for r in await asyncio.gather(send(), send())]


async def history(services: Services, receipt: str) -> list[tuple[str, str | None]]:
    async with services.db.session() as session:
        tip = await session.scalar(select(Tip).where(Tip.receipt == receipt))
        rows = await session.scalars(select(TipChange).where(TipChange.tip_id == tip.id).order_by(TipChange.id))
        return [(c.field, c.new) for c in rows]


async def test_the_same_tip_change_posted_twice_at_once_is_kept_audited_and_told_once(
        console: httpx.AsyncClient, world: World, services: Services) -> None:
    services.settings.telegram.token = "123:abc"  # the reporter is told on Telegram
    try:
        handler, token = await signed_in(console, "李办理")
        path = f"/console/tips/{world.town}"
        for form in ({"action": "status", "status": "verifying", "note": "已派人去看"}, {"action": "take"},
                     {"action": "assign", "assignee": "赵干事"}, {"action": "category", "category": "fake-exchange"},
                     {"action": "status", "status": "closed", "reason": "confirmed"}):
            answers = await twice(lambda form=form: handler.post(path, data={**form, "csrf": token}))
            assert [a.status_code for a in answers] == [303, 303], form
    finally:
        services.settings.telegram.token = ""
    assert (await history(services, world.town))[1:] == [
        ("status", "verifying"), ("note", "已派人去看"), ("assignee", "李办理"), ("assignee", "赵干事"),
        ("category", "fake-exchange"), ("status", "closed"), ("closing_reason", "confirmed")]
    audited = [a for a in await audit_actions(services) if a[1] == "tip-status"]
    assert audited == [("console:李办理", "tip-status", world.town)] * 2  # new → verifying, verifying → closed
    async with services.db.session() as session:
        told = [services.vault.open(m.target) for m in await session.scalars(select(OutboxMessage))]
    assert told == ["1009", "1009"]


async def test_a_reveal_posted_twice_is_audited_as_often_as_it_is_shown(console: httpx.AsyncClient, world: World,
                                                                        services: Services) -> None:
    handler, token = await signed_in(console, "李办理")
    answers = await twice(lambda: handler.post(f"/console/tips/{world.town}/reveal",
                                               data={"reason": "核实线索需要联系", "csrf": token}))
    shown = [a for a in answers if PHONE in a.text]
    assert all(a.headers["cache-control"] == "no-store" for a in answers)
    assert len([a for a in await audit_actions(services) if a[1] == "reveal-identity"]) == len(shown) == 2


async def test_a_warning_approved_twice_at_once_goes_out_once(console: httpx.AsyncClient, world: World,
                                                              services: Services) -> None:
    first, token = await signed_in(console, "钱审批")
    second, token2 = await signed_in(console, "孙审批")
    path = f"/console/warnings/{world.broadcast}"
    same = await twice(lambda: first.post(path, data={"action": "approve", "csrf": token}))  # a double click
    assert sorted(a.status_code for a in same) == [303, 400]
    for action in ("pause", "resume", "cancel"):
        both = await asyncio.gather(first.post(path, data={"action": action, "csrf": token}),
                                    second.post(path, data={"action": action, "csrf": token2}))
        assert sorted(answered(a).status_code for a in both) == [303, 400], action
    county = f"/console/warnings/{world.county_broadcast}"  # two approvers at once
    both = await asyncio.gather(first.post(county, data={"action": "approve", "csrf": token}),
                                second.post(county, data={"action": "approve", "csrf": token2}))
    assert sorted(answered(a).status_code for a in both) == [303, 400]
    async with services.db.session() as session:
        copies = list(await session.scalars(select(OutboxMessage).where(OutboxMessage.broadcast_id.is_not(None))))
        approved = {b.id: b.approved_by for b in await session.scalars(select(Broadcast))}
    assert len([c for c in copies if c.broadcast_id == world.broadcast]) == 2
    assert len([c for c in copies if c.broadcast_id == world.county_broadcast]) == 3
    assert approved[world.broadcast] == "钱审批" and approved[world.county_broadcast] in ("钱审批", "孙审批")
    actions = [a[1] for a in await audit_actions(services) if a[1].startswith("broadcast-")]
    assert actions == ["broadcast-draft", "broadcast-draft", "broadcast-approve", "broadcast-pause",
                       "broadcast-resume", "broadcast-cancel", "broadcast-approve"]


async def test_campaign_and_account_changes_posted_twice_at_once(console: httpx.AsyncClient, world: World,
                                                                 services: Services) -> None:
    admin, token = await signed_in(console, "王科长")
    made = sorted(await twice(lambda: admin.post("/console/quizzes", data={
        "slug": "twice-2026", "name": "两次", "audience": "elderly", "csrf": token})), key=lambda a: a.status_code)
    assert [a.status_code for a in made] == [303, 400] and "已经有这个代号" in made[1].text
    for action, state in (("open", "open"), ("close", "closed")):
        answers = await twice(lambda action=action: admin.post("/console/quizzes/twice-2026", data={
            "action": action, "csrf": token}))
        assert {a.status_code for a in answers} == {303}
        async with services.db.session() as session:
            assert (await campaigns.find(session, "twice-2026")).state == state
    added = await twice(lambda: admin.post("/console/accounts", data={
        "action": "add", "name": "孙网格", "role": "staff", "township": ["qingshan"], "password": "青山镇网格员2026",
        "csrf": token}))
    assert sorted(a.status_code for a in added) == [303, 400]
    for action in ("disable", "enable"):
        assert {a.status_code for a in await twice(lambda action=action: admin.post("/console/accounts", data={
            "action": action, "name": "孙网格", "csrf": token}))} == {303}
    marked = await twice(lambda: admin.post("/console/content", data={"id": str(world.gap), "mark": "done",
                                                                       "csrf": token}))
    assert {a.status_code for a in marked} == {303}
    actions = [a[1:] for a in await audit_actions(services) if a[1] not in ("login", "broadcast-draft")]
    assert actions == [("quiz-create", "twice-2026"), ("quiz-open", "twice-2026"), ("quiz-close", "twice-2026"),
                       ("staff-add", "孙网格"), ("staff-disable", "孙网格"), ("staff-enable", "孙网格"),
                       ("gap-mark", f"gap:{world.gap}")]


async def test_wrong_passwords_at_once_all_count_towards_the_lock_out(console: httpx.AsyncClient, world: World,
                                                                      services: Services) -> None:
    limit = services.settings.console.max_failed_logins
    browsers = [client_of(console) for _ in range(limit)]
    tokens = [csrf_of((await b.get("/console/login")).text) for b in browsers]
    answers = await asyncio.gather(*(b.post("/console/login", data={"csrf": t, "username": "李办理",
                                                                    "password": f"guess number {n}"})
                                     for n, (b, t) in enumerate(zip(browsers, tokens, strict=True))))
    assert all(answered(a).status_code in (401, 423) for a in answers)
    late = client_of(console)
    right = await late.post("/console/login", data={"csrf": csrf_of((await late.get("/console/login")).text),
                                                    "username": "李办理", "password": PASSWORD})
    assert right.status_code == 423 and "已锁定" in right.text


# -- roles -------------------------------------------------------------------------------------------------------
async def test_each_role_does_only_what_it_may(console: httpx.AsyncClient, world: World,
                                               services: Services) -> None:
    before = await snapshot(services)
    reveal = f"/console/tips/{world.town}/reveal"
    for name in ("王科长", "钱审批", "赵干事"):  # admin, approver, staff: none is a handler
        browser, token = await signed_in(console, name)
        for headers in ({}, {"HX-Request": "true"}):
            refused = answered(await browser.post(reveal, data={"reason": "核实线索需要联系", "csrf": token},
                                                  headers=headers))
            assert refused.status_code in (403, 404) and PHONE not in refused.text and NAME not in refused.text
        assert "查看举报人身份" not in (await browser.get(f"/console/tips/{world.river}")).text
    for name in ("王科长", "李办理", "赵干事"):  # not approvers
        browser, token = await signed_in(console, name)
        refused = answered(await browser.post(f"/console/warnings/{world.county_broadcast}", data={
            "action": "approve", "csrf": token}))
        assert refused.status_code == 403, name
        assert "批准发送" not in (await browser.get(f"/console/warnings/{world.county_broadcast}")).text
    for name in ("李办理", "钱审批", "赵干事", "吴办理"):  # not admins
        browser, token = await signed_in(console, name)
        for path in ("/console/audit", "/console/audit?action=reveal-identity", "/console/accounts"):
            refused = answered(await browser.get(path))
            assert refused.status_code == 403 and "console:" not in refused.text, (name, path)
        for form in ({"action": "add", "name": "冒名", "role": "admin", "password": "冒名顶替的密码2026"},
                     {"action": "passwd", "name": "王科长", "password": "冒名顶替的密码2026"},
                     {"action": "disable", "name": "王科长"}, {"action": "enable", "name": "李办理"}):
            assert answered(await browser.post("/console/accounts", data={**form, "csrf": token})
                            ).status_code == 403
        page = (await browser.get("/console/")).text
        assert 'href="/console/audit"' not in page and 'href="/console/accounts"' not in page
    assert without_audit(await snapshot(services)) == without_audit(before)
    # an approver's own draft waits for another approver
    drafter, token = await signed_in(console, "钱审批")
    made = await drafter.post("/console/warnings", data={"text": WARNING_TEXT, "audience": "elderly",
                                                         "channel": ["web"], "csrf": token})
    own = answered(await drafter.post(made.headers["location"], data={"action": "approve", "csrf": token}))
    assert own.status_code == 400 and "起草人不能批准" in own.text
    async with services.db.session() as session:
        assert (await session.get(Broadcast, int(made.headers["location"].rsplit("/", 1)[1]))).state == "draft"


# -- headers, cookies, a path prefix, next= ---------------------------------------------------------------------
async def test_every_answer_carries_the_headers_and_is_never_cached(console: httpx.AsyncClient, world: World,
                                                                   services: Services) -> None:
    handler, token = await signed_in(console, "李办理")
    admin, admin_token = await signed_in(console, "王科长")
    answers = [await client_of(console).get("/console/login"), await client_of(console).get("/console/tips"),
               await client_of(console).get("/console/tips", headers={"HX-Request": "true"})]
    answers += [await admin.get(path) for path in gets(world)]
    answers += [await handler.post(f"/console/tips/{world.town}/reveal", data={"reason": "核实线索需要联系",
                                                                               "csrf": token}),
                await handler.post(f"/console/tips/{world.town}", data={"action": "note", "note": "x"}),  # 403
                await handler.get("/console/accounts"), await handler.get("/console/nowhere"),  # 403, 404
                await handler.get("/console/tips/FF-2026-999999"), await handler.put("/console/tips"),  # 404, 405
                await handler.delete(f"/console/tips/{world.town}"),
                await handler.post(f"/console/tips/{world.town}", data={"action": "x", "csrf": token}),  # 400
                await handler.post("/console/warnings", data={"text": "长" * (1 << 20)}),  # 413
                await handler.get("/console"), await admin.post("/console/content", data={  # 307, 303
                    "id": str(world.gap), "mark": "done", "csrf": admin_token})]
    statuses = set()
    for answer in answers:
        answered(answer)
        statuses.add(answer.status_code)
        path = answer.request.url.path
        assert answer.headers["cache-control"] == "no-store", (path, answer.status_code)
        if answer.headers.get("content-type", "").startswith("text/html"):
            assert answer.headers["x-frame-options"] == "DENY"
            assert "script-src" not in answer.headers["content-security-policy"]  # default-src 'self' only
            assert "<script>" not in answer.text and " on" + "click=" not in answer.text  # nothing inline
    assert statuses >= {200, 303, 307, 400, 401, 403, 404, 405, 413}
    shown = answers[len(gets(world)) + 3]
    assert PHONE in shown.text and shown.headers["pragma"] == "no-cache"
    assert "405" not in answers[-6].text and answers[-6].headers["allow"]  # the console's page, saying what to do


async def test_cookies_are_http_only_strict_and_secure_over_https(engine: Engine, world: World) -> None:
    """Over HTTPS, or behind a proxy that says the browser came by HTTPS, every cookie is Secure (the browser then
    sends it only over HTTPS: each request here carries the cookies by hand)."""
    def jar(response: httpx.Response) -> str:
        return "; ".join(c.split(";")[0] for c in response.headers.get_list("set-cookie"))

    for base_url, headers, secure in (("http://fangfei.test", {}, False), ("https://fangfei.test", {}, True),
                                      ("http://fangfei.test", {"x-forwarded-proto": "https"}, True)):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(engine)), base_url=base_url,
                                     headers=headers) as browser:
            form = await browser.get("/console/login")
            signed = await browser.post("/console/login", headers={"cookie": jar(form)}, data={
                "csrf": csrf_of(form.text), "username": "王科长", "password": PASSWORD})
            session = next(c.split(";")[0] for c in signed.headers.get_list("set-cookie") if c.startswith("ff_staff="))
            token = csrf_of((await browser.get("/console/", headers={"cookie": session})).text)
            out = await browser.post("/console/logout", headers={"cookie": session}, data={"csrf": token})
            cookies = [*form.headers.get_list("set-cookie"), *signed.headers.get_list("set-cookie"),
                       *out.headers.get_list("set-cookie")]
            assert len(cookies) == 4  # the sign-in form's, the session's, both ended
            for cookie in cookies:
                attributes = cookie.lower()
                assert "httponly" in attributes and "samesite=strict" in attributes and "path=/console" in attributes
                assert ("; secure" in attributes) == secure, (base_url, cookie)
            assert "max-age=0" in out.headers["set-cookie"].lower()
            assert (await browser.get("/console/", headers={"cookie": session})).status_code == 303


async def test_behind_a_proxy_every_link_and_redirect_keeps_the_prefix(engine: Engine, world: World) -> None:
    transport = httpx.ASGITransport(app=create_app(engine), root_path="/fangfei")
    async with httpx.AsyncClient(transport=transport, base_url="https://gov.example") as browser:
        assert (await browser.get("/fangfei/console")).headers["location"] == "/fangfei/console/"
        htmx = await browser.get("/fangfei/console/tips", headers={"HX-Request": "true"})
        assert htmx.headers["HX-Redirect"].startswith("/fangfei/console/login?next=%2Ffangfei%2Fconsole%2Ftips")
        form = await browser.get("/fangfei/console/login")
        signed = await browser.post("/fangfei/console/login", data={"csrf": csrf_of(form.text), "username": "王科长",
                                                                    "password": PASSWORD})
        assert signed.headers["location"] == "/fangfei/console/"
        token = csrf_of((await browser.get("/fangfei/console/")).text)
        links: set[str] = set()
        for path in gets(world):
            page = await browser.get("/fangfei" + path)
            if page.headers.get("content-type", "").startswith("text/html"):
                links |= set(re.findall(r'(?:href|src|action|hx-get|hx-post)="([^"]+)"', page.text))
        assert links and not [link for link in links if link.startswith("/") and not link.startswith("/fangfei/")]
        missing = await browser.get("/fangfei/console/nowhere")
        assert missing.status_code == 404 and 'href="/fangfei/console/"' in missing.text
        moves = [await browser.post(f"/fangfei/console/tips/{world.town}", data={"action": "take", "csrf": token}),
                 await browser.post("/fangfei/console/quizzes", data={"slug": "prefix-2026", "name": "x",
                                                                      "audience": "elderly", "csrf": token}),
                 await browser.post("/fangfei/console/warnings", data={"text": WARNING_TEXT, "audience": "elderly",
                                                                       "channel": ["web"], "csrf": token}),
                 await browser.post("/fangfei/console/content", data={"id": str(world.gap), "mark": "done",
                                                                      "csrf": token}),
                 await browser.post("/fangfei/console/accounts", data={"action": "enable", "name": "李办理",
                                                                       "csrf": token}),
                 await browser.post("/fangfei/console/logout", data={"csrf": token})]
        for move in moves:
            assert move.status_code == 303 and move.headers["location"].startswith("/fangfei/console/"), move.text
        assert (await browser.get("/fangfei/console/")).headers["location"].startswith("/fangfei/console/login")


HOSTILE_NEXT = ["https://evil.example/", "//evil.example/", "///evil.example", "/\\evil.example", "\\\\evil.example",
                "/console/../..//evil.example", "/console//evil.example", "/console/%2F%2Fevil.example",
                "/console/%5C%5Cevil.example", "%2F%2Fevil.example", "javascript:alert(1)", "/console/\\evil.example",
                "\t//evil.example", " //evil.example", "/console/\r\nSet-Cookie: stolen=1", "/console/%0d%0aX: y",
                "https:evil.example", "/console@evil.example", "/consoleevil", "/fangfei/console/tips",
                "/console/%252F%252Fevil.example", "/console/\x00//evil", "/console/\u3000//evil.example"]


async def test_no_next_sends_anyone_off_the_console(console: httpx.AsyncClient, world: World) -> None:
    for target in HOSTILE_NEXT:
        browser = client_of(console)
        form = answered(await browser.get("/console/login", params={"next": target}))
        assert "evil.example\"" not in form.text.replace("&#34;", '"') or "value=" in form.text
        signed = await browser.post("/console/login", data={"csrf": csrf_of(form.text), "username": "王科长",
                                                            "password": PASSWORD, "next": target})
        location = signed.headers["location"]
        assert signed.status_code == 303 and "set-cookie: stolen" not in str(signed.headers).lower(), target
        parts = urlsplit(location)
        assert not parts.scheme and not parts.netloc and location.startswith("/console/"), (target, location)
        assert "//" not in location and "\\" not in location and "\n" not in location, (target, location)
        followed = await browser.get(location)
        assert followed.request.url.host == "fangfei.test", target


# -- a flaky database, htmx's history ----------------------------------------------------------------------------
async def test_a_database_that_fails_gets_a_page_and_keeps_nothing(console: httpx.AsyncClient, world: World,
                                                                   services: Services,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The database unreachable (a cut, a restart) or refusing the commit: the console's 503 page, nothing half kept,
    and the next request works again."""
    from contextlib import asynccontextmanager

    from sqlalchemy.exc import OperationalError

    handler, token = await signed_in(console, "李办理")
    before = await snapshot(services)
    working = services.db.transaction
    lost = OperationalError("COMMIT", {}, ConnectionResetError("connection reset by peer"))

    @asynccontextmanager
    async def unreachable() -> Any:
        raise lost
        yield  # pragma: no cover

    @asynccontextmanager
    async def refused_commit() -> Any:
        async with working() as session:
            yield session
            raise lost  # before the commit: the transaction is rolled back

    login = client_of(console)
    login_token = csrf_of((await login.get("/console/login")).text)
    for broken in (unreachable, refused_commit):
        monkeypatch.setattr(services.db, "transaction", broken)
        for answer in (await handler.get("/console/tips"),  # (answered() below would refuse a 5xx)
                       await handler.get("/console/tips", headers={"HX-Request": "true"}),
                       await handler.post(f"/console/tips/{world.town}", data={
                           "action": "status", "status": "verifying", "note": "断网了", "csrf": token}),
                       await handler.post(f"/console/tips/{world.town}/reveal", data={
                           "reason": "核实线索需要联系", "csrf": token}),
                       await login.post("/console/login", data={"username": "李办理", "password": PASSWORD,
                                                                "csrf": login_token})):
            assert answer.status_code == 503 and "系统出了点问题" in answer.text, (broken, answer.request.url.path)
            assert answer.headers["content-type"].startswith("text/html") and "Traceback" not in answer.text
            assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        monkeypatch.setattr(services.db, "transaction", working)
        assert without_audit(await snapshot(services)) == without_audit(before)
    # a reveal is audited before the identity is shown (its own commit): one whose answer was lost is still there
    assert [a[1] for a in (await audit_actions(services))[before["AuditEntry"]:]] == ["reveal-identity"]
    assert (await handler.get(f"/console/tips/{world.town}")).status_code == 200


async def test_htmx_restoring_its_history_gets_the_whole_page(console: httpx.AsyncClient, world: World) -> None:
    """The filters push their URL (hx-push-url) and htmx keeps no history cache: Back asks the server again, with
    HX-History-Restore-Request, for the whole page, not the table alone."""
    browser, _ = await signed_in(console, "王科长")
    partial = await browser.get("/console/tips?status=new", headers={"HX-Request": "true"})
    assert "<html" not in partial.text
    restored = await browser.get("/console/tips?status=new", headers={"HX-Request": "true",
                                                                      "HX-History-Restore-Request": "true"})
    assert "<html" in restored.text and 'id="tip-rows"' in restored.text
    assert "HX-Request" in restored.headers.get("vary", "") and "HX-Request" in partial.headers.get("vary", "")


# -- logs --------------------------------------------------------------------------------------------------------
async def test_no_personal_data_message_text_or_secret_is_logged_at_any_level(
        console: httpx.AsyncClient, world: World, services: Services, caplog: pytest.LogCaptureFixture) -> None:
    """The attacks above once more, with every logger at DEBUG: each record, as the log handler prints it (with
    bot/logs.py's redaction, tracebacks included), names no reporter, no resident's or staff member's words, no
    password, token or key; and no attack is an error."""
    from bot import logs

    caplog.set_level(logging.DEBUG)
    for quiet in logs.QUIET:  # as `fangfei serve` sets them (bot/cli/common.py)
        caplog.set_level(logging.WARNING, logger=quiet)
    caplog.set_level(logging.INFO, logger="telegram")
    services.settings.telegram.token = "123:abc"
    wrong = "wrong-password-张秀英-1"
    try:
        guesser = client_of(console)
        login = csrf_of((await guesser.get("/console/login")).text)
        for n in range(services.settings.console.logins_per_minute + 1):  # the last one is over the limit
            await guesser.post("/console/login", data={"csrf": login, "username": "李办理" if n < 3 else "钱审批",
                                                       "password": wrong})
        async with services.db.transaction() as session:
            await session.execute(update(StaffAccount).values(failed_logins=0, locked_until=None))
        handler, token = await signed_in(console, "李办理")
        staff, staff_token = await signed_in(console, "赵干事")
        approver, approver_token = await signed_in(console, "钱审批")
        await twice(lambda: handler.post(f"/console/tips/{world.town}", data={
            "action": "status", "status": "verifying", "note": f"已联系 {NAME} {PHONE}", "csrf": token}))
        await twice(lambda: handler.post(f"/console/tips/{world.town}/reveal", data={"reason": f"核实{NAME}",
                                                                                      "csrf": token}))
        await handler.get("/console/tips/export.xlsx")
        await handler.get(f"/console/tips/{world.town}/evidence/1")
        await staff.get(f"/console/tips/{world.town}")
        await staff.post(f"/console/tips/{world.town}", data={"action": "note", "note": PHONE, "csrf": staff_token})
        await approver.post("/console/warnings", data={"text": f"{WARNING_TEXT}\x00{PHONE}", "audience": "elderly",
                                                       "channel": ["web"], "csrf": approver_token})
        await twice(lambda: approver.post(f"/console/warnings/{world.broadcast}", data={
            "action": "approve", "csrf": approver_token}))
        for path in ("/console/tips?page=" + "9" * 5000, f"/console/tips?assignee={PHONE}%00",
                     "/console/tips?since=0001-01-01&until=9999-12-31", f"/console/warnings/{10**30}",
                     f"/console/tips/{PHONE}", "/console/nowhere"):
            await handler.get(path)
        await handler.post("/console/tips/" + world.town, content=json.dumps({"note": PHONE}),
                           headers={"content-type": "application/json", "X-CSRF-Token": token})
        await handler.post(f"/console/tips/{world.town}", data={"action": "note", "note": PHONE, "csrf": "forged"})
        await handler.post("/console/logout", data={"csrf": token})
    finally:
        services.settings.telegram.token = ""
    redactor = logs.Redactor(logs.secret_values(services.settings))
    formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
    printed = []
    for record in caplog.records:
        if record.name == "httpx" and "http://fangfei.test/" in record.getMessage():
            continue  # this test's own requests
        redactor.filter(record)
        printed.append(formatter.format(record))
    assert "console: a client address is over the sign-in limit" in printed[0]  # (caplog caught what is logged)
    text = "\n".join(printed)
    for secret in (PHONE, NAME, "张秀", TOWN_TEXT, WARNING_TEXT, "养老公寓", PASSWORD, wrong, token, staff_token,
                   services.settings.secret_key, "1009", *(c.value for c in handler.cookies.jar)):
        assert secret not in text, secret
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], text


# -- what residents and others stored ----------------------------------------------------------------------------
XSS = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'


async def test_hostile_stored_text_is_shown_as_text_and_exported_as_text(console: httpx.AsyncClient, world: World,
                                                                         services: Services) -> None:
    """A resident's words, a file name, a campaign's name and a paper player's name as markup, as a closing
    </script> inside a chart's data, as an Excel formula: shown escaped, exported as text."""
    formula = '=HYPERLINK("http://evil.example","点这里")'
    postgres = not services.db.is_sqlite
    async with services.db.transaction() as session:
        tip = await ledger_file(session, services, f"{XSS}{formula}", postgres)
        session.add(TipEvidence(tip_id=tip.id, kind="file", ref="m-9", name=f"{XSS}.图片", content_type="",
                                content_sealed=services.vault.seal_bytes(b"%PDF"), fetched_at=utcnow()))
        made = await campaigns.create(session, slug="xss-2026", name=f"</script>{XSS}", audience="elderly",
                                      open_now=True)
        await campaigns.record_paper(session, services.settings.region, made, place="hekou-hekou", score=1,
                                     recorded_by="console:王科长", name=XSS)
        receipt = tip.receipt
    admin, token = await signed_in(console, "王科长")
    pages = [await admin.get(p) for p in ("/console/", "/console/tips", f"/console/tips/{receipt}",
                                          "/console/quizzes", "/console/quizzes/xss-2026")]
    pages.append(await admin.post("/console/warnings/preview", data={"text": XSS, "audience": "elderly",
                                                                     "channel": ["web"], "csrf": token}))
    for page in pages:
        assert answered(page).status_code == 200, page.request.url
        assert "<script>alert" not in page.text and "<img src=x" not in page.text and "</script><" not in page.text
    download = answered(await admin.get(f"/console/tips/{receipt}/evidence/1"))
    assert download.status_code == 200 and download.headers["content-disposition"] == (
        f'attachment; filename="{receipt}-1"')  # the sender's file name is not trusted
    book = load_workbook(io.BytesIO((await admin.get("/console/tips/export.xlsx")).content))
    cells = [c for row in book.active.iter_rows() for c in row if isinstance(c.value, str) and "HYPERLINK" in c.value]
    assert cells and all(c.data_type == "s" for c in cells)


async def ledger_file(session: Any, services: Services, what: str, postgres: bool) -> Tip:
    from bot.tips import ledger

    return await ledger.file(session, services.vault, "web", "hostile-1", ledger.Report(
        what=what, township="河口乡", place=XSS, who=XSS), None, postgres)


async def test_a_campaign_is_found_by_its_whole_slug(console: httpx.AsyncClient, world: World,
                                                     services: Services) -> None:
    """The CLI allows slugs of 64 characters: the console finds each by its whole slug, never another campaign
    whose slug is the same cut shorter."""
    short, long = "a" * 48, "a" * 48 + "-second-2026"
    async with services.db.transaction() as session:
        await campaigns.create(session, slug=short, name="短代号活动", audience="elderly")
        await campaigns.create(session, slug=long, name="长代号活动", audience="elderly")
    admin, token = await signed_in(console, "王科长")
    page = answered(await admin.get(f"/console/quizzes/{long}"))
    assert page.status_code == 200 and "长代号活动" in page.text and "短代号活动" not in page.text
    assert answered(await admin.post(f"/console/quizzes/{long}", data={"action": "open", "csrf": token})
                    ).status_code == 303
    async with services.db.session() as session:
        assert (await campaigns.find(session, long)).state == "open"
        assert (await campaigns.find(session, short)).state == "draft"
    made = answered(await admin.post("/console/quizzes", data={"slug": "b" * 64, "name": "x", "audience": "elderly",
                                                               "csrf": token}))
    assert made.status_code == 303
    too_long = answered(await admin.post("/console/quizzes", data={"slug": "c" * 65, "name": "x",
                                                                   "audience": "elderly", "csrf": token}))
    assert too_long.status_code == 400 and "2 到 64 位" in too_long.text


async def test_filters_take_percent_and_underscore_as_typed(console: httpx.AsyncClient, world: World,
                                                            services: Services) -> None:
    async with services.db.transaction() as session:
        await session.execute(update(Tip).values(assignee="console:李办理"))
    admin, _ = await signed_in(console, "王科长")
    for wildcard in ("%", "_", "李%", "%办理", "___"):
        listing = answered(await admin.get("/console/tips", params={"assignee": wildcard}))
        assert 'id="tip-total">0<' in listing.text, wildcard
        log = answered(await admin.get("/console/audit", params={"actor": wildcard}))
        assert 'console:王科长' not in log.text.split("<tbody>")[1], wildcard
    assert 'id="tip-total">2<' in (await admin.get("/console/tips", params={"assignee": "李办理"})).text


async def test_an_admin_is_county_staff(console: httpx.AsyncClient, world: World, services: Services) -> None:
    """An admin reads the whole audit log and makes any account: one limited to a township could make itself a
    county admin. So no admin account is limited to townships."""
    admin, token = await signed_in(console, "王科长")
    refused = answered(await admin.post("/console/accounts", data={
        "action": "add", "name": "河口管理员", "role": "admin", "township": ["hekou"], "password": "河口乡管理员2026",
        "csrf": token}))
    assert refused.status_code == 400 and "管理员账号管全县" in refused.text
    async with services.db.session() as session:
        assert await session.scalar(select(StaffAccount).where(StaffAccount.name == "河口管理员")) is None
