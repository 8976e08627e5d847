"""`fangfei staff`: accounts made, listed, re-passworded and disabled from the command line; the CLI's --as names
an account, whose role decides who may reveal a reporter and who may approve a warning."""

from __future__ import annotations

import asyncio
import json
import subprocess

from sqlalchemy import select

from bot.services import Services
from bot.storage.models import AuditEntry, StaffAccount
from tests.conftest import TEST_SECRET_KEY
from tests.console_support import NAME, PASSWORD, file_two_townships
from tests.test_cli import run


def _env(services: Services) -> dict[str, str]:
    return {"FANGFEI_DATABASE__URL": services.settings.database.url, "FANGFEI_SECRET_KEY": TEST_SECRET_KEY,
            "FANGFEI_TIPS__HANDLERS": "[]", "FANGFEI_BROADCASTS__APPROVERS": '["旧名单审批人"]'}


async def fangfei(*args: str, env: dict[str, str], stdin: str | None = None,
                  check: bool = True) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run, *args, stdin=stdin, env=env, check=check)


async def test_accounts_from_the_command_line(services: Services) -> None:
    env = _env(services)
    made = await fangfei("staff", "add", "李办理", "--role", "handler", "--township", "hekou", "--password-stdin",
                         stdin=PASSWORD + "\n", env=env)
    assert "李办理: handler, hekou" in made.stdout
    for args, stdin, says in ((("staff", "add", "李办理", "--role", "staff"), PASSWORD, "already"),
                              (("staff", "add", "周", "--role", "boss"), PASSWORD, "unknown role"),
                              (("staff", "add", "周", "--role", "staff", "--township", "mars"), PASSWORD,
                               "unknown township"),
                              (("staff", "add", "周", "--role", "staff"), "short", "at least 10"),
                              (("staff", "add", "周", "--role", "staff"), None, "--password-stdin"),
                              (("staff", "passwd", "无此人", "--password-stdin"), PASSWORD, "no account")):
        refused = await fangfei(*args, *(("--password-stdin",) if stdin and "--password-stdin" not in args else ()),
                                stdin=(stdin + "\n") if stdin else "", env=env, check=False)
        assert refused.returncode == 2 and says in refused.stderr, (args, refused.stderr)
        assert "Traceback" not in refused.stderr
    listed = json.loads((await fangfei("staff", "list", "--json", env=env)).stdout)
    assert listed == [{"name": "李办理", "role": "handler", "townships": ["hekou"], "disabled": False,
                       "can_sign_in": True, "last_login": None}]
    assert "$argon2" not in (await fangfei("staff", "list", env=env)).stdout
    await fangfei("staff", "passwd", "李办理", "--password-stdin", stdin="another long password\n", env=env)
    await fangfei("staff", "disable", "李办理", env=env)
    assert json.loads((await fangfei("staff", "list", "--json", env=env)).stdout)[0]["disabled"] is True
    async with services.db.session() as session:
        actions = [a.action for a in await session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
        stored = await session.scalar(select(StaffAccount.password_hash))
    assert actions == ["staff-add", "staff-passwd", "staff-disable"]
    assert PASSWORD not in stored and "another long password" not in stored


async def test_the_account_role_decides_reveals_and_approvals(services: Services) -> None:
    env = _env(services)
    town, _ = await file_two_townships(services)
    for name, role in (("李办理", "handler"), ("钱审批", "approver"), ("旧名单审批人", "staff")):
        await fangfei("staff", "add", name, "--role", role, "--password-stdin", stdin=PASSWORD + "\n", env=env)
    shown = await fangfei("tips", "show", town, "--reveal", "--as", "李办理", env=env)
    assert NAME in shown.stdout
    refused = await fangfei("tips", "show", town, "--reveal", "--as", "钱审批", env=env, check=False)
    assert refused.returncode == 1 and "not a handler" in refused.stderr and NAME not in refused.stdout
    made = json.loads((await fangfei("broadcast", "create", "--text", "近期有人以养老名义收钱，请提醒家中老人。",
                                     "--audience", "elderly", "--channels", "web", "--as", "李办理", "--json",
                                     env=env)).stdout)
    # named in the old config list, but an account of that name is staff: the account decides
    old_list = await fangfei("broadcast", "approve", str(made["id"]), "--as", "旧名单审批人", env=env, check=False)
    assert old_list.returncode == 2 and "not an approver" in old_list.stderr
    await fangfei("broadcast", "approve", str(made["id"]), "--as", "钱审批", env=env)
    await fangfei("staff", "disable", "钱审批", env=env)
    again = json.loads((await fangfei("broadcast", "create", "--text", "请提醒家中老人，不要去听免费讲座。",
                                      "--audience", "elderly", "--channels", "web", "--as", "李办理", "--json",
                                      env=env)).stdout)
    disabled = await fangfei("broadcast", "approve", str(again["id"]), "--as", "钱审批", env=env, check=False)
    assert disabled.returncode == 2 and "not an approver" in disabled.stderr
