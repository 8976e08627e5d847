"""`fangfei tips` as staff run it: list, show (and reveal, audited), update with history, the 台账 export.

Every command runs as a real process on a real database (SQLite, and PostgreSQL when configured); the tips are filed
through the ledger the way the conversation files them.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from openpyxl import load_workbook
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from telegram import Bot

from bot.config import Settings
from bot.engine import Engine
from bot.outbox import Dispatcher
from bot.services import Services
from bot.storage.models import AuditEntry, OutboxMessage, Tip
from bot.tips import ledger
from bot.tips.ledger import Evidence, Report
from bot.types import Inbound
from tests.conftest import ROOT, TEST_SECRET_KEY
from tests.fake_telegram import FakeTelegram
from tests.test_cli import run

NAME, PHONE = "张三", "13800138000"
HANDLER = "王科长"
HEADER = ["序号", "受理编号", "受理时间", "渠道", "线索类别", "乡镇", "村(社区)", "具体地点", "涉及主体",
          "涉及金额/人数", "发生时间", "线索内容", "证据数量", "是否实名", "办理状态", "办结情况", "承办人", "最近更新"]
LOCAL_MINUTE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$")


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    """The CLI on the test database with the key that sealed the tips, and no handler unless a test names one."""
    return {"FANGFEI_DATABASE__URL": settings.database.url, "FANGFEI_SECRET_KEY": TEST_SECRET_KEY,
            "FANGFEI_TIPS__HANDLERS": "[]"}


@pytest.fixture
def handler_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "FANGFEI_TIPS__HANDLERS": json.dumps([HANDLER], ensure_ascii=False)}


async def fangfei(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the command without blocking the test's event loop (its database connections stay serviceable)."""
    return await asyncio.to_thread(run, *args, env=env, check=check)


async def file_tips(services: Services) -> tuple[str, str]:
    """One anonymous tip without evidence, one under a real name with two pieces of evidence."""
    postgres = not services.db.is_sqlite
    async with services.db.transaction() as session:
        anonymous = await ledger.file(session, services.vault, "wechat", "o-anon-1", Report(
            what="村里有人拉人投资养老公寓，说年息百分之二十", township="城关镇", village="东街社区"),
            "pension-elderly-care", postgres)
        named = await ledger.file(session, services.vault, "telegram", "1001", Report(
            what="有人收会员费，说交了就能帮忙化解网贷债务", who="某某咨询公司", money="约5万元，30多人",
            happened="上个月", anonymous=False, name=NAME, contact=PHONE,
            evidence=[Evidence("image", "file-1", name="收据.jpg", size=2048), Evidence("file", "file-2",
                                                                                       name="合同.pdf")]),
            "debt-relief", postgres)
    return anonymous.receipt, named.receipt


async def audit_rows(services: Services) -> list[tuple[str, str, str]]:
    """Accesses to confidential data in the audit log (status changes are audited too: not counted here)."""
    async with services.db.session() as session:
        rows = await session.scalars(select(AuditEntry).where(AuditEntry.action != "tip-status")
                                     .order_by(AuditEntry.id))
        return [(a.actor, a.action, a.subject) for a in rows]


Change = tuple[str, str, str | None, str | None]


async def tip_and_history(services: Services, receipt: str) -> tuple[Tip, list[Change]]:
    async with services.db.session() as session:
        tip = await ledger.find(session, receipt)
        assert tip is not None
        return tip, [(h.actor, h.field, h.old, h.new) for h in await ledger.history(session, tip)]


def shanghai_minute(moment: datetime) -> str:
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return aware.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")


async def test_list_json_table_and_status_filter(services: Services, env: dict[str, str]) -> None:
    assert json.loads((await fangfei("tips", "list", "--json", env=env)).stdout) == []
    anonymous, named = await file_tips(services)
    rows = json.loads((await fangfei("tips", "list", "--json", env=env)).stdout)
    assert [r["receipt"] for r in rows] == [anonymous, named]
    assert all(set(r) == {"receipt", "status", "category", "place", "created_at", "summary"} for r in rows)
    assert rows[0]["status"] == "new" and rows[0]["category"] == "pension-elderly-care"
    assert rows[0]["place"] == "城关镇 东街社区" and rows[1]["place"] == ""
    assert rows[1]["summary"] == "有人收会员费，说交了就能帮忙化解网贷债务"
    tip, _ = await tip_and_history(services, named)
    created = datetime.fromisoformat(rows[1]["created_at"])
    assert created.tzinfo is not None
    assert created == (tip.created_at.replace(tzinfo=UTC) if tip.created_at.tzinfo is None else tip.created_at)
    assert NAME not in json.dumps(rows, ensure_ascii=False) and PHONE not in json.dumps(rows)

    await fangfei("tips", "update", named, "--status", "verifying", "--as", HANDLER, env=env)
    only = json.loads((await fangfei("tips", "list", "--status", "verifying", "--json", env=env)).stdout)
    assert [r["receipt"] for r in only] == [named] and only[0]["status"] == "verifying"
    assert [r["receipt"] for r in json.loads((await fangfei("tips", "list", "--status", "new", "--json",
                                                            env=env)).stdout)] == [anonymous]
    table = (await fangfei("tips", "list", env={**env, "COLUMNS": "200"})).stdout
    assert anonymous in table and named in table and "verifying" in table
    bad = await fangfei("tips", "list", "--status", "open", "--json", env=env, check=False)
    assert bad.returncode == 2 and "unknown status 'open'" in bad.stderr and bad.stdout == ""


async def test_show_reveal_only_to_a_handler_and_audited(services: Services, env: dict[str, str],
                                                         handler_env: dict[str, str]) -> None:
    anonymous, named = await file_tips(services)
    out = (await fangfei("tips", "show", named.lower(), env=env)).stdout
    for expected in (named, "new (待核查)", "debt-relief", "telegram", "某某咨询公司", "约5万元，30多人", "上个月",
                     "化解网贷债务", "named (实名)", "evidence (2):", "收据.jpg", "2048 bytes", "合同.pdf",
                     "history (1):", "telegram:reporter  status: - → new"):
        assert expected in out, (expected, out)
    assert NAME not in out and PHONE not in out

    # not a handler (none configured, then someone else than the one configured): refused before anything is read
    for who, run_env in ((HANDLER, env), ("小刘", handler_env)):
        refused = await fangfei("tips", "show", named, "--reveal", "--as", who, env=run_env, check=False)
        assert refused.returncode == 1 and "refused" in refused.stderr and who in refused.stderr
        assert refused.stdout == "" and NAME not in refused.stderr and PHONE not in refused.stderr
    assert await audit_rows(services) == []

    revealed = (await fangfei("tips", "show", named, "--reveal", "--as", HANDLER, env=handler_env)).stdout
    assert NAME in revealed and PHONE in revealed and "audit log" in revealed
    assert await audit_rows(services) == [(f"cli:{HANDLER}", "reveal-identity", named)]
    # an anonymous tip has nothing to reveal: said so, and nothing written to the audit log
    nothing = (await fangfei("tips", "show", anonymous, "--reveal", "--as", HANDLER, env=handler_env)).stdout
    assert "anonymous" in nothing and "nothing revealed" in nothing
    assert len(await audit_rows(services)) == 1
    # a key that did not seal the identity: one line, exit 1, nothing shown and nothing audited
    wrong = await fangfei("tips", "show", named, "--reveal", "--as", HANDLER, check=False,
                          env={**handler_env, "FANGFEI_SECRET_KEY": "not-the-bots-key"})
    assert wrong.returncode == 1 and "cannot open the reporter's identity" in wrong.stderr
    assert "FANGFEI_SECRET_KEY" in wrong.stderr and "Traceback" not in wrong.stderr
    assert NAME not in wrong.stdout + wrong.stderr and PHONE not in wrong.stdout + wrong.stderr
    assert len(await audit_rows(services)) == 1

    missing = await fangfei("tips", "show", "FF-1999-000001", env=env, check=False)
    assert missing.returncode == 1 and "no tip with receipt 'FF-1999-000001'" in missing.stderr


async def test_update_moves_forward_with_history_and_refuses_the_rest(services: Services,
                                                                      env: dict[str, str]) -> None:
    _, named = await file_tips(services)
    done = await fangfei("tips", "update", named, "--status", "verifying", "--note", "已电话联系举报人",
                         "--assign", "李四", "--category", "ponzi-recruitment", "--as", HANDLER, env=env)
    for expected in (f"{named} updated by cli:{HANDLER}", "status: new → verifying", "assignee: - → 李四",
                     "category: debt-relief → ponzi-recruitment", "note: 已电话联系举报人"):
        assert expected in done.stdout, (expected, done.stdout)
    tip, history = await tip_and_history(services, named)
    assert (tip.status, tip.assignee, tip.category) == ("verifying", "李四", "ponzi-recruitment")
    actor = f"cli:{HANDLER}"
    assert history == [("telegram:reporter", "status", None, "new"), (actor, "status", "new", "verifying"),
                       (actor, "assignee", None, "李四"), (actor, "category", "debt-relief", "ponzi-recruitment"),
                       (actor, "note", None, "已电话联系举报人")]

    backward = await fangfei("tips", "update", named, "--status", "new", "--as", HANDLER, env=env, check=False)
    assert backward.returncode == 1 and "only move forward" in backward.stderr
    no_reason = await fangfei("tips", "update", named, "--status", "closed", "--as", HANDLER, env=env, check=False)
    assert no_reason.returncode == 1 and "closing needs a reason" in no_reason.stderr
    for args in (("--status", "verifying", "--reason", "confirmed"), ("--status", "done"),
                 ("--status", "closed", "--reason", "maybe"), ("--category", "no-such-slug"), ()):
        usage = await fangfei("tips", "update", named, *args, "--as", HANDLER, env=env, check=False)
        assert usage.returncode == 2 and usage.stderr.strip(), args
    missing = await fangfei("tips", "update", "FF-1999-000001", "--status", "verifying", "--as", HANDLER, env=env,
                            check=False)
    assert missing.returncode == 1 and "no tip" in missing.stderr
    tip, unchanged = await tip_and_history(services, named)
    assert tip.status == "verifying" and unchanged == history

    closed = await fangfei("tips", "update", named, "--status", "closed", "--reason", "confirmed", "--as", "赵主任",
                           env=env)
    assert "status: verifying → closed" in closed.stdout and "closing_reason: - → confirmed" in closed.stdout
    tip, history = await tip_and_history(services, named)
    assert (tip.status, tip.closing_reason) == ("closed", "confirmed")
    assert history[-2:] == [("cli:赵主任", "status", "verifying", "closed"),
                            ("cli:赵主任", "closing_reason", None, "confirmed")]
    again = await fangfei("tips", "update", named, "--status", "closed", "--as", "赵主任", env=env)
    assert "nothing changed" in again.stdout


async def test_export_spreadsheet(services: Services, env: dict[str, str], tmp_path: Path) -> None:
    anonymous, named = await file_tips(services)
    await fangfei("tips", "update", named, "--status", "closed", "--reason", "out-of-scope", "--assign", "李四",
                  "--as", HANDLER, env=env)
    book_path = tmp_path / "台账.xlsx"
    out = (await fangfei("tips", "export", "--xlsx", str(book_path), env=env)).stdout
    assert "wrote 2 rows" in out
    book = load_workbook(book_path)
    assert book.sheetnames == ["线索台账"]
    sheet = book["线索台账"]
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[0] == HEADER and len(rows) == 3
    assert sheet.freeze_panes == "A2"
    assert all((sheet.column_dimensions[c].width or 0) >= 8 for c in "ABCDEFGHIJKLMNOPQR")
    col = {name: i for i, name in enumerate(HEADER)}
    first, second = rows[1], rows[2]
    assert [first[col["序号"]], second[col["序号"]]] == [1, 2]
    assert [first[col["受理编号"]], second[col["受理编号"]]] == [anonymous, named]
    assert [first[col["办理状态"]], second[col["办理状态"]]] == ["待核查", "已办结"]
    assert second[col["办结情况"]] == "不属于非法集资" and not first[col["办结情况"]]
    assert [first[col["是否实名"]], second[col["是否实名"]]] == ["匿名", "实名"]
    assert [first[col["证据数量"]], second[col["证据数量"]]] == [0, 2]
    assert [first[col["渠道"]], second[col["渠道"]]] == ["微信公众号", "Telegram"]
    assert first[col["线索类别"]] == "以养老服务为名" and second[col["线索类别"]] == "以解债、化债服务为名"
    assert (first[col["乡镇"]], first[col["村(社区)"]]) == ("城关镇", "东街社区")
    assert second[col["涉及主体"]] == "某某咨询公司" and second[col["涉及金额/人数"]] == "约5万元，30多人"
    assert second[col["发生时间"]] == "上个月" and second[col["承办人"]] == "李四"
    assert second[col["线索内容"]] == "有人收会员费，说交了就能帮忙化解网贷债务"
    tip, _ = await tip_and_history(services, named)
    assert second[col["受理时间"]] == shanghai_minute(tip.created_at)
    assert all(LOCAL_MINUTE.match(r[col["最近更新"]]) for r in rows[1:])
    cells = json.dumps(rows, ensure_ascii=False, default=str)
    assert NAME not in cells and PHONE not in cells and "举报人姓名" not in cells
    assert await audit_rows(services) == []

    only_new = tmp_path / "new.xlsx"
    assert "wrote 1 rows" in (await fangfei("tips", "export", "--xlsx", str(only_new), "--status", "new",
                                            env=env)).stdout
    assert [r[1] for r in load_workbook(only_new).active.iter_rows(min_row=2, values_only=True)] == [anonymous]

    # reveal: refused for someone not in tips.handlers (no file, no audit), then a handler named in a config file
    secret = tmp_path / "identities.xlsx"
    refused = await fangfei("tips", "export", "--xlsx", str(secret), "--reveal", "--as", HANDLER, env=env,
                            check=False)
    assert refused.returncode == 1 and "refused" in refused.stderr and not secret.exists()
    config = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    config.setdefault("tips", {})["handlers"] = [HANDLER]
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    file_env = {k: v for k, v in env.items() if k != "FANGFEI_TIPS__HANDLERS"}
    out = (await fangfei("--config", str(config_file), "tips", "export", "--xlsx", str(secret), "--reveal", "--as",
                         HANDLER, env=file_env)).stdout
    assert "wrote 2 rows" in out
    rows = [list(r) for r in load_workbook(secret).active.iter_rows(values_only=True)]
    assert rows[0] == [*HEADER, "举报人姓名", "联系方式"]
    assert rows[2][-2:] == [NAME, PHONE] and not any(rows[1][-2:])
    assert await audit_rows(services) == [(f"cli:{HANDLER}", "reveal-identity", named)]  # the named tip only
    assert secret.stat().st_mode & 0o077 == 0  # identities: readable by their owner only


async def test_identity_is_never_stored_in_clear(services: Services, settings: Settings,
                                                 handler_env: dict[str, str], tmp_path: Path) -> None:
    _, named = await file_tips(services)
    await fangfei("tips", "show", named, "--reveal", "--as", HANDLER, env=handler_env)
    await fangfei("tips", "update", named, "--status", "verifying", "--note", "已核实线索", "--as", HANDLER,
                  env=handler_env)
    await fangfei("tips", "export", "--xlsx", str(tmp_path / "x.xlsx"), "--reveal", "--as", HANDLER,
                  env=handler_env)
    if services.db.is_sqlite:
        await services.db.close()  # let go of the file, so what the bytes show is all there is
        database = Path(make_url(settings.database.url).database or "")
        raw = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
        assert "化解网贷债务".encode() in raw  # the check can see text at all
    else:
        async with services.db.session() as session:
            tables = ("tips", "tip_evidence", "tip_changes", "audit_log", "conversations", "outbox")
            rows = [row for table in tables
                    for row in (await session.scalars(text(f"SELECT t::text FROM {table} t"))).all()]
            raw = "\n".join(rows).encode()
        assert "化解网贷债务".encode() in raw
    assert NAME.encode() not in raw and PHONE.encode() not in raw


async def test_a_status_change_is_told_to_the_reporter(services: Services, engine: Engine,
                                                       env: dict[str, str]) -> None:
    postgres = not services.db.is_sqlite
    async with services.db.transaction() as session:
        web = await ledger.file(session, services.vault, "web", "web-reporter-9", Report(
            what="小区门口有人推销保本高息理财，年化百分之三十"), None, postgres)
        tg = await ledger.file(session, services.vault, "telegram", "1009", Report(
            what="群里有人拉人炒虚拟币，说稳赚不赔"), None, postgres)
    telegram_env = {**env, "FANGFEI_TELEGRAM__TOKEN": "123:abc"}  # this deployment can message Telegram users
    out = (await fangfei("tips", "update", web.receipt, "--status", "verifying", "--as", HANDLER,
                         env=telegram_env)).stdout
    assert "正在核查" in out
    await fangfei("tips", "update", tg.receipt, "--status", "closed", "--reason", "not-confirmed", "--as", HANDLER,
                  env=telegram_env)
    # the web reporter finds the news at their next message; the Telegram reporter's message waits in the outbox
    first = await engine.handle(Inbound(channel="web", user="web-reporter-9", chat="web-reporter-9", text="你好"))
    assert first[0].text.startswith(f"您的举报 {web.receipt} 有新进展：正在核查")
    async with services.db.session() as session:
        [queued] = list(await session.scalars(select(OutboxMessage)))
    assert queued.channel == "telegram" and services.vault.open(queued.target) == "1009"
    assert "已办结" in queued.payload["text"] and "暂未发现违法问题" in queued.payload["text"]
    assert "{" not in queued.payload["text"]  # the region's facts are filled in


async def test_evidence_goes_only_where_nothing_is_overwritten_and_only_what_is_written_is_audited(
        services: Services, telegram: FakeTelegram, bot: Bot, env: dict[str, str], tmp_path: Path) -> None:
    """`tips evidence --out` checks its destination before anything: a file, or a file already there under the name
    it would write, is one line and exit 2, with no audit row and nothing overwritten."""
    from tests.test_evidence import JPEG, fetchers, file_tip

    telegram.photo(1001, "photo-1", content=JPEG, queue=False)
    tip = await file_tip(services, "telegram", [Evidence("image", "photo-1")])
    await Dispatcher(services.db, fetchers(services, bot=bot)).run_once()  # the photo is kept, sealed

    async def refused(out: Path) -> str:
        proc = await fangfei("tips", "evidence", tip.receipt, "--out", str(out), "--as", HANDLER, env=env,
                             check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.splitlines()) == 1 and proc.stdout == ""
        assert await audit_rows(services) == []  # nothing exported, nothing audited
        return proc.stderr

    a_file = tmp_path / "notes.txt"
    a_file.write_text("不是文件夹", encoding="utf-8")
    assert "is a file, not a folder" in await refused(a_file)
    assert a_file.read_text(encoding="utf-8") == "不是文件夹"
    folder = tmp_path / "files"
    folder.mkdir()
    earlier = folder / f"{tip.receipt}-1.jpg"
    earlier.write_bytes(b"an earlier export, edited")
    assert "exists" in await refused(folder) and earlier.read_bytes() == b"an earlier export, edited"
    below_a_file = a_file / "sub"
    assert "cannot write" in await refused(below_a_file)

    fresh = tmp_path / "new" / "folder"  # created, with its parents
    out = (await fangfei("tips", "evidence", tip.receipt, "--out", str(fresh), "--as", HANDLER, env=env)).stdout
    assert (fresh / earlier.name).read_bytes() == JPEG and str(fresh / earlier.name) in out
    assert (fresh / earlier.name).stat().st_mode & 0o777 == 0o600
    assert await audit_rows(services) == [(f"cli:{HANDLER}", "export-evidence", tip.receipt)]
    # a tip whose files are not kept yet exports nothing and leaves no audit row
    telegram_missing = await file_tip(services, "telegram", [Evidence("image", "photo-not-fetched")])
    none = (await fangfei("tips", "evidence", telegram_missing.receipt, "--out", str(tmp_path / "none"), "--as",
                          HANDLER, env=env)).stdout
    assert "not kept yet" in none and not (tmp_path / "none").exists()
    assert len(await audit_rows(services)) == 1
