"""Text clean-up shared by search and the risk check: width, script, case and control characters."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import zhconv

_CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]"  # terminal escape sequences
                      r"|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")
_SPACES = re.compile(r"\s+")
_HAN = re.compile(r"[\u4e00-\u9fff]")


def strip_control(text: str) -> str:
    """Remove control and invisible formatting characters, keep ordinary line breaks and tabs."""
    return _CONTROL.sub("", text)


@lru_cache(maxsize=4096)
def normalize(text: str) -> str:
    """Full-width to half-width (NFKC), traditional to simplified, lower case, single spaces."""
    text = unicodedata.normalize("NFKC", strip_control(text))
    if _HAN.search(text):
        text = zhconv.convert(text, "zh-cn")
    return _SPACES.sub(" ", text).strip().lower()


def has_han(text: str) -> bool:
    return _HAN.search(text) is not None


def is_meaningful(text: str) -> bool:
    """True when the text holds at least one letter, digit or Chinese character (not only emoji/punctuation)."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)
