"""The Today page (今日): what needs staff now — new and overdue tips, warnings running or waiting for approval,
open quiz campaigns with their participation, the week's top unanswered questions — and the charts."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from starlette.responses import Response

from bot.broadcasts import lifecycle, segments
from bot.services import top_gaps
from bot.storage.models import Broadcast, QuizCampaign, utcnow
from bot.tips import queries
from bot.web.console.auth import Desk
from knowledge.schema import load_taxonomy
from quizzes import campaigns, statistics

ACTIVE = ("draft", "approved", "sending", "paused")
ROUTE_NAMES = {"warn-telegram": "Telegram", "warn-wechat": "微信", "warn-notice": "下次来访提示",
               "warn-wecom": "企业微信群", "relay-telegram": "村干部转发", "relay-wechat": "村干部转发"}


async def page(desk: Desk) -> Response:
    rules = desk.settings.console
    now = utcnow()
    new = queries.TipFilter(status="new", scope=desk.scope)
    overdue = queries.TipFilter(overdue=True, scope=desk.scope)
    active = [b for b in await desk.session.scalars(select(Broadcast).where(Broadcast.state.in_(ACTIVE))
                                                    .order_by(Broadcast.id.desc()).limit(50))
              if segments.visible_to(desk.settings, b, desk.townships)]
    running = [(b, await lifecycle.progress(desk.session, desk.settings, b)) for b in active
               if b.state in ("sending", "paused")]
    open_campaigns = [c for c in await desk.session.scalars(select(QuizCampaign).order_by(QuizCampaign.id.desc()))
                      if campaigns.is_open(c, now) and campaigns.visible_to(c, desk.townships)]
    quiz_rows = []
    for campaign in open_campaigns:
        board = await campaigns.leaderboard(desk.session, desk.settings.region, campaign, top=0)
        quiz_rows.append((campaign, statistics.by_township(desk.settings.region, campaign, board["regions"],
                                                           desk.townships)))
    categories = {slug: c.name for slug, c in load_taxonomy().items()}
    by_category = await queries.weekly(desk.session, desk.scope, "category", now=now)
    by_category["series"] = {categories.get(k, k): v for k, v in by_category["series"].items()}
    reach = await lifecycle.reach(desk.session, desk.settings, now - timedelta(days=30), desk.townships)
    reach_chart: dict[str, dict[str, int]] = {}
    for route, counts in reach.items():
        name = ROUTE_NAMES.get(route, route)
        for status, n in counts.items():
            reach_chart.setdefault(name, {}).setdefault(status, 0)
            reach_chart[name][status] += n
    return desk.page(
        "today.html",
        new_count=await queries.count(desk.session, new, rules.overdue_days),
        overdue_count=await queries.count(desk.session, overdue, rules.overdue_days),
        newest=await queries.page(desk.session, new, rules.overdue_days, 1, 5),
        oldest_overdue=list(reversed(await queries.page(desk.session, overdue, rules.overdue_days, 1, 5))),
        waiting=[b for b in active if b.state == "draft"], running=running, quizzes=quiz_rows,
        gaps=await top_gaps(desk.session, 10, since=now - timedelta(days=7)),
        charts={"by_category": by_category,
                "by_township": await queries.weekly(desk.session, desk.scope, "township", now=now),
                "quiz": [{"campaign": c.name, "townships": rows} for c, rows in quiz_rows],
                "reach": reach_chart})
