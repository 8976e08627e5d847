"""A fake WeChat Official Account API and a fake WeCom group-robot webhook for tests.

The bot under test talks to them over real HTTP on 127.0.0.1, in the platforms' own wire format::

    async with FakeWeChat() as fake:                         # async tests
        client = OurClient(fake.appid, fake.secret, api_base=fake.api_base_url)
        fake.user_wrote("oUser1")                            # opens the 48-hour customer-service window
        ...
        [msg] = await fake.wait_sent(1)

    with FakeWeComRobot() as robot:                          # sync tests, or a bot running as a subprocess
        post_to(robot.url, ...)                              # robot.url is the full webhook URL with ?key=
        robot.wait_received(1)

Design: like ``tests.fake_telegram`` (whose ``ThreadedServer`` is reused), each fake is a Starlette app under
uvicorn in its own daemon thread with its own event loop, so it works for sync tests, async tests and bots in other
processes alike.  All recorded state is guarded by one lock; test code may read the lists at any time.

Behaviour worth knowing (both fakes):

* Like the real services, errors are answered with HTTP 200 and a JSON body ``{"errcode": N, "errmsg": "..."}``;
  successes carry ``"errcode": 0, "errmsg": "ok"`` (the token endpoints answer only ``access_token``/``expires_in``).
  Responses have WeChat's content type ``application/json; encoding=utf-8``.  With ``verbose_errors=True`` error
  messages get the suffixes the real services append (``" rid: ..."`` / ``", hint: [...]"``) so a client can be
  checked for matching on ``errcode`` rather than on ``errmsg``.
* Requests that the real service would reject *because the bot built them wrongly* (content too long, malformed JSON,
  invalid menu, unknown msgtype, GET instead of POST, ...) fail like the real service *and* are recorded in
  ``violations``; tests should end with ``assert_no_violations()``.  Business errors that are not bot bugs (the
  48-hour window closed, quota used up, token expired, wrong credentials, injected failures) are only in ``calls``.
* Time: every time-based rule (token lifetime, customer-service window, robot rate limit) reads the fake's clock.  It
  follows real time until ``set_clock(t)`` freezes it at ``t`` (``set_clock(None)`` unfreezes); ``advance(seconds)``
  moves it forward either way.  Record ``time`` fields are clock values.
* Injected hangs (``fail(..., delay=...)``) end early with a 503 when the fake stops, so teardown never waits.

FakeWeChat (Official Account, ``https://api.weixin.qq.com``), reference:

* ``FakeWeChat(appid=DEFAULT_APPID, secret=DEFAULT_SECRET, *, quota=20, window=48 * 3600, token_lifetime=7200,
  verbose_errors=False)``; ``start()``/``stop()`` (may be restarted on the same port), ``with``, ``async with``.
  ``.api_base_url`` (``http://127.0.0.1:PORT``; clients append ``/cgi-bin/...``), ``.port``, ``.appid``,
  ``.secret``.  Note: WeChat's current rule (since June 2023) is 5 messages per 48 h after a user message; pass
  ``quota=5`` to test against that.
* Endpoints: ``POST /cgi-bin/stable_token`` (JSON ``grant_type/appid/secret/force_refresh``; normal mode returns the
  current token and its *remaining* lifetime as ``expires_in``, ``force_refresh: true`` issues a new token and
  invalidates the previous one -> 40001), ``GET /cgi-bin/token`` (the classic endpoint: always a new token, the
  previous one stays valid for 5 minutes; its tokens are independent from stable tokens, as in WeChat),
  ``POST /cgi-bin/message/custom/send?access_token=T`` (text/news/image/voice/video/... loosely, news at most one
  article -> 45008), ``POST /cgi-bin/message/custom/typing`` (``command`` Typing/CancelTyping, inside the window),
  ``POST /cgi-bin/menu/create``, ``GET /cgi-bin/menu/get`` (46003 when there is none), ``GET /cgi-bin/menu/delete``,
  ``GET /cgi-bin/media/get?access_token=T&media_id=M`` (temporary media, see below),
  ``GET /cgi-bin/ticket/getticket?access_token=T&type=jsapi`` (a new JS-SDK ticket each call, earlier ones valid
  until they expire; ``tickets_issued``, ``jsapi_ticket``, ``ticket_valid(t)``, ``expire_tickets()``).
* Web sign-in: ``GET /connect/oauth2/authorize`` (what ``open.weixin.qq.com`` does in WeChat's browser; point the
  client's OAuth base at ``api_base_url``): 302 back to ``redirect_uri`` with ``code`` and ``state`` for the user in
  ``resident`` (None: no code, as when a user refuses); a wrong appid, scope, response_type, state (> 128 or not
  alphanumeric) or a redirect host other than ``oauth_domain`` ends on an error page and is a violation; recorded in
  ``authorizations``. ``GET /sns/oauth2/access_token?appid&secret&code&grant_type=authorization_code`` answers the
  openid; a code works once (40163 "code been used") for 5 minutes (40029 "invalid code"). ``issue_code(openid)``
  makes a code directly.
  Token errors: missing 41001, unknown or superseded 40001, expired 42001.  Credentials: wrong appid 40013, wrong
  secret 40125, wrong grant_type 40002.
* Customer-service window: ``user_wrote(openid, at=None, *, window=None, quota=None)`` opens (or renews, resetting
  the count) a window of ``window`` seconds from ``at`` (default: now) allowing ``quota`` messages; sending outside it
  -> 45015, beyond the quota -> 45047.  ``window_of(openid)`` shows the state.  Text over 2048 UTF-8 bytes -> 45002
  (a violation), empty text -> 44004 (a violation).
* Template messages: ``POST /cgi-bin/message/template/send`` (``touser``, ``template_id`` one of ``templates`` —
  ``add_template(id, fields)``; another -> 40037, a violation —, ``data`` ``{field: {"value": str}}`` with the
  template's fields only (47001, a violation), optional ``url`` (http(s)://) and ``miniprogram`` ``{appid,
  pagepath}``); no window, but a user who unfollowed (``unfollow(openid)``; ``follow(openid)`` undoes it) -> 43004,
  one who turned template messages off (``refuse_templates(openid)``) -> 43101.  Recorded in ``templates_sent``
  (touser, template_id, data (the values), url, miniprogram, msgid, time).  Customer-service messages to a user who
  unfollowed -> 43004 too.
* Mass sends: ``POST /cgi-bin/message/mass/sendall`` with ``filter {"is_to_all": false, "tag_id": N}`` (a tag of
  ``tag(openid, tag_id)``; an unknown tag -> 40050) and a text (``msgtype: text``, ``text.content``).  The quota
  follows ``mass_account_type`` ("service": each user gets at most 4 a calendar month (China time) — a send whose
  tag has no one left under it -> 45028; "subscription": one send a China day -> 45028).  Answers ``msg_id`` and
  ``msg_data_id``; recorded in ``mass_sent`` (tag_id, content, recipients, msg_id, time).
* Held answers: ``hold_answer(path_suffix, seconds)``: calls to that path are processed at once and their answer
  is sent ``seconds`` later (a process killed meanwhile never learns the outcome); ``hold_answer(path, None)`` ends
  it.
* Menu validation like WeChat: 1-3 buttons (40016), names <= 16 bytes (40018) / sub-buttons <= 60 bytes (40025),
  1-5 sub-buttons (40023), types (40017/40024), keys 1-128 bytes for click/scancode/pic/location types
  (40019/40026), urls 1-1024 bytes for view/miniprogram (40020/40027) starting with http(s):// (40055/40054),
  media_id (40007), article_id / miniprogram appid+pagepath (47001).  Success stores the menu in ``fake.menu``.
* Temporary media: ``add_media(media_id, data, content_type="image/jpeg", *, video=False)`` registers bytes (as a
  user's image message would); ``media/get`` answers them with that content type and a ``Content-Disposition``
  file name, like WeChat.  A video (``video=True``) is answered like WeChat does, with JSON ``{"video_url": URL}``;
  the URL (on the fake, no token needed) serves the bytes.  Unknown ids, and media older than 3 days on the fake's
  clock (WeChat deletes temporary media then), -> 40007 "invalid media_id"; no media_id -> 41006 (a violation).
* Tokens: ``token_requests`` (requests to either token endpoint, including failed and injected ones),
  ``tokens_issued`` (new tokens in order), ``access_token`` (the current stable token or None),
  ``expire_token(token=None)`` (default: every currently valid token -> 42001; the next normal-mode stable_token
  call issues a new one).
* Failures: ``fail(path_suffix, errcode=None, status=None, times=1, delay=None, errmsg=None)``: the next ``times``
  calls (None = until ``clear_failures()``) whose path ends with ``path_suffix`` ("*" = any) wait ``delay`` seconds
  if given, then answer HTTP ``status`` with an HTML error page, or JSON ``errcode`` (default message from WeChat's
  list, e.g. -1 "system error"), or, with only ``delay``, are processed normally.  Recorded in ``injected``.
* Records: ``sent`` (touser, msgtype, content (text content; title / media_id for other types), message (the body),
  time), ``calls`` (path, method, query, body, status, errcode, errmsg, time), ``violations`` (path, errcode, errmsg,
  kind, body, time), ``injected``, ``typing``, ``menu``; ``texts_to(openid)``, ``calls_to(suffix)``,
  ``assert_no_violations()``, ``clear_records()``.
* Waiting: ``wait_for(predicate, timeout=10)``, ``wait_sent(n=1, timeout=10, *, touser=None)``,
  ``wait_calls(n=1, path_suffix="*", timeout=10)``.  In async tests (a running event loop) they return a coroutine
  that MUST be awaited; in sync tests they block.  They raise TimeoutError listing the last calls.

FakeWeComRobot (WeCom group robot, ``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY``), reference:

* ``FakeWeComRobot(key=None, *, rate_limit=(20, 60.0), enforce_rate_limit=True, verbose_errors=False)``;
  ``.url`` (full webhook URL), ``.key``, ``.base_url``, ``add_key(key=None) -> url`` (more robots / groups on the
  same server; each key has its own rate limit), ``url_for(key)``.
* ``POST /cgi-bin/webhook/send?key=K``: ``text`` (content <= 2048 bytes, ``mentioned_list`` /
  ``mentioned_mobile_list`` lists of strings), ``markdown`` and ``markdown_v2`` (<= 4096 bytes), ``image`` (base64 +
  md5, checked), ``news`` (1-8 articles with title and url), ``file``/``voice`` (media_id), ``template_card``.
  Too long -> 40058 (a violation); empty content -> 44004; unknown msgtype -> 40008; wrong or missing key -> 93000
  "invalid webhook url".  More than ``rate_limit[0]`` accepted messages within ``rate_limit[1]`` seconds for one key
  -> 45009 "api freq out of limit" (recorded in ``rate_violations``; with ``enforce_rate_limit=False`` the message
  is accepted but still recorded).  Rejected messages do not count toward the rate limit.
* Failures: ``fail(times=1, errcode=None, status=None, delay=None, errmsg=None, key=None)``, ``clear_failures()``.
* Records: ``received`` (key, msgtype, content, mentioned_list, mentioned_mobile_list, message, time), ``calls``,
  ``violations``, ``rate_violations``, ``injected``; ``texts(key=None)``, ``assert_no_violations()``,
  ``clear_records()``; waiting: ``wait_for(...)``, ``wait_received(n=1, timeout=10, *, key=None)``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import hashlib
import json
import logging
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fake_telegram import ThreadedServer, Waiting

log = logging.getLogger("tests.fake_wechat")

DEFAULT_APPID = "wx5f3c9a1d2b7e4c80"
DEFAULT_SECRET = "3b9f0c6d1e2a4f5b8c7d9e0a1b2c3d4e"
DEFAULT_ROBOT_KEY = "693a91f6-7b3c-4bc4-97a0-0ec2f1fa5aaa"

TOKEN_LIFETIME = 7200
CLASSIC_TOKEN_GRACE = 300  # the previous /cgi-bin/token token stays valid this long
CS_WINDOW = 48 * 3600
CS_QUOTA = 20
MAX_CS_TEXT = 2048  # bytes
MEDIA_LIFETIME = 3 * 24 * 3600  # temporary media are deleted after 3 days
VIDEO_CDN_PATH = "/fake-cdn/video"  # where a video's video_url points
MAX_ROBOT_TEXT = 2048
MAX_ROBOT_MARKDOWN = 4096
MAX_ROBOT_IMAGE = 2 * 1024 * 1024
ROBOT_RATE = (20, 60.0)

MAX_MENU_BUTTONS = 3
MAX_SUB_BUTTONS = 5
MAX_MENU_NAME = 16
MAX_SUB_NAME = 60
MAX_MENU_KEY = 128
MAX_MENU_URL = 1024
KEY_TYPES = {"click", "scancode_push", "scancode_waitmsg", "pic_sysphoto", "pic_photo_or_album", "pic_weixin",
             "location_select"}
URL_TYPES = {"view", "miniprogram"}
MEDIA_TYPES = {"media_id", "view_limited"}
ARTICLE_TYPES = {"article_id", "article_view_limited"}
MENU_TYPES = KEY_TYPES | URL_TYPES | MEDIA_TYPES | ARTICLE_TYPES

CS_MSGTYPES = {"text", "image", "voice", "video", "music", "news", "mpnews", "mpnewsarticle", "msgmenu", "wxcard",
               "miniprogrampage"}
ROBOT_MSGTYPES = {"text", "markdown", "markdown_v2", "image", "news", "file", "voice", "template_card"}

JSON_TYPE = "application/json; encoding=utf-8"

ERRMSGS: dict[int, str] = {
    -1: "system error",
    0: "ok",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40007: "invalid media_id",
    40008: "invalid message type",
    40013: "invalid appid",
    40016: "invalid button size",
    40017: "invalid button type",
    40018: "invalid button name size",
    40019: "invalid button key size",
    40020: "invalid button url size",
    40023: "invalid sub button size",
    40024: "invalid sub button type",
    40025: "invalid sub button name size",
    40026: "invalid sub button key size",
    40027: "invalid sub button url size",
    40054: "invalid sub button url domain",
    40055: "invalid button url domain",
    40058: "invalid Request Parameter",
    40029: "invalid code",
    40097: "invalid args",
    40125: "invalid appsecret",
    40163: "code been used",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    41006: "media_id missing",
    42001: "access_token expired",
    43001: "require GET method",
    43002: "require POST method",
    44003: "empty news data",
    44004: "empty content",
    45002: "content size out of limit",
    45008: "article size out of limit",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit, must slower, retry next minute",
    45015: "response out of time limit or subscription is canceled",
    45028: "has no masssend quota",
    40037: "invalid template_id",
    40050: "invalid tag id",
    45159: "invalid tag id",
    43004: "require subscribe",
    43101: "user refuse to accept the msg",
    45047: "out of response count limit",
    46003: "menu no exist",
    47001: "data format error",
    48001: "api unauthorized",
    50002: "user limited",
    93000: "invalid webhook url",
}
ROBOT_ERRMSGS = {**ERRMSGS, 45009: "api freq out of limit"}
HTTP_REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 429: "Too Many Requests",
                500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Time-out"}


class WxError(Exception):
    """An error answer; ``violation`` (a short kind) marks it as a bot bug to record in ``violations``."""

    def __init__(self, errcode: int, errmsg: str | None = None, *, violation: str | None = None) -> None:
        self.errcode = errcode
        self.errmsg = errmsg or ERRMSGS.get(errcode, f"error {errcode}")
        self.violation = violation
        super().__init__(f"{errcode} {self.errmsg}")


@dataclass
class _Failure:
    suffix: str  # normalised path suffix, or "*"; for the robot: a key or "*"
    errcode: int | None
    errmsg: str | None
    status: int | None
    delay: float | None
    times: int | None


@dataclass
class _Token:
    value: str
    kind: str  # "stable" or "classic"
    issued: float
    expires_at: float
    invalid_from: float | None = None  # superseded: answers 40001 from then on
    expired: bool = False  # expire_token(): answers 42001


@dataclass
class _Media:
    data: bytes
    content_type: str
    added: float
    video: bool = False


@dataclass
class _Window:
    opened: float
    until: float
    quota: int
    used: int = 0


class FakeClock:
    """Real time until ``set(t)`` freezes it; ``advance(s)`` moves it forward, frozen or not."""

    def __init__(self) -> None:
        self._frozen: float | None = None
        self._offset = 0.0

    def now(self) -> float:
        return self._frozen if self._frozen is not None else time.time() + self._offset

    def set(self, t: float | None) -> None:
        if t is None:
            if self._frozen is not None:
                self._offset = self._frozen - time.time()
            self._frozen = None
        else:
            self._frozen = float(t)

    def advance(self, seconds: float) -> None:
        if self._frozen is not None:
            self._frozen += seconds
        else:
            self._offset += seconds


# --------------------------------------------------------------------------------------------------------------------
# Shared machinery
# --------------------------------------------------------------------------------------------------------------------


class _FakeBase(Waiting):
    _kind = "fake"
    _errmsgs = ERRMSGS

    def __init__(self, *, verbose_errors: bool = False) -> None:
        self.verbose_errors = verbose_errors
        self._lock = threading.RLock()
        self._clock = FakeClock()
        self._closing: asyncio.Event | None = None
        self._failures: list[_Failure] = []
        self._server = ThreadedServer(self._build_app(), on_start=self._on_start)
        self.calls: list[dict[str, Any]] = []
        self.violations: list[dict[str, Any]] = []
        self.injected: list[dict[str, Any]] = []

    # ---------------------------------------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        def _close() -> None:
            if self._closing is not None:
                self._closing.set()

        self._server.call_soon(_close)
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    async def _on_start(self) -> None:
        self._closing = asyncio.Event()

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def base_url(self) -> str:
        return self._server.url

    def _build_app(self) -> Starlette:
        raise NotImplementedError

    # ---------------------------------------------------------------------------------------------- clock

    def now(self) -> float:
        """The fake's clock (seconds since the epoch)."""
        return self._clock.now()

    def set_clock(self, t: float | None) -> None:
        """Freeze the clock at ``t`` (None: follow real time again from the current value)."""
        with self._lock:
            self._clock.set(t)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._clock.advance(seconds)

    # ---------------------------------------------------------------------------------------------- HTTP helpers

    def _json(self, payload: dict[str, Any]) -> Response:
        return Response(json.dumps(payload, ensure_ascii=False), media_type=JSON_TYPE)

    def _error_payload(self, errcode: int, errmsg: str) -> dict[str, Any]:
        if self.verbose_errors and errcode != 0:
            errmsg = self._decorate(errcode, errmsg)
        return {"errcode": errcode, "errmsg": errmsg}

    def _decorate(self, errcode: int, errmsg: str) -> str:
        return f"{errmsg} rid: {secrets.token_hex(4)}-{secrets.token_hex(4)}-{secrets.token_hex(7)}"

    def _take_failure(self, match: Callable[[_Failure], bool]) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if not match(failure):
                    continue
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                return failure
        return None

    async def _apply_failure(self, failure: _Failure, record: dict[str, Any]) -> Response | None:
        """Run an injected failure; a Response ends the call, None lets it proceed normally (after a delay)."""
        with self._lock:
            self.injected.append({**record, "errcode": failure.errcode, "status": failure.status,
                                  "delay": failure.delay, "time": self.now()})
        if failure.delay:
            closing = self._closing
            if closing is not None:
                try:
                    await asyncio.wait_for(closing.wait(), failure.delay)
                    return _html_error(503)  # the fake is stopping
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(failure.delay)
        if failure.status is not None:
            return _html_error(failure.status)
        if failure.errcode is not None:
            errmsg = failure.errmsg or self._errmsgs.get(failure.errcode, f"error {failure.errcode}")
            return self._json(self._error_payload(failure.errcode, errmsg))
        return None

    @staticmethod
    def _make_failure(suffix: str, errcode: int | None, status: int | None, times: int | None,
                      delay: float | None, errmsg: str | None) -> _Failure:
        if errcode is None and status is None and not delay:
            raise ValueError("fail() needs errcode, status or delay")
        if errcode is not None and status is not None:
            raise ValueError("fail() takes errcode or status, not both")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 (or None for 'until clear_failures()')")
        return _Failure(suffix, errcode, errmsg, status, delay, times)

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def _record_violation(self, path: str, err: WxError, body: Any) -> None:
        with self._lock:
            self.violations.append({"path": path, "errcode": err.errcode, "errmsg": err.errmsg,
                                    "kind": err.violation, "body": body, "time": self.now()})
        log.warning("%s would reject %s: %s %s", self._kind, path, err.errcode, err.errmsg)

    def assert_no_violations(self) -> None:
        with self._lock:
            problems = [f"{v['path']}: {v['errcode']} {v['errmsg']} ({v['kind']})" for v in self.violations]
            problems += [f"rate limit: {r['count']} messages in {r['window']}s (key {r['key']})"
                         for r in getattr(self, "rate_violations", [])]
        if problems:
            raise AssertionError(f"{self._kind} would have rejected:\n  " + "\n  ".join(problems))

    # ---------------------------------------------------------------------------------------------- waiting

    def wait_for(self, predicate: Callable[..., Any], timeout: float = 10.0, message: str | None = None) -> Any:
        """Wait until ``predicate()`` (or ``predicate(fake)``) is truthy and return its value.

        Inside a running event loop (async tests) this returns a coroutine: ``await fake.wait_for(...)``.  Without
        one (sync tests) it blocks.  Raises TimeoutError listing the last calls.
        """
        return self._wait(self._checker(predicate), timeout, message)

    def _timeout_message(self, what: str | None, timeout: float) -> str:
        with self._lock:
            recent = [f"{c['method']} {c['path']} -> {c['status']} errcode={c['errcode']}"
                      + (f" ({c['errmsg']})" if c["errcode"] else "") for c in self.calls][-10:]
            violations = [f"{v['errcode']} {v['errmsg']}" for v in self.violations]
        lines = [f"{what or 'condition'} not met within {timeout}s", f"last calls: {recent}"]
        if violations:
            lines.append(f"violations: {violations}")
        return "; ".join(lines)


# --------------------------------------------------------------------------------------------------------------------
# WeChat Official Account API
# --------------------------------------------------------------------------------------------------------------------


class FakeWeChat(_FakeBase):
    """A fake WeChat Official Account API server; see the module docstring."""

    _kind = "WeChat"

    def __init__(self, appid: str = DEFAULT_APPID, secret: str = DEFAULT_SECRET, *, quota: int = CS_QUOTA,
                 window: float = CS_WINDOW, token_lifetime: int = TOKEN_LIFETIME,
                 verbose_errors: bool = False) -> None:
        self.appid = appid
        self.secret = secret
        self.quota = quota
        self.window = window
        self.token_lifetime = token_lifetime
        super().__init__(verbose_errors=verbose_errors)

        self.sent: list[dict[str, Any]] = []
        self.typing: list[dict[str, Any]] = []
        self.menu: dict[str, Any] | None = None
        self.token_requests = 0
        self.tokens_issued: list[str] = []
        self.ticket_lifetime = TOKEN_LIFETIME
        self.tickets_issued: list[str] = []
        self.authorizations: list[dict[str, Any]] = []
        self.resident: str | None = None  # who "is" in WeChat's browser for the authorize page
        self.oauth_domain: str | None = None  # the account's 网页授权域名 (None: any host)
        self._tickets: dict[str, float] = {}  # ticket -> expires at
        self._codes: dict[str, dict[str, Any]] = {}

        self._tokens: dict[str, _Token] = {}
        self._current: dict[str, str] = {}  # kind -> token
        self._windows: dict[str, _Window] = {}
        self._media: dict[str, _Media] = {}
        self.templates: dict[str, tuple[str, ...]] = {}  # template id -> its fields
        self.templates_sent: list[dict[str, Any]] = []
        self.mass_account_type = "service"
        self.mass_sent: list[dict[str, Any]] = []
        self._unfollowed: set[str] = set()
        self._refusing: set[str] = set()
        self._tags: dict[int, set[str]] = {}
        self._mass_counts: dict[tuple[str, str], int] = {}  # (openid or "*", period) -> mass sends received
        self._holds: dict[str, float] = {}  # path suffix -> seconds an answer is held
        # a handler answers a JSON object, or a whole Response (media downloads)
        self._routes: dict[str, tuple[str, Callable[[Request, Any], dict[str, Any] | Response], bool]] = {
            # path -> (HTTP method, handler, needs access_token)
            "/cgi-bin/stable_token": ("POST", self._api_stable_token, False),
            "/cgi-bin/token": ("GET", self._api_token, False),
            "/cgi-bin/message/custom/send": ("POST", self._api_custom_send, True),
            "/cgi-bin/message/template/send": ("POST", self._api_template_send, True),
            "/cgi-bin/message/mass/sendall": ("POST", self._api_mass_sendall, True),
            "/cgi-bin/tags/members/batchuntagging": ("POST", self._api_untag, True),
            "/cgi-bin/message/custom/typing": ("POST", self._api_custom_typing, True),
            "/cgi-bin/menu/create": ("POST", self._api_menu_create, True),
            "/cgi-bin/menu/get": ("GET", self._api_menu_get, True),
            "/cgi-bin/menu/delete": ("GET", self._api_menu_delete, True),
            "/cgi-bin/media/get": ("GET", self._api_media_get, True),
            VIDEO_CDN_PATH: ("GET", self._cdn_video, False),
            "/cgi-bin/ticket/getticket": ("GET", self._api_getticket, True),
            "/sns/oauth2/access_token": ("GET", self._api_oauth_token, False),
            "/connect/oauth2/authorize": ("GET", self._authorize_page, False),
        }

    @property
    def api_base_url(self) -> str:
        """``http://127.0.0.1:PORT``; clients append ``/cgi-bin/...`` as they would to https://api.weixin.qq.com."""
        return self._server.url

    def __repr__(self) -> str:
        return f"<FakeWeChat {self.api_base_url} sent={len(self.sent)} violations={len(self.violations)}>"

    # ---------------------------------------------------------------------------------------------- HTTP layer

    def _build_app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._endpoint, methods=["GET", "POST", "PUT", "DELETE"])])

    async def _endpoint(self, request: Request) -> Response:
        path = "/" + request.path_params["path"].strip("/")
        query = dict(request.query_params)
        raw = await request.body()
        body, bad_json = _json_body(raw)
        record = {"path": path, "method": request.method, "query": query, "body": body}
        if path in ("/cgi-bin/stable_token", "/cgi-bin/token"):
            with self._lock:
                self.token_requests += 1

        failure = self._take_failure(lambda f: f.suffix == "*" or path.endswith(f.suffix))
        if failure is not None:
            response = await self._apply_failure(failure, {"path": path, "method": request.method})
            if response is not None:
                payload = _payload_of(response)
                self._record_call(record, response.status_code, payload.get("errcode"), payload.get("errmsg"))
                return response

        route = self._routes.get(path)
        if route is None:
            err = WxError(404, "Not Found", violation="unknown_path")
            self._record_violation(path, err, body)
            self._record_call(record, 404, None, "Not Found")
            return _html_error(404)
        http_method, handler, needs_token = route
        try:
            if request.method != http_method and not (path == "/cgi-bin/menu/delete" and request.method == "POST"):
                raise WxError(43002 if http_method == "POST" else 43001, violation="wrong_http_method")
            if needs_token:
                self._check_token(query.get("access_token"))
            if bad_json:
                raise WxError(47001, "data format error hint: invalid JSON", violation="bad_json")
            result = handler(request, body)
        except WxError as err:
            if err.violation:
                self._record_violation(path, err, body)
            payload = self._error_payload(err.errcode, err.errmsg)
            self._record_call(record, 200, err.errcode, payload["errmsg"])
            return self._json(payload)
        if isinstance(result, Response):
            self._record_call(record, result.status_code, 0 if result.status_code == 200 else None, None)
            return result
        self._record_call(record, 200, result.get("errcode", 0), result.get("errmsg"))
        with self._lock:
            hold = next((seconds for suffix, seconds in self._holds.items() if path.endswith(suffix)), None)
        if hold:
            closing = self._closing
            try:
                await asyncio.wait_for(closing.wait() if closing is not None else asyncio.sleep(hold), hold)
            except TimeoutError:
                pass
        return self._json(result)

    def _record_call(self, record: dict[str, Any], status: int, errcode: int | None, errmsg: str | None) -> None:
        with self._lock:
            self.calls.append({**record, "status": status, "errcode": errcode, "errmsg": errmsg, "time": self.now()})

    # ---------------------------------------------------------------------------------------------- tokens

    def _check_token(self, value: str | None) -> None:
        if not value:
            raise WxError(41001, violation="missing_access_token")
        with self._lock:
            token = self._tokens.get(value)
            now = self.now()
            if token is None:
                raise WxError(40001)
            if token.expired or now >= token.expires_at:
                raise WxError(42001)
            if token.invalid_from is not None and now >= token.invalid_from:
                raise WxError(40001)

    def _valid(self, token: _Token, now: float) -> bool:
        return (not token.expired and now < token.expires_at
                and (token.invalid_from is None or now < token.invalid_from))

    def _issue(self, kind: str) -> _Token:
        now = self.now()
        value = f"{len(self.tokens_issued) + 1:03d}_{secrets.token_urlsafe(96)}"
        token = _Token(value, kind, now, now + self.token_lifetime)
        self._tokens[value] = token
        self._current[kind] = value
        self.tokens_issued.append(value)
        return token

    def _check_credentials(self, appid: Any, secret: Any, grant_type: Any) -> None:
        if grant_type != "client_credential":
            raise WxError(40002)
        if not appid:
            raise WxError(41002)
        if not secret:
            raise WxError(41004)
        if appid != self.appid:
            raise WxError(40013)
        if secret != self.secret:
            raise WxError(40125)

    def _api_stable_token(self, request: Request, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise WxError(47001, "data format error hint: stable_token takes a JSON object body", violation="bad_body")
        force = body.get("force_refresh", False)
        if not isinstance(force, bool):
            raise WxError(47001, "data format error hint: force_refresh must be a boolean", violation="bad_body")
        self._check_credentials(body.get("appid"), body.get("secret"), body.get("grant_type"))
        with self._lock:
            now = self.now()
            current = self._tokens.get(self._current.get("stable", ""))
            if current is not None and self._valid(current, now) and not force:
                return {"access_token": current.value, "expires_in": max(1, int(current.expires_at - now))}
            if current is not None and force:
                current.invalid_from = now
            token = self._issue("stable")
            return {"access_token": token.value, "expires_in": self.token_lifetime}

    def _api_token(self, request: Request, body: Any) -> dict[str, Any]:
        q = request.query_params
        self._check_credentials(q.get("appid"), q.get("secret"), q.get("grant_type"))
        with self._lock:
            now = self.now()
            previous = self._tokens.get(self._current.get("classic", ""))
            if previous is not None and previous.invalid_from is None:
                previous.invalid_from = now + CLASSIC_TOKEN_GRACE
            token = self._issue("classic")
            return {"access_token": token.value, "expires_in": self.token_lifetime}

    @property
    def access_token(self) -> str | None:
        """The current stable token, if one is valid."""
        with self._lock:
            token = self._tokens.get(self._current.get("stable", ""))
            return token.value if token is not None and self._valid(token, self.now()) else None

    def expire_token(self, token: str | None = None) -> None:
        """Make ``token`` (default: every currently valid token) answer 42001 "access_token expired"."""
        with self._lock:
            if token is not None:
                if token not in self._tokens:
                    raise ValueError("unknown token")
                self._tokens[token].expired = True
                return
            now = self.now()
            for t in self._tokens.values():
                if self._valid(t, now):
                    t.expired = True

    # ---------------------------------------------------------------------------------------------- window

    def user_wrote(self, openid: str, at: float | None = None, *, window: float | None = None,
                   quota: int | None = None) -> None:
        """The user sent a message at ``at`` (default now): open or renew their customer-service window."""
        with self._lock:
            start = self.now() if at is None else float(at)
            self._windows[openid] = _Window(start, start + (self.window if window is None else window),
                                            self.quota if quota is None else quota)

    def window_of(self, openid: str) -> dict[str, Any] | None:
        """The user's window: opened, until, quota, used, remaining, open (at the current clock); None if never."""
        with self._lock:
            w = self._windows.get(openid)
            if w is None:
                return None
            now = self.now()
            return {"opened": w.opened, "until": w.until, "quota": w.quota, "used": w.used,
                    "remaining": max(0, w.quota - w.used), "open": w.opened <= now < w.until}

    def _window_for(self, openid: Any) -> _Window:
        if not isinstance(openid, str) or not openid:
            raise WxError(40003, violation="bad_openid")
        w = self._windows.get(openid)
        now = self.now()
        if w is None or not (w.opened <= now < w.until):
            raise WxError(45015)
        return w

    # ---------------------------------------------------------------------------------------------- messages

    def _api_custom_send(self, request: Request, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise WxError(47001, violation="bad_body")
        msgtype = body.get("msgtype")
        if msgtype not in CS_MSGTYPES:
            raise WxError(40008, violation="bad_msgtype")
        inner = body.get(msgtype)
        if not isinstance(inner, dict):
            raise WxError(47001, f"data format error hint: missing {msgtype} object", violation="bad_body")
        content: Any = None
        if msgtype == "text":
            content = inner.get("content")
            if not isinstance(content, str) or not content:
                raise WxError(44004, violation="empty_content")
            if len(content.encode("utf-8")) > MAX_CS_TEXT:
                raise WxError(45002, violation="content_too_long")
        elif msgtype == "news":
            articles = inner.get("articles")
            if not isinstance(articles, list) or not articles:
                raise WxError(44003, violation="empty_news")
            if len(articles) > 1:
                raise WxError(45008, violation="too_many_articles")
            if not isinstance(articles[0], dict) or not articles[0].get("title"):
                raise WxError(47001, "data format error hint: article needs a title", violation="bad_body")
            content = articles[0]["title"]
        elif msgtype in ("image", "voice", "video", "mpnews"):
            content = inner.get("media_id")
            if not content:
                raise WxError(40007, violation="missing_media_id")
        with self._lock:
            if body.get("touser") in self._unfollowed:
                raise WxError(43004)
            w = self._window_for(body.get("touser"))
            if w.used >= w.quota:
                raise WxError(45047)
            w.used += 1
            self.sent.append({"touser": body["touser"], "msgtype": msgtype, "content": content,
                              "message": copy.deepcopy(body), "time": self.now()})
        return {"errcode": 0, "errmsg": "ok"}

    # ---------------------------------------------------------------------------------------------- templates, mass

    def add_template(self, template_id: str, fields: tuple[str, ...] = ("first", "keyword1", "keyword2", "keyword3",
                                                                         "remark")) -> None:
        with self._lock:
            self.templates[template_id] = tuple(fields)

    def unfollow(self, openid: str) -> None:
        with self._lock:
            self._unfollowed.add(openid)

    def follow(self, openid: str) -> None:
        with self._lock:
            self._unfollowed.discard(openid)

    def refuse_templates(self, openid: str) -> None:
        with self._lock:
            self._refusing.add(openid)

    def tag(self, openid: str, tag_id: int) -> None:
        with self._lock:
            self._tags.setdefault(tag_id, set()).add(openid)

    def hold_answer(self, path_suffix: str, seconds: float | None) -> None:
        suffix = "/" + path_suffix.strip("/")
        with self._lock:
            if seconds:
                self._holds[suffix] = seconds
            else:
                self._holds.pop(suffix, None)

    def _api_template_send(self, request: Request, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise WxError(47001, violation="bad_body")
        touser, template_id, data = body.get("touser"), body.get("template_id"), body.get("data")
        if not isinstance(touser, str) or not touser:
            raise WxError(40003, violation="bad_openid")
        with self._lock:
            fields = self.templates.get(template_id) if isinstance(template_id, str) else None
        if fields is None:
            raise WxError(40037, violation="unknown_template")
        if (not isinstance(data, dict) or not data or any(k not in fields for k in data)
                or any(not isinstance(v, dict) or not isinstance(v.get("value"), str) for v in data.values())):
            raise WxError(47001, "data format error hint: data must be {field: {value: str}} of the template's fields",
                          violation="bad_template_data")
        url = body.get("url")
        if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
            raise WxError(47001, "data format error hint: url", violation="bad_url")
        mini = body.get("miniprogram")
        if mini is not None and (not isinstance(mini, dict) or not mini.get("appid") or not mini.get("pagepath")):
            raise WxError(47001, "data format error hint: miniprogram needs appid and pagepath", violation="bad_body")
        with self._lock:
            if touser in self._unfollowed:
                raise WxError(43004)
            if touser in self._refusing:
                raise WxError(43101)
            msgid = 1000 + len(self.templates_sent) + 1
            self.templates_sent.append({"touser": touser, "template_id": template_id,
                                        "data": {k: v["value"] for k, v in data.items()}, "url": url,
                                        "miniprogram": copy.deepcopy(mini), "msgid": msgid, "time": self.now()})
        return {"errcode": 0, "errmsg": "ok", "msgid": msgid}

    def templates_to(self, openid: str) -> list[dict[str, str]]:
        with self._lock:
            return [r["data"] for r in self.templates_sent if r["touser"] == openid]

    def tagged(self, tag_id: int) -> set[str]:
        with self._lock:
            return set(self._tags.get(tag_id, set()))

    def _api_untag(self, request: Request, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("openid_list"), list):
            raise WxError(47001, violation="bad_body")
        openids, tag_id = body["openid_list"], body.get("tagid")
        if not 1 <= len(openids) <= 50 or not all(isinstance(o, str) and o for o in openids):
            raise WxError(40032, "invalid openid list size", violation="bad_body")
        with self._lock:
            if not isinstance(tag_id, int) or tag_id not in self._tags:
                raise WxError(45159)
            self._tags[tag_id] -= set(openids)
        return {"errcode": 0, "errmsg": "ok"}

    def _api_mass_sendall(self, request: Request, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise WxError(47001, violation="bad_body")
        filt = body.get("filter")
        if not isinstance(filt, dict) or not isinstance(filt.get("is_to_all"), bool):
            raise WxError(47001, "data format error hint: filter.is_to_all", violation="bad_body")
        if body.get("msgtype") != "text":
            raise WxError(40008, violation="bad_msgtype")
        content = (body.get("text") or {}).get("content") if isinstance(body.get("text"), dict) else None
        if not isinstance(content, str) or not content:
            raise WxError(44004, violation="empty_content")
        with self._lock:
            if filt["is_to_all"]:
                members = set().union(*self._tags.values()) if self._tags else set()
            else:
                tag_id = filt.get("tag_id")
                if not isinstance(tag_id, int) or tag_id not in self._tags:
                    raise WxError(40050)
                members = set(self._tags[tag_id])
            members -= self._unfollowed
            local = time.gmtime(self.now() + 8 * 3600)
            if self.mass_account_type == "subscription":
                day = time.strftime("%Y-%m-%d", local)
                if self._mass_counts.get(("*", day), 0) >= 1:
                    raise WxError(45028)
                self._mass_counts[("*", day)] = 1
                recipients = sorted(members)
            else:
                month = time.strftime("%Y-%m", local)
                recipients = sorted(m for m in members if self._mass_counts.get((m, month), 0) < 4)
                if not recipients:
                    raise WxError(45028)
                for m in recipients:
                    self._mass_counts[(m, month)] = self._mass_counts.get((m, month), 0) + 1
            msg_id = 3_000_000 + len(self.mass_sent) + 1
            self.mass_sent.append({"tag_id": filt.get("tag_id"), "content": content, "recipients": recipients,
                                   "msg_id": msg_id, "time": self.now()})
        return {"errcode": 0, "errmsg": "send job submission success", "msg_id": msg_id, "msg_data_id": msg_id * 10}

    def _api_custom_typing(self, request: Request, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise WxError(47001, violation="bad_body")
        command = body.get("command")
        if command not in ("Typing", "CancelTyping"):
            raise WxError(47001, "data format error hint: command must be Typing or CancelTyping",
                          violation="bad_typing_command")
        with self._lock:
            self._window_for(body.get("touser"))
            self.typing.append({"touser": body["touser"], "command": command, "time": self.now()})
        return {"errcode": 0, "errmsg": "ok"}

    # ---------------------------------------------------------------------------------------------- menu

    def _api_menu_create(self, request: Request, body: Any) -> dict[str, Any]:
        validate_menu(body)
        with self._lock:
            self.menu = copy.deepcopy(body)
        return {"errcode": 0, "errmsg": "ok"}

    def _api_menu_get(self, request: Request, body: Any) -> dict[str, Any]:
        with self._lock:
            if self.menu is None:
                raise WxError(46003)
            return {"menu": {"button": copy.deepcopy(self.menu["button"])}}

    def _api_menu_delete(self, request: Request, body: Any) -> dict[str, Any]:
        with self._lock:
            self.menu = None
        return {"errcode": 0, "errmsg": "ok"}

    # ---------------------------------------------------------------------------------------------- media

    def add_media(self, media_id: str, data: bytes, content_type: str = "image/jpeg", *, video: bool = False) -> None:
        """Temporary media a user sent (MediaId ``media_id``), kept 3 days on the fake's clock from now."""
        with self._lock:
            self._media[media_id] = _Media(bytes(data), content_type, self.now(), video)

    def _live_media(self, media_id: str | None) -> _Media:
        if not media_id:
            raise WxError(41006, violation="missing_media_id")
        with self._lock:
            media = self._media.get(media_id)
            if media is None or self.now() >= media.added + MEDIA_LIFETIME:
                raise WxError(40007)
            return media

    def _api_media_get(self, request: Request, body: Any) -> dict[str, Any] | Response:
        media_id = request.query_params.get("media_id")
        media = self._live_media(media_id)
        if media.video:
            return {"video_url": f"{self.api_base_url}{VIDEO_CDN_PATH}?media_id={media_id}"}
        extension = (media.content_type.split("/", 1)[-1].split(";", 1)[0] or "bin").replace("jpeg", "jpg")
        return Response(media.data, media_type=media.content_type,
                        headers={"Content-Disposition": f'attachment; filename="{media_id}.{extension}"'})

    def _cdn_video(self, request: Request, body: Any) -> dict[str, Any] | Response:
        media_id = request.query_params.get("media_id")
        with self._lock:
            media = self._media.get(media_id or "")
        if media is None or not media.video:
            return Response("Not Found", status_code=404, media_type="text/plain")
        return Response(media.data, media_type=media.content_type)

    # ---------------------------------------------------------------------------------------------- web pages

    def _api_getticket(self, request: Request, body: Any) -> dict[str, Any]:
        if request.query_params.get("type") not in ("jsapi", "wx_card"):
            raise WxError(40097, "invalid args", violation="bad_ticket_type")
        with self._lock:
            now = self.now()
            value = f"{len(self.tickets_issued) + 1:03d}_{secrets.token_urlsafe(60)}"
            self._tickets[value] = now + self.ticket_lifetime
            self.tickets_issued.append(value)
        return {"errcode": 0, "errmsg": "ok", "ticket": value, "expires_in": self.ticket_lifetime}

    @property
    def jsapi_ticket(self) -> str | None:
        """The newest ticket, if it has not expired."""
        with self._lock:
            if not self.tickets_issued or self._tickets[self.tickets_issued[-1]] <= self.now():
                return None
            return self.tickets_issued[-1]

    def ticket_valid(self, ticket: str) -> bool:
        with self._lock:
            return self._tickets.get(ticket, 0) > self.now()

    def expire_tickets(self) -> None:
        with self._lock:
            for ticket in self._tickets:
                self._tickets[ticket] = self.now()

    def issue_code(self, openid: str, scope: str = "snsapi_base") -> str:
        """A web sign-in code for ``openid``, as WeChat puts on the redirect (5 minutes, once)."""
        code = secrets.token_hex(16)
        with self._lock:
            self._codes[code] = {"openid": openid, "scope": scope, "issued": self.now(), "used": False}
        return code

    def _authorize_page(self, request: Request, body: Any) -> Response:
        """WeChat's authorize page in its browser: back to redirect_uri with a code for ``resident`` (snsapi_base
        asks nothing). A wrong appid, scope or redirect domain ends on WeChat's error page, as in WeChat."""
        q = request.query_params
        redirect, state, scope = q.get("redirect_uri", ""), q.get("state", ""), q.get("scope", "")
        with self._lock:
            self.authorizations.append({"query": dict(q), "user_agent": request.headers.get("user-agent", ""),
                                        "time": self.now()})
        problem = self._authorize_problem(q.get("appid"), redirect, scope, q.get("response_type"), state)
        if problem:
            self._record_violation("/connect/oauth2/authorize", WxError(10003, f"{problem} 参数错误",
                                                                        violation="bad_authorize"), dict(q))
            return Response(f"<html><body>{problem} 参数错误</body></html>", status_code=200, media_type="text/html")
        joiner = "&" if "?" in redirect else "?"
        code = f"code={self.issue_code(self.resident, scope)}&" if self.resident else ""  # None: nobody allowed it
        return Response(status_code=302, headers={"Location": f"{redirect}{joiner}{code}state={state}"})

    def _authorize_problem(self, appid: str | None, redirect: str, scope: str, response_type: str | None,
                           state: str) -> str:
        host = redirect.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0].split(":", 1)[0]
        if appid != self.appid:
            return "appid"
        if scope not in ("snsapi_base", "snsapi_userinfo"):
            return "scope"
        if not redirect.startswith(("http://", "https://")) or (self.oauth_domain not in (None, host)):
            return "redirect_uri"
        if response_type != "code":
            return "response_type"
        if len(state) > 128 or (state and not state.isalnum()):
            return "state"
        return ""

    def _api_oauth_token(self, request: Request, body: Any) -> dict[str, Any]:
        q = request.query_params
        if q.get("grant_type") != "authorization_code":
            raise WxError(40002)
        self._check_credentials(q.get("appid"), q.get("secret"), "client_credential")
        with self._lock:
            issued = self._codes.get(q.get("code") or "")
            if issued is None or self.now() > issued["issued"] + 300:
                raise WxError(40029, "invalid code")
            if issued["used"]:
                raise WxError(40163, "code been used")
            issued["used"] = True
        return {"access_token": secrets.token_urlsafe(48), "expires_in": 7200,
                "refresh_token": secrets.token_urlsafe(48), "openid": issued["openid"], "scope": issued["scope"]}

    # ---------------------------------------------------------------------------------------------- failures

    def fail(self, path_suffix: str, errcode: int | None = None, status: int | None = None, times: int | None = 1,
             delay: float | None = None, errmsg: str | None = None) -> None:
        """Make the next ``times`` calls whose path ends with ``path_suffix`` ("*" = any) fail; see the docstring."""
        suffix = path_suffix if path_suffix == "*" else "/" + path_suffix.strip("/")
        failure = self._make_failure(suffix, errcode, status, times, delay, errmsg)
        with self._lock:
            self._failures.append(failure)

    # ---------------------------------------------------------------------------------------------- reading

    def texts_to(self, openid: str) -> list[str]:
        with self._lock:
            return [r["content"] for r in self.sent if r["touser"] == openid and r["msgtype"] == "text"]

    def calls_to(self, path_suffix: str) -> list[dict[str, Any]]:
        suffix = "/" + path_suffix.strip("/")
        with self._lock:
            return [c for c in self.calls if c["path"].endswith(suffix)]

    def clear_records(self) -> None:
        """Forget recorded calls, sends, violations (tokens, windows, menu and the token counter are kept)."""
        with self._lock:
            for records in (self.sent, self.calls, self.violations, self.injected, self.typing, self.templates_sent,
                            self.mass_sent):
                records.clear()

    def wait_sent(self, n: int = 1, timeout: float = 10.0, *, touser: str | None = None) -> Any:
        """Wait until ``sent`` has at least ``n`` records (optionally to ``touser``); returns them."""

        def check() -> list[dict[str, Any]] | None:
            with self._lock:
                found = [r for r in self.sent if touser is None or r["touser"] == touser]
            return found if len(found) >= n else None

        return self._wait(check, timeout, f"{n} sent message(s)" + (f" to {touser}" if touser else ""))

    def wait_calls(self, n: int = 1, path_suffix: str = "*", timeout: float = 10.0) -> Any:
        """Wait until at least ``n`` calls (to paths ending with ``path_suffix``) were answered; returns them."""

        def check() -> list[dict[str, Any]] | None:
            with self._lock:
                found = list(self.calls) if path_suffix == "*" else self.calls_to(path_suffix)
            return found if len(found) >= n else None

        return self._wait(check, timeout, f"{n} call(s) to {path_suffix}")


def validate_menu(menu: Any) -> None:
    """Raise WxError (a violation) where WeChat's menu/create would reject ``menu``."""
    if not isinstance(menu, dict) or not isinstance(menu.get("button"), list):
        raise WxError(40016, violation="menu")
    buttons = menu["button"]
    if not 1 <= len(buttons) <= MAX_MENU_BUTTONS:
        raise WxError(40016, violation="menu")
    for button in buttons:
        if not isinstance(button, dict):
            raise WxError(47001, violation="menu")
        _check_name(button, MAX_MENU_NAME, 40018)
        subs = button.get("sub_button")
        if isinstance(subs, dict) and isinstance(subs.get("list"), list):  # the shape menu/get-style tools produce
            subs = subs["list"]
        if subs:
            if not isinstance(subs, list) or len(subs) > MAX_SUB_BUTTONS:
                raise WxError(40023, violation="menu")
            for sub in subs:
                if not isinstance(sub, dict):
                    raise WxError(47001, violation="menu")
                _check_name(sub, MAX_SUB_NAME, 40025)
                _check_leaf(sub, sub_level=True)
        else:
            _check_leaf(button, sub_level=False)


def _check_name(button: dict[str, Any], limit: int, errcode: int) -> None:
    name = button.get("name")
    if not isinstance(name, str) or not name or len(name.encode("utf-8")) > limit:
        raise WxError(errcode, violation="menu")


def _check_leaf(button: dict[str, Any], *, sub_level: bool) -> None:
    kind = button.get("type")
    if kind not in MENU_TYPES:
        raise WxError(40024 if sub_level else 40017, violation="menu")
    if kind in KEY_TYPES:
        key = button.get("key")
        if not isinstance(key, str) or not key or len(key.encode("utf-8")) > MAX_MENU_KEY:
            raise WxError(40026 if sub_level else 40019, violation="menu")
    if kind in URL_TYPES:
        url = button.get("url")
        if not isinstance(url, str) or not url or len(url.encode("utf-8")) > MAX_MENU_URL:
            raise WxError(40027 if sub_level else 40020, violation="menu")
        if not url.startswith(("http://", "https://")):
            raise WxError(40054 if sub_level else 40055, violation="menu")
    if kind == "miniprogram" and not (button.get("appid") and button.get("pagepath")):
        raise WxError(47001, "data format error hint: miniprogram button needs appid and pagepath", violation="menu")
    if kind in MEDIA_TYPES and not button.get("media_id"):
        raise WxError(40007, violation="menu")
    if kind in ARTICLE_TYPES and not button.get("article_id"):
        raise WxError(47001, "data format error hint: article_id missing", violation="menu")


# --------------------------------------------------------------------------------------------------------------------
# WeCom group robot
# --------------------------------------------------------------------------------------------------------------------


class FakeWeComRobot(_FakeBase):
    """A fake WeCom group-robot webhook; see the module docstring."""

    _kind = "WeCom robot"
    _errmsgs = ROBOT_ERRMSGS

    def __init__(self, key: str | None = None, *, rate_limit: tuple[int, float] = ROBOT_RATE,
                 enforce_rate_limit: bool = True, verbose_errors: bool = False) -> None:
        self.key = key or DEFAULT_ROBOT_KEY
        self.rate_limit = rate_limit
        self.enforce_rate_limit = enforce_rate_limit
        super().__init__(verbose_errors=verbose_errors)
        self.received: list[dict[str, Any]] = []
        self.rate_violations: list[dict[str, Any]] = []
        self._keys: set[str] = {self.key}
        self._accepted: dict[str, deque[float]] = {}

    @property
    def url(self) -> str:
        """The full webhook URL of the main key."""
        return self.url_for(self.key)

    def url_for(self, key: str) -> str:
        return f"{self._server.url}/cgi-bin/webhook/send?key={key}"

    def add_key(self, key: str | None = None) -> str:
        """Another robot (group) on the same server; returns its webhook URL."""
        key = key or str(uuid.uuid4())
        with self._lock:
            self._keys.add(key)
        return self.url_for(key)

    def __repr__(self) -> str:
        return f"<FakeWeComRobot {self.url} received={len(self.received)} violations={len(self.violations)}>"

    def _decorate(self, errcode: int, errmsg: str) -> str:
        hint = f"[{int(time.time())}_{secrets.randbelow(100)}_{secrets.token_hex(16)}]"
        return (f"{errmsg}, hint: {hint}, from ip: 127.0.0.1, more info at "
                f"https://open.work.weixin.qq.com/devtool/query?e={errcode}")

    # ---------------------------------------------------------------------------------------------- HTTP layer

    def _build_app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._endpoint, methods=["GET", "POST", "PUT", "DELETE"])])

    async def _endpoint(self, request: Request) -> Response:
        path = "/" + request.path_params["path"].strip("/")
        key = request.query_params.get("key", "")
        raw = await request.body()
        body, bad_json = _json_body(raw)
        record = {"path": path, "method": request.method, "key": key, "body": body}

        failure = self._take_failure(lambda f: f.suffix in ("*", key))
        if failure is not None:
            response = await self._apply_failure(failure, {"path": path, "key": key})
            if response is not None:
                payload = _payload_of(response)
                self._record_call(record, response.status_code, payload.get("errcode"), payload.get("errmsg"))
                return response

        if path != "/cgi-bin/webhook/send":
            err = WxError(404, "Not Found", violation="unknown_path")
            self._record_violation(path, err, body)
            self._record_call(record, 404, None, "Not Found")
            return _html_error(404)
        try:
            with self._lock:
                known = key in self._keys
            if not known:
                raise WxError(93000, violation=None if key else "missing_key")
            if request.method != "POST":
                raise WxError(43002, violation="wrong_http_method")
            if bad_json or not isinstance(body, dict):
                raise WxError(47001, violation="bad_json")
            entry = self._validate(body)
            with self._lock:
                self._rate_check(key)
                self.received.append({"key": key, **entry, "message": copy.deepcopy(body), "time": self.now()})
        except WxError as err:
            if err.violation:
                self._record_violation(path, err, body)
            payload = self._error_payload(err.errcode, err.errmsg)
            self._record_call(record, 200, err.errcode, payload["errmsg"])
            return self._json(payload)
        self._record_call(record, 200, 0, "ok")
        return self._json({"errcode": 0, "errmsg": "ok"})

    def _record_call(self, record: dict[str, Any], status: int, errcode: int | None, errmsg: str | None) -> None:
        with self._lock:
            self.calls.append({**record, "status": status, "errcode": errcode, "errmsg": errmsg, "time": self.now()})

    def _validate(self, body: dict[str, Any]) -> dict[str, Any]:
        msgtype = body.get("msgtype")
        if msgtype not in ROBOT_MSGTYPES:
            raise WxError(40008, violation="bad_msgtype")
        inner = body.get(msgtype)
        if not isinstance(inner, dict):
            raise WxError(40058, f"missing {msgtype}, invalid Request Parameter", violation="bad_body")
        entry: dict[str, Any] = {"msgtype": msgtype, "content": None, "mentioned_list": [],
                                 "mentioned_mobile_list": []}
        if msgtype in ("text", "markdown", "markdown_v2"):
            content = inner.get("content")
            if not isinstance(content, str) or not content:
                raise WxError(44004, violation="empty_content")
            limit = MAX_ROBOT_TEXT if msgtype == "text" else MAX_ROBOT_MARKDOWN
            if len(content.encode("utf-8")) > limit:
                raise WxError(40058, f"{msgtype}.content exceed max length {limit}. invalid Request Parameter",
                              violation="content_too_long")
            entry["content"] = content
            if msgtype == "text":
                for field in ("mentioned_list", "mentioned_mobile_list"):
                    value = inner.get(field, [])
                    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                        raise WxError(40058, f"{field} must be a list of strings. invalid Request Parameter",
                                      violation="bad_mentions")
                    entry[field] = list(value)
        elif msgtype == "image":
            try:
                data = base64.b64decode(inner.get("base64") or "", validate=True)
            except (binascii.Error, ValueError, TypeError):
                raise WxError(40058, "invalid image base64. invalid Request Parameter", violation="bad_image") from None
            if not data or hashlib.md5(data).hexdigest() != str(inner.get("md5", "")).lower():
                raise WxError(40058, "image md5 mismatch. invalid Request Parameter", violation="bad_image")
            if len(data) > MAX_ROBOT_IMAGE:
                raise WxError(40058, "image exceed max size 2M. invalid Request Parameter", violation="bad_image")
            entry["content"] = inner["md5"]
        elif msgtype == "news":
            articles = inner.get("articles")
            if not isinstance(articles, list) or not 1 <= len(articles) <= 8:
                raise WxError(40058, "news.articles must have 1-8 items. invalid Request Parameter",
                              violation="bad_news")
            if not all(isinstance(a, dict) and a.get("title") and a.get("url") for a in articles):
                raise WxError(40058, "news article needs title and url. invalid Request Parameter",
                              violation="bad_news")
            entry["content"] = articles[0]["title"]
        elif msgtype in ("file", "voice"):
            if not inner.get("media_id"):
                raise WxError(40007, violation="missing_media_id")
            entry["content"] = inner["media_id"]
        return entry

    def _rate_check(self, key: str) -> None:
        limit, window = self.rate_limit
        now = self.now()
        times = self._accepted.setdefault(key, deque())
        while times and times[0] <= now - window:
            times.popleft()
        if len(times) >= limit:
            self.rate_violations.append({"key": key, "count": len(times) + 1, "window": window, "time": now,
                                         "rejected": self.enforce_rate_limit})
            log.warning("WeCom robot rate limit: %s messages in %ss (key %s)", len(times) + 1, window, key)
            if self.enforce_rate_limit:
                raise WxError(45009, ROBOT_ERRMSGS[45009])
        times.append(now)

    # ---------------------------------------------------------------------------------------------- failures

    def fail(self, times: int | None = 1, errcode: int | None = None, status: int | None = None,
             delay: float | None = None, errmsg: str | None = None, key: str | None = None) -> None:
        """Make the next ``times`` webhook calls (to ``key`` only, if given) fail; see the module docstring."""
        failure = self._make_failure(key or "*", errcode, status, times, delay, errmsg)
        with self._lock:
            self._failures.append(failure)

    # ---------------------------------------------------------------------------------------------- reading

    def texts(self, key: str | None = None) -> list[str]:
        """Contents of the text / markdown messages received (for ``key`` only, if given)."""
        with self._lock:
            return [r["content"] for r in self.received
                    if (key is None or r["key"] == key) and r["msgtype"] in ("text", "markdown", "markdown_v2")]

    def clear_records(self) -> None:
        """Forget recorded calls, messages and violations (the rate-limit history is kept)."""
        with self._lock:
            for records in (self.received, self.calls, self.violations, self.rate_violations, self.injected):
                records.clear()

    def wait_received(self, n: int = 1, timeout: float = 10.0, *, key: str | None = None) -> Any:
        """Wait until ``received`` has at least ``n`` messages (for ``key`` only, if given); returns them."""

        def check() -> list[dict[str, Any]] | None:
            with self._lock:
                found = [r for r in self.received if key is None or r["key"] == key]
            return found if len(found) >= n else None

        return self._wait(check, timeout, f"{n} received message(s)")

    wait_sent = wait_received


# --------------------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------------------


def _json_body(raw: bytes) -> tuple[Any, bool]:
    """A request body as JSON, or (its text, True) when it is not JSON; (None, False) when empty."""
    if not raw:
        return None, False
    try:
        return json.loads(raw.decode("utf-8")), False
    except (ValueError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace"), True


def _html_error(status: int) -> Response:
    reason = HTTP_REASONS.get(status, "Error")
    page = (f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}"
            "</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
    return Response(page, status_code=status, media_type="text/html")


def _payload_of(response: Response) -> dict[str, Any]:
    if response.media_type != JSON_TYPE:
        return {}
    try:
        data = json.loads(bytes(response.body))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
