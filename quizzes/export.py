"""A campaign's results as a spreadsheet in the 台账 style (bot/spreadsheets.py): regions, players, questions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import RegionSettings
from bot.spreadsheets import add_sheet, new_workbook
from bot.storage.models import QuizAttempt, QuizCampaign, QuizPlayer
from bot.tips.export import local_time
from quizzes import campaigns

if TYPE_CHECKING:
    from openpyxl import Workbook

CHANNELS = {"web": "答题页面", "telegram": "Telegram", "wechat": "微信公众号", "local": "本地测试",
            "paper": "纸质（代录）"}


def _percent(rate: float | None) -> str:
    return "" if rate is None else f"{rate:.1%}"


async def build(session: AsyncSession, region: RegionSettings, campaign: QuizCampaign,
                townships: list[str] | None = None) -> Workbook:
    """The workbook; `townships` (codes): only the regions and players of these townships (staff limited to
    them), None for the whole county. The questions' and categories' figures are the campaign's, unnamed."""
    figures = await campaigns.stats(session, region, campaign)
    places = campaigns.regions(region, campaign)
    kept = {r.code for r in places if townships is None or r.township in townships}
    book = new_workbook()
    add_sheet(book, "地区", ("序号", "地区", "参与人数", "参与率", "平均答对题数"),
              [(n, r["name"], r["participants"], _percent(r["rate"]),
                "" if r["mean_score"] is None else r["mean_score"])
               for n, r in enumerate([r for r in figures["regions"] if r["code"] in kept], start=1)])
    counting = campaigns.counting_attempts(campaign)
    names = {r.code: r.name for r in places}
    ranked = enumerate((await session.execute(
        select(QuizPlayer, QuizAttempt).join(counting, counting.c.player_id == QuizPlayer.id)
        .join(QuizAttempt, QuizAttempt.id == counting.c.id)
        .order_by(QuizAttempt.score.desc(), QuizAttempt.seconds, QuizAttempt.id))).all(), start=1)
    rows = [(n, who, attempt) for n, (who, attempt) in ranked if townships is None or who.region in kept]
    add_sheet(book, "参赛者", ("名次", "姓名（已遮挡）", "地区", "答对题数", "题数", "用时（秒）", "渠道", "是否通过",
                              "证书编号", "完成时间"),
              [(n, campaigns.mask(who.name), names.get(who.region or "", who.region or ""), attempt.score,
                len(attempt.drawn.get("questions") or []) or (attempt.drawn.get("paper") or {}).get("total", ""),
                round(attempt.seconds, 1), CHANNELS.get(attempt.channel, attempt.channel),
                "是" if campaigns.passed(campaign, attempt) else "否", attempt.certificate or "",
                local_time(attempt.finished_at)) for n, who, attempt in rows])  # (the rank in the whole campaign)
    add_sheet(book, "题目", ("题目编号", "作答次数", "正确率"),
              [(q["id"], q["answered"], _percent(q["correct_rate"])) for q in figures["questions"]])
    add_sheet(book, "知识类别", ("类别", "作答次数", "正确率"),
              [(c["id"], c["answered"], _percent(c["correct_rate"])) for c in figures["categories"]])
    return book
