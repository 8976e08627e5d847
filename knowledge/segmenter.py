"""jieba tokenizers whose dictionary loads three times faster than jieba's own cache.

jieba keeps its prefix dictionary (about 500,000 words and prefixes) as a marshal file in the shared temporary
folder and reads it in about 0.5 s, a third of the search index's build. A pickle of the same dictionary reads in
about 0.15 s. A pickle can run code when it is read, so it is kept only in a folder of this user's that nobody else
may write (~/.cache/fangfei, or $XDG_CACHE_HOME/fangfei), and read only when both the folder and the file belong to
this user and are writable by nobody else; anything else (no home, a read-only disk, a foreign or damaged file)
falls back to jieba's own loading, so the cache can only ever save time. The file is named after jieba's version
and its dictionary's size and time, so an upgraded jieba is never read through an old dictionary.
"""

from __future__ import annotations

import logging
import os
import pickle
import stat
import tempfile
from pathlib import Path

import jieba

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fangfei"


def tokenizer() -> jieba.Tokenizer:
    """A tokenizer of jieba's default dictionary, ready to cut (its own copy: words added to it stay its own)."""
    tk = jieba.Tokenizer()
    try:
        path = _cache_file()
        loaded = _read(path)
    except OSError:
        path, loaded = None, None
    if loaded is not None:
        tk.FREQ, tk.total = loaded
        tk.initialized = True
        return tk
    tk.initialize()
    if path is not None:
        _write(path, (tk.FREQ, tk.total))
    return tk


def _cache_file() -> Path:
    source = os.stat(os.path.join(os.path.dirname(jieba.__file__), "dict.txt"))
    return cache_dir() / f"jieba-{jieba.__version__}-{source.st_size}-{source.st_mtime_ns}.pickle"


def _private(st: os.stat_result) -> bool:
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _read(path: Path) -> tuple[dict[str, int], int] | None:
    try:
        if not (_private(path.parent.stat()) and _private(path.stat())):
            log.warning("segmenter cache ignored: not private to this user")
            return None
        with path.open("rb") as f:
            freq, total = pickle.load(f)
    except FileNotFoundError:
        return None
    except Exception:  # a damaged or foreign file: jieba's own loading instead
        log.warning("segmenter cache unreadable; loading jieba's dictionary instead")
        return None
    if not isinstance(freq, dict) or not isinstance(total, int):
        return None
    return freq, total


def _write(path: Path, data: tuple[dict[str, int], int]) -> None:
    """Write the cache atomically; a failure only costs the next start its speed."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(path.parent.stat()):
            return
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".jieba-")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        for old in path.parent.glob("jieba-*.pickle"):  # an upgraded jieba's leftovers
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:
        log.warning("segmenter cache not written")
