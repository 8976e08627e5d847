"""Run the `fangfei` command in a process of its own, started from a fork server that has imported the CLI already.

Each call is still a separate process with its own arguments, environment, working directory, stdin, stdout,
stderr, event loop, database connections and exit status, exactly as the installed `fangfei` script gets them;
what it saves is the interpreter's start-up and the imports (about 0.8 s a call, most of the suite's CLI time).
The fork server is a fresh interpreter (multiprocessing's "forkserver" start method), so nothing of the test
process leaks into a command. `FANGFEI_TEST_CLI=exec` runs the installed script instead; tests/test_cli.py keeps a
few calls on the script itself so that the entry point stays covered.
"""

from __future__ import annotations

import atexit
import io
import multiprocessing
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# what most commands import when they run: the fork server imports them once
PRELOAD = ["bot.cli", "bot.storage.database", "bot.storage.models", "bot.services", "quizzes.campaigns",
           "bot.tips.ledger", "aiosqlite", "asyncpg", "sqlalchemy.dialects.postgresql.asyncpg",
           "sqlalchemy.dialects.sqlite.aiosqlite"]
_context: multiprocessing.context.ForkServerContext | None = None


def _forkserver() -> multiprocessing.context.ForkServerContext:
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


def _command(args: list[str], env: dict[str, str], cwd: str, stdin: str, stdout: str, stderr: str) -> None:
    """The child: take the command's environment and files, then run the CLI as its script does."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    written = os.O_WRONLY | os.O_CREAT
    for fd, path, mode in ((0, stdin, os.O_RDONLY), (1, stdout, written), (2, stderr, written)):
        opened = os.open(path, mode, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdin = io.TextIOWrapper(open(0, "rb", closefd=False), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(open(1, "wb", closefd=False), encoding="utf-8")
    sys.stderr = io.TextIOWrapper(open(2, "wb", closefd=False), encoding="utf-8", errors="backslashreplace",
                                  line_buffering=True)
    sys.argv = [str(Path(sys.executable).parent / "fangfei"), *args]
    from bot.cli import main

    try:
        main()
    finally:
        atexit._run_exitfuncs()  # a child of the fork server leaves by os._exit, which runs none of them
        sys.stdout.flush()
        sys.stderr.flush()


def run_forked(args: list[str], *, stdin: str | None, env: dict[str, str], cwd: Path,
               timeout: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="fangfei-cli-") as tmp:
        paths = {name: os.path.join(tmp, name) for name in ("stdin", "stdout", "stderr")}
        Path(paths["stdin"]).write_text(stdin or "", encoding="utf-8")
        child = _forkserver().Process(target=_command, args=(list(args), dict(env), str(cwd), paths["stdin"],
                                                             paths["stdout"], paths["stderr"]))
        child.start()
        child.join(timeout)
        if child.exitcode is None:
            child.kill()
            child.join()
            raise subprocess.TimeoutExpired(["fangfei", *args], timeout)
        out = Path(paths["stdout"]).read_text(encoding="utf-8")
        err = Path(paths["stderr"]).read_text(encoding="utf-8")
    return subprocess.CompletedProcess(["fangfei", *args], child.exitcode, out, err)  # -N: killed by signal N
