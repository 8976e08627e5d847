"""The quiz page's JSON API (README, "Quiz campaigns"): translates HTTP to quizzes/campaigns.py and back.

The player is never taken from a body: it is a signed cookie this server issued (bot/web/quiz_player.py: the
WeChat sign-in's, or one set on the first visit), so a request can only ever answer its own attempts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.services import Services
from bot.web.app import BadRequest, read_json
from bot.web.quiz_player import Players
from quizzes import answering, campaigns
from quizzes.campaigns import Asked, QuizError
from quizzes.ranks import Ranks

log = logging.getLogger(__name__)
BOARD_SECONDS = 5.0  # how old a leaderboard served may be
MAX_BOARDS = 1000
STATUS = {"not-found": 404, "closed": 409, "limit": 429, "region": 400, "answered": 409, "foreign": 404,
          "invalid": 400}


def question_json(asked: Asked | None) -> dict[str, Any] | None:
    if asked is None:
        return None
    return {"id": asked.id, "text": asked.text, "options": asked.options, "index": asked.position + 1,
            "deadline": asked.deadline.isoformat() if asked.deadline else None}


class QuizApi:
    def __init__(self, services: Services) -> None:
        self.services = services
        # slug → (computed at, standings): a county's campaign page is opened by thousands at once
        self._boards: dict[str, tuple[float, dict[str, Any]]] = {}
        self._computing: dict[str, asyncio.Lock] = {}
        self.players = Players(services.vault)
        self.ranks = Ranks()

    def routes(self) -> list[Route]:
        return [Route("/api/quiz/{slug}/attempts/{attempt}/answers", self.answer, methods=["POST"]),  # most asked
                Route("/api/quiz/{slug}", self.campaign, methods=["GET"]),
                Route("/api/quiz/{slug}/attempts", self.start, methods=["POST"]),
                Route("/api/quiz/{slug}/leaderboard", self.leaderboard, methods=["GET"])]

    # -- endpoints ---------------------------------------------------------------------------------------------------
    async def campaign(self, request: Request) -> Response:
        async with self.services.db.session() as session:
            campaign = await campaigns.find(session, request.path_params["slug"])
        if campaign is None:
            return _error(QuizError("not-found", "no such campaign"))
        places = campaigns.regions(self.services.settings.region, campaign)
        return JSONResponse({
            "slug": campaign.slug, "name": campaign.name, "audience": campaign.audience,
            "open": campaigns.is_open(campaign), "total": campaign.questions,
            "seconds_per_question": campaign.seconds_per_question, "attempts_per_day": campaign.attempts_per_day,
            "regions": [{"code": r.code, "name": r.name, "kind": r.kind, "township": r.township} for r in places]})

    async def start(self, request: Request) -> Response:
        try:
            body = await read_json(request, self.services.settings.http.max_body_bytes)
        except BadRequest as exc:
            return JSONResponse({"error": exc.reason}, status_code=exc.status)
        if not isinstance(body, dict) or not isinstance(body.get("region"), str):
            return JSONResponse({"error": 'body must be {"region": "<code>", "name": "..."}'}, status_code=400)
        name = body.get("name")
        if name is not None and (not isinstance(name, str) or len(name) > 32 or not name.isprintable()):
            return JSONResponse({"error": '"name" must be printable text of at most 32 characters'}, status_code=400)
        me = self.players.of(request)
        services = self.services
        try:
            async with services.db.transaction() as session:
                campaign = await campaigns.named(session, request.path_params["slug"])
                if not campaigns.is_open(campaign):
                    raise QuizError("closed", "this campaign is not open")
                who = await campaigns.player(session, campaign, me.key, region=body["region"], name=name,
                                             region_settings=services.settings.region)
                attempt = await campaigns.start(session, campaign, who, services.quiz_questions, "web",
                                                services.fill)
                asked = campaigns.current(campaign, attempt)
                token, total = attempt.token, len(attempt.drawn["questions"])
        except QuizError as exc:
            return self.players.remember(_error(exc), request, me)
        return self.players.remember(JSONResponse({"attempt": token, "total": total,
                                                   "question": question_json(asked)}, status_code=201), request, me)

    async def answer(self, request: Request) -> Response:
        try:
            body = await read_json(request, self.services.settings.http.max_body_bytes)
        except BadRequest as exc:
            return JSONResponse({"error": exc.reason}, status_code=exc.status)
        if not isinstance(body, dict) or not isinstance(body.get("question"), str) \
                or not body["question"].isprintable() or type(body.get("choice")) is not int:
            return JSONResponse({"error": 'body must be {"question": "<id>", "choice": <index>}, the question '
                                          "id printable text"}, status_code=400)
        me = self.players.known(request)
        if me is None:
            return _error(QuizError("foreign", "no such attempt"))
        services = self.services
        slug = request.path_params["slug"]
        try:
            taken = await answering.take(services.db, self.ranks, slug, request.path_params["attempt"], me.key,
                                         body["question"], body["choice"])
        except QuizError as exc:
            return _error(exc)
        result, extra = taken.answered, {}
        if taken.rank is not None:  # the last answer: the player's own result shows in the standings they see
            self._boards.pop(slug, None)  # next (this process's copy)
            attempt = result.attempt
            extra = {"result": {"score": attempt.score, "total": len(attempt.drawn["questions"]),
                                "seconds": round(attempt.seconds, 1), "passed": taken.passed, "rank": taken.rank,
                                "certificate": attempt.certificate}}
        status = 409 if result.late else 200  # too late: recorded as not answered in time, the attempt goes on
        return JSONResponse({**({"error": "time was up for that question", "kind": "deadline"} if result.late else {}),
                             "correct": result.correct, "answer": result.answer, "explanation": result.explanation,
                             "score": result.score, "next": question_json(result.next), **extra},
                            status_code=status)

    async def leaderboard(self, request: Request) -> Response:
        board = await self.standings(request.path_params["slug"])
        if board is None:
            return _error(QuizError("not-found", "no such campaign"))
        return JSONResponse(board)

    async def standings(self, slug: str) -> dict[str, Any] | None:
        """The campaign's leaderboard, at most BOARD_SECONDS old (one computation at a time per campaign)."""
        held = self._boards.get(slug)
        if held is not None and time.monotonic() - held[0] < BOARD_SECONDS:
            return held[1]
        async with self._computing.setdefault(slug, asyncio.Lock()):
            held = self._boards.get(slug)
            if held is not None and time.monotonic() - held[0] < BOARD_SECONDS:
                return held[1]
            async with self.services.db.session() as session:
                campaign = await campaigns.find(session, slug)
                if campaign is None:
                    return None
                board = await campaigns.leaderboard(session, self.services.settings.region, campaign)
            if len(self._boards) > MAX_BOARDS:
                self._boards.clear()
            self._boards[slug] = (time.monotonic(), board)
            return board


def _error(exc: QuizError) -> JSONResponse:
    return JSONResponse({"error": exc.message, "kind": exc.kind}, status_code=STATUS[exc.kind])
