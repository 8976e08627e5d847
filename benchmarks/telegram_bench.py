"""Telegram webhook throughput: updates/s accepted by `fangfei serve`'s webhook and replies/s delivered to a fake
Bot API server on 127.0.0.1 (tests/fake_telegram.py), measured beside the web-chat figure of chat_bench.py.

    .venv/bin/python benchmarks/telegram_bench.py [--seconds 10] [--concurrency 32] [--limit 30]

`--limit` is telegram.max_messages_per_second: 30 is Telegram's own flood limit, which caps replies/s whatever the
server can do; a high value (e.g. 10000) shows what the process itself sustains. Needs wrk (Debian package `wrk`).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.chat_bench import UNLIMITED, free_port  # noqa: E402
from tests.fake_telegram import FakeTelegram  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--limit", type=float, default=30)
    parser.add_argument("--db", default="sqlite+aiosqlite:///data/bench-telegram.db")
    args = parser.parse_args()
    with FakeTelegram() as fake:
        port = free_port()
        env = {**os.environ, "FANGFEI_TELEGRAM__TOKEN": fake.token, "FANGFEI_TELEGRAM__BASE_URL": fake.base_url,
               "FANGFEI_TELEGRAM__WEBHOOK_URL": "https://bench.invalid/telegram/webhook",
               "FANGFEI_TELEGRAM__WEBHOOK_SECRET": "bench-secret", "FANGFEI_HTTP__PORT": str(port),
               "FANGFEI_TELEGRAM__MAX_MESSAGES_PER_SECOND": str(args.limit), "FANGFEI_LOG__LEVEL": "WARNING",
               "FANGFEI_DATABASE__URL": args.db, **UNLIMITED}
        proc = subprocess.Popen([str(Path(sys.executable).parent / "fangfei"), "serve"], cwd=ROOT, env=env)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200 and fake.webhook:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("fangfei serve did not start")
                time.sleep(0.2)
            before = len(fake.sent)
            start = time.monotonic()
            out = subprocess.run(["wrk", "-t2", f"-c{args.concurrency}", f"-d{args.seconds}s", "--latency", "-s",
                                  str(ROOT / "benchmarks" / "telegram.lua"), f"http://127.0.0.1:{port}"],
                                 capture_output=True, text=True, check=True).stdout
            accepted = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
            total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
            # wait for the queue to drain (bounded), then count replies
            drain_deadline = time.monotonic() + 120
            last, stable = -1, 0
            while time.monotonic() < drain_deadline and stable < 3:
                now = len(fake.sent) - before
                stable = stable + 1 if now == last else 0
                last = now
                time.sleep(0.5)
            elapsed = time.monotonic() - start
            replies = len(fake.sent) - before
            print(f"webhook: {accepted:.0f} updates/s accepted ({total} updates, {args.concurrency} connections)")
            print(f"replies: {replies} delivered in {elapsed:.1f} s = {replies / elapsed:.0f} messages/s "
                  f"(limit {args.limit:g}/s)")
            print(f"violations: {len(fake.violations)}  rate violations: {len(fake.rate_violations)}")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
