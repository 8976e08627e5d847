"""Search benchmark: index build time (including jieba's dictionary), query p50/p99, process RSS.

    .venv/bin/python benchmarks/search_bench.py [--rounds 20]

Targets (issue 2): build <= 2 s, query p99 <= 5 ms.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def queries() -> list[str]:
    out: list[str] = []
    for path in (ROOT.parent / "shared" / "eval" / "kb_dev.jsonl", ROOT / "tests" / "data" / "kb_cases.jsonl"):
        if path.exists():
            out += [json.loads(line)["q"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return out or ["养老投姿", "消费全返是真的吗", "fei fa ji zi ju bao"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    t0 = time.perf_counter()
    from knowledge import schema
    from knowledge.search import SearchIndex

    kb, _ = schema.load()
    index = SearchIndex(kb)
    build = time.perf_counter() - t0
    qs = queries()
    for q in qs:  # warm caches once, as a serving process would be
        index.search(q)
    times: list[float] = []
    for _ in range(args.rounds):
        for q in qs:
            t = time.perf_counter()
            index.search(q)
            times.append((time.perf_counter() - t) * 1000)
    times.sort()
    p50 = statistics.median(times)
    p99 = times[int(len(times) * 0.99) - 1]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"entries={len(kb.entries)} queries={len(times)}")
    print(f"index_build_s={build:.3f} (target <= 2.0, ratio {build / 2.0:.2f})")
    print(f"query_p50_ms={p50:.3f} query_p99_ms={p99:.3f} (target p99 <= 5.0, ratio {p99 / 5.0:.2f})")
    print(f"max_rss_mb={rss_mb:.1f}")


if __name__ == "__main__":
    main()
