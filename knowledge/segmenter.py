"""jieba tokenizers whose dictionary loads three times faster than jieba's own cache.

jieba keeps its prefix dictionary (about 500,000 words and prefixes) as a marshal file in the shared temporary
folder and reads it in about 0.5 s, a third of the search index's build. A pickle of the same dictionary reads in
about 0.15 s. A pickle can run code when it is read, so it is kept only in a folder of this user's that nobody else
may write (~/.cache/fangfei, or $XDG_CACHE_HOME/fangfei), and read only when both the folder and the file, checked
on the descriptors that are then read (no symlinks followed, no swap between check and read), belong to this user
and are writable by nobody else. It is built from jieba's own dict.txt, never from jieba's shared temporary cache
(which anyone on the machine could have planted), and a dictionary that is too small is never used or kept.
Anything else (no home, a read-only disk, a foreign or damaged file) falls back to building the dictionary, so the
cache can only ever save time. The file is named after jieba's version and a digest of its dict.txt.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import stat
from pathlib import Path

import jieba

log = logging.getLogger(__name__)
MIN_WORDS = 100_000  # jieba's dictionary holds about 350,000 words (500,000 with prefixes): less is not it
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def cache_dir() -> Path | None:
    """~/.cache/fangfei or $XDG_CACHE_HOME/fangfei; None without an absolute home (the XDG rule: a relative
    XDG_CACHE_HOME is ignored)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        home = os.environ.get("HOME", "")
        if not os.path.isabs(home) or home == "/":
            return None
        base = os.path.join(home, ".cache")
    return Path(base) / "fangfei"


def tokenizer() -> jieba.Tokenizer:
    """A tokenizer of jieba's default dictionary, ready to cut (its own copy: words added to it stay its own)."""
    tk = jieba.Tokenizer()
    source = os.path.join(os.path.dirname(jieba.__file__), "dict.txt")
    folder, name, loaded = cache_dir(), None, None
    try:
        name = _cache_name(source)
        if folder is not None:
            loaded = _read(folder, name)
    except OSError:
        folder = None
    if loaded is None:
        with open(source, "rb") as f:
            loaded = tk.gen_pfdict(f)
        if folder is not None and name is not None and _sound(loaded):
            _write(folder, name, loaded)
    tk.FREQ, tk.total = loaded
    tk.initialized = True
    return tk


def _cache_name(source: str) -> str:
    with open(source, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()[:16]
    return f"jieba-{jieba.__version__}-{digest}.pickle"


def _private(st: os.stat_result) -> bool:
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _sound(data: object) -> bool:
    return (isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], dict) and isinstance(data[1], int)
            and len(data[0]) >= MIN_WORDS and data[1] > 0)


def _read(folder: Path, name: str) -> tuple[dict[str, int], int] | None:
    try:
        dfd = os.open(folder, _DIR_FLAGS)
    except FileNotFoundError:
        return None
    except OSError:  # a symlink, or not a folder
        log.warning("segmenter cache ignored: its folder is not a plain folder")
        return None
    try:
        if not _private(os.fstat(dfd)):
            log.warning("segmenter cache ignored: its folder is not private to this user")
            return None
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        except FileNotFoundError:
            return None
    finally:
        os.close(dfd)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not (stat.S_ISREG(st.st_mode) and _private(st)):
            log.warning("segmenter cache ignored: not private to this user")
            return None
        try:
            data = pickle.load(f)
        except Exception:  # a damaged file: build the dictionary instead
            log.warning("segmenter cache unreadable; building jieba's dictionary instead")
            return None
    return data if _sound(data) else None


def _write(folder: Path, name: str, data: tuple[dict[str, int], int]) -> None:
    """Write the cache atomically into the checked folder; a failure only costs the next start its speed."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        dfd = os.open(folder, _DIR_FLAGS)
    except OSError:
        log.warning("segmenter cache not written")
        return
    try:
        if not _private(os.fstat(dfd)):
            return
        tmp = f".{name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            os.unlink(tmp, dir_fd=dfd)
            raise
    except OSError:
        log.warning("segmenter cache not written")
    finally:
        os.close(dfd)
