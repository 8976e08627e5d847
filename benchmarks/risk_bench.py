"""The risk check's speed (`fangfei check`, the chat's 风险自测): time per text over the offers of
knowledge/risk_cases.jsonl (each made unique, so no cache helps), beside the keyword baseline (a scan for twelve
lure words) over the same texts in the same run.

    .venv/bin/python benchmarks/risk_bench.py [--rounds 3]

Target: well under 1 ms per text (a chat turn's budget is tens of milliseconds).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config import load_settings  # noqa: E402
from bot.evaluation import KeywordBaseline, read_jsonl  # noqa: E402
from knowledge.risk import RiskChecker  # noqa: E402


def per_text(run: Callable[[str], object], texts: list[str], rounds: int) -> list[float]:
    """Seconds per text, one figure a round."""
    figures = []
    for r in range(rounds):
        start = time.perf_counter()
        for i, text in enumerate(texts):
            run(f"{text}{r}-{i}")
        figures.append((time.perf_counter() - start) / len(texts))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    checker = RiskChecker(load_settings(ROOT / "config.yaml").region.placeholders())
    texts = [str(r["t"]) for r in read_jsonl(ROOT / "knowledge" / "risk_cases.jsonl")]
    checker.check(texts[0])  # warm-up
    figures = {
        "risk check": per_text(checker.check, texts, args.rounds),
        "keyword baseline": per_text(KeywordBaseline().is_risky, texts, args.rounds),
    }
    base = statistics.median(figures["keyword baseline"])
    print(f"{len(texts)} texts x {args.rounds} rounds")
    for name, values in figures.items():
        median = statistics.median(values)
        print(f"{name:18s} {median * 1000:7.3f} ms/text (rounds {min(values) * 1000:.3f}-{max(values) * 1000:.3f})"
              f"  {median / base:7.1f}x the baseline")
    print("target: risk check < 1 ms per text")


if __name__ == "__main__":
    main()
