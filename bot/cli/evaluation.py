"""`eval`: quality figures of the knowledge search and the risk check on labelled JSONL sets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from bot.cli.common import console, existing, say_error, services, settings

if TYPE_CHECKING:
    from knowledge.schema import KnowledgeBase
    from knowledge.search import Asked, SearchResult

app = typer.Typer(help="Quality figures on labelled JSONL sets.")


@app.command("kb")
def eval_kb(file: Annotated[Path | None, typer.Argument()] = None,
            folds: Annotated[int, typer.Option("--folds", help="cross-validate on the base's own questions")] = 0,
            by_writer: Annotated[bool, typer.Option("--by-writer", help="hold out each writer of "
                                                    "knowledge/asked.jsonl in turn")] = False,
            show_misses: Annotated[bool, typer.Option("--misses")] = False) -> None:
    """Top-1, top-3 and no-match accuracy, ours beside plain BM25: on a labelled FILE; with --folds K on the
    knowledge base's own sample questions, everyday and residents' questions, each fold held out of the index it
    is asked against; with --by-writer on the residents' messages, all of one writer's held out at a time."""
    from bot.evaluation import cross_validate, score_kb
    from knowledge.search import PlainBM25, SearchIndex, load_asked, load_offtopic

    if [file is not None, folds != 0, by_writer].count(True) != 1:
        say_error("give one of FILE, --folds K or --by-writer")
        raise typer.Exit(2)
    if folds and not 2 <= folds <= 20:
        say_error("--folds: between 2 and 20")
        raise typer.Exit(2)
    asked = load_asked() if file is None else []
    if by_writer and len({a.by for a in asked if a.by}) < 2:
        say_error("--by-writer: knowledge/asked.jsonl names fewer than two writers")
        raise typer.Exit(2)
    s = settings()
    cases = _cases(file) if file is not None else []
    svc = services(s)
    if file is None:
        threshold = s.search.threshold

        def ours_on(kb: KnowledgeBase, everyday: list[str], asked: list[Asked]) -> Callable[[str], SearchResult]:
            index = SearchIndex(kb, offtopic=everyday, asked=asked)
            return lambda q: index.search(q, threshold=threshold)

        scores = cross_validate(svc.kb, load_offtopic(), folds,
                                {"ours": ours_on, "base": lambda kb, everyday, asked: PlainBM25(kb).search},
                                asked=asked, by_writer=by_writer)
        ours, base = scores["ours"], scores["base"]
        title = ("knowledge search, each writer of the residents' messages held out in turn" if by_writer else
                 f"knowledge search, {folds}-fold cross-validation on the base's own questions")
    else:
        ours = score_kb(cases, lambda q: svc.search(q))
        base = score_kb(cases, PlainBM25(svc.kb).search)
        title = f"knowledge search on {file.name}"
    _figures_table(title, ours.figures(), base.figures())
    if show_misses:
        for m in ours.misses:
            print("  miss:", m)


@app.command("risk")
def eval_risk(file: Path, show_misses: Annotated[bool, typer.Option("--misses")] = False) -> None:
    """Recall and specificity of the risk check, beside a keyword baseline."""
    from bot.evaluation import KeywordBaseline, risk_checker_is_risky, score_risk

    s = settings()
    cases = _cases(file)
    svc = services(s)
    ours = score_risk(cases, risk_checker_is_risky(svc.risk))
    base = score_risk(cases, KeywordBaseline().is_risky)
    _figures_table(f"risk check on {file.name}", ours.figures(), base.figures())
    if show_misses:
        for m in ours.misses:
            print("  miss:", m)


def _cases(file: Path) -> list[dict]:
    """A labelled JSONL set. Missing, unreadable or not JSON lines: one line, exit 2."""
    from bot.evaluation import read_jsonl

    try:
        return read_jsonl(existing(file, ""))
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        say_error(f"{file}: not a readable JSONL set: {' '.join(str(exc).split())[:200]}")
        raise typer.Exit(2) from exc


def _figures_table(title: str, ours: dict[str, float], base: dict[str, float]) -> None:
    table = Table(title=title)
    for col in ("figure", "fangfei", "baseline"):
        table.add_column(col)
    for key in ours:
        table.add_row(key, f"{ours[key]}", f"{base[key]}")
    console.print(table)
    # one plain line per figure, for scripts
    print(" ".join(f"{k}={v}" for k, v in ours.items()), "| baseline", " ".join(f"{k}={v}" for k, v in base.items()))
