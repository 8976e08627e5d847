"""Sealing confidential data (a reporter's identity and contact) at rest, and fingerprints to find it again.

The key comes from FANGFEI_SECRET_KEY. In the local default a key is generated once into data/secret.key (with a
warning); production mode refuses to start without one (bot/config.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from bot.config import LOCAL_DATA, Settings

log = logging.getLogger(__name__)
LOCAL_KEY_FILE = LOCAL_DATA / "secret.key"


class SealError(Exception):
    """A sealed value could not be opened: another key sealed it, or it was altered."""


class Vault:
    """Seals with a key given, or read on first use (so commands that never seal never create a key file)."""

    def __init__(self, key: str | Callable[[], str]) -> None:
        self._key = key

    @cached_property
    def _fernet(self) -> Fernet:
        return Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"fangfei/seal\0" + self._secret).digest()))

    @cached_property
    def _mac_key(self) -> bytes:
        return hashlib.sha256(b"fangfei/fingerprint\0" + self._secret).digest()

    @cached_property
    def _secret(self) -> bytes:
        key = self._key() if callable(self._key) else self._key
        if not key:
            raise ValueError("an empty key seals nothing")
        return key.encode()

    def seal(self, text: str) -> str:
        """Authenticated encryption (Fernet: AES-128-CBC + HMAC-SHA256); a new random IV each time."""
        return self._fernet.encrypt(text.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        return self.open_bytes(sealed).decode()

    def seal_bytes(self, data: bytes) -> str:
        """The same for a file (evidence): one encryption, stored as text."""
        return self._fernet.encrypt(data).decode("ascii")

    def open_bytes(self, sealed: str) -> bytes:
        try:
            return self._fernet.decrypt(sealed.encode("ascii"))
        except (InvalidToken, ValueError) as exc:
            raise SealError("cannot open a sealed value with this key") from exc

    def fingerprint(self, *parts: str) -> str:
        """A keyed, stable fingerprint: finds a reporter's tips without storing who they are."""
        return hmac.new(self._mac_key, "\0".join(parts).encode(), hashlib.sha256).hexdigest()


def secret_key(settings: Settings, key_file: Path = LOCAL_KEY_FILE) -> str:
    """FANGFEI_SECRET_KEY, or in local mode the generated key in data/ (created on first use)."""
    if settings.secret_key:
        return settings.secret_key
    if settings.mode == "production":  # also refused by the settings validator; kept here for direct callers
        raise ValueError("FANGFEI_SECRET_KEY is required in production mode")
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(32) + "\n", encoding="ascii")
        key_file.chmod(0o600)
        log.warning("no FANGFEI_SECRET_KEY: generated %s to seal reporters' identities; set FANGFEI_SECRET_KEY "
                    "(and keep it safe) before real use", key_file)
    return key_file.read_text(encoding="ascii").strip()
