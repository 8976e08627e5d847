"""The segmenter's dictionary cache: read only when private to this user, never worse than jieba's own loading."""

from __future__ import annotations

import functools
import os
import pickle
from pathlib import Path

import jieba
import pytest

from knowledge import cache, segmenter

TEXT = "我妈在养老公寓交了十万块床位费，说每年返百分之十二"


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "fangfei"


@functools.cache
def jieba_own() -> jieba.Tokenizer:
    """jieba's own loading, the reference (loaded once: 0.5 s)."""
    tk = jieba.Tokenizer()
    tk.initialize()
    return tk


def planted_pickle(marker: Path) -> bytes:
    """A pickle that, read, runs `touch marker`: what someone who could write the cache would plant."""
    return b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."


def cached(cache_home: Path) -> Path:
    """A sound cache file written as the segmenter writes it (quicker than a first start's build)."""
    own = jieba_own()
    name = segmenter._cache_name(os.path.join(os.path.dirname(jieba.__file__), "dict.txt"))
    cache.write(name, (own.FREQ, own.total))
    return cache_home / name


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


@pytest.mark.parametrize("spoil", ["file writable by others", "folder writable by others", "damaged", "not a dict",
                                   "too small", "file is a symlink"])
def test_a_cache_that_is_not_private_or_not_sound_is_ignored(cache_home: Path, spoil: str) -> None:
    path = cached(cache_home)
    assert segmenter.tokenizer().FREQ == jieba_own().FREQ  # read back while it is sound
    if spoil == "file writable by others":
        path.write_bytes(planted_pickle(cache_home / "owned"))
        os.chmod(path, 0o666)
    elif spoil == "folder writable by others":
        path.write_bytes(planted_pickle(cache_home / "owned"))
        os.chmod(cache_home, 0o777)
    elif spoil == "damaged":
        path.write_bytes(path.read_bytes()[:1000])
    elif spoil == "too small":
        path.write_bytes(pickle.dumps(({"养老公寓返利": 1}, 1)))
    elif spoil == "file is a symlink":
        planted = cache_home.parent / "planted.pickle"
        planted.write_bytes(planted_pickle(cache_home / "owned"))
        path.unlink()
        path.symlink_to(planted)
    else:
        path.write_bytes(pickle.dumps(([], 1)))
    tk = segmenter.tokenizer()
    assert not (cache_home / "owned").exists()  # a foreign pickle never runs
    assert list(tk.cut(TEXT, HMM=False)) == list(jieba_own().cut(TEXT, HMM=False))


@pytest.mark.parametrize("home", ["a file", "unset", "relative", "symlinked folder"])
def test_no_usable_home_costs_only_speed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: str) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    if home == "a file":
        blocked = tmp_path / "file"
        blocked.write_text("not a folder")
        monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    elif home == "unset":
        monkeypatch.delenv("HOME", raising=False)
    elif home == "relative":
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("XDG_CACHE_HOME", "cache")
        monkeypatch.delenv("HOME", raising=False)
    else:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        (tmp_path / "cache").mkdir()
        (tmp_path / "cache" / "fangfei").symlink_to(elsewhere)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert list(segmenter.tokenizer().cut(TEXT, HMM=False)) == list(jieba_own().cut(TEXT, HMM=False))
    assert not list(tmp_path.rglob("jieba-*.pickle"))  # nothing kept where it does not belong


def test_jiebas_shared_temporary_cache_is_never_trusted(cache_home: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """jieba reads and writes jieba.cache in the shared temporary folder, where anyone could plant a tiny
    dictionary: ours is built from jieba's own dict.txt, so a planted one neither cuts nor gets kept."""
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    import marshal
    (shared / "jieba.cache").write_bytes(marshal.dumps(({"养老公寓返利": 5, "养": 0, "养老": 0}, 5)))
    monkeypatch.setenv("TMPDIR", str(shared))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    tk = segmenter.tokenizer()
    assert len(tk.FREQ) > segmenter.MIN_WORDS and "养老公寓返利" not in list(tk.cut(TEXT, HMM=False))
    assert len(segmenter.tokenizer().FREQ) == len(tk.FREQ)  # and the kept cache is the real dictionary
