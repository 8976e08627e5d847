"""Files this user's processes keep to start faster (~/.cache/fangfei, or $XDG_CACHE_HOME/fangfei): pickles, read
only when both the folder and the file, checked on the descriptors that are then read (no symlinks followed, no swap
between check and read), belong to this user and are writable by nobody else. A pickle can run code when it is read:
anything doubtful is ignored, and every user of this module must work the same without it (it only saves time)."""

from __future__ import annotations

import logging
import os
import pickle
import stat
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)
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


def _private(st: os.stat_result) -> bool:
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def read(name: str, sound: Callable[[object], bool]) -> object | None:
    """The object kept as `name`, when private and `sound`; None otherwise (missing, foreign, damaged)."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        dfd = os.open(folder, _DIR_FLAGS)
    except FileNotFoundError:
        return None
    except OSError:  # a symlink, or not a folder
        log.warning("cache ignored: its folder is not a plain folder")
        return None
    try:
        if not _private(os.fstat(dfd)):
            log.warning("cache ignored: its folder is not private to this user")
            return None
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        except FileNotFoundError:
            return None
        except OSError:
            log.warning("cache ignored: not a plain file")
            return None
    finally:
        os.close(dfd)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not (stat.S_ISREG(st.st_mode) and _private(st)):
            log.warning("cache ignored: not private to this user")
            return None
        try:
            data = pickle.load(f)
        except Exception:  # a damaged file: the caller builds instead
            log.warning("cache unreadable; building instead")
            return None
    return data if sound(data) else None


def write(name: str, data: object, stale: str = "") -> None:
    """Keep `data` as `name`, atomically, in the private folder (made if missing); files starting with `stale` other
    than this one are removed (an older version's). A failure only costs the next start its speed."""
    folder = cache_dir()
    if folder is None:
        return
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        dfd = os.open(folder, _DIR_FLAGS)
    except OSError:
        log.warning("cache not written")
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
        if stale:
            for old in os.listdir(dfd):
                if old.startswith(stale) and old != name:
                    os.unlink(old, dir_fd=dfd)
    except OSError:
        log.warning("cache not written")
    finally:
        os.close(dfd)
