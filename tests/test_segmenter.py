"""The segmenter's dictionary cache: read only when private to this user, never worse than jieba's own loading."""

from __future__ import annotations

import os
from pathlib import Path

import jieba
import pytest

from knowledge import segmenter

TEXT = "我妈在养老公寓交了十万块床位费，说每年返百分之十二"


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "fangfei"


def jieba_own() -> jieba.Tokenizer:
    tk = jieba.Tokenizer()
    tk.initialize()
    return tk


def test_the_cache_is_written_privately_and_read_back_as_jieba_would_cut(cache_home: Path) -> None:
    first = segmenter.tokenizer()  # writes the cache
    files = list(cache_home.glob("jieba-*.pickle"))
    assert len(files) == 1 and oct(cache_home.stat().st_mode & 0o777) == "0o700"
    assert not files[0].stat().st_mode & 0o077
    second = segmenter.tokenizer()  # reads it
    own = jieba_own()
    assert second.FREQ == own.FREQ and second.total == own.total
    assert list(second.cut(TEXT, HMM=False)) == list(own.cut(TEXT, HMM=False)) == list(first.cut(TEXT, HMM=False))
    second.add_word("防非测试词", freq=20000)  # a tokenizer's added words stay its own
    assert "防非测试词" in second.FREQ and "防非测试词" not in segmenter.tokenizer().FREQ


@pytest.mark.parametrize("spoil", ["file writable by others", "folder writable by others", "damaged", "not a dict"])
def test_a_cache_that_is_not_private_or_not_sound_is_ignored(cache_home: Path, spoil: str) -> None:
    segmenter.tokenizer()
    path = next(cache_home.glob("jieba-*.pickle"))
    if spoil == "file writable by others":
        path.write_bytes(b"cos\nsystem\n(S'touch " + str(cache_home / "owned").encode() + b"'\ntR.")
        os.chmod(path, 0o666)
    elif spoil == "folder writable by others":
        path.write_bytes(b"cos\nsystem\n(S'touch " + str(cache_home / "owned").encode() + b"'\ntR.")
        os.chmod(cache_home, 0o777)
    elif spoil == "damaged":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        import pickle
        path.write_bytes(pickle.dumps(([], 1)))
    tk = segmenter.tokenizer()
    assert not (cache_home / "owned").exists()  # a foreign pickle never runs
    assert list(tk.cut(TEXT, HMM=False)) == list(jieba_own().cut(TEXT, HMM=False))


def test_no_writable_home_costs_only_speed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    assert list(segmenter.tokenizer().cut(TEXT, HMM=False)) == list(jieba_own().cut(TEXT, HMM=False))
