"""Quality figures on labelled sets (`fangfei eval kb|risk FILE.jsonl`): ours beside the plain BM25 baseline."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from knowledge.schema import KnowledgeBase
from knowledge.search import Asked, SearchResult

if TYPE_CHECKING:
    from knowledge.risk import RiskChecker


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


@dataclass
class KbScore:
    answerable: int = 0
    top1: int = 0
    top3: int = 0
    answered: int = 0          # answerable questions for which we did not say "no match"
    unanswerable: int = 0
    refused: int = 0           # out-of-scope questions correctly met with "no match"
    misses: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, float]:
        return {"top1": _pct(self.top1, self.answerable), "top3": _pct(self.top3, self.answerable),
                "answered": _pct(self.answered, self.answerable), "no_match": _pct(self.refused, self.unanswerable),
                "n": self.answerable + self.unanswerable}


def score_kb(cases: Iterable[dict], search: Callable[[str], SearchResult]) -> KbScore:
    s = KbScore()
    for case in cases:
        wanted = set(case["cats"])
        result = search(case["q"])
        cats = [h.entry.category for h in result.hits]
        if not wanted:
            s.unanswerable += 1
            if result.matched:
                s.misses.append(f"answered out-of-scope: {case['q']} -> {cats[:1]}")
            else:
                s.refused += 1
            continue
        s.answerable += 1
        s.answered += result.matched
        hit1 = result.matched and bool(cats[:1]) and cats[0] in wanted
        s.top1 += hit1
        s.top3 += result.matched and bool(wanted & set(cats[:3]))
        if not hit1:
            s.misses.append(f"{case['q']} -> {cats[:3]} matched={result.matched} wanted {sorted(wanted)}")
    return s


Split = tuple[KnowledgeBase, list[str], list[Asked], list[dict]]
Method = Callable[[KnowledgeBase, list[str], list[Asked]], Callable[[str], SearchResult]]


def folds(kb: KnowledgeBase, offtopic: Sequence[str], k: int, asked: Sequence[Asked] = ()) -> Iterator[Split]:
    """K train/test splits: each entry's sample questions, the everyday questions and the residents' questions
    dealt into `k` folds in turn; fold f's questions are held out of what the index learns from and become its
    labelled test cases."""
    for f in range(k):
        cases: list[dict] = []
        entries = []
        for e in kb.entries:
            cases += [{"q": q, "cats": [e.category]} for n, q in enumerate(e.questions) if n % k == f]
            entries.append(replace(e, questions=tuple(q for n, q in enumerate(e.questions) if n % k != f)))
        cases += [{"q": q, "cats": []} for n, q in enumerate(offtopic) if n % k == f]
        cases += [{"q": a.question, "cats": list(a.categories)} for n, a in enumerate(asked) if n % k == f]
        yield (KnowledgeBase(kb.categories, entries), [q for n, q in enumerate(offtopic) if n % k != f],
               [a for n, a in enumerate(asked) if n % k != f], cases)


def writer_folds(kb: KnowledgeBase, offtopic: Sequence[str], asked: Sequence[Asked]) -> Iterator[Split]:
    """One split per writer of the residents' messages: everything that writer wrote is held out (their style and
    their choice of topics are new to the index, as a real resident's are); the base and the others stay in."""
    for writer in sorted({a.by for a in asked}):
        yield (kb, list(offtopic), [a for a in asked if a.by != writer],
               [{"q": a.question, "cats": list(a.categories)} for a in asked if a.by == writer])


def cross_validate(kb: KnowledgeBase, offtopic: Sequence[str], k: int, methods: dict[str, Method],
                   asked: Sequence[Asked] = (), by_writer: bool = False) -> dict[str, KbScore]:
    """Each method (built from a base, its everyday questions and residents' questions) scored on the questions
    it never saw: `k` folds, or (`by_writer`) one writer held out at a time."""
    if k < 2 and not by_writer:
        raise ValueError("at least 2 folds")
    total = {name: KbScore() for name in methods}
    splits = writer_folds(kb, offtopic, asked) if by_writer else folds(kb, offtopic, k, asked)
    for train, everyday, asked_train, cases in splits:
        for name, build in methods.items():
            one = score_kb(cases, build(train, everyday, asked_train))
            s = total[name]
            s.answerable += one.answerable
            s.top1 += one.top1
            s.top3 += one.top3
            s.answered += one.answered
            s.unanswerable += one.unanswerable
            s.refused += one.refused
            s.misses += one.misses
    return total


@dataclass
class RiskScore:
    risky: int = 0
    caught: int = 0
    safe: int = 0
    cleared: int = 0
    misses: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, float]:
        return {"recall": _pct(self.caught, self.risky), "specificity": _pct(self.cleared, self.safe),
                "n": self.risky + self.safe}


def score_risk(cases: Iterable[dict], is_risky: Callable[[str], bool]) -> RiskScore:
    s = RiskScore()
    for case in cases:
        got = is_risky(case["t"])
        if case["risky"]:
            s.risky += 1
            s.caught += got
        else:
            s.safe += 1
            s.cleared += not got
        if got != case["risky"]:
            s.misses.append(f"{'missed' if case['risky'] else 'false alarm'}: {case['t']}")
    return s


class KeywordBaseline:
    """The risk baseline: a text is risky when it contains any of a short list of lure words."""

    WORDS = ("保本", "保底", "高息", "高回报", "返利", "分红", "稳赚", "上市", "回购", "拉人", "下线", "虚拟币")

    def is_risky(self, text: str) -> bool:
        return any(w in text for w in self.WORDS)


def risk_checker_is_risky(checker: RiskChecker) -> Callable[[str], bool]:
    return lambda text: checker.check(text).risky
