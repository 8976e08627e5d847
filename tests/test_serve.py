"""`fangfei serve` as a real process over real HTTP: health, page, chat, concurrency, and a restart mid-flow."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
FANGFEI = str(Path(sys.executable).parent / "fangfei")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "FANGFEI_HTTP__PORT": str(self.port)}
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([FANGFEI, "serve"], cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stdout.read() if self.proc.stdout else ""
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError("fangfei serve did not become ready")

    def stop(self, sig: int = signal.SIGTERM) -> str:
        assert self.proc is not None
        self.proc.send_signal(sig)
        out, _ = self.proc.communicate(timeout=30)
        return out


@pytest.fixture
def server(db_url: str) -> Iterator[Server]:
    if not db_url.startswith("sqlite"):
        subprocess.run([FANGFEI, "db", "upgrade"], cwd=ROOT, env={**os.environ, "FANGFEI_DATABASE__URL": db_url},
                       check=True, capture_output=True)
    srv = Server({"FANGFEI_DATABASE__URL": db_url})
    srv.start()
    yield srv
    if srv.proc and srv.proc.poll() is None:
        srv.stop()


def chat(server: Server, user: str, text: str) -> list[dict]:
    res = httpx.post(server.base + "/api/chat", json={"user": user, "text": text}, timeout=10)
    assert res.status_code == 200, res.text
    return res.json()["replies"]


def test_serve_answers_and_survives_a_restart_mid_conversation(server: Server) -> None:
    page = httpx.get(server.base + "/")
    assert page.status_code == 200 and "防范非法集资小助手" in page.text
    replies = chat(server, "serve-1", "/start")
    check = next(o["value"] for r in replies for o in r["options"] if o["label"] == "风险自测")
    replies = chat(server, "serve-1", check)
    assert "怎么说的" in replies[0]["text"]
    log = server.stop()
    assert "消费全返" not in log  # no message text in the INFO log
    server.start()
    replies = chat(server, "serve-1", "交三千会员费，平台帮我还清五万网贷")
    assert "风险" in replies[0]["text"]


def test_serve_handles_concurrent_residents(server: Server) -> None:
    async def one(client: httpx.AsyncClient, n: int) -> str:
        res = await client.post("/api/chat", json={"user": f"crowd-{n % 10}", "text": "消费全返是真的吗"})
        assert res.status_code == 200
        return res.json()["replies"][0]["text"]

    async def crowd() -> list[str]:
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
            return await asyncio.gather(*(one(client, n) for n in range(60)))

    answers = asyncio.run(crowd())
    assert len(answers) == 60 and all("消费全返" in a for a in answers)


@pytest.mark.parametrize("url", ["sqlite+aiosqlite:////proc/no-such-place/fangfei.db",
                                 "postgresql+asyncpg://postgres@127.0.0.1:1/none"])
def test_unreachable_database_stops_with_one_clear_line(url: str) -> None:
    proc = subprocess.run([FANGFEI, "serve"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "FANGFEI_DATABASE__URL": url})
    assert proc.returncode == 2
    assert proc.stderr.startswith("cannot open the database") and "Traceback" not in proc.stderr
