"""The `fangfei` command: the root app, its global options, and one module per command group."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli import broadcast, cadres, chat, db, evaluation, knowledge, quiz, staff, tips, wechat
from bot.cli.common import State

app = typer.Typer(help="fangfei 防非 — an assistant against illegal fundraising.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
# in this order in `fangfei --help`; a group without a name (chat, knowledge) adds its commands to the root
app.add_typer(chat.app)
app.add_typer(knowledge.app)
app.add_typer(db.app, name="db")
app.add_typer(evaluation.app, name="eval")
app.add_typer(wechat.app, name="wechat")
app.add_typer(tips.app, name="tips")
app.add_typer(quiz.app, name="quiz")
app.add_typer(broadcast.app, name="broadcast")
app.add_typer(cadres.app, name="cadres")
app.add_typer(staff.app, name="staff")


@app.callback()
def _options(config: Annotated[str | None, typer.Option("--config", help="Config file (default: ./config.yaml, "
                                                          "or FANGFEI_CONFIG).")] = None) -> None:
    State.config = config


def main() -> None:
    app()
