"""Settings: config.yaml, overridden by FANGFEI_<SECTION>__<KEY> environment variables."""

from __future__ import annotations

import os
import re
from ipaddress import ip_network
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from knowledge import yamlfile

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config.yaml"
LOCAL_DATA = Path("data")  # the local default's folder (for SQLite and the generated key), made when missing
SECRETS = (("telegram", "token"), ("telegram", "webhook_secret"), ("wechat", "token"), ("wechat", "encoding_aes_key"),
           ("wechat", "app_secret"), ("wecom", "robot_webhook_url"))


class ConfigError(Exception):
    """The configuration is invalid; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class DatabaseSettings(BaseModel):
    url: str = "sqlite+aiosqlite:///data/fangfei.db"
    echo: bool = False
    pool_size: int = Field(32, ge=1, le=500)

    @field_validator("url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use an async driver URL: sqlite+aiosqlite:///path.db or postgresql+asyncpg://user@host/db")
        folder = sqlite_folder(value)
        # a mistyped path is said, not made: only the local default's data/ is created when missing
        if folder is not None and folder != LOCAL_DATA and not folder.is_dir():
            raise ValueError(f"the folder {folder} does not exist: create it first, or correct the path")
        return value


def sqlite_folder(url: str) -> Path | None:
    """The folder an SQLite URL's file is in (relative to the working directory); None for memory or PostgreSQL."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).parent


class HttpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    max_body_bytes: int = Field(65536, ge=1024)
    # the path prefix a reverse proxy serves us under ("/fangfei"), when it strips it before passing requests on
    root_path: str = Field("", pattern=r"^(/[A-Za-z0-9._~-]+)*$")
    # the address residents reach this server at (https://fangfei.example.gov.cn), no path: WeChat sign-in's
    # return address and the share card's link are built on it
    public_url: str = ""

    @field_validator("public_url")
    @classmethod
    def _origin(cls, value: str) -> str:
        if value and not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?", value.rstrip("/")):
            raise ValueError("public_url: a scheme and host only, like https://fangfei.example.gov.cn")
        return value.rstrip("/")


class ChatSettings(BaseModel):
    max_text_chars: int = Field(2000, ge=10)
    option_ttl_minutes: int = Field(1440, ge=1)
    retention_days: float = Field(180, gt=0)


class LimitSettings(BaseModel):
    messages_per_minute: int = Field(30, ge=1)
    address_messages_per_minute: int = Field(120, ge=1)
    address_tips_per_hour: int = Field(5, ge=1)
    trusted_proxies: list[str] = ["127.0.0.1", "::1"]

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not an IP address or network") from exc
        return value


class SearchSettings(BaseModel):
    threshold: float = Field(0.3, ge=0, le=1)
    group_threshold: float = Field(0.5, ge=0, le=1)
    suggest_threshold: float = Field(0.1, ge=0, le=1)
    related: int = Field(3, ge=0, le=8)
    gaps_retention_days: float = Field(365, gt=0)


def _code_of(name: str) -> str:
    """A stable code from a Chinese place name when none is configured: its pinyin (南关村 → nanguancun)."""
    from pypinyin import lazy_pinyin

    return "".join(lazy_pinyin(name)).lower().replace(" ", "")


class Village(BaseModel):
    """A village or community (社区): a stable code, its name, and how many adults and over-60s live there (the
    denominators of quiz participation rates; 0 when unknown)."""

    code: str = ""
    name: str
    adults: int = Field(0, ge=0)
    over60: int = Field(0, ge=0)


class Township(BaseModel):
    code: str = ""
    name: str
    # plain names (older configurations) or villages with codes and population figures
    villages: list[Village] = []

    @field_validator("villages", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return [{"name": v} if isinstance(v, str) else v for v in value or []]

    @model_validator(mode="after")
    def _codes(self) -> Township:
        self.code = self.code or _code_of(self.name)
        for village in self.villages:
            village.code = village.code or f"{self.code}-{_code_of(village.name)}"
        return self

    @property
    def village_names(self) -> list[str]:
        return [v.name for v in self.villages]


class School(BaseModel):
    code: str
    name: str
    township: str = ""  # a township code
    students: int = Field(0, ge=0)


class RegionSettings(BaseModel):
    region: str = "示例县"
    office: str = "示例县处非办"
    office_phone: str = "0000-0000000"
    hotline: str = "12345"
    police: str = "110"
    report_online: str = "本公众号菜单“我要举报”"
    reward_max: str = "10万元"
    townships: list[Township] = []
    schools: list[School] = []

    @model_validator(mode="after")
    def _unique_codes(self) -> RegionSettings:
        codes = [t.code for t in self.townships] + [v.code for t in self.townships for v in t.villages]
        codes += [s.code for s in self.schools]
        repeated = sorted({c for c in codes if codes.count(c) > 1})
        if repeated:
            raise ValueError(f"region codes must be unique: {', '.join(repeated)}")
        towns = {t.code for t in self.townships}
        unknown = sorted({s.township for s in self.schools if s.township and s.township not in towns})
        if unknown:
            raise ValueError(f"schools name townships that are not configured: {', '.join(unknown)}")
        return self

    def placeholders(self) -> dict[str, str]:
        """The values knowledge texts may use as {placeholders}."""
        return {k: v for k, v in self.model_dump().items() if isinstance(v, str)}


class StaffMember(BaseModel):
    id: int
    # admin and staff use the staff commands; a handler also may see a reporter's identity (audited)
    role: Literal["admin", "handler", "staff"] = "staff"
    # the console account (`fangfei staff add`) this person acts as: then the account's role, townships and
    # disabled flag decide instead of `role`, and the ledger and audit log carry the account's name
    account: str = ""


class TelegramSettings(BaseModel):
    token: str = ""
    base_url: str = ""
    webhook_url: str = ""
    webhook_path: str = "/telegram/webhook"
    webhook_secret: str = ""
    staff_chat_id: int = 0
    staff: list[StaffMember] = []
    send_retries: int = Field(3, ge=0, le=10)
    max_messages_per_second: float = Field(30, gt=0)
    # seconds to wait for Telegram's answer to a request, to send it, and to connect
    read_timeout: float = Field(20, gt=0)
    write_timeout: float = Field(20, gt=0)
    connect_timeout: float = Field(5, gt=0)
    max_body_bytes: int = Field(1_048_576, ge=1024)

    @field_validator("webhook_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with /")
        return value

    def member(self, user_id: int | str) -> StaffMember | None:
        return next((m for m in self.staff if str(m.id) == str(user_id)), None)


class MenuButton(BaseModel):
    name: str
    key: str = ""
    url: str = ""
    sub: list[MenuButton] = []


class WeChatSettings(BaseModel):
    token: str = ""
    encoding_aes_key: str = ""
    app_id: str = ""
    app_secret: str = ""
    path: str = "/wechat"
    api_base_url: str = "https://api.weixin.qq.com"
    oauth_base_url: str = "https://open.weixin.qq.com"
    # the quiz page inside WeChat (a verified service account, with http.public_url's host as its 网页授权域名 and
    # JS接口安全域名): sign residents in by their openid (snsapi_base), and set the share card
    page_sign_in: bool = False
    page_share: bool = False
    reply_budget_seconds: float = Field(4.0, gt=0, lt=5)
    max_body_bytes: int = Field(65536, ge=1024)
    menu: list[MenuButton] = []
    # warnings (bot/broadcasts/): the account's type sets the mass-send quota (服务号 service: each user at most 4
    # a month; 订阅号 subscription: 1 a day) and whether template messages exist (service accounts only)
    account_type: Literal["service", "subscription"] = "service"
    # a template message (模板消息) for warnings outside the 48-hour window: the template's id, which of its
    # fields take which part of the warning (title, text, area, date, office, hotline), each cut to
    # template_field_chars, and an optional page (url) or mini program (appid + pagepath) it opens
    template_id: str = ""
    template_fields: dict[str, Literal["title", "text", "area", "date", "office", "hotline"]] = {
        "first": "title", "keyword1": "area", "keyword2": "date", "keyword3": "text", "remark": "hotline"}
    template_field_chars: int = Field(200, ge=1)
    template_url: str = Field("", pattern=r"^(https?://\S+)?$")
    template_miniprogram_appid: str = ""
    template_miniprogram_path: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.token)

    @property
    def can_send(self) -> bool:
        """Customer-service, template and mass messages need the API (the app secret) besides the server token."""
        return self.enabled and bool(self.app_secret)

    @property
    def safe_mode(self) -> bool:
        return bool(self.encoding_aes_key)


class WeComSettings(BaseModel):
    robot_webhook_url: str = ""
    max_per_minute: int = Field(20, ge=1, le=20)
    # seconds to wait for the robot's answer, and to connect
    read_timeout: float = Field(20, gt=0)
    connect_timeout: float = Field(5, gt=0)


class OutboxSettings(BaseModel):
    # a message whose send got no answer (it may have arrived) is tried once more after this pause, then given up
    unknown_pause_minutes: float = Field(30, gt=0)
    # a worker holds the messages it claimed this long; if it dies, another takes them over after it
    lease_seconds: float = Field(60, ge=2)


class SchedulerSettings(BaseModel):
    # the process holding the lease runs the once-only jobs (campaigns opening and closing); a leader that is
    # killed is replaced after this long
    lease_seconds: float = Field(30, ge=2)
    # how often campaigns due to open or close are looked for (they take answers to the second regardless)
    campaigns_every_seconds: float = Field(20, gt=0)


class GroupQuizSettings(BaseModel):
    """Quiz rounds in group chats (handlers/group_quiz.py): native quiz polls, one at a time."""

    # how long each poll stays open (Telegram's open_period: 5 to 600 seconds)
    open_seconds: int = Field(30, ge=5, le=600)
    # after a poll closes, before the next poll (or the leaderboard): late-arriving answers still count
    pause_seconds: float = Field(3, ge=2, le=600)
    # questions of a practice round (no campaign open); a campaign's round takes its count, at most max_questions
    questions: int = Field(5, ge=1, le=15)
    max_questions: int = Field(10, ge=1, le=15)
    # how often the leading process posts what is due
    step_every_seconds: float = Field(2, gt=0)
    # groups that opted in (`/quiz on`) get a round by themselves each day at this China time while a campaign
    # for their audience is open
    daily_at: str = Field("20:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    schedule_every_seconds: float = Field(60, gt=0)
    # a process posting a poll holds it this long; a process killed mid-post is replaced after it
    claim_seconds: float = Field(120, ge=1)
    # a refusal (not an admin, a round running) is said at most once in this many seconds per group
    notice_seconds: float = Field(30, ge=0)


class BroadcastSettings(BaseModel):
    # the two-person rule: whoever drafts a warning cannot approve it
    two_person: bool = True
    # staff names who may approve, for configurations made before staff accounts: an account of that name
    # (`fangfei staff add NAME --role approver`) decides instead
    approvers: list[str] = []
    # no warning reaches these audiences between quiet_start and quiet_end (China time) unless marked urgent
    quiet_start: str = Field("21:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    quiet_end: str = Field("08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    quiet_audiences: list[str] = ["elderly"]
    # how often the leader looks for approved warnings whose time has come
    every_seconds: float = Field(10, gt=0)
    # a village cadre who has not said "已转发" this long after a warning reached them is reminded once
    relay_remind_minutes: float = Field(120, gt=0)
    # township staff groups' WeCom robots, by township code: {"chengguan": "https://qyapi.weixin.qq.com/…key=…"};
    # the URLs hold keys, so give them in FANGFEI_BROADCASTS__TOWNSHIP_ROBOTS (JSON), not in this file
    township_robots: dict[str, str] = {}


class TipSettings(BaseModel):
    max_per_day: int = Field(5, ge=1)
    max_text_chars: int = Field(1000, ge=50)
    max_files: int = Field(9, ge=0, le=50)
    max_file_mb: float = Field(20, gt=0)
    draft_hours: float = Field(24, gt=0)
    remind_after_minutes: float = Field(60, gt=0)
    # staff names (as given to `fangfei tips ... --as NAME`) who may see a reporter's identity from the CLI, for
    # configurations made before staff accounts: an account of that name (role handler) decides instead
    handlers: list[str] = []
    # where the outbox sends new-tip alerts: the Telegram staff chat and/or the WeCom robot, when configured
    alert_telegram: bool = True
    alert_wecom: bool = True


class ConsoleSettings(BaseModel):
    # a console session unused this long ends (sign in again)
    idle_minutes: float = Field(30, gt=0)
    # this many wrong passwords in a row lock the account for lockout_minutes
    max_failed_logins: int = Field(5, ge=1)
    lockout_minutes: float = Field(15, gt=0)
    # sign-in attempts one client address may make a minute (any account)
    logins_per_minute: int = Field(20, ge=1)
    # a tip not closed this many days after it was filed is overdue
    overdue_days: float = Field(7, gt=0)
    # tips on a page of the ledger
    page_size: int = Field(50, ge=10, le=500)
    # the argon2id cost of a new password hash (argon2-cffi's defaults: RFC 9106's low-memory profile). A hash keeps
    # the parameters it was made with, and a sign-in rehashes it to these when they have changed.
    password_time_cost: int = Field(3, ge=1)
    password_memory_kib: int = Field(65536, ge=64)
    password_parallelism: int = Field(4, ge=1, le=8)


class LogSettings(BaseModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


KEY_ADVICE = ('at least 32 random characters (a Fernet key will do), made with: '
              'python -c "import secrets; print(secrets.token_urlsafe(32))"')


def strong_key(key: str) -> bool:
    """A sealing key fit for production: 32 characters or more, 16 or more of them different (a Fernet key, or
    `secrets.token_urlsafe(32)`, has 43 or 44). Refuses a password-like or repeated string, not only an empty one."""
    return len(key) >= 32 and len(set(key)) >= 16


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FANGFEI_", env_nested_delimiter="__", extra="forbid")

    mode: Literal["local", "production"] = "local"
    # seals reporters' identities (FANGFEI_SECRET_KEY); required in production, generated into data/ locally
    secret_key: str = ""
    database: DatabaseSettings = DatabaseSettings()
    http: HttpSettings = HttpSettings()
    chat: ChatSettings = ChatSettings()
    limits: LimitSettings = LimitSettings()
    search: SearchSettings = SearchSettings()
    region: RegionSettings = RegionSettings()
    telegram: TelegramSettings = TelegramSettings()
    wechat: WeChatSettings = WeChatSettings()
    wecom: WeComSettings = WeComSettings()
    tips: TipSettings = TipSettings()
    broadcasts: BroadcastSettings = BroadcastSettings()
    outbox: OutboxSettings = OutboxSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    group_quiz: GroupQuizSettings = GroupQuizSettings()
    console: ConsoleSettings = ConsoleSettings()
    log: LogSettings = LogSettings()

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.telegram.token and self.telegram.webhook_url and not self.telegram.webhook_secret:
            raise ValueError("telegram.webhook_secret: required with telegram.webhook_url "
                             "(set FANGFEI_TELEGRAM__WEBHOOK_SECRET)")
        if self.mode == "production" and not strong_key(self.secret_key):
            raise ValueError(f"secret_key: {'too weak' if self.secret_key else 'required'} in production mode: set "
                             f"FANGFEI_SECRET_KEY to {KEY_ADVICE}; it seals reporters' identities")
        if self.wechat.safe_mode and not self.wechat.app_id:
            raise ValueError("wechat.app_id: required in safe mode (with wechat.encoding_aes_key)")
        if (self.wechat.page_sign_in or self.wechat.page_share) and not (
                self.wechat.app_id and self.wechat.app_secret and self.http.public_url):
            raise ValueError("wechat.page_sign_in and wechat.page_share need wechat.app_id, "
                             "FANGFEI_WECHAT__APP_SECRET and http.public_url")
        if self.wechat.template_id and self.wechat.account_type != "service":
            raise ValueError("wechat.template_id: template messages exist only for service accounts "
                             "(wechat.account_type: service)")
        if self.wechat.template_id and not self.wechat.template_fields:
            raise ValueError("wechat.template_fields: name at least one field of the template")
        if bool(self.wechat.template_miniprogram_appid) != bool(self.wechat.template_miniprogram_path):
            raise ValueError("wechat.template_miniprogram_appid and template_miniprogram_path go together")
        return self

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment variables win over the file, which is passed in as init arguments.
        return env_settings, init_settings


def config_path(explicit: str | Path | None = None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get("FANGFEI_CONFIG"):
        return Path(os.environ["FANGFEI_CONFIG"])
    local = Path.cwd() / "config.yaml"
    return local if local.exists() else DEFAULT_CONFIG


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "config"
    msg = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        msg = "unknown setting"
    return f"{where}: {msg}"


def load_settings(path: str | Path | None = None) -> Settings:
    """Read the config file and the environment; raise ConfigError with one line per problem."""
    file = config_path(path)
    try:
        data = yamlfile.load(file) or {}
    except FileNotFoundError as exc:
        raise ConfigError([f"{file}: config file not found"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([f"{file}: not valid YAML: {' '.join(str(exc).split())}"]) from exc
    if not isinstance(data, dict):
        raise ConfigError([f"{file}: the top level must be a mapping of sections"])
    secrets = [f"{file}: {section}.{key}: secrets come from the environment (FANGFEI_{section.upper()}__{key.upper()})"
               f", not from the file" for section, key in SECRETS if (data.get(section) or {}).get(key)]
    if data.get("secret_key"):
        secrets.append(f"{file}: secret_key: secrets come from the environment (FANGFEI_SECRET_KEY), not from the file")
    if secrets:
        raise ConfigError(secrets)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError([f"{file}: {_describe(e)}" for e in exc.errors()]) from exc
    except SettingsError as exc:  # an environment variable that should hold JSON (a list) does not
        raise ConfigError([f"environment: {' '.join(str(exc).split())} (lists are written as JSON, "
                           'e.g. \'["王科长"]\')']) from exc
