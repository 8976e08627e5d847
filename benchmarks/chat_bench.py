"""Chat throughput: messages/s and latency through POST /api/chat of a real `fangfei serve` process, on SQLite and
on PostgreSQL, beside a bare endpoint of the same framework (Starlette + uvicorn) measured in the same run.

    .venv/bin/python benchmarks/chat_bench.py [--requests 3000] [--concurrency 32] [--db sqlite,postgresql]

Load comes from wrk (Debian package `wrk`, script benchmarks/chat.lua) when it is installed, else from an httpx
client (much slower: it then limits the figures). The load generator shares the machine's 2 cores with the server,
so the ratio to the bare endpoint is the fairer number. Target (issue 2): >= 500 messages/s per process on
PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_URL = os.environ.get("FANGFEI_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
MESSAGES = [
    "你好", "消费全返是真的吗", "有人推荐我投资养老院，每年返息百分之十二", "养老投姿", "火车票怎么买",
    "推荐一个人奖励两百，下线投资还有提成", "非法集资的四个特征是什么", "我在银行买了大额存单，利率两点几",
]


# a benchmark's few hundred simulated users send far more than any resident: the abuse limits would answer most
UNLIMITED = {"FANGFEI_LIMITS__MESSAGES_PER_MINUTE": "100000000",
             "FANGFEI_LIMITS__ADDRESS_MESSAGES_PER_MINUTE": "100000000"}

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_ready(base: str, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            try:
                if (await client.get(base + "/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("server did not become ready")


async def load(base: str, total: int, concurrency: int) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        async def worker() -> None:
            nonlocal errors
            for n in counter:
                body = {"user": f"bench-{n % 400}", "text": MESSAGES[n % len(MESSAGES)]}
                t = time.perf_counter()
                res = await client.post("/api/chat", json=body)
                latencies.append((time.perf_counter() - t) * 1000)
                errors += res.status_code != 200

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return total / elapsed, sorted(latencies), errors


async def load_wrk(base: str, seconds: int, concurrency: int) -> tuple[float, float, float, int]:
    proc = await asyncio.create_subprocess_exec(
        "wrk", "-t2", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", str(ROOT / "benchmarks" / "chat.lua"),
        base, stdout=asyncio.subprocess.PIPE)
    return parse_wrk((await proc.communicate())[0].decode())


def parse_wrk(out: str) -> tuple[float, float, float, int]:
    """wrk's report as (requests/s, p50 ms, p99 ms, errors: non-2xx answers and socket errors)."""

    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)", out, re.M).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return rate, ms("50%"), ms("99%"), errors


def start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


async def measure(name: str, cmd: list[str], env: dict[str, str], port: int, args: argparse.Namespace) -> float:
    proc = start(cmd, env)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(base, proc)
        await load(base, min(300, args.requests), args.concurrency)  # warm-up
        if shutil.which("wrk"):
            rate, p50, p99, errors = await load_wrk(base, args.seconds, args.concurrency)
        else:
            rate, lat, errors = await load(base, args.requests, args.concurrency)
            p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1]
        status = await asyncio.to_thread(Path(f"/proc/{proc.pid}/status").read_text)
        rss = status.split("VmRSS:")[1].split()[0]
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"{name:<22} {rate:8.0f} msg/s   p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   errors {errors}   "
          f"server RSS {int(rss) / 1024:.0f} MB")
    return rate


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000, help="requests (httpx load only)")
    parser.add_argument("--seconds", type=int, default=15, help="duration (wrk load only)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--db", default="sqlite,postgresql")
    args = parser.parse_args()
    tool = f"wrk for {args.seconds} s" if shutil.which("wrk") else f"httpx, {args.requests} requests"
    print(f"load: {tool}, {args.concurrency} concurrent connections, {os.cpu_count()} cores")
    port = free_port()
    bare = await measure("bare starlette", [str(BIN / "python"), "benchmarks/bare_app.py", str(port)], {}, port, args)
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"sqlite": f"sqlite+aiosqlite:///{tmp}/bench.db", "postgresql": PG_URL}
        for db in args.db.split(","):
            env = {"FANGFEI_DATABASE__URL": urls[db], "FANGFEI_HTTP__PORT": str(port), "FANGFEI_LOG__LEVEL": "WARNING",
                   **UNLIMITED}
            if db == "postgresql":
                await asyncio.to_thread(subprocess.run, [str(BIN / "fangfei"), "db", "upgrade"], cwd=ROOT,
                                        env={**os.environ, **env}, check=True, capture_output=True)
            rate = await measure(f"fangfei ({db})", [str(BIN / "fangfei"), "serve"], env, port, args)
            print(f"{'':<22} ratio to bare endpoint: {rate / bare:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
