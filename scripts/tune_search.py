"""Choose the search's weights by cross-validation (a developer's tool, not part of the bot).

    .venv/bin/python scripts/tune_search.py [--folds 5] [--check FILE.jsonl ...]

Builds one index per fold (each fold's sample, everyday and residents' questions held out, as `fangfei eval kb
--folds` does), keeps every held-out question's ranking signals, then
- fits the acceptance weights (G_*: is the question ours at all) by logistic regression on the held-out signals, and
- searches the ranking weights (W_FIT, W_BM25, W_LEXICAL) for the best cross-validated top-1,
and prints the figures for the weights in knowledge/search.py beside the fitted ones. `--check` files are scored
with an index built on everything (a tuning set written apart from the base; never an evaluation set that must
stay unread). Nothing is written: copy the values you accept into knowledge/search.py.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.evaluation import folds, read_jsonl, writer_folds
from knowledge import schema, search
from knowledge.search import SearchIndex, Signals, acceptance_features, load_asked, load_offtopic


@dataclass
class Case:
    cats: set[str]
    signals: Signals | None
    categories: list[str]  # entry index -> category


def collect(index: SearchIndex, cases: Sequence[dict]) -> list[Case]:
    cats = [e.category for e in index.entries]
    return [Case(set(c["cats"]), index.signals(c["q"]), cats) for c in cases]


def figures(cases: list[Case], w: tuple[float, float, float], g: Sequence[float], threshold: float) -> dict:
    top1 = top3 = answerable = refused = unanswerable = 0
    for c in cases:
        if c.signals is None:
            matched, order = False, []
        else:
            ranked, confidence = search.rank(c.signals, w, tuple(g))
            matched = round(confidence, 4) >= threshold  # as the best hit's score is compared in search()
            order = list(dict.fromkeys(c.categories[i] for _r, i in ranked))
        if c.cats:
            answerable += 1
            top1 += matched and bool(order) and order[0] in c.cats
            top3 += matched and bool(c.cats & set(order[:3]))
        else:
            unanswerable += 1
            refused += not matched
    pct = lambda a, b: round(100 * a / b, 1) if b else 0.0  # noqa: E731
    return {"top1": pct(top1, answerable), "top3": pct(top3, answerable), "no_match": pct(refused, unanswerable),
            "n": answerable + unanswerable}


def fit_acceptance(cases: list[Case], l2: float = 0.01, steps: int = 3000, rate: float = 0.5) -> list[float]:
    """Logistic regression: x = g·features is the log-odds that the question is NOT ours (as search.rank uses it).
    Classes weighed equally (the held-out everyday questions are fewer than the base's)."""
    rows = [(acceptance_features(c.signals), 0.0 if c.cats else 1.0) for c in cases if c.signals is not None]
    if not rows:
        raise SystemExit("no held-out questions to fit on")
    n_off = sum(y for _x, y in rows) or 1.0
    n_on = len(rows) - n_off or 1.0
    # standardise the features for the descent, then map the weights back
    dims = len(rows[0][0])
    mean = [sum(x[d] for x, _ in rows) / len(rows) for d in range(dims)]
    sd = [math.sqrt(sum((x[d] - mean[d]) ** 2 for x, _ in rows) / len(rows)) or 1.0 for d in range(dims)]
    mean[0], sd[0] = 0.0, 1.0
    z = [([(x[d] - mean[d]) / sd[d] for d in range(dims)], y) for x, y in rows]
    g = [0.0] * dims
    for _ in range(steps):
        grad = [0.0] * dims
        for x, y in z:
            p = 1 / (1 + math.exp(-max(-50.0, min(50.0, sum(a * b for a, b in zip(g, x, strict=True))))))
            weight = 0.5 / n_off if y else 0.5 / n_on
            for d in range(dims):
                grad[d] += weight * (p - y) * x[d]
        for d in range(dims):
            g[d] -= rate * (grad[d] + (l2 * g[d] if d else 0.0))
    out = [g[d] / sd[d] for d in range(dims)]
    out[0] = g[0] - sum(g[d] * mean[d] / sd[d] for d in range(1, dims))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--check", type=Path, nargs="*", default=[])
    parser.add_argument("--threshold", type=float, default=0.3)
    parser.add_argument("--by-writer", action="store_true", help="hold out each writer of asked.jsonl in turn")
    args = parser.parse_args()
    kb, _ = schema.load()
    offtopic, asked = load_offtopic(), load_asked()
    cv: list[Case] = []
    splits = writer_folds(kb, offtopic, asked) if args.by_writer else folds(kb, offtopic, args.folds, asked)
    for train, everyday, asked_train, cases in splits:
        cv += collect(SearchIndex(train, offtopic=everyday, asked=asked_train), cases)
    full = SearchIndex(kb, offtopic=offtopic, asked=asked)
    checks = {p.name: collect(full, read_jsonl(p)) for p in args.check}
    current_w = (search.W_FIT, search.W_BM25, search.W_LEXICAL)
    current_g = (search.G_BIAS, search.G_EVERYDAY, search.G_BM25, search.G_COVER)

    def show(label: str, w: tuple[float, float, float], g: Sequence[float]) -> None:
        print(f"{label}: W={tuple(round(v, 2) for v in w)} G={tuple(round(v, 2) for v in g)}")
        held = "each writer held out" if args.by_writer else f"{args.folds} folds"
        print(f"  cv ({held}): {figures(cv, w, g, args.threshold)}")
        for name, cases in checks.items():
            print(f"  {name}: {figures(cases, w, g, args.threshold)}")

    show("in search.py", current_w, current_g)
    g = fit_acceptance(cv)
    best_w, best_top1 = current_w, -1.0
    for w in itertools.product((1.0, 1.4, 1.8, 2.4, 3.0), (1.6, 2.4, 3.2, 4.0), (0.5, 0.9, 1.4, 2.0)):
        top1 = figures(cv, w, g, args.threshold)["top1"]
        if top1 > best_top1:
            best_w, best_top1 = w, top1
    show("fitted", best_w, g)


if __name__ == "__main__":
    main()
