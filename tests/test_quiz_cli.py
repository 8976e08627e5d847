"""`fangfei quiz campaign …` as staff run it: a real process on the test database."""

from __future__ import annotations

import json
from pathlib import Path

from openpyxl import load_workbook

from tests.test_cli import run


def test_campaigns_are_created_listed_opened_closed_and_shown(db_env: dict[str, str]) -> None:
    run("db", "upgrade", env=db_env)
    made = json.loads(run("quiz", "campaign", "create", "--slug", "students-2026", "--name", "2026 学生防非知识竞赛",
                          "--audience", "student", "--questions", "8", "--attempts-per-day", "2",
                          "--start", "2026-12-10T08:00", "--end", "2026-12-20T20:00", "--json", env=db_env).stdout)
    assert made["state"] == "scheduled" and made["open"] is False and made["start"] == "2026-12-10T08:00:00+08:00"
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


def test_quiz_check_passes_on_the_bundled_banks_and_reports_every_problem(tmp_path: Path) -> None:
    ok = run("quiz", "check")
    assert ok.stdout.startswith("ok: ") and "elderly" in ok.stdout
    (tmp_path / "elderly.yaml").write_text(
        "questions:\n  - {id: elderly-001, audience: elderly, category: no-such-slug, difficulty: 1,\n"
        "     question: 有人说交一万每月返八百，您怎么办？, options: [交, 不交], answer: 也许, explanation: 别交。,\n"
        "     entry: no-such-entry}\n", encoding="utf-8")
    bad = run("quiz", "check", "--dir", str(tmp_path), check=False)
    assert bad.returncode == 1
    lines = bad.stdout.splitlines()
    assert all(line.startswith("elderly.yaml: elderly-001: ") for line in lines) and len(lines) >= 3
    assert any(": category: " in line for line in lines) and any(": answer: " in line for line in lines)
    assert any(": entry: " in line for line in lines)


def test_a_cadre_records_paper_results_counted_in_the_standings_and_apart_in_the_stats(
        db_env: dict[str, str], tmp_path: Path) -> None:
    run("db", "upgrade", env=db_env)
    run("quiz", "campaign", "create", "--slug", "paper-2026", "--name", "村里纸质答题", "--audience", "elderly",
        "--questions", "10", "--open", env=db_env)
    done = run("quiz", "record", "paper-2026", "--region", "qingshan-shiqiao", "--score", "8", "--name", "赵大爷",
               "--as", "网格员小刘", env=db_env)
    assert done.stdout.strip() == "paper-2026: recorded 8/10 on paper for qingshan-shiqiao"
    for bad, said in ((["--score", "11"], "between 0 and 10"), (["--region", "mars"], "not a region")):
        args = ["--region", "qingshan-shiqiao", "--score", "5", *bad, "--as", "小刘"]
        out = run("quiz", "record", "paper-2026", *args, env=db_env, check=False)
        assert out.returncode == 2 and said in out.stderr
    shown = json.loads(run("quiz", "campaign", "show", "paper-2026", "--json", env=db_env).stdout)
    shiqiao = next(r for r in shown["regions"] if r["code"] == "qingshan-shiqiao")
    assert shiqiao["participants"] == 1 and shown["players"] == [
        {"name": "赵*爷", "region": "青山镇 石桥村", "score": 8, "seconds": 0.0}]
    figures = json.loads(run("quiz", "stats", "paper-2026", "--json", env=db_env).stdout)
    assert figures["on_paper"] == 1 and figures["players"] == 0  # answered on the phone: none
    xlsx = tmp_path / "答题.xlsx"
    assert run("quiz", "export", "paper-2026", "--xlsx", str(xlsx), env=db_env).stdout.strip().endswith("答题.xlsx")
    book = load_workbook(xlsx)
    assert book.sheetnames == ["地区", "参赛者", "题目", "知识类别"]
    players = list(book["参赛者"].iter_rows(values_only=True))
    assert players[1][:5] == (1, "赵*爷", "青山镇 石桥村", 8, 10) and players[1][6] == "纸质（代录）"
    assert "赵大爷" not in str(list(book["参赛者"].iter_rows(values_only=True)))
    regions = {row[1]: row for row in book["地区"].iter_rows(min_row=2, values_only=True)}
    assert regions["青山镇 石桥村"][2] == 1 and regions["青山镇 石桥村"][3] == f"{1 / 640:.1%}"
    nowhere = run("quiz", "export", "paper-2026", "--xlsx", "/proc/x.xlsx", env=db_env, check=False)
    assert nowhere.returncode == 2 and "cannot write" in nowhere.stderr and "Traceback" not in nowhere.stderr
