"""The search index kept between starts: the same answers as a fresh build, rebuilt when anything it is built from
changes, never read when it is not private."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from knowledge import schema
from knowledge.search import SearchIndex
from tests.test_segmenter import planted_pickle

QUESTIONS = ["非法集资是什么", "养老投姿", "fei fa ji zi ju bao", "钱要不回来了", "天气预报",
             "我妈在讲座上买了保健床垫"]


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "fangfei"


def answers(index: SearchIndex) -> list[tuple[bool, list[tuple[str, float]]]]:
    return [(r.matched, [(h.entry.id, h.score) for h in r.hits]) for r in map(index.search, QUESTIONS)]


def test_a_kept_index_answers_as_a_fresh_build_and_changes_with_its_texts(cache_home: Path) -> None:
    kb, _ = schema.load()
    first = SearchIndex.cached(kb)  # built and kept
    kept = list(cache_home.glob("index-*.pickle"))
    assert len(kept) == 1 and not kept[0].stat().st_mode & 0o077
    again = SearchIndex.cached(kb)  # read back
    assert again is not first and answers(again) == answers(first) == answers(SearchIndex(kb))
    assert again.tokenizer.FREQ.get("非法集资") == first.tokenizer.FREQ.get("非法集资")  # domain words added back
    # one sample question more is another index: built anew, never the old one
    e = kb.entries[0]
    changed = schema.KnowledgeBase(kb.categories, [replace(e, questions=(*e.questions, "天气预报怎么看")),
                                                   *kb.entries[1:]])
    other = SearchIndex.cached(changed)
    assert [p.name for p in cache_home.glob("index-*.pickle")] != [p.name for p in kept]
    assert answers(other) == answers(SearchIndex(changed))


def test_a_kept_index_that_is_not_private_is_rebuilt(cache_home: Path) -> None:
    kb, _ = schema.load()
    SearchIndex.cached(kb)
    path = next(cache_home.glob("index-*.pickle"))
    path.write_bytes(planted_pickle(cache_home / "owned"))
    os.chmod(path, 0o666)
    index = SearchIndex.cached(kb)
    assert not (cache_home / "owned").exists() and answers(index) == answers(SearchIndex(kb))
