"""The local chat channel (`fangfei chat`): a conversation on the terminal, or one message a line from a pipe."""

from __future__ import annotations

import sys
from typing import TextIO

from bot.engine import Engine
from bot.types import Inbound, Reply

USER = "local"


def render(replies: list[Reply]) -> str:
    """Replies as plain text, options as numbered lines (a bare number picks one)."""
    parts: list[str] = []
    for reply in replies:
        lines = [reply.text]
        lines += [f"  {i}. {o.label}" for i, o in enumerate(reply.options, 1)]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


async def run(engine: Engine, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout, user: str = USER) -> None:
    interactive = stdin.isatty()

    async def send(text: str) -> None:
        replies = await engine.handle(Inbound(channel="local", user=user, chat=user, text=text, numbered=True))
        stdout.write(render(replies) + "\n\n")
        stdout.flush()

    if interactive:
        stdout.write("（输入消息后回车；输入 数字 选择选项；Ctrl-D 退出）\n\n")
        await send("/start")
    while True:
        if interactive:
            stdout.write("> ")
            stdout.flush()
        line = stdin.readline()
        if not line:
            break
        line = line.rstrip("\r\n")
        if not interactive or line.strip():
            await send(line)
