"""`fangfei quiz campaign …` as staff run it: a real process on the test database."""

from __future__ import annotations

import json

from tests.test_cli import run


def test_campaigns_are_created_listed_opened_closed_and_shown(db_env: dict[str, str]) -> None:
    run("db", "upgrade", env=db_env)
    made = json.loads(run("quiz", "campaign", "create", "--slug", "students-2026", "--name", "2026 学生防非知识竞赛",
                          "--audience", "student", "--questions", "8", "--attempts-per-day", "2",
                          "--start", "2026-12-10T08:00", "--end", "2026-12-20T20:00", "--json", env=db_env).stdout)
    assert made["state"] == "draft" and made["open"] is False and made["start"] == "2026-12-10T08:00:00+08:00"
    again = run("quiz", "campaign", "create", "--slug", "students-2026", "--name", "x", "--audience", "student",
                env=db_env, check=False)
    assert again.returncode == 2 and again.stderr.strip() == "a campaign 'students-2026' exists already"
    for bad, said in ((["--audience", "cats"], "audience must be one of"), (["--township", "mars"], "--township"),
                      (["--start", "tomorrow"], "is not an ISO date")):
        out = run("quiz", "campaign", "create", "--slug", "x-1", "--name", "x", "--audience", "elderly", *bad,
                  env=db_env, check=False)
        assert out.returncode == 2 and said in out.stderr and "Traceback" not in out.stderr
    assert run("quiz", "campaign", "open", "students-2026", env=db_env).stdout.strip() == "students-2026: open"
    listed = json.loads(run("quiz", "campaign", "list", "--json", env=db_env).stdout)
    assert [(c["slug"], c["state"]) for c in listed] == [("students-2026", "open")]
    shown = json.loads(run("quiz", "campaign", "show", "students-2026", "--json", env=db_env).stdout)
    assert {r["code"] for r in shown["regions"]} == {"school-county-no1", "school-qingshan-middle",
                                                     "school-county-vocational"}
    assert shown["players"] == []
    figures = json.loads(run("quiz", "stats", "students-2026", "--json", env=db_env).stdout)
    assert (figures["players"], figures["attempts"], figures["pass_rate"]) == (0, 0, None)
    run("quiz", "campaign", "close", "students-2026", env=db_env)
    closed = json.loads(run("quiz", "campaign", "show", "students-2026", "--json", env=db_env).stdout)
    assert closed["state"] == "closed"
    missing = run("quiz", "campaign", "close", "nope", env=db_env, check=False)
    assert missing.returncode == 2 and missing.stderr.strip() == "no campaign 'nope'"
