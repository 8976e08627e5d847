"""Answer submissions through the quiz page's JSON API of a real `fangfei serve` process on PostgreSQL: throughput
at C concurrent players (wrk, one connection a player) and latency paced at R answers/s (a steady crowd), beside
a bare endpoint of the same framework (Starlette + uvicorn) under the same load in the same run.

    .venv/bin/python benchmarks/quiz_answers.py [--players 200] [--seconds 10] [--paced 300] [--db URL] [--trace]

Attempts are started through the API first (each player keeps its cookie), and every answer is a real one to the
attempt's current question; wrk sends them in an order where an attempt's next answer comes long after its last.
Targets (issue 13): >= 1,500 answers/s per process, p99 <= 100 ms paced at 300/s. The load generator shares the
machine's cores with the server: the ratio to the bare endpoint is the fairer figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

from benchmarks.chat_bench import UNLIMITED, free_port, load_wrk, parse_wrk, wait_ready  # noqa: E402
from benchmarks.quiz_bench import ensure_database  # noqa: E402

THREADS = 2
QUESTIONS = 10


async def prepare(base: str, slug: str, players: int, attempts: int, regions: list[str]) -> list[dict[str, Any]]:
    """`attempts` attempts spread over `players` players, started through the API; each with its cookie and the
    ids of its questions in order (the API shows one at a time; the bench reads the rest from the database)."""
    started: list[dict[str, Any]] = []
    gate = asyncio.Semaphore(32)

    async def player(n: int) -> None:
        async with gate, httpx.AsyncClient(base_url=base, timeout=60) as own:  # its own cookie jar
            for _ in range(attempts // players):
                res = await own.post(f"/api/quiz/{slug}/attempts",
                                     json={"region": regions[n % len(regions)], "name": f"测试{n}"})
                assert res.status_code == 201, res.text
                started.append({"attempt": res.json()["attempt"], "first": res.json()["question"]["id"],
                                "cookie": f"ff_quiz={own.cookies['ff_quiz']}"})

    await asyncio.gather(*(player(n) for n in range(players)))
    return started


async def question_ids(db_url: str, tokens: list[str]) -> dict[str, list[str]]:
    from sqlalchemy import select

    from bot.storage.database import Database
    from bot.storage.models import QuizAttempt

    db = Database(db_url)
    try:
        async with db.session() as session:
            rows = await session.execute(select(QuizAttempt.token, QuizAttempt.drawn)
                                         .where(QuizAttempt.token.in_(tokens)))
            return {token: [q["id"] for q in drawn["questions"]] for token, drawn in rows}
    finally:
        await db.close()


def answer_lines(slug: str, started: list[dict[str, Any]], ids: dict[str, list[str]]) -> list[str]:
    """Question-major order: every attempt's first answer, then every attempt's second …"""
    rng = random.Random(7)
    lines = []
    for position in range(QUESTIONS):
        for a in started:
            body = json.dumps({"question": ids[a["attempt"]][position], "choice": rng.randint(0, 1)})
            lines.append(f"/api/quiz/{slug}/attempts/{a['attempt']}/answers\t{a['cookie']}\t{body}")
    return lines


class Connection:
    """One player's keep-alive HTTP/1.1 connection, as lean as a client can be (httpx's pool costs so much CPU per
    request that, on these 2 shared cores, its queueing showed as seconds of latency against an endpoint that only
    waits 4 ms: the client, not the server, was measured)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, cookie: str) -> int:
        """The response's status (its body read and dropped)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nCookie: {cookie}\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
        await self.reader.readexactly(length)
        return int(head.split(" ", 2)[1])

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


async def paced(base: str, slug: str, started: list[dict[str, Any]], ids: dict[str, list[str]],
                rate: float, bare: bool = False, trace: bool = False) -> tuple[list[float], int]:
    """Players answering as people do: each attempt question after question, the next answer only once the last
    was answered; answers fall due at `rate` a second over all players (groups of 20 attempts at a time, so one in
    ten answers finishes an attempt, as in a real crowd), and each latency counts from when the answer was due (a
    slow server cannot hide by being sent less). Each player has a connection of its own."""
    latencies: list[float] = []
    errors = 0
    group = 20
    url = httpx.URL(base)
    traced: list[tuple[float, float, float, int]] = []  # due (from the start), latency, the request's own, position

    async def player(n: int, a: dict[str, Any]) -> None:
        nonlocal errors
        connection = Connection(url.host, url.port or 80)
        first = (n // group) * group * QUESTIONS + n % group
        try:
            for position in range(QUESTIONS):
                due = begin + (first + position * group) / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                body = json.dumps({"question": ids[a["attempt"]][position], "choice": (n + position) % 2}).encode()
                path = "/api/chat" if bare else f"/api/quiz/{slug}/attempts/{a['attempt']}/answers"
                sent = time.perf_counter()
                errors += await connection.post(path, body, a["cookie"]) != 200
                done = time.perf_counter()
                latencies.append(done - due)
                traced.append((due - begin, done - due, done - sent, position))
        finally:
            await connection.close()

    begin = time.perf_counter() + 0.5
    await asyncio.gather(*(player(n, a) for n, a in enumerate(started)))
    if trace:  # per second: the slowest answer, the slowest request on its own (not waiting for the one before),
        # and the slowest answer finishing an attempt
        for second in range(int(max(t for t, *_ in traced)) + 1):
            inside = [row for row in traced if second <= row[0] < second + 1]
            print(f"  {second:3d}s  n {len(inside):4d}  max {max(r[1] for r in inside) * 1000:7.1f} ms  "
                  f"own max {max(r[2] for r in inside) * 1000:7.1f} ms  last-question max "
                  f"{max([r[1] for r in inside if r[3] == QUESTIONS - 1] or [0]) * 1000:7.1f} ms")
    return sorted(latencies), errors


async def wrk_file(path: str, base: str, seconds: int, players: int) -> tuple[float, float, float, int]:
    proc = await asyncio.create_subprocess_exec(
        "wrk", f"-t{THREADS}", f"-c{players}", f"-d{seconds}s", "--latency", "-s",
        str(ROOT / "benchmarks" / "quiz.lua"), base, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "FANGFEI_BENCH_ANSWERS": path, "FANGFEI_BENCH_THREADS": str(THREADS)})
    return parse_wrk((await proc.communicate())[0].decode())


def percentiles(latencies: list[float]) -> str:
    p50, p99 = latencies[len(latencies) // 2], latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return f"p50 {p50 * 1000:6.1f} ms  p99 {p99 * 1000:6.1f} ms"


def start(cmd: list[str], env: dict[str, str], log: Any = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """A server process; what it logs goes to `log` (a file: a pipe nobody reads would stall it once full)."""
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--players", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--paced", type=float, default=300)
    parser.add_argument("--db", default="postgresql+asyncpg://postgres@127.0.0.1:5432/quiz_bench")
    parser.add_argument("--trace", action="store_true", help="the slowest paced answers, second by second")
    parser.add_argument("--profile", help="write py-spy's profile of the server under wrk's load here (needs py-spy)")
    args = parser.parse_args()
    await ensure_database(args.db)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    print(f"{args.players} concurrent players (wrk, {THREADS} threads) for {args.seconds} s; "
          f"paced {args.paced:.0f} answers/s; {os.cpu_count()} cores shared with the load generator")

    bare = start([str(BIN / "python"), "benchmarks/bare_app.py", str(port)], {})
    try:
        await wait_ready(base, bare)
        bare_rate, bare_p50, bare_p99, _ = await load_wrk(base, args.seconds, args.players)
        await asyncio.sleep(2)
        fake = [{"attempt": f"a{n}", "cookie": "ff_quiz=x"} for n in range(max(args.players, int(
            args.paced * args.seconds / QUESTIONS)))]
        bare_paced, _ = await paced(base, "", fake, {a["attempt"]: ["q"] * QUESTIONS for a in fake}, args.paced,
                                    bare=True)
    finally:
        bare.terminate()
        bare.wait(10)
    print(f"bare starlette        {bare_rate:8.0f} req/s      p50 {bare_p50:6.1f} ms  p99 {bare_p99:6.1f} ms")
    print(f"bare paced {args.paced:.0f}/s       {len(bare_paced):8d} requests   {percentiles(bare_paced)}  "
          "(the load generator's own share)")

    env = {"FANGFEI_DATABASE__URL": args.db, "FANGFEI_HTTP__PORT": str(port), "FANGFEI_LOG__LEVEL": "WARNING",
           **UNLIMITED}
    await asyncio.to_thread(subprocess.run, [str(BIN / "fangfei"), "db", "upgrade"], cwd=ROOT,
                            env={**os.environ, **env}, check=True, capture_output=True)
    slug = f"bench-{int(time.time())}"
    await asyncio.to_thread(subprocess.run, [
        str(BIN / "fangfei"), "quiz", "campaign", "create", "--slug", slug, "--name", "压测", "--audience", "elderly",
        "--questions", str(QUESTIONS), "--attempts-per-day", "100", "--open"],
        cwd=ROOT, env={**os.environ, **env}, check=True, capture_output=True)
    log = tempfile.TemporaryFile()
    server = start([str(BIN / "fangfei"), "serve"], env, log)
    try:
        await wait_ready(base, server)
        async with httpx.AsyncClient(base_url=base) as client:
            regions = [r["code"] for r in (await client.get(f"/api/quiz/{slug}")).json()["regions"]]
        burst = int(args.seconds * 4000 / QUESTIONS)  # more answers than the server can take in the time
        t = time.perf_counter()
        started = await prepare(base, slug, args.players, burst, regions)
        steady = await prepare(base, slug, args.players,
                               max(args.players, int(args.paced * args.seconds / QUESTIONS)), regions)
        ids = await question_ids(args.db, [a["attempt"] for a in started + steady])
        print(f"started {len(started) + len(steady)} attempts through the API in {time.perf_counter() - t:.1f} s")
        with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as f:
            f.write("\n".join(answer_lines(slug, started, ids)) + "\n")
        spy = None
        if args.profile:
            spy = await asyncio.create_subprocess_exec(
                str(BIN / "py-spy"), "record", "-p", str(server.pid), "-d", str(args.seconds), "-f", "raw", "-o",
                args.profile, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            rate, p50, p99, errors = await wrk_file(f.name, base, args.seconds, args.players)
        finally:
            os.unlink(f.name)
            if spy is not None:
                await spy.wait()
        print(f"fangfei answers       {rate:8.0f} answers/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
              f"errors {errors}   ratio to bare {rate / bare_rate:.2f}")
        await asyncio.sleep(3)  # what wrk left queued is answered first
        lat, errors = await paced(base, slug, steady, ids, args.paced, trace=args.trace)
        print(f"paced {args.paced:.0f}/s            {len(lat):8d} answers    {percentiles(lat)}  errors {errors}")
        status = await asyncio.to_thread(Path(f"/proc/{server.pid}/status").read_text)
        print(f"server RSS {int(status.split('VmRSS:')[1].split()[0]) / 1024:.0f} MB")
    finally:
        server.terminate()
        server.wait(10)
        log.seek(0)
        lines = log.read().decode(errors="replace").splitlines()
        log.close()
    print(f"server log: {len(lines)} lines" + "".join(f"\n  {line[:200]}" for line in lines[:5]))
    print("targets: >= 1,500 answers/s per process; p99 <= 100 ms paced at 300/s")


if __name__ == "__main__":
    asyncio.run(main())
