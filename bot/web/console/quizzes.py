"""The quiz pages (知识答题): campaigns (create, open, close), a campaign's statistics with charts, its leaderboard,
proxy entry of paper results by cadres, the spreadsheet. Through quizzes/, as the CLI does."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from bot.staff import audit
from bot.storage.models import QuizCampaign
from bot.tips.export import local_time
from bot.tips.ledger import china_time
from bot.web.console.auth import NO_STORE, Desk, base, clean, root, spreadsheet, whole
from knowledge.schema import load_taxonomy
from quizzes import campaigns, statistics
from quizzes import export as quiz_export
from quizzes.campaigns import QuizError

AUDIENCE_NAMES = {"elderly": "老年人", "student": "学生", "all": "所有人"}
STATE_NAMES = {"draft": "未开始", "scheduled": "定时开始", "open": "进行中", "closed": "已结束"}


def visible(desk: Desk, campaign: QuizCampaign) -> bool:
    """County staff see every campaign; township staff those for one of their townships or the whole county."""
    return campaigns.visible_to(campaign, desk.townships)


def _within(desk: Desk, campaign: QuizCampaign) -> bool:
    return campaigns.within(campaign, desk.townships)


def _int(form: FormData, key: str, default: int | None) -> int | None:
    return whole(form.get(key), default)


def _moment(text: str) -> datetime | None:
    try:
        return china_time(text) if text else None
    except ValueError as exc:
        raise QuizError("invalid", "the time is not a date and time") from exc


def _plain(error: QuizError) -> str:
    for key, words in (("exists already", "已经有这个代号的活动了，请换一个。"), ("audience", "请选择答题对象。"),
                       ("questions 1-50", "题数 1 到 50，每天次数 1 到 100，及格分 0 到 100。"),
                       ("seconds per question", "每题限时 5 到 600 秒，或者不限时。"),
                       ("end must come after", "结束时间要在开始时间之后。"),
                       ("not a date", "时间看不懂，请重新选择。"),
                       ("its end has passed", "这个活动已经过了结束时间，不能再开始。"),
                       ("score must be", "得分不能超过题数。"), ("not a region", "请选择这个活动里的村或学校。"),
                       ("slug", "代号用小写字母、数字和横线，2 到 64 位。"),
                       ("township", "只能为您负责的乡镇建活动。")):
        if key in error.message:
            return words
    return "这个操作现在不能做。"


async def listing(desk: Desk, problem: str | None = None, status: int = 200) -> Response:
    rows = [c for c in await desk.session.scalars(select(QuizCampaign).order_by(QuizCampaign.id.desc()))
            if visible(desk, c)]
    townships = desk.own_townships()
    return desk.page("quizzes.html", status, rows=rows, audiences=AUDIENCE_NAMES, states=STATE_NAMES,
                     townships=townships, problem=problem, is_open=campaigns.is_open, local_time=local_time)


async def create(desk: Desk) -> Response:
    form = desk.request.state.form or FormData()
    try:
        slug = str(form.get("slug") or "").strip().lower()
        if not campaigns.SLUG.fullmatch(slug):
            raise QuizError("invalid", "slug")
        towns = [str(t) for t in form.getlist("township")]
        scope = desk.townships
        if scope is not None and (not towns or any(t not in scope for t in towns)):
            raise QuizError("invalid", "township")
        seconds = _int(form, "seconds", None)
        made = await campaigns.create(
            desk.session, slug=slug, name=clean(form.get("name"), 60) or slug,
            audience=clean(form.get("audience"), 16), questions=_int(form, "questions", 10) or 10,
            seconds_per_question=seconds or None, attempts_per_day=_int(form, "attempts", 3) or 3,
            pass_mark=_int(form, "pass_mark", 60) or 0, starts_at=_moment(clean(form.get("start"), 32)),
            ends_at=_moment(clean(form.get("end"), 32)), townships=towns, open_now=form.get("open") == "1")
    except QuizError as exc:
        return await listing(desk, problem=_plain(exc), status=400)
    audit.record(desk.session, desk.actor, "quiz-create", made.slug)
    return RedirectResponse(f"{base(desk.request)}/quizzes/{made.slug}", status_code=303, headers=NO_STORE)


async def _campaign(desk: Desk) -> QuizCampaign | None:
    slug = desk.request.path_params["slug"]  # whole: a slug cut short could name another campaign
    found = await campaigns.find(desk.session, slug) if campaigns.SLUG.fullmatch(slug) else None
    return found if found is not None and visible(desk, found) else None


def _missing(desk: Desk) -> Response:
    return desk.page("refused.html", 404, message="没有找到这个答题活动，或者它不在您负责的乡镇。")


async def show(desk: Desk, problem: str | None = None, notice: str | None = None, status: int = 200) -> Response:
    campaign = await _campaign(desk)
    if campaign is None:
        return _missing(desk)
    region = desk.settings.region
    figures = await campaigns.stats(desk.session, region, campaign)
    scope = desk.townships
    places = {p.code: p for p in campaigns.regions(region, campaign)}
    villages = [r for r in figures["regions"] if scope is None or places[r["code"]].township in scope]
    texts = {q.id: q.question for q in desk.services.quiz_questions}
    board = await campaigns.leaderboard(desk.session, region, campaign, top=20)
    townships = statistics.by_township(region, campaign, figures["regions"], scope)
    categories = {slug: c.name for slug, c in load_taxonomy().items()}
    charts = {"townships": {"labels": [t["name"] for t in townships], "label": "参与率 %",
                            "values": [round(100 * (t["rate"] or 0), 2) for t in townships]},
              "villages": {"labels": [r["name"] for r in villages], "label": "参与率 %", "horizontal": True,
                           "values": [round(100 * (r["rate"] or 0), 2) for r in villages]},
              "spread": {"label": "人数", **await statistics.score_spread(desk.session, campaign)},
              "categories": {"labels": [categories.get(c["id"], c["id"]) for c in figures["categories"]],
                             "label": "答对率 %", "horizontal": True,
                             "values": [round(100 * c["correct_rate"], 1) for c in figures["categories"]]}}
    return desk.page(
        "quiz.html", status, c=campaign, figures=figures, villages=villages, texts=texts, board=board,
        charts=charts, places=[p for p in places.values()
                                                                              if scope is None or p.township in scope],
        may_act=_within(desk, campaign), audiences=AUDIENCE_NAMES, states=STATE_NAMES, problem=problem,
        notice=notice or {"recorded": "纸质答卷已录入。"}.get(desk.request.query_params.get("notice", "")),
        is_open=campaigns.is_open(campaign), public=f"{root(desk.request)}/quiz/{campaign.slug}",
        local_time=local_time)


async def act(desk: Desk) -> Response:
    campaign = await _campaign(desk)
    if campaign is None:
        return _missing(desk)
    form = desk.request.state.form or FormData()
    action = clean(form.get("action"), 16)
    notice = ""
    try:
        if action == "paper":  # a cadre's proxy entry, for their own villages
            place = clean(form.get("region"), 64)
            scope = desk.townships
            township = next((p.township for p in campaigns.regions(desk.settings.region, campaign)
                             if p.code == place), None)
            if scope is not None and township not in scope:
                raise QuizError("region", "not a region")
            score = _int(form, "score", -1)
            await campaigns.record_paper(desk.session, desk.settings.region, campaign, place=place,
                                         score=score if score is not None else -1, recorded_by=desk.actor,
                                         name=clean(form.get("name"), 32) or None, total=_int(form, "total", None))
            notice = "?notice=recorded"
        elif not _within(desk, campaign):
            return await show(desk, problem="这个活动不只属于您负责的乡镇，请县里处理。", status=403)
        elif action in ("open", "close"):
            await campaigns.hold(desk.session, campaign)
            change = campaigns.open_by_hand if action == "open" else campaigns.close_by_hand
            if change(campaign):  # (clicked twice: the second changes nothing, and is not audited)
                audit.record(desk.session, desk.actor, f"quiz-{action}", campaign.slug)
        else:
            return await show(desk, problem="没有这个操作。", status=400)
    except QuizError as exc:
        await desk.undo()
        return await show(desk, problem=_plain(exc), status=400)
    return RedirectResponse(f"{base(desk.request)}/quizzes/{campaign.slug}{notice}", status_code=303,
                            headers=NO_STORE)


async def export_xlsx(desk: Desk) -> Response:
    campaign = await _campaign(desk)
    if campaign is None:
        return _missing(desk)
    book = await quiz_export.build(desk.session, desk.settings.region, campaign, desk.townships)
    audit.record(desk.session, desk.actor, "export-quiz", campaign.slug)
    await desk.session.commit()
    return spreadsheet(book, f"quiz-{campaign.slug}.xlsx")
