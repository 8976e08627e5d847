"""Okapi BM25 over pre-tokenised documents (our search builds on it; the plain baseline is it alone)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence


class BM25:
    def __init__(self, docs: Sequence[Sequence[str]], k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.tfs = [Counter(doc) for doc in docs]
        self.lengths = [len(doc) for doc in docs]
        self.avg_len = (sum(self.lengths) / len(docs)) if docs else 0.0
        df: Counter[str] = Counter()
        for tf in self.tfs:
            df.update(tf.keys())
        n = len(docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        self.max_idf = math.log(1 + (n + 0.5) / 0.5)
        # token -> [(doc index, term frequency)], so a query touches only the documents that share a token
        self.postings: dict[str, list[tuple[int, int]]] = {}
        for i, tf in enumerate(self.tfs):
            for t, f in tf.items():
                self.postings.setdefault(t, []).append((i, f))

    def idf_of(self, token: str) -> float:
        """Known tokens get their idf; tokens no document holds get the highest possible idf."""
        return self.idf.get(token, self.max_idf)

    def scores(self, query: Iterable[str]) -> dict[int, float]:
        out: dict[int, float] = {}
        for t in set(query):
            idf = self.idf.get(t)
            if idf is None:
                continue
            for i, f in self.postings[t]:
                norm = f + self.k1 * (1 - self.b + self.b * self.lengths[i] / self.avg_len)
                out[i] = out.get(i, 0.0) + idf * f * (self.k1 + 1) / norm
        return out
