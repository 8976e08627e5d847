"""WeChat throughput in safe mode: messages/s and p99 through `fangfei serve`'s /wechat at 100 concurrent
connections, beside a bare endpoint of the same framework in the same run.

    .venv/bin/python benchmarks/wechat_bench.py [--seconds 10] [--concurrency 100] [--db URL]

Requests are built as WeChat builds them (wechatpy signature and AES encryption, unique MsgIds) before the run
and replayed by wrk (Debian package `wrk`). Target (issue 4): p99 well under WeChat's 5 s (aim <= 100 ms),
>= 500 messages/s per process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.chat_bench import free_port, parse_wrk  # noqa: E402
from tests.wechat_client import AES_KEY, APP_ID, TOKEN, WeChatServer, text_xml  # noqa: E402

MESSAGES = ["你好", "消费全返是真的吗", "有人推荐我投资养老院，每年返息百分之十二", "养老投姿", "火车票怎么买",
            "推荐一个人奖励两百，下线投资还有提成", "2", "1"]


def build_requests(path: Path, count: int) -> None:
    server = WeChatServer(None, safe=True)  # type: ignore[arg-type]
    first_id = int(time.time() * 1000) * 100_000  # new MsgIds every run: repeated ones would hit the de-dup path
    with path.open("w", encoding="utf-8") as out:
        for n in range(count):
            params = server.params(nonce=f"n{n}")
            encrypted = server.crypto.encrypt_message(text_xml(f"o-bench-{n % 500}", MESSAGES[n % len(MESSAGES)],
                                                               msg_id=first_id + n), params["nonce"],
                                                      params["timestamp"])
            root = ET.fromstring(encrypted)
            params.update(encrypt_type="aes", msg_signature=root.findtext("MsgSignature") or "")
            body = f"<xml><ToUserName><![CDATA[gh]]></ToUserName><Encrypt><![CDATA[{root.findtext('Encrypt')}]]>" \
                   "</Encrypt></xml>"
            out.write(urllib.parse.urlencode(params) + "\t" + body + "\n")


def wrk(port: int, seconds: int, concurrency: int, script: str, *args: str) -> tuple[float, float, float, int]:
    out = subprocess.run(["wrk", "-t2", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", script,
                          f"http://127.0.0.1:{port}", "--", *args], capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--db", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        requests = Path(tmp) / "requests.tsv"
        build_requests(requests, 40000)
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
               "FANGFEI_DATABASE__URL": args.db, "FANGFEI_DATABASE__POOL_SIZE": str(args.concurrency)}
        subprocess.run([str(Path(sys.executable).parent / "fangfei"), "db", "upgrade"], cwd=ROOT, env=env,
                       check=True, capture_output=True)
        proc = subprocess.Popen([str(Path(sys.executable).parent / "fangfei"), "serve"], cwd=ROOT, env=env)
        try:
            wait(port, proc)
            rate, p50, p99, bad = wrk(port, args.seconds, args.concurrency, str(ROOT / "benchmarks" / "wechat.lua"),
                                      str(requests))
            print(f"fangfei wechat (safe mode, {args.concurrency} connections) {rate:6.0f} msg/s  p50 {p50:6.1f} ms  "
                  f"p99 {p99:6.1f} ms  errors {bad}")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
