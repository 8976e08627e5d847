"""WeChat throughput in safe mode: messages/s and p99 through `fangfei serve`'s /wechat at 100 concurrent
connections, beside a bare endpoint of the same framework in the same run.

    .venv/bin/python benchmarks/wechat_bench.py [--seconds 10] [--concurrency 100] [--paced 300] [--db URL]

Requests are built as WeChat builds them (wechatpy signature and AES encryption, unique MsgIds) before the run
and replayed by wrk (Debian package `wrk`). Target (issue 4): p99 well under WeChat's 5 s (aim <= 100 ms),
>= 500 messages/s per process. The messages are 500 users' mix: a third greetings, menu numbers and short
questions, the rest residents' own words from tests/data (517 different texts: questions to search, offers to
check), so no step is measured on a handful of texts repeated.

Two runs: saturated (every connection sends its next message as soon as it has an answer: the throughput, and
latency that is mostly queueing, since 100 waiting connections / N msg/s is the mean wait), and paced (the same
connections with random pauses, offering about --paced msg/s: the latency a resident sees under that load).
The server's CPU time per message is printed too: on a 2-core machine shared with wrk and PostgreSQL it is the
steadiest figure.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.chat_bench import UNLIMITED, free_port, parse_wrk  # noqa: E402
from tests.wechat_client import AES_KEY, APP_ID, TOKEN, WeChatServer, text_xml  # noqa: E402

MESSAGES = ["你好", "消费全返是真的吗", "有人推荐我投资养老院，每年返息百分之十二", "养老投姿", "火车票怎么买",
            "推荐一个人奖励两百，下线投资还有提成", "2", "1"]
# residents' own words: questions (kb_cases) and offers to check (risk_heldout), 509 different texts
RESIDENTS = [json.loads(line).get("q") or json.loads(line)["t"]
             for name in ("kb_cases.jsonl", "risk_heldout.jsonl")
             for line in (ROOT / "tests" / "data" / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def message(n: int) -> str:
    """The n-th message: every third one a greeting, menu number or short fixed question, the rest a resident's
    own words (so the run is not a handful of texts repeated)."""
    return MESSAGES[(n // 3) % len(MESSAGES)] if n % 3 == 0 else RESIDENTS[(n - n // 3 - 1) % len(RESIDENTS)]


THREADS = 2  # wrk threads; each replays its own slice of the requests


def build_requests(path: Path, count: int, first_id: int) -> None:
    server = WeChatServer(None, safe=True)  # type: ignore[arg-type]
    # new MsgIds every run and every file: repeated ones would take the de-dup path
    first_id = (int(time.time() * 1000) * 10 + first_id) * 1_000_000
    with path.open("w", encoding="utf-8") as out:
        for n in range(count):
            params = server.params(nonce=f"n{n}")
            encrypted = server.crypto.encrypt_message(text_xml(f"o-bench-{n % 500}", message(n),
                                                               msg_id=first_id + n), params["nonce"],
                                                      params["timestamp"])
            root = ET.fromstring(encrypted)
            params.update(encrypt_type="aes", msg_signature=root.findtext("MsgSignature") or "")
            body = f"<xml><ToUserName><![CDATA[gh]]></ToUserName><Encrypt><![CDATA[{root.findtext('Encrypt')}]]>" \
                   "</Encrypt></xml>"
            out.write(urllib.parse.urlencode(params) + "\t" + body + "\n")


def wrk(port: int, seconds: int, concurrency: int, script: str, *args: str) -> tuple[float, float, float, int]:
    out = subprocess.run(["wrk", f"-t{THREADS}", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", script,
                          f"http://127.0.0.1:{port}", "--", *args], capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("server exited")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


def log_summary(text: str) -> str:
    """How many warnings and errors the server logged, with the first few and the exceptions behind them (a
    traceback's last line, e.g. `asyncpg.exceptions.TooManyConnectionsError: sorry, too many clients already`)."""
    lines = text.splitlines()
    problems = [line for line in lines if any(mark in line for mark in (" ERROR ", " WARNING ", "ERROR:", "WARNING:"))]
    causes = Counter(line[:160] for before, line in itertools.pairwise(lines)
                     if before.startswith(" ") and line and not line[0].isspace()
                     and not line.startswith(("Traceback", "During handling", "The above exception", "20")))
    return (f"server log: {len(problems)} warnings or errors" + "".join(f"\n  {p}" for p in problems[:5])
            + "".join(f"\n  {n} x {cause}" for cause, n in causes.most_common()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--paced", type=int, default=300,
                        help="also measure latency with the connections together offering about this many msg/s")
    parser.add_argument("--db", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        requests, paced = Path(tmp) / "requests.tsv", Path(tmp) / "paced.tsv"
        build_requests(requests, 1000 * args.seconds, first_id=1)
        build_requests(paced, 2 * args.paced * args.seconds, first_id=2)
        port = free_port()
        bare = subprocess.Popen([sys.executable, "benchmarks/bare_app.py", str(port)], cwd=ROOT)
        try:
            wait(port, bare)
            rate, p50, p99, _ = wrk(port, args.seconds, args.concurrency, str(ROOT / "benchmarks" / "chat.lua"))
            print(f"bare starlette      {rate:8.0f} req/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
        finally:
            bare.terminate()
            bare.wait(10)
        env = {**os.environ, "FANGFEI_WECHAT__TOKEN": TOKEN, "FANGFEI_WECHAT__ENCODING_AES_KEY": AES_KEY,
               "FANGFEI_WECHAT__APP_ID": APP_ID, "FANGFEI_HTTP__PORT": str(port), "FANGFEI_LOG__LEVEL": "WARNING",
               "FANGFEI_DATABASE__URL": args.db, **UNLIMITED}
        subprocess.run([str(Path(sys.executable).parent / "fangfei"), "db", "upgrade"], cwd=ROOT, env=env,
                       check=True, capture_output=True)
        log = Path(tmp) / "server.log"
        proc = subprocess.Popen([str(Path(sys.executable).parent / "fangfei"), "serve"], cwd=ROOT, env=env,
                                stderr=log.open("wb"))
        try:
            wait(port, proc)
            cpu = cpu_seconds(proc.pid)
            rate, p50, p99, bad = wrk(port, args.seconds, args.concurrency, str(ROOT / "benchmarks" / "wechat.lua"),
                                      str(requests), str(THREADS))
            print(f"fangfei wechat (safe mode, {args.concurrency} connections) {rate:6.0f} msg/s  p50 {p50:6.1f} ms  "
                  f"p99 {p99:6.1f} ms  errors {bad}")
            used = cpu_seconds(proc.pid) - cpu
            per_message = used * 1000 / (rate * args.seconds)
            print(f"server CPU {used / args.seconds * 100:.0f} % of a core, {per_message:.2f} ms per message "
                  f"(one process with a core to itself: {1000 / per_message:.0f} msg/s)")
            if args.paced:
                pause = 1000 * args.concurrency / args.paced
                rate, p50, p99, bad = wrk(port, args.seconds, args.concurrency, str(ROOT / "benchmarks" / "wechat.lua"),
                                          str(paced), str(THREADS), f"{pause:.0f}")
                print(f"paced ({args.concurrency} connections, each waiting {pause:.0f} ms between messages) "
                      f"{rate:6.0f} msg/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  errors {bad}")
        finally:
            proc.terminate()
            proc.wait(10)
            print(log_summary(log.read_text(errors="replace")))


if __name__ == "__main__":
    main()
