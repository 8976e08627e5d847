"""The `fangfei` command as an operator runs it: chat from a pipe, ask/check JSON, kb check/gaps, db, config."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import yaml

from tests.cli_process import run_forked

ROOT = Path(__file__).resolve().parent.parent
FANGFEI = str(Path(sys.executable).parent / "fangfei")


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None, cwd: Path = ROOT,
        check: bool = True, script: bool = False) -> subprocess.CompletedProcess[str]:
    """`fangfei ARGS` in a process of its own: forked from a server that has imported the CLI already
    (tests/cli_process.py), or with `script` (or FANGFEI_TEST_CLI=exec) the installed script itself."""
    full_env = {**os.environ, **(env or {})}
    if script or os.environ.get("FANGFEI_TEST_CLI") == "exec":
        proc = subprocess.run([FANGFEI, *args], input=stdin, capture_output=True, text=True, env=full_env, cwd=cwd,
                              timeout=120)
    else:
        proc = run_forked(list(args), stdin=stdin, env=full_env, cwd=cwd, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_chat_from_a_pipe_runs_a_whole_conversation(tmp_path: Path) -> None:
    env = {"FANGFEI_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"}
    lines = ["你好", "2", "有人说交三千会员费，平台帮我还清五万网贷", "1", "1", "",
             "火车票怎么买", "订阅提醒", "2", "1", "1", "退订"]
    out = run("chat", stdin="\n".join(lines) + "\n", env=env, script=True).stdout  # the installed script itself
    assert "防范非法集资小助手" in out
    assert "  2. 风险自测" in out
    assert "请把对方是怎么说的告诉我" in out
    assert "风险" in out and "先交费" in out
    assert "详细说说" in out and "常见套路" in out     # option 1 after the check opens the explaining entry
    assert "没看懂" in out                             # the empty line
    assert "答不上来" in out
    assert "订阅好了（学生 · 城关镇 东街社区）" in out
    assert "已经退订" in out
    # the database file was created and migrated by `chat` itself, and the gap is listed for editors
    gaps = run("kb", "gaps", "--json", env=env).stdout
    assert {"text": "火车票怎么买", "count": 1} in json.loads(gaps)


def test_ask_json_single_and_batch() -> None:
    asked = run("ask", "--json", "--top", "2", "商城说消费全返，买多少返多少，是真的吗")
    assert asked.stderr == ""  # no "Building prefix dict …" from jieba
    one = json.loads(asked.stdout)
    assert one["matched"] is True and one["query"] == "商城说消费全返，买多少返多少，是真的吗"
    assert len(one["results"]) == 2 and one["results"][0]["category"] == "consumer-rebate"
    assert one["results"][0]["score"] >= one["results"][1]["score"]
    assert set(one["results"][0]) == {"id", "category", "title", "score"} and one["answer"]
    batch = run("ask", "--json", "--batch", "-", stdin="养老投姿\n\n天气预报\n").stdout.strip().splitlines()
    rows = [json.loads(line) for line in batch]
    assert [r["query"] for r in rows] == ["养老投姿", "天气预报"]
    assert rows[0]["matched"] and not rows[1]["matched"] and "12345" in rows[1]["answer"]


def test_check_json_single_and_batch(tmp_path: Path) -> None:
    one = json.loads(run("check", "--json", "投资电影保底收益百分之三十").stdout)
    assert one["risky"] is True and one["level"] in ("high", "medium")
    assert {s["feature"] for s in one["signals"]} >= {"利诱性"}
    assert all(s["evidence"] for s in one["signals"]) and one["advice"] and one["entry"]
    batch = tmp_path / "offers.txt"
    batch.write_text("我在银行买了大额存单，利率两点几\n推荐一个人奖励两百，下线投资还有提成\n", encoding="utf-8")
    rows = [json.loads(x) for x in run("check", "--json", "--batch", str(batch)).stdout.splitlines()]
    assert [r["risky"] for r in rows] == [False, True]
    assert rows[0]["signals"] == [] and rows[0]["level"] == "low"


def test_kb_check_passes_on_the_bundled_base() -> None:
    out = run("kb", "check").stdout
    assert out.startswith("ok:")


def test_kb_check_reports_every_problem(tmp_path: Path) -> None:
    entries = tmp_path / "entries"
    entries.mkdir()
    good = yaml.safe_load((ROOT / "knowledge" / "entries" / "debt-relief.yaml").read_text(encoding="utf-8"))
    bad = dict(good[0], id="Bad ID", category="no-such-slug", summary="长" * 61, related=["missing-id"],
               questions=["只有一个问题"])
    bad["body"] = dict(good[0]["body"], 怎么办="打 {nowhere} 举报")
    (entries / "broken.yaml").write_text(yaml.safe_dump([bad], allow_unicode=True), encoding="utf-8")
    (entries / "invalid.yaml").write_text("- id: [unclosed\n", encoding="utf-8")
    proc = run("kb", "check", "--dir", str(entries), check=False)
    assert proc.returncode == 1
    out = proc.stdout
    for expected in ("broken.yaml: Bad ID: id:", "broken.yaml: Bad ID: category: unknown taxonomy slug",
                     "broken.yaml: Bad ID: summary: 61 characters", "broken.yaml: Bad ID: questions: 1 questions",
                     "broken.yaml: Bad ID: body.怎么办: placeholder {nowhere}", "invalid.yaml: -: -: invalid YAML"):
        assert expected in out, out


def test_db_upgrade(db_env: dict[str, str]) -> None:
    assert "up to date" in run("db", "upgrade", env=db_env).stdout
    assert "up to date" in run("db", "upgrade", env=db_env).stdout  # idempotent


def test_invalid_config_stops_with_one_line_per_problem(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("http:\n  port: 99999\nsearch:\n  threshold: 2\nnosuch: 1\n", encoding="utf-8")
    proc = run("--config", str(cfg), "kb", "check", check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3, lines
    assert any("http.port" in x for x in lines) and any("search.threshold" in x for x in lines)
    assert any("nosuch: unknown setting" in x for x in lines)
    env_bad = run("kb", "check", env={"FANGFEI_DATABASE__URL": "mysql://x"}, check=False)
    assert env_bad.returncode == 2 and "database.url" in env_bad.stderr
    via_env = run("kb", "check", env={"FANGFEI_CONFIG": str(tmp_path / "missing.yaml")}, check=False)
    assert via_env.returncode == 2 and "config file not found" in via_env.stderr


def test_environment_overrides_region_facts(tmp_path: Path) -> None:
    env = {"FANGFEI_REGION__HOTLINE": "96000", "FANGFEI_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"}
    row = json.loads(run("ask", "--json", "火车票怎么买", env=env).stdout)
    assert "96000" in row["answer"]


def test_the_secret_key_is_required_in_production_and_generated_locally(tmp_path: Path) -> None:
    env = {"FANGFEI_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'k.db'}", "FANGFEI_SECRET_KEY": ""}
    refused = run("chat", stdin="你好\n", env={**env, "FANGFEI_MODE": "production"}, check=False)
    assert refused.returncode == 2 and "FANGFEI_SECRET_KEY" in refused.stderr and "Traceback" not in refused.stderr
    in_file = tmp_path / "secret.yaml"
    in_file.write_text((ROOT / "config.yaml").read_text(encoding="utf-8") + "\nsecret_key: written-in-the-file\n",
                       encoding="utf-8")
    assert "FANGFEI_SECRET_KEY" in run("--config", str(in_file), "kb", "check", env=env, check=False).stderr
    # locally: a key is made on first use, in data/ under the working directory, readable by its owner only
    steps = ["我要举报", "有人在村里收钱搞养老项目，说每月返利", "1", "4", "1", "1", "2", "1"]
    out = run("--config", str(ROOT / "config.yaml"), "chat", stdin="\n".join(steps) + "\n", env=env,
              cwd=tmp_path)
    key = tmp_path / "data" / "secret.key"
    assert "FF-" in out.stdout and key.exists() and oct(key.stat().st_mode & 0o777) == "0o600"
    assert "FANGFEI_SECRET_KEY" in out.stderr  # the warning says what to do


def test_a_weak_secret_key_is_refused_in_production_and_a_strong_one_accepted(tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    env = {"FANGFEI_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'k.db'}", "FANGFEI_MODE": "production"}
    for weak in ("a", "test-only-secret-key", "a" * 64, "abcabcabcabcabcabcabcabcabcabcabcabc"):
        proc = run("kb", "check", env={**env, "FANGFEI_SECRET_KEY": weak}, check=False)
        assert proc.returncode == 2 and proc.stdout == "", proc.stdout
        [line] = proc.stderr.splitlines()
        assert "FANGFEI_SECRET_KEY" in line and "too weak" in line and "secrets.token_urlsafe(32)" in line
        assert len(weak) < 10 or weak not in line  # the key itself is not repeated
    for strong in (Fernet.generate_key().decode(), secrets.token_urlsafe(32)):
        assert run("kb", "check", env={**env, "FANGFEI_SECRET_KEY": strong}).stdout.startswith("ok:")
    # locally the tests' short key still works
    assert run("kb", "check", env={**env, "FANGFEI_MODE": "local", "FANGFEI_SECRET_KEY": "test-only-secret-key"})


def test_file_arguments_that_are_not_there_are_one_line_and_exit_2(tmp_path: Path) -> None:
    not_json = tmp_path / "cases.jsonl"
    not_json.write_text('{"q": "消费全返"}\n{oops\n', encoding="utf-8")
    a_file = tmp_path / "entries.yaml"
    a_file.write_text("[]\n", encoding="utf-8")
    nope = str(tmp_path / "nope")
    for args, expected in [(("ask", "--batch", nope), f"--batch: {nope}: no such file"),
                           (("check", "--json", "--batch", nope), f"--batch: {nope}: no such file"),
                           (("check", "--batch", str(tmp_path)), f"--batch: {tmp_path}: not a file"),
                           (("eval", "kb", nope), f"{nope}: no such file"),
                           (("eval", "risk", nope), f"{nope}: no such file"),
                           (("eval", "kb", str(not_json)), f"{not_json}: not a readable JSONL set"),
                           (("kb", "check", "--dir", nope), f"--dir: {nope}: no such folder"),
                           (("kb", "check", "--dir", str(a_file)), f"--dir: {a_file}: not a folder")]:
        proc = run(*args, check=False)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        [line] = proc.stderr.splitlines()
        assert line.startswith(expected) and proc.stdout == "", (args, proc.stderr)


def test_an_sqlite_file_in_a_folder_that_does_not_exist_is_refused_not_made(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "fangfei.db"
    proc = run("db", "upgrade", env={"FANGFEI_DATABASE__URL": f"sqlite+aiosqlite:///{missing}"}, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert "database.url" in line and f"{missing.parent} does not exist" in line
    assert not missing.parent.exists()
    # the local default's data/ is made on a fresh checkout (here: an empty working directory)
    fresh = run("--config", str(ROOT / "config.yaml"), "db", "upgrade", cwd=tmp_path,
                env={"FANGFEI_DATABASE__URL": "sqlite+aiosqlite:///data/fangfei.db"})
    assert "up to date" in fresh.stdout and (tmp_path / "data" / "fangfei.db").is_file()
