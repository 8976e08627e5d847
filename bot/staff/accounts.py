"""Staff accounts: who may sign in to the console and what their role and townships let them do.

Passwords are kept only as argon2 hashes (argon2-cffi). Wrong passwords are counted per account: after
`console.max_failed_logins` in a row the account is locked for `console.lockout_minutes`, whoever tries. A
permission is a role's: `handler` reveals reporters' identities, `approver` approves warnings, `admin` manages
accounts and reads the audit log; every role works the ledger, quizzes and drafts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import ConsoleSettings, Settings
from bot.storage.models import StaffAccount, StaffSession, utcnow
from bot.tips.ledger import as_utc

ROLES = ("admin", "handler", "approver", "staff")
PERMISSIONS = {"reveal": ("handler",), "approve": ("approver",), "manage-accounts": ("admin",),
               "read-audit": ("admin",)}
NAME_MAX = 48
PASSWORD_MIN = 10


def hasher(rules: ConsoleSettings) -> PasswordHasher:
    return _hasher(rules.password_time_cost, rules.password_memory_kib, rules.password_parallelism)


@lru_cache
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


def _no_account(rules: ConsoleSettings) -> str:
    """A hash to check a name that has no account against: the same work as a real check. Made on first need, not
    at import (every CLI command imports this module)."""
    return _dummy(hasher(rules))


@lru_cache
def _dummy(made_by: PasswordHasher) -> str:
    return made_by.hash("no such account: the same work as a real check")


class StaffError(ValueError):
    """What an operator asked that cannot be done; the message says why."""

    @property
    def message(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class SignIn:
    account: StaffAccount | None
    refusal: str | None = None  # "wrong" (name or password), "locked", "disabled"


def clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not 0 < len(cleaned) <= NAME_MAX or not cleaned.isprintable():
        raise StaffError(f"a staff name of 1 to {NAME_MAX} printable characters")
    return cleaned


def check_password(password: str) -> None:
    if len(password) < PASSWORD_MIN:
        raise StaffError(f"a password of at least {PASSWORD_MIN} characters")
    if len(set(password)) < 4:
        raise StaffError("a password needs more than a few different characters")


async def find(session: AsyncSession, name: str, lock: bool = False) -> StaffAccount | None:
    """The account of this name; `lock`: its row held (PostgreSQL) and read as it now stands, for a change that
    depends on what it holds (a count of wrong passwords, a flag)."""
    name = " ".join(name.split())
    if not name.isprintable():  # no account is named so (clean_name); PostgreSQL refuses NUL even to look
        return None
    query = select(StaffAccount).where(StaffAccount.name == name)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(query)


async def listing(session: AsyncSession) -> list[StaffAccount]:
    return list(await session.scalars(select(StaffAccount).order_by(StaffAccount.name)))


async def add(session: AsyncSession, settings: Settings, name: str, role: str, townships: list[str],
              password: str | None) -> StaffAccount:
    name = clean_name(name)
    if role not in ROLES:
        raise StaffError(f"unknown role {role!r}; one of: {', '.join(ROLES)}")
    if role == "admin" and townships:  # an admin reads the whole audit log and makes any account: county staff
        raise StaffError("an admin account is for the whole county: no --township")
    known = [t.code for t in settings.region.townships]
    if unknown := [t for t in townships if t not in known]:
        raise StaffError(f"unknown township {unknown[0]!r}; one of: {', '.join(known)}")
    if await find(session, name) is not None:
        raise StaffError(f"there is already an account {name!r} (change it with `staff passwd` or `staff disable`)")
    if password is not None:
        check_password(password)
    account = StaffAccount(name=name, role=role, townships=sorted(set(townships)),
                           password_hash=hasher(settings.console).hash(password) if password is not None else None)
    try:
        async with session.begin_nested():
            session.add(account)
    except IntegrityError as exc:  # added by another request at the same moment
        raise StaffError(f"there is already an account {name!r}") from exc
    return account


async def _existing(session: AsyncSession, name: str) -> StaffAccount:
    account = await find(session, name, lock=True)
    if account is None:
        raise StaffError(f"no account {' '.join(name.split())!r} (see `fangfei staff list`)")
    return account


async def set_password(session: AsyncSession, rules: ConsoleSettings, name: str, password: str) -> StaffAccount:
    """A new password; the account's sessions end and a lock-out is lifted."""
    check_password(password)
    account = await _existing(session, name)
    account.password_hash = hasher(rules).hash(password)
    account.failed_logins, account.locked_until = 0, None
    await end_sessions(session, account)
    return account


async def set_disabled(session: AsyncSession, name: str, disabled: bool = True) -> tuple[StaffAccount, bool]:
    """Disable (its sessions end at once) or enable an account; and whether that changed it (False: it was so
    already)."""
    account = await _existing(session, name)
    changed = account.disabled != disabled
    account.disabled = disabled
    if disabled:
        await end_sessions(session, account)
    return account, changed


async def end_sessions(session: AsyncSession, account: StaffAccount) -> None:
    await session.execute(delete(StaffSession).where(StaffSession.account_id == account.id))


async def sign_in(session: AsyncSession, rules: ConsoleSettings, name: str, password: str,
                  now: datetime | None = None) -> SignIn:
    """Check a name and password; counts the failure or clears the count (the caller commits either way)."""
    now = now or utcnow()
    # locked: wrong passwords sent at the same moment are each counted, one after the other
    account = await find(session, name, lock=True) if name.strip() else None
    if account is None or account.password_hash is None:
        try:  # as slow as a real check: the time taken says nothing about which names exist
            hasher(rules).verify(_no_account(rules), password + "!")
        except VerificationError:
            pass
        return SignIn(None, "wrong")
    if account.locked_until is not None and as_utc(account.locked_until) > now:
        return SignIn(None, "locked")
    try:
        hasher(rules).verify(account.password_hash, password)
    except (VerificationError, InvalidHashError):
        account.failed_logins += 1
        if account.failed_logins >= rules.max_failed_logins:
            account.locked_until = now + timedelta(minutes=rules.lockout_minutes)
            account.failed_logins = 0
            return SignIn(None, "locked")
        return SignIn(None, "wrong")
    if account.disabled:
        return SignIn(None, "disabled")
    if hasher(rules).check_needs_rehash(account.password_hash):
        account.password_hash = hasher(rules).hash(password)
    account.failed_logins, account.locked_until, account.last_login = 0, None, now
    return SignIn(account)


def holds(account: StaffAccount, permission: str) -> bool:
    return not account.disabled and account.role in PERMISSIONS[permission]


async def may(session: AsyncSession, settings: Settings, name: str, permission: str) -> bool:
    """Whether the staff member `name` (as the CLI's --as gives it) holds `permission`: their account decides;
    with no account of that name, the name lists of configurations made before accounts (tips.handlers,
    broadcasts.approvers)."""
    account = await find(session, name)
    if account is not None:
        return holds(account, permission)
    legacy = {"reveal": settings.tips.handlers, "approve": settings.broadcasts.approvers}.get(permission, [])
    return name in legacy


def sees(scope: list[str] | None, codes: list[str]) -> bool:
    """Whether staff limited to the townships `scope` (codes; None: the whole county) see what is for the townships
    `codes` (none: the whole county, which is theirs too)."""
    return scope is None or not codes or any(c in scope for c in codes)


def owns(scope: list[str] | None, codes: list[str]) -> bool:
    """Whether staff limited to `scope` may act on what is for `codes`: every one is theirs (so what is for the
    whole county is for county staff only)."""
    return scope is None or (bool(codes) and all(c in scope for c in codes))


def township_names(settings: Settings, account: StaffAccount) -> list[str] | None:
    """The names of the townships an account is limited to (tips carry names), or None for the whole county."""
    if not account.townships:
        return None
    return [t.name for t in settings.region.townships if t.code in account.townships]
