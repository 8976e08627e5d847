"""The staff console in process (the real app, SQLite and PostgreSQL): sign-in, lock-out, sessions, CSRF, township
scope, reveals and every audited action, the ledger's filters, pages and export, headers, a path prefix."""

from __future__ import annotations

import io
from datetime import timedelta

import httpx
import pytest
from argon2 import Type, extract_parameters
from openpyxl import load_workbook
from sqlalchemy import select, update

from bot.config import ConsoleSettings
from bot.engine import Engine
from bot.services import Services
from bot.staff import accounts
from bot.storage.models import AuditEntry, OutboxMessage, StaffAccount, StaffSession, Tip, TipEvidence, utcnow
from bot.tips import ledger
from bot.web.app import create_app
from tests.console_support import NAME, PASSWORD, PHONE, add_staff, file_two_townships, page_csrf, sign_in


@pytest.fixture
def console(web: httpx.AsyncClient) -> httpx.AsyncClient:
    """The whole app in process (the web chat's fixture): the console lives at /console/."""
    return web


@pytest.fixture
async def staffed(services: Services) -> tuple[str, str]:
    await add_staff(services, ("王科长", "admin", []), ("李办理", "handler", []), ("赵干事", "staff", ["hekou"]),
                    ("钱审批", "approver", []))
    return await file_two_townships(services)


async def audit_rows(services: Services) -> list[tuple[str, str, str, str | None]]:
    async with services.db.session() as session:
        rows = await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(a.actor, a.action, a.subject, a.detail) for a in rows]


async def test_signed_out_goes_to_the_sign_in_form_and_back(console: httpx.AsyncClient, staffed: object,
                                                            services: Services) -> None:
    away = await console.get("/console/tips?status=new")
    assert away.status_code == 303
    assert away.headers["location"] == "/console/login?next=%2Fconsole%2Ftips%3Fstatus%3Dnew"
    htmx = await console.get("/console/tips", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/console/login")
    form = await console.get("/console/login")
    assert 'name="username"' in form.text and 'name="password"' in form.text
    cookie = form.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    from tests.console_support import csrf_of
    signed = await console.post("/console/login", data={"csrf": csrf_of(form.text), "username": "王科长",
                                                        "password": PASSWORD, "next": "/console/tips?status=new"})
    assert signed.status_code == 303 and signed.headers["location"] == "/console/tips?status=new"
    session_cookie = next(v for v in signed.headers.get_list("set-cookie") if v.startswith("ff_staff="))
    assert "HttpOnly" in session_cookie and "SameSite=strict" in session_cookie and "Path=/console" in session_cookie
    assert "Secure" not in session_cookie  # plain HTTP here; over HTTPS it is Secure (below)
    home = await console.get("/console/")
    assert home.status_code == 200 and "王科长" in home.text
    assert ("console:王科长", "login", "王科长", None) in await audit_rows(services)


async def test_never_sent_elsewhere_after_signing_in(console: httpx.AsyncClient, staffed: object) -> None:
    from tests.console_support import csrf_of
    for target in ("https://evil.example/console/", "//evil.example/console/", "/console/..//evil", "/elsewhere"):
        console.cookies.clear()
        form = await console.get("/console/login")
        signed = await console.post("/console/login", data={"csrf": csrf_of(form.text), "username": "王科长",
                                                            "password": PASSWORD, "next": target})
        assert signed.headers["location"] == "/console/", target


async def test_wrong_passwords_lock_the_account_whoever_tries(console: httpx.AsyncClient, staffed: object,
                                                              services: Services) -> None:
    limit = services.settings.console.max_failed_logins
    for _ in range(limit - 1):
        wrong = await sign_in(console, "李办理", "not the password")
        assert wrong.status_code == 401 and "用户名或密码不对" in wrong.text
    locked = await sign_in(console, "李办理", "not the password")
    assert locked.status_code == 423 and "已锁定" in locked.text
    still = await sign_in(console, "李办理", PASSWORD)  # the right password does not open a locked account
    assert still.status_code == 423
    unknown = await sign_in(console, "没有这个人", PASSWORD)  # an unknown name reads like a wrong password
    assert unknown.status_code == 401 and "用户名或密码不对" in unknown.text
    failed = [r for r in await audit_rows(services) if r[1] == "login-failed"]
    assert len(failed) == limit + 2 and {r[3] for r in failed} == {"wrong", "locked"}
    async with services.db.transaction() as session:  # the lock-out has passed
        await session.execute(update(StaffAccount).where(StaffAccount.name == "李办理")
                              .values(locked_until=utcnow() - timedelta(seconds=1)))
    assert (await sign_in(console, "李办理", PASSWORD)).status_code == 303


async def test_every_change_needs_the_sessions_csrf_token(console: httpx.AsyncClient, staffed: tuple[str, str],
                                                          services: Services) -> None:
    town, _ = staffed
    await sign_in(console, "王科长")
    for data in ({"action": "note", "note": "无令牌"}, {"action": "note", "note": "错令牌", "csrf": "x" * 43}):
        refused = await console.post(f"/console/tips/{town}", data=data)
        assert refused.status_code == 403 and "安全令牌" in refused.text
    assert (await console.post("/console/logout")).status_code == 403
    token = await page_csrf(console)
    by_header = await console.post(f"/console/tips/{town}", data={"action": "note", "note": "htmx 的请求"},
                                   headers={"X-CSRF-Token": token})
    assert by_header.status_code == 303
    async with services.db.session() as session:
        tip = await ledger.find(session, town)
        notes = [h.new for h in await ledger.history(session, tip) if h.field == "note"]
    assert notes == ["htmx 的请求"]
    # the sign-in form has its own token
    form = await console.post("/console/login", data={"username": "王科长", "password": PASSWORD})
    assert form.status_code == 403


async def test_a_township_account_sees_only_its_townships(console: httpx.AsyncClient, staffed: tuple[str, str],
                                                          services: Services) -> None:
    town, river = staffed
    await sign_in(console, "赵干事")
    listing = await console.get("/console/tips")
    assert river in listing.text and town not in listing.text
    assert (await console.get("/console/tips?township=城关镇")).text.count("FF-") == 0
    guessed = await console.get(f"/console/tips/{town}")  # by URL: as if it did not exist
    assert guessed.status_code == 404 and "不在您负责的乡镇" in guessed.text and "养老公寓" not in guessed.text
    token = await page_csrf(console, "/console/tips")
    changed = await console.post(f"/console/tips/{town}", data={"action": "status", "status": "verifying",
                                                                "csrf": token})
    assert changed.status_code == 404
    book = load_workbook(io.BytesIO((await console.get("/console/tips/export.xlsx")).content))
    receipts = [row[1] for row in book.active.iter_rows(min_row=2, values_only=True)]
    assert receipts == [river]
    today = await console.get("/console/")
    assert "城关镇" not in today.text.split("</header>")[1].split('id="chart-by-township"')[0]
    assert (await console.get("/console/accounts")).status_code == 403
    assert (await console.get("/console/audit")).status_code == 403


async def test_a_handler_reveals_with_a_reason_and_it_is_audited(console: httpx.AsyncClient,
                                                                  staffed: tuple[str, str],
                                                                  services: Services) -> None:
    town, river = staffed
    await sign_in(console, "王科长")  # an admin is not a handler
    token = await page_csrf(console, f"/console/tips/{town}")
    assert "查看举报人身份" not in (await console.get(f"/console/tips/{town}")).text
    refused = await console.post(f"/console/tips/{town}/reveal", data={"reason": "核实线索需要联系", "csrf": token})
    assert refused.status_code == 403 and PHONE not in refused.text
    console.cookies.clear()
    await sign_in(console, "李办理")
    token = await page_csrf(console, f"/console/tips/{town}")
    no_reason = await console.post(f"/console/tips/{town}/reveal", data={"reason": " ", "csrf": token})
    assert no_reason.status_code == 400 and PHONE not in no_reason.text
    shown = await console.post(f"/console/tips/{town}/reveal", data={"reason": "核实线索需要联系", "csrf": token})
    assert shown.status_code == 200 and NAME in shown.text and PHONE in shown.text
    assert shown.headers["cache-control"] == "no-store"
    anonymous = await console.post(f"/console/tips/{river}/reveal", data={"reason": "核实线索需要联系", "csrf": token})
    assert "匿名" in anonymous.text
    rows = await audit_rows(services)
    assert [r for r in rows if r[1] == "reveal-identity"] == [
        ("console:李办理", "reveal-identity", town, "核实线索需要联系")]
    # the admin reads it in the audit log, filtered
    console.cookies.clear()
    await sign_in(console, "王科长")
    log = await console.get("/console/audit?action=reveal-identity")
    assert "console:李办理" in log.text and town in log.text and "核实线索需要联系" in log.text
    assert "login" not in log.text.split("<tbody>")[1].split("</tbody>")[0].replace("reveal-identity", "")


async def test_a_status_change_is_kept_told_to_the_reporter_and_audited(console: httpx.AsyncClient,
                                                                         staffed: tuple[str, str],
                                                                         services: Services) -> None:
    town, _ = staffed
    services.settings.telegram.token = "123:abc"  # this deployment can message Telegram reporters
    try:
        await sign_in(console, "李办理")
        token = await page_csrf(console, f"/console/tips/{town}")
        backwards_first = await console.post(f"/console/tips/{town}", data={
            "action": "status", "status": "closed", "csrf": token})
        assert backwards_first.status_code == 400 and "办结情况" in backwards_first.text
        moved = await console.post(f"/console/tips/{town}", data={"action": "status", "status": "verifying",
                                                                  "note": "已派人去看", "csrf": token})
        assert moved.status_code == 303
        page = await console.get(moved.headers["location"])
        assert "已通知举报人" in page.text and "核查中" in page.text
        back = await console.post(f"/console/tips/{town}", data={"action": "status", "status": "new",
                                                                 "csrf": token})
        assert back.status_code == 400 and "只能往前走" in back.text
    finally:
        services.settings.telegram.token = ""
    async with services.db.session() as session:
        tip = await ledger.find(session, town)
        assert tip is not None and tip.status == "verifying"
        history = [(h.actor, h.field, h.new) for h in await ledger.history(session, tip)][1:]
        [told] = list(await session.scalars(select(OutboxMessage)))
    assert history == [("console:李办理", "status", "verifying"), ("console:李办理", "note", "已派人去看")]
    assert told.channel == "telegram" and services.vault.open(told.target) == "1009"
    assert "正在核查" in told.payload["text"]
    assert ("console:李办理", "tip-status", town, "new → verifying") in await audit_rows(services)


async def test_the_ledger_filters_pages_and_exports_what_is_filtered(console: httpx.AsyncClient,
                                                                      staffed: tuple[str, str],
                                                                      services: Services) -> None:
    postgres = not services.db.is_sqlite
    async with services.db.transaction() as session:
        for n in range(60):
            await ledger.file(session, services.vault, "web", f"web-{n}", ledger.Report(
                what=f"第{n}条：有人推销保本理财", township="青山镇"), "fake-wealth-mgmt", postgres)
        await session.execute(update(Tip).where(Tip.township == "河口乡")
                              .values(created_at=utcnow() - timedelta(days=30)))
    await sign_in(console, "王科长")
    first = await console.get("/console/tips")
    assert 'id="tip-total">62<' in first.text and first.text.count("<tr class") == 50
    second = await console.get("/console/tips?page=2")
    assert second.text.count("<tr class") == 12
    beyond = await console.get("/console/tips?page=999999999")  # the last page, not an error
    assert beyond.status_code == 200 and beyond.text.count("<tr class") == 12
    overdue = await console.get("/console/tips?overdue=1")
    assert 'id="tip-total">1<' in overdue.text and "超期" in overdue.text
    partial = await console.get("/console/tips?township=青山镇", headers={"HX-Request": "true"})
    assert "<html" not in partial.text and 'id="tip-total">60<' in partial.text
    nonsense = await console.get("/console/tips?status=nope&since=yesterday&category=<script>&township=火星")
    assert nonsense.status_code == 200 and "已忽略" in nonsense.text and "<script>" not in nonsense.text
    book = load_workbook(io.BytesIO((await console.get("/console/tips/export.xlsx?township=青山镇")).content))
    assert book.active.max_row == 61 and book.active.title == "线索台账"
    assert PHONE not in str(list(book.active.values))
    exported = [r for r in await audit_rows(services) if r[1] == "export-tips"]
    assert exported == [("console:王科长", "export-tips", "60 tips", "township=青山镇")]


async def test_sessions_end_when_idle_disabled_signed_out_or_the_password_changes(
        console: httpx.AsyncClient, staffed: object, services: Services) -> None:
    await sign_in(console, "赵干事")
    assert (await console.get("/console/")).status_code == 200
    async with services.db.transaction() as session:
        await session.execute(update(StaffSession).values(
            last_seen=utcnow() - timedelta(minutes=services.settings.console.idle_minutes + 1)))
    assert (await console.get("/console/")).status_code == 303  # idle too long
    await sign_in(console, "赵干事")
    admin = httpx.AsyncClient(transport=console._transport, base_url="http://fangfei.test")
    await sign_in(admin, "王科长")
    token = await page_csrf(admin, "/console/accounts")
    assert (await admin.post("/console/accounts", data={"action": "disable", "name": "赵干事",
                                                        "csrf": token})).status_code == 303
    assert (await console.get("/console/")).status_code == 303  # disabled: out at once
    assert (await sign_in(console, "赵干事")).status_code == 401
    assert (await admin.post("/console/accounts", data={"action": "disable", "name": "王科长",
                                                        "csrf": token})).status_code == 400  # not oneself
    assert (await admin.post("/console/logout", data={"csrf": token})).status_code == 303
    assert (await admin.get("/console/")).status_code == 303
    async with services.db.session() as session:
        assert await session.scalar(select(StaffSession.token_hash).join(StaffAccount).where(
            StaffAccount.name == "王科长")) is None
    actions = [r[1] for r in await audit_rows(services)]
    assert "staff-disable" in actions and "logout" in actions


async def test_an_admin_manages_accounts_from_the_console(console: httpx.AsyncClient, staffed: object,
                                                          services: Services) -> None:
    await sign_in(console, "王科长")
    token = await page_csrf(console, "/console/accounts")
    weak = await console.post("/console/accounts", data={"action": "add", "name": "孙网格", "role": "staff",
                                                         "password": "short", "csrf": token})
    assert weak.status_code == 400 and "密码至少" in weak.text
    made = await console.post("/console/accounts", data={"action": "add", "name": "孙网格", "role": "staff",
                                                         "township": ["qingshan"], "password": "青山镇网格员2026",
                                                         "csrf": token})
    assert made.status_code == 303
    page = await console.get("/console/accounts")
    assert "孙网格" in page.text and "qingshan" in page.text and "$argon2" not in page.text
    other = httpx.AsyncClient(transport=console._transport, base_url="http://fangfei.test")
    assert (await sign_in(other, "孙网格", "青山镇网格员2026")).status_code == 303
    async with services.db.session() as session:
        stored = await session.scalar(select(StaffAccount.password_hash).where(StaffAccount.name == "孙网格"))
    assert stored.startswith("$argon2id$") and "青山镇网格员2026" not in stored


async def test_console_pages_carry_strict_headers_and_are_not_cached(console: httpx.AsyncClient,
                                                                     staffed: tuple[str, str]) -> None:
    pages = [await console.get("/console/login")]
    await sign_in(console, "王科长")
    assert (await console.get("/console/login")).headers["location"] == "/console/"  # signed in already
    for path in ("/console/", "/console/tips", f"/console/tips/{staffed[0]}", "/console/audit"):
        pages.append(await console.get(path))
    for page in pages:
        path = page.request.url.path
        policy = page.headers["content-security-policy"]
        assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy, path
        assert page.headers["x-content-type-options"] == "nosniff" and page.headers["referrer-policy"]
        assert page.headers["cache-control"] == "no-store", path
        assert "<script>" not in page.text and " on" + "click=" not in page.text  # no inline script
    chart = (await console.get("/static/console/chart-4.6.1.umd.min.js"))
    assert chart.status_code == 200 and "Chart.js v4.6.1" in chart.text


async def test_served_under_a_path_prefix(engine: Engine, staffed: object) -> None:
    transport = httpx.ASGITransport(app=create_app(engine), root_path="/fangfei")
    async with httpx.AsyncClient(transport=transport, base_url="https://gov.example") as c:
        away = await c.get("/fangfei/console/tips")
        assert away.headers["location"].startswith("/fangfei/console/login?next=%2Ffangfei%2Fconsole%2Ftips")
        form = await c.get("/fangfei/console/login")
        assert 'action="/fangfei/console/login"' in form.text and 'src="/fangfei/static/console/' in form.text
        from tests.console_support import csrf_of
        signed = await c.post("/fangfei/console/login", data={"csrf": csrf_of(form.text), "username": "王科长",
                                                              "password": PASSWORD, "next": "/fangfei/console/tips"})
        assert signed.headers["location"] == "/fangfei/console/tips"
        cookie = next(v for v in signed.headers.get_list("set-cookie") if v.startswith("ff_staff="))
        assert "Path=/fangfei/console" in cookie and "Secure" in cookie
        home = await c.get("/fangfei/console/")
        assert 'href="/fangfei/console/tips"' in home.text


async def test_malformed_requests_get_an_answer_not_an_error(console: httpx.AsyncClient,
                                                             staffed: tuple[str, str]) -> None:
    garbage = await console.post("/console/login", content=b"\xff\xfe" * 1000,
                                 headers={"content-type": "multipart/form-data; boundary=x"})
    assert garbage.status_code in (400, 403)
    huge = await console.post("/console/login", data={"username": "x" * 100_000, "password": "y"})
    assert huge.status_code in (400, 403)
    await sign_in(console, "王科长")
    token = await page_csrf(console)
    flood = await console.post(f"/console/tips/{staffed[0]}", data={"action": "note", "note": "长" * 200_000,
                                                                     "csrf": token})
    assert flood.status_code == 413 and "太多" in flood.text
    for data in ({"action": "explode"}, {"action": "category", "category": "nonsense"},
                 {"action": "note", "note": "长" * 5000}, {"action": "assign", "assignee": "x" * 100},
                 {"action": "note", "note": "\x00\x01"}):
        answer = await console.post(f"/console/tips/{staffed[0]}", data={**data, "csrf": token})
        assert answer.status_code == 400, data
    wrong = await console.post(f"/console/tips/{staffed[0]}", data={"action": "note", "note": "x", "csrf": "令牌"})
    assert wrong.status_code == 403
    console.cookies.clear()
    odd = await sign_in(console, "王\x00科长", "密码\x00")
    assert odd.status_code == 401
    await sign_in(console, "王科长")
    for path in ("/console/tips/%00", "/console/audit?actor=%00&subject=%00", "/console/tips?assignee=%00",
                 "/console/tips/" + "F" * 500, "/console/tips/FF-2026-000001/evidence/9",
                 "/console/audit?page=-1&since=2026-13-40", "/console/nowhere"):
        answer = await console.get(path)
        assert answer.status_code in (200, 404), path


async def test_evidence_is_downloaded_only_once_kept_only_in_scope_and_audited(console: httpx.AsyncClient,
                                                                              staffed: tuple[str, str],
                                                                              services: Services) -> None:
    town, river = staffed
    photo = b"\x89PNG\r\n\x1a\n" + b"evidence" * 100
    async with services.db.transaction() as session:
        tips = {t.receipt: t.id for t in await session.scalars(select(Tip))}
        session.add_all([
            TipEvidence(tip_id=tips[river], kind="image", ref="m-1", name="收据.png", content_type="image/png",
                        content_sealed=services.vault.seal_bytes(photo), fetched_at=utcnow()),
            TipEvidence(tip_id=tips[river], kind="file", ref="m-2", name="合同.pdf")])
    await sign_in(console, "赵干事")
    page = await console.get(f"/console/tips/{river}")
    assert f"/console/tips/{river}/evidence/1" in page.text and "未取回" in page.text
    got = await console.get(f"/console/tips/{river}/evidence/1")
    assert got.status_code == 200 and got.content == photo
    assert got.headers["content-disposition"] == f'attachment; filename="{river}-1.png"'
    assert got.headers["cache-control"] == "no-store"
    assert (await console.get(f"/console/tips/{river}/evidence/2")).status_code == 409  # not fetched yet
    assert (await console.get(f"/console/tips/{town}/evidence/1")).status_code == 404  # another township
    rows = [r for r in await audit_rows(services) if r[1] == "export-evidence"]
    assert rows == [("console:赵干事", "export-evidence", river, "file 1")]


async def test_passwords_are_hashed_at_production_cost_by_default_and_rehashed_at_sign_in(services: Services) -> None:
    """The tests hash at a lower cost (tests/conftest.py); this checks what a deployment gets without settings, and
    that a hash made at another cost is upgraded when its owner signs in."""
    production = ConsoleSettings()
    made = extract_parameters(accounts.hasher(production).hash("青山镇网格员2026"))
    assert (made.type, made.time_cost, made.memory_cost, made.parallelism) == (Type.ID, 3, 65536, 4)
    cheap = services.settings.console
    assert cheap.password_memory_kib < production.password_memory_kib  # else this test proves nothing
    async with services.db.transaction() as session:
        await accounts.add(session, services.settings, "周主任", "staff", [], "青山镇网格员2026")
    async with services.db.transaction() as session:
        assert (await accounts.sign_in(session, production, "周主任", "青山镇网格员2026")).account is not None
    async with services.db.session() as session:
        stored = await session.scalar(select(StaffAccount.password_hash).where(StaffAccount.name == "周主任"))
    assert extract_parameters(stored).memory_cost == 65536
    async with services.db.transaction() as session:  # and it still verifies under the new parameters
        assert (await accounts.sign_in(session, cheap, "周主任", "青山镇网格员2026")).account is not None
        assert (await accounts.sign_in(session, cheap, "周主任", "wrong-password-1")).refusal == "wrong"
